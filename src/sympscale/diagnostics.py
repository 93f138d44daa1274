"""Dataset diagnostics: the largest Lyapunov exponent and the valid ground-truth horizon; the Lyapunov spectrum
of any map (a learned model's own dynamics).

λ₁ comes from renormalised tangent-map iteration: a tangent vector is pushed through the reference map of
one observation interval with forward-mode autodiff (`System.tangent_interval`), its growth logged and its
norm reset to 1 each interval (Benettin et al. 1980). The first intervals, while the vector aligns with the
most unstable direction, are discarded. Finite-time estimates are biased upwards for regular orbits (∝ ln T/T).

The ground-truth horizon (SCIENCE §0.10, §8) is where the dataset's reference and a second reference computed
differently (smaller step or tighter tolerance) part: the first time their normalised RMSE exceeds 0.05.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from sympscale.systems.base import System

GT_THRESHOLD = 0.05
# XLA's CPU fusion emitters (the JAX 0.10 default) compile the small tangent-map loop body of a D = 16 lattice
# for ~15 s and run it ~10x slower; this program alone turns them off (other backends ignore CPU options).
# Process-wide, the flag slowed the training step by ~25 % (BENCHMARKS.md, "The step itself").
_TANGENT_COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": False}


def lyapunov_exponent(system: System, x0: jnp.ndarray, n_intervals: int, *, transient: int, seed: int = 0) -> dict:
    """Largest Lyapunov exponent per initial state (n, D) over n_intervals of dt_obs, after `transient` intervals."""
    if not 0 <= transient < n_intervals:
        raise ValueError(f"transient={transient} must be in [0, n_intervals={n_intervals})")
    v0 = jax.random.normal(jax.random.key(seed), x0.shape, dtype=jnp.float64)
    v0 = v0 / jnp.linalg.norm(v0, axis=-1, keepdims=True)

    @jax.jit(compiler_options=_compiler_options())
    def run(x, v):
        def step(carry, _):
            x, v = carry
            x, v = system.tangent_interval(x, v)
            g = jnp.linalg.norm(v, axis=-1)
            return (x, v / g[..., None]), jnp.log(g)

        _, logs = lax.scan(step, (x, v), None, length=n_intervals)
        return logs  # (n_intervals, n)

    logs = np.asarray(run(jnp.asarray(x0), v0))
    kept = logs[transient:]
    per = kept.sum(axis=0) / (len(kept) * system.dt_obs)
    # convergence: the estimate over the first and the second half of the kept intervals
    half = len(kept) // 2
    halves = [
        float(np.mean(kept[:half].sum(0) / (half * system.dt_obs))),
        float(np.mean(kept[half:].sum(0) / ((len(kept) - half) * system.dt_obs))),
    ]
    finite = bool(np.isfinite(per).all())
    return {
        "lambda1": float(np.mean(per)) if finite else float("nan"),
        "lambda1_std": float(np.std(per)) if finite else float("nan"),
        "per_trajectory": [float(v) for v in per],
        "halves": halves,
        "n_trajectories": int(x0.shape[0]),
        "n_intervals": int(n_intervals),
        "transient_intervals": int(transient),
        "interval": float(system.dt_obs),
        "time": float((n_intervals - transient) * system.dt_obs),
        "method": "renormalised tangent map (jax.jvp) of the reference map, renormalised every dt_obs",
        "reference": system.describe_reference(),
    }


def lyapunov_spectrum(step, u0: jnp.ndarray, n_intervals: int, *, transient: int, k: int) -> jnp.ndarray:
    """The k leading Lyapunov exponents (per step, descending) of the map u -> step(u) on flat states u (m,) from
    u0: k tangent vectors pushed through its linearisation and re-orthonormalised by QR every step (Benettin et
    al. 1980; Shimada & Nagashima 1979); the first `transient` steps align them and are not counted. Traceable:
    call it inside jit. A non-finite state gives non-finite exponents."""
    q0 = jnp.eye(u0.shape[0], k, dtype=u0.dtype)

    def one(carry, _):
        u, q = carry
        u_next, lin = jax.linearize(step, u)
        q, r = jnp.linalg.qr(jax.vmap(lin, in_axes=1, out_axes=1)(q))
        return (u_next, q), jnp.log(jnp.abs(jnp.diagonal(r)))

    _, logs = lax.scan(one, (u0, q0), None, length=n_intervals)  # (n_intervals, k)
    return jnp.sort(logs[transient:].mean(axis=0))[::-1]


def _compiler_options() -> dict:
    return _TANGENT_COMPILER_OPTIONS if jax.default_backend() == "cpu" else {}


def ground_truth_horizon(system: System, traj: np.ndarray, std: np.ndarray) -> dict:
    """First observation where the dataset's reference and a finer one part (NRMSE > 0.05), per trajectory.

    traj: (n, n_obs, D) reference trajectories of the dataset; std: (D,) per-coordinate scale.
    """
    traj = np.asarray(traj)
    n_obs = traj.shape[1]
    fine = np.asarray(jax.jit(system.trajectories, static_argnums=(1, 2))(jnp.asarray(traj[:, 0]), n_obs, True))
    nrmse = np.sqrt(np.mean(((fine - traj) / std) ** 2, axis=-1))  # (n, n_obs)
    nrmse = np.where(np.isfinite(nrmse), nrmse, np.inf)
    over = nrmse > GT_THRESHOLD
    first = np.where(over.any(axis=1), over.argmax(axis=1), n_obs - 1)  # last valid observation index
    horizon = int(first.min())
    return {
        "horizon_obs": horizon,
        "horizon_time": float(horizon * system.dt_obs),
        "per_trajectory_obs": [int(v) for v in first],
        "whole_dataset_valid": bool(not over.any()),
        "threshold_nrmse": GT_THRESHOLD,
        "max_nrmse": float(nrmse.max()),
        "n_trajectories": int(traj.shape[0]),
        "reference": system.describe_reference(),
        "second_reference": system.describe_reference(fine=True),
    }
