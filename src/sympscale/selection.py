"""Validation during training: score the model on held-out trajectories, keep the best, judge convergence.

The validation split (trajectories disjoint from the training and test ones) is scored every `val_every` steps:

- `val_vpt_steps`: the valid prediction time in steps, NRMSE ≤ `threshold` (0.3, SCIENCE §8), mean over
  windows that start at evenly spaced observations of every validation trajectory, capped at `horizon`. It is
  the selection score: the study's question is how long a model stays right when it runs free, and this is that
  quantity on data the optimiser never sees. Ties (e.g. every window capped, or all zero) go to the lower
  one-step error.
- `val_one_step_mse`: normalised MSE of one step from true states (every `stride`-th observation).
- `val_rollout_mse`: normalised MSE over the first h steps of the same windows, h the training horizon in
  force (the training objective on held-out data).

The rollout stops early once every window has crossed the threshold and the current horizon is covered, so a
poor model is scored quickly and a good one costs at most `horizon` steps.

Verdicts (`convergence`), in this order:
- `failed to learn`: the best validation VPT is 0, or the best validation one-step MSE is above
  LEARNED_FRACTION (a tenth) of persistence's (x_{t+1} ≈ x_t) on the same windows. A plateau there is a failure,
  never convergence.
- not judged: a best VPT within `tol` of the validation horizon (a VPT at its cap cannot show a gain).
- `converged`: the best validation VPT gained less than `tol` over the judging window (the last quarter of the
  steps trained), relative to the best at the window's start.
- otherwise `still improving`.
No curriculum stage may start inside the judging window (`stage_in_window`): a new horizon there would be
judged as if training had settled.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from sympscale.seedaxis import over_seeds

PLATEAU_FRACTION = 0.25  # the convergence rule looks at this last fraction of the steps trained
LEARNED_FRACTION = 0.1  # a model has learnt when its one-step MSE is below this fraction of persistence's


def window_start(steps_trained: int) -> int:
    """The first step of the judging window (the last PLATEAU_FRACTION of the steps trained)."""
    return int(math.floor((1.0 - PLATEAU_FRACTION) * steps_trained))


def stage_in_window(schedule, steps: int) -> tuple[int, int] | None:
    """The first curriculum stage (first_step, horizon) that starts inside the judging window, or None."""
    start = window_start(steps)
    return next(((first, h) for first, h in schedule if first > start), None)


def validation_windows(n_obs: int, horizon: int, starts: int) -> np.ndarray:
    """`starts` evenly spaced window starts s with s + horizon <= n_obs − 1 (fewer if the data are short)."""
    last = n_obs - 1 - horizon
    if last < 0:
        raise ValueError(f"validation horizon {horizon} needs {horizon + 1} observations, data have {n_obs}")
    return np.unique(np.linspace(0, last, max(1, starts)).round().astype(int))


def make_validator(
    model,
    val: np.ndarray,
    std: np.ndarray,
    *,
    horizon: int,
    starts: int = 8,
    threshold: float = 0.3,
    stride: int = 4,
) -> Callable[[dict, int], dict]:
    """validate(params, train_horizon) -> {val_vpt_steps, val_vpt_median_steps, val_one_step_mse, val_rollout_mse}.

    val: (n, n_obs, D) validation trajectories in physical units; std (D,) the training split's scale.
    """
    val = np.asarray(val)
    n, n_obs, D = val.shape
    horizon = min(horizon, n_obs - 1)
    s = validation_windows(n_obs, horizon, starts)
    x0 = jnp.asarray(val[:, s].reshape(-1, D))  # (W, D), W = n * len(s)
    idx = s[None, :] + np.arange(1, horizon + 1)[:, None]  # (horizon, len(s))
    truth = jnp.asarray(val[:, idx].transpose(1, 0, 2, 3).reshape(horizon, -1, D))  # (horizon, W, D)
    one_x = jnp.asarray(val[:, :-1:stride].reshape(-1, D))  # every stride-th transition (x_t, x_t+1)
    one_y = jnp.asarray(val[:, 1::stride].reshape(-1, D))
    inv_std = jnp.asarray(1.0 / np.asarray(std))
    never = horizon  # "never crossed within the horizon"
    persistence = float(np.mean(np.asarray(mse_np(one_x, one_y, std))))  # x_{t+1} ≈ x_t on the same transitions

    def mse(x, y):  # (..., D) -> (...) normalised squared error, non-finite -> +inf
        e = jnp.mean(((x - y) * inv_std) ** 2, axis=-1)
        return jnp.where(jnp.isfinite(e), e, jnp.inf)

    @jax.jit
    def validate(params, train_horizon):
        one = jnp.mean(mse(model.observe(model.step(params, model.encode(params, one_x))), one_y))

        def cond(c):
            _, t, first, _ = c
            return (t < horizon) & (jnp.any(first == never) | (t < train_horizon))

        def body(c):
            carry, t, first, acc = c
            carry = model.step(params, carry)
            e = mse(model.observe(carry), lax.dynamic_index_in_dim(truth, t, keepdims=False))  # (W,)
            first = jnp.where((first == never) & ~(e <= threshold**2), t, first)
            acc = acc + jnp.where(t < train_horizon, jnp.mean(e), 0.0)
            return carry, t + 1, first, acc

        init = (model.encode(params, x0), jnp.asarray(0), jnp.full((x0.shape[0],), never), jnp.asarray(0.0))
        _, _, first, acc = lax.while_loop(cond, body, init)
        return {
            "val_vpt_steps": jnp.mean(first.astype(jnp.float64)),
            "val_vpt_median_steps": jnp.median(first.astype(jnp.float64)),
            "val_one_step_mse": one,
            "val_rollout_mse": acc / jnp.minimum(train_horizon, horizon).astype(jnp.float64),
        }

    def run(params, train_horizon: int) -> dict:
        out = validate(params, jnp.asarray(train_horizon))
        return {k: float(v) for k, v in out.items()}

    bundled = jax.jit(lambda params, train_horizon: over_seeds(lambda p: validate(p, train_horizon))(params))

    def bundle(params, train_horizon: int) -> list[dict]:
        """One record per seed of stacked parameters (a seed bundle; `seedaxis.over_seeds`), as one program."""
        out = {k: np.asarray(v) for k, v in bundled(params, jnp.asarray(train_horizon)).items()}
        return [{k: float(v[i]) for k, v in out.items()} for i in range(len(out["val_vpt_steps"]))]

    run.bundle = bundle  # type: ignore[attr-defined]
    run.persistence_one_step_mse = persistence  # type: ignore[attr-defined]
    run.n_windows = int(x0.shape[0])  # type: ignore[attr-defined]
    run.horizon = horizon  # type: ignore[attr-defined]
    return run


def mse_np(x, y, std) -> np.ndarray:
    """(..., D) normalised squared error on the host."""
    return np.mean(((np.asarray(x) - np.asarray(y)) / np.asarray(std)) ** 2, axis=-1)


def better(rec: dict, best: dict | None) -> bool:
    """Is validation record `rec` better than `best`: longer VPT, then lower one-step error."""
    if best is None:
        return True
    key = lambda r: (-_finite(r["val_vpt_steps"], 0.0), _finite(r["val_one_step_mse"], math.inf))  # noqa: E731
    return key(rec) < key(best)


def _finite(v: float, fallback: float) -> float:
    return v if math.isfinite(v) else fallback


def convergence(
    steps: Sequence[int],
    vpt: Sequence[float],
    steps_trained: int,
    *,
    tol: float,
    cap: float | None = None,
    one_step: Sequence[float] | None = None,
    persistence: float | None = None,
) -> dict:
    """Apply the verdict rules (module docstring) to a validation curve (steps, VPT[, one-step MSE]) of a run that
    trained `steps_trained` steps; `persistence` is persistence's one-step MSE on the same transitions.

    Returns {converged, failed_to_learn, improvement, best, best_then, window_start, reason}; `improvement` is the
    gain of the best VPT over the judging window relative to the best at its start (NaN when undefined).
    """
    steps, vpt = np.asarray(steps, dtype=np.int64), np.nan_to_num(np.asarray(vpt, dtype=np.float64), nan=0.0)
    start = window_start(steps_trained)
    rule = {"window_start": start, "tol": tol, "learned_fraction": LEARNED_FRACTION, "persistence": persistence}
    best = float(vpt.max()) if len(vpt) else 0.0
    best_one = _best_one_step(one_step)
    learnt = persistence is None or best_one <= LEARNED_FRACTION * persistence
    out = {**rule, "converged": False, "failed_to_learn": False, "improvement": math.nan, "best": best}
    out["best_one_step_mse"] = best_one
    before = vpt[steps <= start]
    if len(vpt) < 2 or not len(before) or not (steps > start).any():
        return {**out, "reason": "too few validations to judge"}
    best_then = float(before.max())
    out["best_then"] = best_then
    out["improvement"] = (best - best_then) / best_then if best_then > 0 else (math.inf if best > 0 else math.nan)
    if best <= 0 or not learnt:
        why = (
            "validation VPT 0"
            if best <= 0
            else (
                f"best validation one-step MSE {best_one:.3g} > {LEARNED_FRACTION:g} x persistence's {persistence:.3g}"
            )
        )
        return {**out, "failed_to_learn": True, "reason": f"failed to learn ({why})"}
    if cap is not None and best >= (1.0 - tol) * cap:
        return {
            **out,
            "reason": f"validation VPT at its cap ({best:.1f} of {cap:g} steps): raise train.val_horizon to judge",
        }
    converged = out["improvement"] < tol
    return {**out, "converged": bool(converged), "reason": "plateau" if converged else "still improving"}


def _best_one_step(values: Sequence[float] | None) -> float:
    finite = [v for v in (values or []) if math.isfinite(v)]
    return min(finite) if finite else math.inf
