"""Free-running rollout training with truncated BPTT and optional per-step rematerialisation.

Objective (DESIGN §3): from a true state at a random window start the model free-runs `horizon` steps;
loss = MSE in normalised coordinates against the truth. `window = k` stops gradients flowing through the
carried state every k steps while the forward rollout continues; `window = None` is full BPTT. The memory
strategy changes memory, never the gradient.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

MEMORY_STRATEGIES = ("remat", "none", "blocked")  # what a rollout can run; "auto" is resolved before training


class TrainingDiverged(FloatingPointError):
    """The training loss became non-finite."""


@dataclasses.dataclass(frozen=True)
class TrainSpec:
    steps: int = 2000
    batch_size: int = 64
    horizon: int = 20  # free-running steps per training window
    lr: float = 3e-3
    warmup: int = 100
    min_lr_ratio: float = 0.05  # cosine decay to lr * min_lr_ratio
    clip: float = 1.0  # global gradient-norm clip
    window: int | None = None  # truncated-BPTT window; None = full horizon
    memory: str = "remat"
    log_every: int = 100
    checkpoint_every: int = 500  # steps between resumable checkpoints (0: never)
    grad_cosine_every: int = 0  # with a truncated window: log cos(truncated, full-horizon gradient) this often


def _advance(model, proj, inv_std):
    """One step as a function of (params, carry, target): the unit that per-step remat checkpoints.

    Without a target it returns the new state (or (state, Newton iterations, converged) when projecting);
    with a target (B, D) it returns the summed squared normalised error of that step instead, so a training
    rollout keeps only its carried states for the backward pass, not its predictions and errors too.
    """

    def advance(params, carry, target):
        carry = model.step(params, carry)
        x = model.observe(carry)
        stats = None
        if proj is not None:
            projector, c0, scales = proj
            x, iters, ok = projector(x, c0, scales)
            carry, stats = model.replace_state(carry, x), (iters, ok)
        if target is not None:
            err = (x - target) * inv_std
            return carry, jnp.sum(err * err)
        return carry, (x if stats is None else (x, *stats))

    return advance


def _steps(advance, params, window, carry, ts, targets):
    """Scan `advance` over global step indices `ts`, cutting gradients through the state every `window`."""

    def body(carry, inp):
        t, target = inp
        if window is not None:
            cut = (t > 0) & (t % window == 0)
            carry = jax.tree_util.tree_map(lambda c: jnp.where(cut, lax.stop_gradient(c), c), carry)
        return advance(params, carry, target)

    return lax.scan(body, carry, (ts, targets))


def _rollout(model, params, x0, n_steps, *, window, memory, projector, targets=None, inv_std=None):
    if memory not in MEMORY_STRATEGIES:
        raise ValueError(f"unknown memory strategy {memory!r}; valid: {', '.join(MEMORY_STRATEGIES)}")
    carry = model.encode(params, x0)
    proj = None if projector is None else (projector, *projector.targets(x0))
    advance = _advance(model, proj, inv_std)
    ts = jnp.arange(n_steps)
    if memory != "blocked":
        if memory == "remat":
            advance = jax.checkpoint(advance)
        return _steps(advance, params, window, carry, ts, targets)[1]
    b = max(1, math.isqrt(n_steps - 1) + 1) if n_steps > 1 else 1  # ceil(sqrt(T))
    n_blocks, rest = divmod(n_steps, b)
    split = n_blocks * b

    @jax.checkpoint
    def block(carry, inp):
        return _steps(advance, params, window, carry, *inp)

    def blocks(a):  # (T, ...) -> (n_blocks, b, ...) for the leading `split` steps
        return None if a is None else a[:split].reshape((n_blocks, b) + a.shape[1:])

    carry, out = lax.scan(block, carry, (blocks(ts), blocks(targets)))
    out = jax.tree_util.tree_map(lambda a: a.reshape((split,) + a.shape[2:]), out)
    if rest:
        carry, tail = block(carry, (ts[split:], None if targets is None else targets[split:]))
        out = jax.tree_util.tree_map(lambda a, t: jnp.concatenate([a, t], axis=0), out, tail)
    return out


def rollout(
    model,
    params,
    x0,
    n_steps: int,
    *,
    window: int | None = None,
    memory: str = "remat",
    projector=None,
    with_stats: bool = False,
):
    """Free-run `n_steps` from physical states x0 (B, D); returns predictions (n_steps, B, D).

    memory: "none" keeps every step's residuals for the backward pass; "remat" keeps only the state per step
    and recomputes each step's residuals (one extra forward); "blocked" keeps the state every b = ceil(√T)
    steps and recomputes one block at a time. All three give the same gradient.
    projector: hard projection onto the invariants of x0 after every step (straight-through gradient);
    with_stats then also returns the Newton iterations and convergence flags, each (n_steps, B).
    """
    out = _rollout(model, params, x0, n_steps, window=window, memory=memory, projector=projector)
    if projector is None:
        return out
    return out if with_stats else out[0]


def make_loss(model, std: np.ndarray, spec: TrainSpec, projector=None) -> Callable:
    """loss(params, x0 (B, D), targets (horizon, B, D)) -> scalar normalised MSE of the free-running rollout."""
    inv_std = jnp.asarray(1.0 / std)

    def loss(params, x0, targets):
        sq = _rollout(
            model,
            params,
            x0,
            targets.shape[0],
            window=spec.window,
            memory=spec.memory,
            projector=projector,
            targets=targets,
            inv_std=inv_std,
        )  # (horizon,) summed squared errors
        return jnp.sum(sq) / targets.size

    return loss


def make_optimizer(spec: TrainSpec) -> optax.GradientTransformation:
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=spec.lr,
        warmup_steps=min(spec.warmup, max(spec.steps - 1, 1)),
        decay_steps=max(spec.steps, 2),
        end_value=spec.lr * spec.min_lr_ratio,
    )
    return optax.chain(optax.clip_by_global_norm(spec.clip), optax.adam(schedule))


def sample_windows(key, train: jnp.ndarray, batch_size: int, horizon: int):
    """Random (trajectory, start) windows: x0 (B, D) and the next `horizon` true states (horizon, B, D)."""
    n_traj, n_obs, _ = train.shape
    k1, k2 = jax.random.split(key)
    traj = jax.random.randint(k1, (batch_size,), 0, n_traj)
    start = jax.random.randint(k2, (batch_size,), 0, n_obs - horizon)
    idx = start[None, :] + jnp.arange(horizon + 1)[:, None]  # (horizon + 1, B), time-major for the scan
    windows = train[traj[None, :], idx]  # (horizon + 1, B, D)
    return windows[0], windows[1:]


def _cosine_probe(model, std, spec: TrainSpec, train_dev, key):
    """cos(truncated-window gradient, full-horizon gradient) on the training batch of a given step."""
    truncated = make_loss(model, std, spec)
    full = make_loss(model, std, dataclasses.replace(spec, window=None))

    @jax.jit
    def cosine(params, step):
        x0, targets = sample_windows(jax.random.fold_in(key, step), train_dev, spec.batch_size, spec.horizon)
        g1 = jax.grad(truncated)(params, x0, targets)
        g2 = jax.grad(full)(params, x0, targets)
        dot = sum(
            jnp.sum(a * b) for a, b in zip(jax.tree_util.tree_leaves(g1), jax.tree_util.tree_leaves(g2), strict=True)
        )
        return dot / (_global_norm(g1) * _global_norm(g2))

    return cosine


def _global_norm(tree) -> jnp.ndarray:
    return jnp.sqrt(sum(jnp.sum(x * x) for x in jax.tree_util.tree_leaves(tree)))


def fit(
    model,
    params,
    train: np.ndarray,
    std: np.ndarray,
    spec: TrainSpec,
    *,
    key,
    log: Callable[[dict], None] = lambda rec: None,
    resume: tuple[int, object] | None = None,
    checkpoint: Callable[[int, tuple], None] | None = None,
    projector=None,
    warmup: tuple[object, int] | None = None,
) -> tuple[dict, dict]:
    """Train; returns (params, summary). Raises TrainingDiverged on a non-finite loss.

    With a `projector`, training rollouts are projected onto the invariants after every step.
    `warmup = (other_model, k)` trains the same parameters through `other_model` for the first k steps (e.g. the
    symplectic model with leapfrog before Yoshida-4: a cheaper, more forgiving integrator while V is rough).

    `resume = (step, opt_state)` continues an interrupted run exactly (batches depend only on key and step);
    `checkpoint(step, (params, opt_state))` is called every `spec.checkpoint_every` steps.
    """
    n_obs = train.shape[1]
    if spec.horizon + 1 > n_obs:
        raise ValueError(f"train horizon {spec.horizon} needs {spec.horizon + 1} observations, data has {n_obs}")
    opt = make_optimizer(spec)
    train_dev = jnp.asarray(train)
    cosine = _cosine_probe(model, std, spec, train_dev, key) if spec.grad_cosine_every and spec.window else None

    def make_update(m):
        loss_fn = make_loss(m, std, spec, projector)

        @jax.jit
        def update(params, opt_state, step):
            x0, targets = sample_windows(jax.random.fold_in(key, step), train_dev, spec.batch_size, spec.horizon)
            loss, grads = jax.value_and_grad(loss_fn)(params, x0, targets)
            with jax.numpy_dtype_promotion("standard"):  # optax mixes its int32 step count with Python floats
                updates, opt_state = opt.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss, _global_norm(grads)

        return update

    main_update = make_update(model)
    warm_update, warm_steps = (make_update(warmup[0]), warmup[1]) if warmup else (None, 0)

    start, opt_state = resume if resume is not None else (0, opt.init(params))
    t0 = time.perf_counter()
    loss = jnp.asarray(math.nan)
    for step in range(start, spec.steps):
        update = warm_update if step < warm_steps else main_update
        params, opt_state, loss, gnorm = update(params, opt_state, jnp.asarray(step))
        if step % spec.log_every == 0 or step == spec.steps - 1:
            loss_f = float(loss)
            if not math.isfinite(loss_f):
                raise TrainingDiverged(f"non-finite training loss ({loss_f}) at step {step}")
            log({"step": step, "loss": loss_f, "grad_norm": float(gnorm), "wall_s": time.perf_counter() - t0})
        if cosine is not None and step % spec.grad_cosine_every == 0:
            log({"step": step, "grad_cosine_full": float(cosine(params, jnp.asarray(step)))})
        if checkpoint is not None and spec.checkpoint_every and (step + 1) % spec.checkpoint_every == 0:
            checkpoint(step + 1, (params, opt_state))
    if start >= spec.steps:
        raise ValueError(f"nothing to train: resumed at step {start} of {spec.steps}")
    final = float(loss)
    if not math.isfinite(final):
        raise TrainingDiverged(f"non-finite training loss ({final}) at the last step")
    return params, {
        "steps": spec.steps,
        "final_loss": final,
        "wall_s": time.perf_counter() - t0,
        "resumed_from_step": start,
    }
