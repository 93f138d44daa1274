"""The paper preset's symp training step against the device's own float64 GEMM, unbundled and in seed bundles.

    python benchmarks/gpu_step.py                              # the cells below, most telling first
    python benchmarks/gpu_step.py --deadline 240 --json s.json # start no cell after 240 s (the table of those done)
    python benchmarks/gpu_step.py --cells 16:1,16:4 --horizon 32 --gemm-n 1024   # a CPU-sized check

Each cell D:seeds is the step of `train=paper` (system fput, model symp, the memory strategy the run would take)
for a bundle of that many seeds, compiled on the default device and timed at the final training horizon
(`sympscale.estimate.measured_step`, median of the repeats); its FLOPs by the analytic count of the matrix
products (`symp_step_flops`, x seeds) and by XLA's own estimate; the fraction of the measured float64 GEMM of the
same device (an n x n product, the device's practical float64 ceiling); seeds per hour at the preset's steps and
mean curriculum horizon, and the gain over the unbundled cell of the same D. For the cells in --check (bundles
of 10: what the dry run plans), the dry run's own estimate of the same step (`sympscale.estimate.estimate`: timed
at a short horizon, scaled in proportion) is set beside the measured one: the check of its extrapolation.
Prints a markdown table for BENCHMARKS.md and writes --json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time

CELLS = "256:10,64:1,64:16,256:1,64:10,64:4,256:4"  # the goals' cells first: a deadline drops the last ones


def _config(D: int, args) -> dict:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from sympscale.train import config_dir, register

    register()
    overrides = ["system=fput", f"D={D}", "model=symp", f"train={args.preset}", *args.override]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return OmegaConf.to_container(compose(config_name="config", overrides=overrides), resolve=True)


def _row(D: int, seeds: int, args, gemm: dict) -> dict:
    from sympscale.bringup.performance import symp_step_flops
    from sympscale.curriculum import mean_horizon
    from sympscale.estimate import assembled, estimate, measured_step

    cfg = _config(D, args)
    spec, run, tr = assembled(cfg)
    horizon = args.horizon or tr.horizon
    t0 = time.perf_counter()
    m = measured_step(spec, run, tr, seeds, horizon, repeats=args.repeats)
    flops = seeds * symp_step_flops(
        D,
        run.model.width,
        run.model.depth,
        tr.batch_size,
        horizon,
        substeps=run.model.substeps,
        method=run.model.method,
        remat=tr.memory != "none",
    )
    per_run_s = tr.steps * m["step_s"] * mean_horizon(tr.schedule(), tr.steps) / horizon / seeds
    row = {
        "D": D,
        "seeds": seeds,
        "memory": tr.memory,
        "batch": tr.batch_size,
        "horizon": horizon,
        "step_s": m["step_s"],
        "compile_s": m["compile_s"],
        "analytic_tflop": flops / 1e12,
        "xla_tflop": None if m["xla_flops"] is None else m["xla_flops"] / 1e12,
        "tflops": flops / m["step_s"] / 1e12,
        "fraction_of_gemm": flops / m["step_s"] / 1e12 / gemm["tflops"],
        "seeds_per_hour": 3600.0 / per_run_s,
    }
    if f"{D}:{seeds}" in args.check.split(",") and horizon == tr.horizon:
        predicted = estimate(cfg, seeds)
        row["estimate_step_s"] = predicted["step_s"]
        row["estimate_over_measured"] = predicted["step_s"] / m["step_s"]
    row["wall_s"] = time.perf_counter() - t0
    return row


def _table(rows: list[dict]) -> list[str]:
    lines = [
        "| D | seeds | memory | step s | TFLOP/s (analytic) | of FP64 GEMM | seeds per hour (x unbundled) | compile s "
        "| dry-run estimate / measured |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    base = {r["D"]: r["seeds_per_hour"] for r in rows if r["seeds"] == 1}
    for r in sorted(rows, key=lambda r: (r["D"], r["seeds"])):
        gain = f" ({r['seeds_per_hour'] / base[r['D']]:.1f}x)" if r["D"] in base and r["seeds"] > 1 else ""
        check = f"{r['estimate_over_measured']:.2f}" if "estimate_over_measured" in r else "–"
        lines.append(
            f"| {r['D']} | {r['seeds']} | {r['memory']} | {r['step_s']:.3f} | {r['tflops']:.2f} | "
            f"{r['fraction_of_gemm']:.1%} | {r['seeds_per_hour']:.2f}{gain} | {r['compile_s']:.0f} | {check} |"
        )
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cells", default=CELLS, help="D:seeds, in the order they are measured")
    p.add_argument("--check", default="256:10,64:10", help="cells whose dry-run estimate is checked")
    p.add_argument("--deadline", type=float, default=0, help="start no cell after this many seconds (0: none)")
    p.add_argument("--preset", default="paper")
    p.add_argument("--horizon", type=int, default=0, help="time at this horizon (0: the preset's final horizon)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--gemm-n", type=int, default=8192)
    p.add_argument("--json", default=None)
    p.add_argument("override", nargs="*", help="further config overrides")
    args = p.parse_args()

    import jax

    import sympscale  # noqa: F401  (float64)
    from sympscale.bringup.performance import gemm_tflops

    start = time.perf_counter()
    dev = jax.devices()[0]
    gemm = gemm_tflops(args.gemm_n)
    env = {
        "device": f"{dev.platform}:{getattr(dev, 'device_kind', dev)}",
        "jax": jax.__version__,
        "python": platform.python_version(),
        "date": datetime.date.today().isoformat(),
        "gemm": gemm,
    }
    rows, cells = [], args.cells.split(",")
    for i, cell in enumerate(cells):
        if args.deadline and time.perf_counter() - start > args.deadline:
            break
        D, seeds = (int(x) for x in cell.split(":"))
        rows.append(_row(D, seeds, args, gemm))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        _write(args, {**env, "wall_s": time.perf_counter() - start}, rows, cells[i + 1 :])  # kept if killed later
    skipped = cells[len(rows) :]
    print(
        f"{env['device']}, jax {env['jax']}, {env['date']}; float64 GEMM {args.gemm_n}^2: {gemm['tflops']:.2f} "
        f"TFLOP/s; {time.perf_counter() - start:.0f} s\n"
    )
    print("\n".join(_table(rows)))
    if skipped:
        print(f"\nnot measured (past the {args.deadline:g} s deadline): {', '.join(skipped)}")
    _write(args, {**env, "wall_s": time.perf_counter() - start}, rows, skipped)
    return 0


def _write(args, env: dict, rows: list[dict], skipped: list[str]) -> None:
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "rows": rows, "skipped": skipped, "table": _table(rows)}, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
