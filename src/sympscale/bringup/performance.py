"""Memory, speed and data-generation time on the device, at the headline configuration or a reduced one.

Memory comes from `python -m sympscale.memory --run` (the run's own gradient program, compiled per strategy;
each strategy measured in a fresh process, since a device's high-water mark never resets). Speed is that
measured step against an analytic FLOP count of the same program and against a float64 GEMM, the device's
practical float64 ceiling.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from sympscale.bringup.process import run_group


def profile_memory(overrides: list[str], timeout: float = 1800.0) -> dict:
    """The memory table of `overrides` (predicted and measured per strategy), as `sympscale.memory --json` writes it."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "memory.json"
        cmd = [sys.executable, "-m", "sympscale.memory", "--run", "--json", str(out), *overrides]
        try:
            r = run_group(cmd, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"python -m sympscale.memory did not finish in {timeout:.0f} s") from None
        if r.returncode != 0 or not out.exists():
            last = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]
            raise RuntimeError(f"python -m sympscale.memory failed: {last}")
        return json.loads(out.read_text())


def symp_step_flops(
    D: int,
    width: int,
    depth: int,
    batch: int,
    horizon: int,
    *,
    substeps: int = 4,
    method: str = "yoshida4",
    remat: bool = True,
) -> float:
    """Analytic FLOPs of one training-gradient step of the symp model (quadratic kinetic term, MLP potential).

    Counts the matrix products only: the potential MLP on N = D/2 coordinates (forward 2·(N·w + (depth−1)·w² + w)
    per state) and its input gradient (as much again) at every kick; the kinetic drift (Lᵀp then L(Lᵀp): 4·N² per
    state) at every drift of the composition. The gradient step costs the forward rollout three times (backward
    ≈ 2× forward), four times with per-step rematerialisation (the forward recomputed in the backward pass).
    """
    from sympscale.integrators import METHODS, kick_drift_coefficients

    kicks, drifts = kick_drift_coefficients(np.tile(METHODS[method], substeps))
    n = D // 2
    mlp_forward = 2.0 * (n * width + (depth - 1) * width * width + width)
    per_observation = len(kicks) * 2.0 * mlp_forward + len(drifts) * 4.0 * n * n
    forward = batch * horizon * per_observation
    return forward * (4.0 if remat else 3.0)


def gemm_tflops(n: int, repeats: int = 5) -> dict:
    """float64 n×n matrix product on the default device: median time and TFLOP/s (2n³ FLOPs)."""
    rng = np.random.default_rng(0)
    a, b = (jax.device_put(rng.normal(size=(n, n))) for _ in range(2))
    mm = jax.jit(jnp.matmul)
    jax.block_until_ready(mm(a, b))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(mm(a, b))
        times.append(time.perf_counter() - t0)
    t = float(np.median(times))
    return {"n": n, "seconds": t, "tflops": 2.0 * n**3 / t / 1e12}


def generation_time(system: str, D: int, n_trajectories: int, n_obs: int) -> dict:
    """Generate one dataset into a fresh temporary cache (nothing reused) and time it (`data.timed_generation`,
    as benchmarks/generation.py does)."""
    from sympscale.data import DataSpec, timed_generation
    from sympscale.systems import make_system

    total, data = timed_generation(make_system(system, D), DataSpec(n_trajectories=n_trajectories, n_obs=n_obs))
    return {
        "system": system,
        "D": D,
        "n_trajectories": n_trajectories,
        "n_obs": n_obs,
        "seconds": total,
        "trajectories_s": data.meta.get("generation_wall_s"),
    }
