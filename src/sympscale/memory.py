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
import os
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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sympscale.memory", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--run", action="store_true", help="also run one step per strategy (fresh process each)")
    p.add_argument("--json", help="write the results to this file")
    p.add_argument("--strategies", default="none,remat,blocked")
    p.add_argument("--measure-one", help=argparse.SUPPRESS)  # internal: the fresh-process measurement
    p.add_argument("overrides", nargs="*")
    return p


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    # JAX takes 75 % of a GPU at its first operation: a prediction needs none of it (on a shared node it may be
    # another user's), and a parent that took it would leave its measuring children (which inherit this) to
    # compete for the rest. The budget is the device's limit either way.
    os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    from sympscale.profiling import device_budget, measure_step
    from sympscale.validation import config_errors

    cfg = _compose(a.overrides)
    errors = config_errors(cfg)
    if errors:
        print("sympscale.memory: invalid config:\n  " + "\n  ".join(errors), file=sys.stderr)
        return 2
    run, spec = _assembled(cfg)
    if a.measure_one:
        print(json.dumps(measure_step(run, a.measure_one)))
        return 0
    budget, what = device_budget()
    print(
        f"{spec.model} on {spec.system} D={spec.D}: {run.info['params']:,} parameters; batch {spec.train.batch_size}, "
        f"horizon {spec.train.horizon}, window {spec.bptt_window or 'full'}"
    )
    print(f"device: {_device()}; budget {_gib(budget).strip()} GiB ({what})")
    rows = [_row(run, memory, budget, a) for memory in a.strategies.split(",")]
    _print_table(rows, a.run)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(
                {"device": _device(":"), "budget": budget, "config": _summary(spec), "strategies": rows}, f, indent=2
            )
    return 0


def _device(sep: str = " ") -> str:
    import jax

    dev = jax.devices()[0]
    return f"{dev.platform}{sep}{getattr(dev, 'device_kind', '')}"


def _summary(spec) -> dict:
    tr = spec.train
    return {"system": spec.system, "D": spec.D, "model": spec.model, "batch_size": tr.batch_size, "horizon": tr.horizon}


def _row(run, memory: str, budget, a) -> dict:
    """The predicted peak of one strategy, whether it fits, and (--run) its measurement in a fresh process: only of
    a strategy `train.memory=auto` could take (predicted within `profiling.HEADROOM` of the budget), as one predicted
    not to fit would only spend a compile and an out-of-memory error."""
    from sympscale.profiling import HEADROOM, predicted_memory

    row = predicted_memory(run, memory)
    row["fits"] = None if budget is None or row["peak"] is None else bool(row["peak"] <= budget)
    if a.run and budget is not None and row["peak"] is not None and row["peak"] > HEADROOM * budget:
        row["run_skipped"] = f"predicted above {HEADROOM:.0%} of the budget: not run"
    elif a.run:
        r = subprocess.run(
            [sys.executable, "-m", "sympscale.memory", "--measure-one", memory, *a.overrides],
            capture_output=True,
            text=True,
        )
        if r.returncode == 0:
            row.update(json.loads(r.stdout.strip().splitlines()[-1]))
        else:
            row["run_error"] = (r.stderr.strip().splitlines() or ["failed"])[-1]
    return row


def _print_table(rows: list[dict], measured: bool) -> None:
    head = f"{'strategy':<9} {'pred. peak GiB':>14} {'temp GiB':>9} {'fits':>5}"
    print(head + (f" {'meas. peak GiB':>14} {'step s':>8}" if measured else ""))
    for r in rows:
        line = f"{r['memory']:<9} {_gib(r.get('peak')):>14} {_gib(r.get('temp')):>9} {str(r['fits']):>5}"
        if measured:
            line += f" {_gib(r.get('measured_peak')):>14} {r.get('step_s', float('nan')):>8.3f}"
            line += f"  {r.get('run_error', r.get('run_skipped', ''))}"
        print(line)
    if _device().startswith("cpu"):
        print(CPU_NOTE)
        if measured:
            print("note: on CPU the measured peak is the process's max RSS (whole process, not just the program).")


if __name__ == "__main__":
    sys.exit(main())
