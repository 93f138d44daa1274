"""The paper preset's symp training step against the device's own float64 GEMM, unbundled and in seed bundles.

    python benchmarks/gpu_step.py                              # D = 64 and 256, bundles 1, 4, 10 (16 at D = 64)
    python benchmarks/gpu_step.py --D 16 --bundles 1,4 --horizon 32 --gemm-n 1024   # a CPU-sized check

For each D and bundle size: the step of `train=paper` (system fput, model symp, the memory strategy the run would
take) compiled on the default device and timed at the final training horizon (`sympscale.estimate.measured_step`,
median of the repeats); its FLOPs by the analytic count of the matrix products (`symp_step_flops`, x seeds) and by
XLA's own estimate; the fraction of the measured float64 GEMM of the same device (an n x n product, the device's
practical float64 ceiling); seeds per hour at the preset's steps and mean curriculum horizon. Prints a markdown
table for BENCHMARKS.md and writes --json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time


def _row(D: int, seeds: int, args, gemm: dict) -> dict:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from sympscale.bringup.performance import symp_step_flops
    from sympscale.curriculum import mean_horizon
    from sympscale.estimate import assembled, measured_step
    from sympscale.train import config_dir, register

    register()
    overrides = ["system=fput", f"D={D}", "model=symp", f"train={args.preset}", *args.override]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    spec, run, tr = assembled(OmegaConf.to_container(cfg, resolve=True))
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
    return {
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
        "wall_s": time.perf_counter() - t0,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--D", default="64,256")
    p.add_argument("--bundles", default="1,4,10", help="seeds per bundle (at D = 64 also 16 unless --no-16)")
    p.add_argument("--no-16", action="store_true")
    p.add_argument("--preset", default="paper")
    p.add_argument("--horizon", type=int, default=0, help="time at this horizon (0: the preset's final horizon)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--gemm-n", type=int, default=8192)
    p.add_argument("--json", default=None)
    p.add_argument("override", nargs="*", help="further config overrides")
    args = p.parse_args()

    import jax

    import sympscale  # noqa: F401  (float64)
    from sympscale.bringup.performance import gemm_tflops

    dev = jax.devices()[0]
    gemm = gemm_tflops(args.gemm_n)
    rows = []
    for D in (int(x) for x in args.D.split(",")):
        sizes = [int(x) for x in args.bundles.split(",")] + ([16] if D == 64 and not args.no_16 else [])
        for seeds in sizes:
            rows.append(_row(D, seeds, args, gemm))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    env = {
        "device": f"{dev.platform}:{getattr(dev, 'device_kind', dev)}",
        "jax": jax.__version__,
        "python": platform.python_version(),
        "date": datetime.date.today().isoformat(),
        "gemm": gemm,
    }
    print(
        f"{env['device']}, jax {env['jax']}, {env['date']}; float64 GEMM {args.gemm_n}^2: {gemm['tflops']:.2f} "
        f"TFLOP/s\n"
    )
    print("| D | seeds | memory | step s | TFLOP/s (analytic) | of FP64 GEMM | seeds per hour | compile s |")
    print("|---|---|---|---|---|---|---|---|")
    base = {r["D"]: r["seeds_per_hour"] for r in rows if r["seeds"] == 1}
    for r in rows:
        gain = f" ({r['seeds_per_hour'] / base[r['D']]:.1f}x)" if r["D"] in base and r["seeds"] > 1 else ""
        print(
            f"| {r['D']} | {r['seeds']} | {r['memory']} | {r['step_s']:.3f} | {r['tflops']:.2f} | "
            f"{r['fraction_of_gemm']:.1%} | {r['seeds_per_hour']:.2f}{gain} | {r['compile_s']:.0f} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
