"""Rollout evaluation: error growth, boundedness, prediction horizon and conservation of the true invariants.

A rollout that blows up is a result, not a crash: non-finite values are kept and reported (a non-finite
conservation residual is reported as +inf).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from sympscale.training import rollout

VPT_THRESHOLDS = (0.3, 0.5)


def climatology_mse(states: np.ndarray, mean: np.ndarray, std: np.ndarray, *, seed: int = 0) -> float:
    """Normalised MSE between independent states of the data (≈ 2 for a z-scored attractor)."""
    flat = (np.asarray(states).reshape(-1, states.shape[-1]) - mean) / std
    rng = np.random.default_rng(seed)
    a, b = rng.permutation(len(flat)), rng.permutation(len(flat))
    return float(np.mean((flat[a] - flat[b]) ** 2))


def one_step_mse(model, params, traj: np.ndarray, std: np.ndarray) -> float:
    """Normalised MSE of one model step from every true state of `traj` (n, T, D) to the next (one trajectory
    at a time); +inf when any prediction is not finite."""
    inv_std = jnp.asarray(1.0 / np.asarray(std))

    @jax.jit
    def per_trajectory(params, xs):  # (n, T, D) -> (n,)
        def one(x):
            pred = model.observe(model.step(params, model.encode(params, x[:-1])))
            return jnp.mean(((pred - x[1:]) * inv_std) ** 2)

        return lax.map(one, xs)

    err = np.asarray(per_trajectory(params, jnp.asarray(traj)))
    return float(np.mean(err)) if np.isfinite(err).all() else float("inf")


def rollout_metrics(
    model,
    params,
    system,
    test: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    *,
    horizon: int,
    bounded_factor: float = 2.0,
    last: int = 100,
    projector=None,
    lyapunov: float | None = None,
    dt_obs: float = 1.0,
) -> dict:
    """Roll out from the first state of each test trajectory for `horizon` steps and score it.

    `lyapunov` (λ₁ of the dataset, per time unit) adds the valid prediction time in Lyapunov times,
    VPT_ε = λ₁ · first t with NRMSE(t) > ε (SCIENCE §8), for ε = 0.3 and 0.5 (median over test trajectories;
    a rollout that never crosses counts as the full horizon).

    With a `projector`, a second rollout projects every step onto the invariants; its conservation residuals
    (`conservation_projected`), last-100 MSE and Newton statistics are reported beside the plain ones.
    """
    n_traj, n_obs, _ = test.shape
    if horizon + 1 > n_obs:
        raise ValueError(f"eval horizon {horizon} needs {horizon + 1} observations, test data has {n_obs}")
    if horizon < last:
        raise ValueError(f"eval horizon {horizon} is shorter than the {last}-step scoring window")
    truth = jnp.asarray(test[:, 1 : horizon + 1])
    x0 = jnp.asarray(test[:, 0])

    def score(pred):
        pred = jnp.swapaxes(pred, 0, 1)  # (n, T, D)
        mse = jnp.mean(((pred - truth) / std) ** 2, axis=-1)  # (n, T)
        states = jnp.concatenate([x0[:, None], pred], axis=1)
        inv, scales = system.invariants(states), system.invariant_scales(x0)
        resid = {k: jnp.abs(v - v[:, :1]) / jnp.maximum(jnp.abs(v[:, :1]), scales[k][:, None]) for k, v in inv.items()}
        own = None
        if hasattr(model, "hamiltonian"):  # a model with its own energy: how well does it keep it?
            e = model.hamiltonian(params, states)
            own = jnp.abs(e - e[:, :1]) / jnp.maximum(jnp.abs(e[:, :1]), model.energy_scale)
        return mse, resid, own

    run = jax.jit(lambda params: score(rollout(model, params, x0, horizon, memory="none")))
    mse, resid, own = jax.tree_util.tree_map(np.asarray, run(params))
    projected = {}
    if projector is not None:

        @jax.jit
        def run_projected(params):
            pred, iters, ok = rollout(model, params, x0, horizon, memory="none", projector=projector, with_stats=True)
            return score(pred), iters, ok

        (mse_p, resid_p, _), iters, ok = jax.tree_util.tree_map(np.asarray, run_projected(params))
        projected = {
            "conservation_projected": {k: _max_or_inf(v) for k, v in resid_p.items()},
            "last100_mse_projected": float(np.mean(mse_p[:, -last:])),
            "projection": {
                "invariants": list(projector.names),
                "tol": projector.tol,
                "max_iter": projector.max_iter,
                "mean_iterations": float(iters.mean()),
                "max_iterations": int(iters.max()),
                "frac_steps_within_5": float(np.mean(iters <= 5)),
                # steps that took k Newton iterations, k = 0 … max_iter (0: already on the level set)
                "iterations_histogram": np.bincount(iters.ravel(), minlength=projector.max_iter + 1).tolist(),
                "n_not_converged": int((~ok).sum()),
                "n_steps": int(ok.size),
            },
        }
    finite = np.isfinite(mse).all(axis=1)
    last_mse = mse[:, -last:].mean(axis=1)
    climatology = climatology_mse(test, mean, std)
    threshold = bounded_factor * climatology
    # first step whose MSE exceeds 1 (or is non-finite); the full horizon if it never does
    over = ~(mse <= 1.0)
    first = np.where(over.any(axis=1), over.argmax(axis=1) + 1, horizon)
    conservation = {k: _max_or_inf(v) for k, v in resid.items()}
    vpt = {}
    if lyapunov is not None and np.isfinite(lyapunov):
        nrmse = np.sqrt(np.where(np.isfinite(mse), mse, np.inf))
        for eps in VPT_THRESHOLDS:
            over = nrmse > eps
            steps = np.where(over.any(axis=1), over.argmax(axis=1), horizon)  # steps before the first crossing
            vpt[f"{eps}"] = float(np.median(steps) * dt_obs * lyapunov)
        vpt = {
            "vpt_lyapunov": vpt,
            "prediction_horizon_lyapunov": float(np.median(first) * dt_obs * lyapunov),
            "lyapunov_exponent": float(lyapunov),
            "horizon_lyapunov": float(horizon * dt_obs * lyapunov),
        }
    return {
        "horizon": horizon,
        "n_trajectories": n_traj,
        "last100_mse": float(np.mean(last_mse)),
        "last100_mse_per_traj": [float(v) for v in last_mse],
        "bounded": bool(finite.all() and np.all(last_mse < threshold)),
        "bounded_threshold": threshold,
        "bounded_rule": f"every rollout finite and last-{last} normalised MSE < {bounded_factor} x climatology",
        "climatology_mse": climatology,
        "n_finite": int(finite.sum()),
        "prediction_horizon": float(np.median(first)),
        "prediction_horizon_per_traj": [int(v) for v in first],
        "conservation": conservation,
        # drift of the model's own learned energy H_θ (symplectic models conserve it up to O(h⁴) oscillation)
        "model_energy_residual": None if own is None else _max_or_inf(own),
        **vpt,
        **projected,
    }


def _max_or_inf(v: np.ndarray) -> float:
    return float(np.max(v)) if np.isfinite(v).all() else float("inf")
