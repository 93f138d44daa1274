"""`python -m sympscale.memory <the same overrides as train>`: will this config fit this device?

Compiles the real training-gradient program of the config for each memory strategy from shape structs
(nothing allocated, no data generated) and prints the predicted peak (code + arguments + outputs − aliased +
temp) and whether it fits the current device. `--run` also executes one step per strategy, each in a fresh
process, and reports the measured peak and step time. `--json FILE` writes the table as JSON.

    python -m sympscale.memory system=fput D=256 model=symp train=paper
    python -m sympscale.memory --run system=fput D=64 train=smoke --json mem.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CPU_NOTE = (
    "note: this is a CPU compile. CPU compiles overestimate GPU memory (by ~30 % for the seed config, DESIGN §4);"
    " run this on the GPU node to size a GPU run."
)


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from sympscale.seeds import rewrite_args
    from sympscale.train import config_dir  # registers the schemas

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name="config", overrides=rewrite_args(overrides))


def _assembled(cfg):
    """The run of this config as it trains (`sympscale.assembly.assemble`), for its shapes: no data generated."""
    from sympscale.assembly import assemble
    from sympscale.job import JobSpec

    spec = JobSpec.from_config(cfg)
    return assemble(spec), spec


def _gib(b) -> str:
    return "–" if b is None else f"{b / 2**30:8.3f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m sympscale.memory", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--run", action="store_true", help="also run one step per strategy (fresh process each)")
    p.add_argument("--json", help="write the results to this file")
    p.add_argument("--strategies", default="none,remat,blocked")
    p.add_argument("--measure-one", help=argparse.SUPPRESS)  # internal: the fresh-process measurement
    p.add_argument("overrides", nargs="*")
    a = p.parse_args(argv)

    import jax

    from sympscale.profiling import device_budget, measure_step, predicted_memory
    from sympscale.validation import config_errors

    cfg = _compose(a.overrides)
    errors = config_errors(cfg)
    if errors:
        print("sympscale.memory: invalid config:\n  " + "\n  ".join(errors), file=sys.stderr)
        return 2
    run, spec = _assembled(cfg)
    info = run.info
    if a.measure_one:
        print(json.dumps(measure_step(run, a.measure_one)))
        return 0

    budget, what = device_budget()
    dev = jax.devices()[0]
    print(
        f"{spec.model} on {spec.system} D={spec.D}: {info['params']:,} parameters; batch {spec.train.batch_size}, "
        f"horizon {spec.train.horizon}, window {spec.bptt_window or 'full'}"
    )
    print(f"device: {dev.platform} {getattr(dev, 'device_kind', '')}; budget {_gib(budget).strip()} GiB ({what})")
    rows = []
    for memory in a.strategies.split(","):
        row = predicted_memory(run, memory)
        row["fits"] = None if budget is None or row["peak"] is None else bool(row["peak"] <= budget)
        if a.run:
            r = subprocess.run(
                [sys.executable, "-m", "sympscale.memory", "--measure-one", memory, *a.overrides],
                capture_output=True,
                text=True,
            )
            if r.returncode == 0:
                row.update(json.loads(r.stdout.strip().splitlines()[-1]))
            else:
                row["run_error"] = (r.stderr.strip().splitlines() or ["failed"])[-1]
        rows.append(row)
    head = f"{'strategy':<9} {'pred. peak GiB':>14} {'temp GiB':>9} {'fits':>5}"
    if a.run:
        head += f" {'meas. peak GiB':>14} {'step s':>8}"
    print(head)
    for r in rows:
        line = f"{r['memory']:<9} {_gib(r.get('peak')):>14} {_gib(r.get('temp')):>9} {str(r['fits']):>5}"
        if a.run:
            line += f" {_gib(r.get('measured_peak')):>14} {r.get('step_s', float('nan')):>8.3f}"
            line += f"  {r.get('run_error', '')}"
        print(line)
    if dev.platform == "cpu":
        print(CPU_NOTE)
        if a.run:
            print("note: on CPU the measured peak is the process's max RSS (whole process, not just the program).")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(
                {
                    "device": f"{dev.platform}:{getattr(dev, 'device_kind', '')}",
                    "budget": budget,
                    "config": {
                        "system": spec.system,
                        "D": spec.D,
                        "model": spec.model,
                        "batch_size": spec.train.batch_size,
                        "horizon": spec.train.horizon,
                    },
                    "strategies": rows,
                },
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
