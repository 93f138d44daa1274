"""Memory and step time of full-horizon BPTT per memory strategy, for the seed's headline configuration.

    python benchmarks/memory_strategies.py            # GPU: batch 512, D=256, horizon 1,000, width 512
    python benchmarks/memory_strategies.py --small    # scaled down (the default on a machine without GPU)

Each strategy runs in a fresh process (the device's peak-memory mark never resets). Prints a markdown table
for BENCHMARKS.md: predicted peak (XLA memory analysis of the compiled gradient program), measured peak,
median step time, and achieved FP64 TFLOP/s from an analytic FLOP count of the symplectic model.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys

HEADLINE = {"batch": 512, "D": 256, "horizon": 1000, "width": 512, "depth": 3}
SMALL = {"batch": 64, "D": 64, "horizon": 100, "width": 128, "depth": 3}


def analytic_flops(batch: int, D: int, horizon: int, width: int, depth: int, substeps: int, memory: str) -> float:
    """FLOPs of one training step of `symp` (matrix products only).

    Force ∇V of the MLP [N, w×depth, 1]: forward + input-gradient ≈ 4B(Nw + (depth−1)w² + w); ∇T = LLᵀp: 4BN².
    Yoshida-4 as implemented: 3 ∇T per substep and 3·substeps + 1 ∇V per observation (consecutive substeps share
    their boundary kick). Reverse mode through the (already differentiated) step
    costs ≈ 2 forward passes; rematerialisation adds one more forward.
    """
    N = D // 2
    grad_v = 4 * batch * (N * width + (depth - 1) * width * width + width)
    grad_t = 4 * batch * N * N
    forward = horizon * ((3 * substeps + 1) * grad_v + 3 * substeps * grad_t)
    return forward * (3 + (0 if memory == "none" else 1))


def one(strategy: str, size: dict) -> dict:
    import numpy as np

    import sympscale  # noqa: F401  (x64)
    from sympscale.assembly import Assembly
    from sympscale.models import Capacity, build
    from sympscale.profiling import measure_step, predicted_memory
    from sympscale.systems import make_system
    from sympscale.training import TrainSpec

    D = size["D"]
    model, info = build(
        "symp",
        D=D,
        dt=0.5,
        mean=np.zeros(D),
        std=np.ones(D),
        capacity=Capacity(width=size["width"], depth=size["depth"]),
    )
    spec = TrainSpec(batch_size=size["batch"], horizon=size["horizon"], memory=strategy)
    run = Assembly(make_system("fput", D), None, model, info, spec, projector=None, start_with=None)  # shapes only
    pred = predicted_memory(run, strategy)
    meas = measure_step(run, strategy)
    flops = analytic_flops(size["batch"], D, size["horizon"], size["width"], size["depth"], model.substeps, strategy)
    return {**pred, **meas, "params": info["params"], "analytic_flops": flops, "tflops": flops / meas["step_s"] / 1e12}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", action="store_true")
    p.add_argument("--strategies", default="none,remat,blocked")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--size", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        print(json.dumps(one(a.one, json.loads(a.size))))
        return
    import jax

    gpu = jax.default_backend() != "cpu"
    size = SMALL if (a.small or not gpu) else HEADLINE
    rows = []
    for s in a.strategies.split(","):
        r = subprocess.run(
            [sys.executable, __file__, "--one", s, "--size", json.dumps(size)], capture_output=True, text=True
        )
        rows.append(
            json.loads(r.stdout.strip().splitlines()[-1])
            if r.returncode == 0
            else {"memory": s, "error": (r.stderr.strip().splitlines() or ["failed"])[-1]}
        )
    dev = jax.devices()[0]
    print(
        f"\n{datetime.date.today()} · {dev.platform} {getattr(dev, 'device_kind', '')} · JAX {jax.__version__} · "
        f"Python {platform.python_version()} · batch {size['batch']}, D={size['D']}, horizon {size['horizon']}, "
        f"width {size['width']} (symp, full BPTT, one gradient step)\n"
    )
    print("| strategy | predicted peak GiB | measured peak GiB | step s | analytic TFLOP/s | XLA GFLOP |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['memory']} | failed: {r['error'][:80]} | | | | |")
            continue
        xla = r.get("xla_flops")
        print(
            f"| {r['memory']} | {r['peak'] / 2**30:.3f} | {r['measured_peak'] / 2**30:.3f} ({r['peak_source']}) | "
            f"{r['step_s']:.3f} | {r['tflops']:.3f} | {xla / 1e9 if xla else float('nan'):.1f} |"
        )


if __name__ == "__main__":
    main()
