"""Rollout evaluation: error growth, boundedness, the time to normalised MSE 1, valid prediction time and conservation of the true invariants.

A rollout that blows up is a result, not a crash: non-finite values are kept and reported (a non-finite
conservation residual is reported as +inf).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from sympscale.registry import METRICS
from sympscale.seedaxis import n_seeds, over_seeds, stack, unstack
from sympscale.training import rollout

VPT_THRESHOLDS = (0.3, 0.5)


def climatology_mse(states: np.ndarray, mean: np.ndarray, std: np.ndarray, *, seed: int = 0) -> float:
    """Normalised MSE between independent states of the data (≈ 2 for a z-scored attractor)."""
    flat = (np.asarray(states).reshape(-1, states.shape[-1]) - mean) / std
    rng = np.random.default_rng(seed)
    a, b = rng.permutation(len(flat)), rng.permutation(len(flat))
    return float(np.mean((flat[a] - flat[b]) ** 2))


def _one_step_errors(model, traj: np.ndarray, std: np.ndarray):
    """errors(params) -> (n,) normalised MSE of one model step from every true state of each trajectory."""
    inv_std, xs = jnp.asarray(1.0 / np.asarray(std)), jnp.asarray(traj)

    def errors(params):
        def one(x):
            pred = model.observe(model.step(params, model.encode(params, x[:-1])))
            return jnp.mean(((pred - x[1:]) * inv_std) ** 2)

        return lax.map(one, xs)  # one trajectory at a time

    return errors


def _finite_mean(err: np.ndarray) -> float:
    return float(np.mean(err)) if np.isfinite(err).all() else float("inf")


def one_step_mse(model, params, traj: np.ndarray, std: np.ndarray) -> float:
    """Normalised MSE of one model step from every true state of `traj` (n, T, D) to the next (one trajectory
    at a time); +inf when any prediction is not finite."""
    return one_step_mse_bundle(model, stack([params]), traj, std)[0]


def one_step_mse_bundle(model, params, traj: np.ndarray, std: np.ndarray) -> list[float]:
    """`one_step_mse` of each seed of stacked parameters (a seed bundle), as one program."""
    err = np.asarray(jax.jit(over_seeds(_one_step_errors(model, traj, std)))(params))
    return [_finite_mean(e) for e in err]


@dataclasses.dataclass(frozen=True, eq=False)
class Rollout:
    """One scored free-running rollout from the first state of every test trajectory: what each metric reads."""

    mse: np.ndarray  # (n, T) normalised squared error per step (non-finite where the rollout blew up)
    residuals: dict[str, np.ndarray]  # invariant -> (n, T + 1) relative conservation residual
    own: np.ndarray | None  # (n, T + 1) residual of the model's own energy, when it has one
    test: np.ndarray  # (n, n_obs, D) the test trajectories
    mean: np.ndarray
    std: np.ndarray
    horizon: int
    last: int  # the scoring window of the last-`last` MSE and the bounded rule
    bounded_factor: float
    lyapunov: float | None  # λ₁ per time unit (None or NaN: no VPT)
    dt_obs: float
    energy: str | None = None  # the system's energy invariant (`System.energy`): H, E or the Jacobi constant C

    @property
    def last_mse(self) -> np.ndarray:
        """Per trajectory: the mean normalised MSE over the last `last` steps."""
        return self.mse[:, -self.last :].mean(axis=1)

    @property
    def first_over_one(self) -> np.ndarray:
        """Per trajectory: the first step whose MSE exceeds 1 (or is non-finite); the horizon if none does."""
        over = ~(self.mse <= 1.0)
        return np.where(over.any(axis=1), over.argmax(axis=1) + 1, self.horizon)


@dataclasses.dataclass(frozen=True)
class MetricOptions:
    """Metrics read their settings from the `Rollout` (eval.horizon, eval.bounded_factor)."""


def metric(fn: Callable[[Rollout], dict]) -> Callable[[Rollout], dict]:
    """Register `fn(rollout) -> {key: value}` as an evaluation metric (its name: the function's)."""
    METRICS.register(fn.__name__, options=MetricOptions, make=fn, doc=(fn.__doc__ or "").strip())
    return fn


@metric
def error(r: Rollout) -> dict:
    """Last-window MSE and the steps to normalised MSE 1 (the first step with MSE > 1, median over trajectories)."""
    last_mse = r.last_mse
    return {
        "last100_mse": float(np.mean(last_mse)),
        "last100_mse_per_traj": [float(v) for v in last_mse],
        "n_finite": int(np.isfinite(r.mse).all(axis=1).sum()),
        "steps_to_mse_1": float(np.median(r.first_over_one)),
        "steps_to_mse_1_per_traj": [int(v) for v in r.first_over_one],
    }


@metric
def boundedness(r: Rollout) -> dict:
    """Bounded: every rollout finite and its last-window MSE under bounded_factor x the climatology."""
    last_mse = r.last_mse
    climatology = climatology_mse(r.test, r.mean, r.std)
    threshold = r.bounded_factor * climatology
    return {
        "bounded": bool(np.isfinite(r.mse).all() and np.all(last_mse < threshold)),
        "bounded_threshold": threshold,
        "bounded_rule": f"every rollout finite and last-{r.last} normalised MSE < {r.bounded_factor} x climatology",
        "climatology_mse": climatology,
    }


@metric
def conservation(r: Rollout) -> dict:
    """The largest relative residual of each true invariant (and of the energy, under one name for every system),
    and of the model's own learned energy."""
    conservation = {k: _max_or_inf(v) for k, v in r.residuals.items()}
    return {
        "conservation": conservation,
        "energy_invariant": r.energy,
        "energy_residual": conservation.get(r.energy) if r.energy else None,
        # drift of the model's own learned energy H_θ (symplectic models conserve it up to O(h⁴) oscillation)
        "model_energy_residual": None if r.own is None else _max_or_inf(r.own),
    }


@metric
def valid_prediction_time(r: Rollout) -> dict:
    """VPT_ε = λ₁ · first t with NRMSE(t) > ε (SCIENCE §8), ε = 0.3 and 0.5, median over trajectories."""
    if r.lyapunov is None or not np.isfinite(r.lyapunov):
        return {}
    nrmse = np.sqrt(np.where(np.isfinite(r.mse), r.mse, np.inf))
    vpt = {}
    for eps in VPT_THRESHOLDS:
        over = nrmse > eps
        steps = np.where(over.any(axis=1), over.argmax(axis=1), r.horizon)  # steps before the first crossing
        vpt[f"{eps}"] = float(np.median(steps) * r.dt_obs * r.lyapunov)
    return {
        "vpt_lyapunov": vpt,
        "lyapunov_times_to_mse_1": float(np.median(r.first_over_one) * r.dt_obs * r.lyapunov),
        "lyapunov_exponent": float(r.lyapunov),
        "horizon_lyapunov": float(r.horizon * r.dt_obs * r.lyapunov),
    }


def rollout_metrics(model, params, system, test: np.ndarray, mean: np.ndarray, std: np.ndarray, **kw) -> dict:
    """`rollout_metrics_bundle` of one seed's parameters."""
    return rollout_metrics_bundle(model, stack([params]), system, test, mean, std, **kw)[0]


def rollout_metrics_bundle(
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
) -> list[dict]:
    """Roll out from the first state of each test trajectory for `horizon` steps and score it with every
    registered metric (`sympscale.registry.METRICS`), for each seed of stacked parameters (a seed bundle, one
    program; a single run is a bundle of one).

    `lyapunov` (λ₁ of the dataset, per time unit) adds the valid prediction time in Lyapunov times (a rollout
    that never crosses counts as the full horizon).

    With a `projector`, a second rollout projects every step onto the invariants; its conservation residuals
    (`conservation_projected`), last-100 MSE and Newton statistics are reported beside the plain ones.
    """
    scored = _rollouts(model, system, test, std, horizon, last, projector)
    out = jax.tree_util.tree_map(np.asarray, jax.jit(over_seeds(scored))(params))
    settings = (test, mean, std, system, horizon, last, bounded_factor, lyapunov, dt_obs, projector)
    return [_metrics(unstack(out, i), *settings) for i in range(n_seeds(out))]


def _rollouts(model, system, test: np.ndarray, std: np.ndarray, horizon: int, last: int, projector):
    """scored(params) -> {"plain": (mse, residuals, own)[, "projected": ((mse, residuals, own), iterations, ok)]}:
    the device part of the evaluation, a pure function of the parameters."""
    n_traj, n_obs, _ = test.shape
    if horizon + 1 > n_obs:
        raise ValueError(f"eval horizon {horizon} needs {horizon + 1} observations, test data has {n_obs}")
    if horizon < last:
        raise ValueError(f"eval horizon {horizon} is shorter than the {last}-step scoring window")
    score = _scorer(model, system, test, std, horizon)
    x0 = jnp.asarray(test[:, 0])

    def scored(params):
        out = {"plain": score(params, rollout(model, params, x0, horizon, memory="none"))}
        if projector is not None:
            pred, iters, ok = rollout(model, params, x0, horizon, memory="none", projector=projector, with_stats=True)
            out["projected"] = (score(params, pred), iters, ok)
        return out

    return scored


def _metrics(out: dict, test, mean, std, system, horizon, last, bounded_factor, lyapunov, dt_obs, projector) -> dict:
    """Every registered metric of one seed's scored rollouts (numpy), and the projected rollout's."""
    mse, resid, own = out["plain"]
    energy = getattr(system, "energy", None)
    r = Rollout(mse, resid, own, test, mean, std, horizon, last, bounded_factor, lyapunov, dt_obs, energy)
    metrics = {"horizon": horizon, "n_trajectories": test.shape[0]}
    for entry in METRICS.values():
        metrics.update(entry.make(r))
    if projector is not None:
        metrics.update(_projected(*out["projected"], last, projector))
    return metrics


def _scorer(model, system, test: np.ndarray, std: np.ndarray, horizon: int):
    """score(params, pred (T, n, D)) -> (normalised MSE (n, T), invariant residuals, the model's own energy
    residual or None)."""
    truth = jnp.asarray(test[:, 1 : horizon + 1])
    x0 = jnp.asarray(test[:, 0])

    def score(params, pred):
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

    return score


def _projected(scored, iters: np.ndarray, ok: np.ndarray, last: int, projector) -> dict:
    """The projected rollout's conservation, last-window MSE and Newton iteration statistics."""
    mse_p, resid_p, _ = scored
    return {
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


def _max_or_inf(v: np.ndarray) -> float:
    return float(np.max(v)) if np.isfinite(v).all() else float("inf")
