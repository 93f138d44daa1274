"""Free-running rollout training with truncated BPTT and optional per-step rematerialisation.

Objective (DESIGN §3): from a true state at a random window start the model free-runs `horizon` steps;
loss = MSE in normalised coordinates against the truth. `window = k` stops gradients flowing through the
carried state every k steps while the forward rollout continues; `window = None` is full BPTT. The memory
strategy changes memory, never the gradient.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from sympscale.curriculum import horizon_at, horizon_schedule, mean_horizon
from sympscale.seedaxis import over_seeds, stack, unstack
from sympscale.selection import better, convergence

MEMORY_STRATEGIES = ("remat", "none", "blocked")  # what a rollout can run; "auto" is resolved before training


DIVERGENCE_FACTOR = 1e3  # a loss this many times above max(first logged loss, 1) has diverged


def divergence(loss: float, first: float, step: int) -> str | None:
    """Why training has diverged at `step`, or None: a non-finite loss, or one that exploded by orders of magnitude
    (normalised data: an untrained model's loss is O(1), a model predicting the climatology ~2)."""
    if not math.isfinite(loss):
        return f"non-finite training loss ({loss}) at step {step}"
    bound = DIVERGENCE_FACTOR * max(first, 1.0)
    if loss > bound:
        return f"training loss {loss:.3g} at step {step} exceeds {DIVERGENCE_FACTOR:g} x max(first loss {first:.3g}, 1)"
    return None


@dataclasses.dataclass(frozen=True)
class TrainSpec:
    steps: int = 2000
    batch_size: int = 64
    horizon: int = 20  # free-running steps per training window
    lr: float = 3e-3
    warmup: int = 100
    min_lr_ratio: float = 0.05  # cosine decay to lr * min_lr_ratio
    decay_fraction: float = 1.0  # the decay ends at this fraction of the steps; the rest trains at the final lr
    clip: float = 1.0  # global gradient-norm clip
    window: int | None = None  # truncated-BPTT window; None = full horizon
    memory: str = "remat"
    log_every: int = 100
    checkpoint_every: int = 500  # steps between resumable checkpoints (0: never)
    grad_cosine_every: int = 0  # with a truncated window: log cos(truncated, full-horizon gradient) this often
    curriculum: str = "constant"  # constant | geometric (the presets' choice): how the horizon grows to `horizon`
    horizon_start: int = 1  # first horizon of the geometric curriculum
    ramp_fraction: float = 0.5  # fraction of the steps over which the horizon doubles up to `horizon`
    val_every: int = 0  # steps between validations (0: none; then the last parameters are kept)
    val_horizon: int = 200  # cap of the validation rollouts (steps)
    val_starts: int = 8  # validation windows per validation trajectory
    patience: int = 0  # stop after this many validations without a better score (0: never stop early)
    plateau_tol: float = 0.05  # converged: best validation VPT gained < this (relative) over the last quarter

    def schedule(self) -> tuple[tuple[int, int], ...]:
        """The training-horizon curriculum: stages (first_step, horizon)."""
        return horizon_schedule(
            self.curriculum,
            horizon=self.horizon,
            steps=self.steps,
            start=self.horizon_start,
            ramp_fraction=self.ramp_fraction,
        )


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
    """loss(params, x0 (B, D), targets (h, B, D)) -> scalar normalised MSE of the h-step free-running rollout."""
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
        # optax holds end_value after decay_steps
        decay_steps=max(int(round(spec.decay_fraction * spec.steps)), min(spec.warmup, max(spec.steps - 1, 1)) + 1, 2),
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


def _cosine_fn(model, std, spec: TrainSpec, train_dev, projector=None):
    """cosine(params, key, step, horizon): cos(truncated-window gradient, full-horizon gradient) on the training
    batch of a given step and horizon."""
    truncated = make_loss(model, std, spec, projector)
    full = make_loss(model, std, dataclasses.replace(spec, window=None), projector)

    def cosine(params, key, step, horizon):
        x0, targets = sample_windows(jax.random.fold_in(key, step), train_dev, spec.batch_size, horizon)
        g1 = jax.grad(truncated)(params, x0, targets)
        g2 = jax.grad(full)(params, x0, targets)
        dot = sum(
            jnp.sum(a * b) for a, b in zip(jax.tree_util.tree_leaves(g1), jax.tree_util.tree_leaves(g2), strict=True)
        )
        return dot / (_global_norm(g1) * _global_norm(g2))

    return cosine


def _global_norm(tree) -> jnp.ndarray:
    return jnp.sqrt(sum(jnp.sum(x * x) for x in jax.tree_util.tree_leaves(tree)))


def _update_fn(model, std, spec: TrainSpec, opt, train_dev, projector):
    """update(params, opt_state, key, step, horizon) -> (params, opt_state, loss, gradient norm): one optimiser
    step on the batch of `step` (its windows drawn from fold_in(key, step))."""
    loss_fn = make_loss(model, std, spec, projector)

    def update(params, opt_state, key, step, horizon):
        x0, targets = sample_windows(jax.random.fold_in(key, step), train_dev, spec.batch_size, horizon)
        loss, grads = jax.value_and_grad(loss_fn)(params, x0, targets)
        with jax.numpy_dtype_promotion("standard"):  # optax mixes its int32 step count with Python floats
            updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, _global_norm(grads)

    return update


@dataclasses.dataclass
class Resume:
    """An interrupted run's state: continue at `step` with this optimiser state and validation record."""

    step: int
    opt_state: object
    best_params: object = None
    history: list = dataclasses.field(default_factory=list)  # validation records so far


class _Selector:
    """Keeps the validation history, the best record and its parameters, and counts validations since it."""

    def __init__(self, params, history: list, best_params):
        self.history = list(history)
        self.best, self.since = None, 0
        for rec in self.history:
            self.best, self.since = (rec, 0) if better(rec, self.best) else (self.best, self.since + 1)
        self.best_params = best_params if best_params is not None else params

    def add(self, rec: dict, params) -> None:
        self.history.append(rec)
        if better(rec, self.best):
            self.best, self.best_params, self.since = rec, params, 0
        else:
            self.since += 1


def _updater(model, std, spec: TrainSpec, opt, train_dev, projector):
    """update(params, opt_state, keys, step, horizon, health) over stacked seeds, one compile per horizon.

    Each seed's step is the single-seed step (`_update_fn`, mapped by `over_seeds`). `health` = (alive, bad_step,
    bad_loss), each (seeds,): a seed whose loss, gradient or updated parameters are non-finite at this step, or
    that is no longer alive, keeps its parameters and optimiser state (its update is masked) and is alive no more;
    bad_step and bad_loss record when and with which loss a seed first went non-finite (-1 and NaN while it has
    not). Returns (params, opt_state, loss, gradient norm, health).
    """
    update = _update_fn(model, std, spec, opt, train_dev, projector)

    def masked(params, opt_state, key, alive, step, horizon):
        new_params, new_opt, loss, gnorm = update(params, opt_state, key, step, horizon)
        finite = jnp.all(jnp.asarray([jnp.all(jnp.isfinite(a)) for a in jax.tree_util.tree_leaves(new_params)]))
        ok = alive & jnp.isfinite(loss) & jnp.isfinite(gnorm) & finite
        keep = functools.partial(jax.tree_util.tree_map, lambda new, old: jnp.where(ok, new, old))
        return keep(new_params, params), keep(new_opt, opt_state), loss, gnorm, ok

    @functools.partial(jax.jit, static_argnums=4)
    def bundled(params, opt_state, keys, step, horizon, health):
        alive, bad_step, bad_loss = health
        params, opt_state, loss, gnorm, ok = over_seeds(lambda p, o, k, a: masked(p, o, k, a, step, horizon))(
            params, opt_state, keys, alive
        )
        fault = alive & ~ok  # went non-finite now (a seed already stopped is not alive)
        health = (ok, jnp.where(fault, step, bad_step), jnp.where(fault, loss, bad_loss))
        return params, opt_state, loss, gnorm, health

    return bundled


def healthy(seeds: int) -> tuple:
    """The `health` of a bundle whose seeds all train: (alive, bad_step, bad_loss)."""
    # explicit dtypes: the step returns strongly typed ones, and a weakly typed NaN here would compile it twice
    return jnp.ones(seeds, dtype=bool), jnp.full(seeds, -1, dtype=jnp.int64), jnp.full(seeds, jnp.nan, jnp.float64)


def bundle_step(model, std, spec: TrainSpec, train, projector=None):
    """The training step of `fit_bundle` (for timing and memory): step(params, opt_state, keys, step, horizon,
    health) over stacked seeds."""
    return _updater(model, std, spec, make_optimizer(spec), jnp.asarray(train), projector)


def _cosine_probe(model, std, spec: TrainSpec, train_dev, projector):
    """cosine(params, keys, step, horizon) over stacked seeds (`_cosine_fn` of each)."""
    cosine = _cosine_fn(model, std, spec, train_dev, projector)

    @functools.partial(jax.jit, static_argnums=3)
    def bundled(params, keys, step, horizon):
        return over_seeds(lambda p, k: cosine(p, k, step, horizon))(params, keys)

    return bundled


def fit(
    model,
    params,
    train: np.ndarray,
    std: np.ndarray,
    spec: TrainSpec,
    *,
    key,
    log: Callable[[dict], None] = lambda rec: None,
    resume: Resume | None = None,
    checkpoint: Callable[[int, tuple, dict], None] | None = None,
    projector=None,
    start_with: tuple[object, int] | None = None,
    validate: Callable[[dict, int], dict] | None = None,
) -> tuple[dict, dict]:
    """Train one seed, a bundle of one (`fit_bundle`); returns (params, summary)."""
    (result,) = fit_bundle(
        model,
        [params],
        train,
        std,
        spec,
        keys=[key],
        logs=[log],
        resumes=[resume],
        checkpoints=[checkpoint],
        projector=projector,
        start_with=start_with,
        validate=validate,
    )
    return result


def fit_bundle(
    model,
    params: list,
    train: np.ndarray,
    std: np.ndarray,
    spec: TrainSpec,
    *,
    keys: list,
    logs: list[Callable[[dict], None]],
    resumes: list[Resume | None] | None = None,
    checkpoints: list[Callable | None] | None = None,
    projector=None,
    start_with: tuple[object, int] | None = None,
    validate: Callable | None = None,
    step: Callable | None = None,
) -> list[tuple[dict, dict]]:
    """Train the seeds of one configuration (their parameters, batch keys, logs, checkpoints) as one program;
    returns each seed's (params, summary).

    Every seed runs the single-seed step on its own parameters, optimiser state and batches (`_updater`). A seed
    whose loss, gradient or parameters turn non-finite is frozen at its last finite parameters and reported
    diverged with the step; one whose loss explodes (`divergence`) or whose validation patience runs out stops;
    the others go on. A diverged seed is not a result: summary["diverged"] = True, the reason in
    summary["divergence"].

    The free-running horizon follows `spec.schedule()` (a curriculum up to `spec.horizon`). With `validate`
    (selection.make_validator) every seed scores itself every `spec.val_every` steps (and before the first step);
    the returned parameters are the best-scoring ones, the summary names their step and applies the convergence
    rule; `spec.patience` stops a seed after that many validations without improvement.

    With a `projector`, training rollouts are projected onto the invariants after every step.
    `start_with = (other_model, k)` trains the same parameters through `other_model` for the first k steps (e.g. the
    symplectic model with leapfrog before Yoshida-4: a cheaper, more forgiving integrator while V is rough).

    `step`: the bundled update to train with, `bundle_step(model, std, spec, train, projector)` built by the caller
    (`Assembly.bundle_step`: programs compiled for it already, e.g. by a memory prediction, are not compiled
    again); None builds it here.

    `resumes` continue interrupted seeds exactly (batches depend only on key and step); all seeds resume at one
    step (a caller groups them by their checkpoints' steps). `checkpoint(step, (params, opt_state, best_params),
    {"history": [...]})` is called every `spec.checkpoint_every` steps per seed.
    """
    n_obs = train.shape[1]
    if spec.horizon + 1 > n_obs:
        raise ValueError(f"train horizon {spec.horizon} needs {spec.horizon + 1} observations, data has {n_obs}")
    opt = make_optimizer(spec)
    resumes = [r or Resume(0, opt.init(p)) for r, p in zip(resumes or [None] * len(params), params, strict=True)]
    starts = sorted({r.step for r in resumes})
    if len(starts) > 1 or starts[0] > spec.steps:
        raise ValueError(f"the seeds of a bundle resume at one step <= {spec.steps}; they resume at {starts}")
    checkpoints = checkpoints or [None] * len(params)
    seeds = [
        _Seed(spec, log, validate, ckpt, _Selector(p, r.history, r.best_params))
        for log, ckpt, p, r in zip(logs, checkpoints, params, resumes, strict=True)
    ]
    probe = bool(spec.grad_cosine_every and spec.window)
    # on the device once: the given step holds its own copy, and only the other programs need this one
    train_dev = jnp.asarray(train) if step is None or start_with or probe else None
    updates = _Updates(
        main=step or _updater(model, std, spec, opt, train_dev, projector),
        first=_updater(start_with[0], std, spec, opt, train_dev, projector) if start_with else None,
        first_steps=start_with[1] if start_with else 0,
        cosine=_cosine_probe(model, std, spec, train_dev, projector) if probe else None,
    )
    loop = _Loop(seeds, jnp.stack(keys))
    final = loop.run(updates, stack(params), stack([r.opt_state for r in resumes]), starts[0])
    return [seed.result(unstack(final, i)) for i, seed in enumerate(seeds)]


@dataclasses.dataclass(frozen=True)
class _Updates:
    """The compiled step functions of a run: the main update, an optional cheaper first one, the cosine probe."""

    main: Callable
    first: Callable | None
    first_steps: int
    cosine: Callable | None

    def at(self, step: int) -> Callable:
        return self.first if step < self.first_steps else self.main


class _Seed:
    """One seed's bookkeeping: its log, divergence, validation record, checkpoints and summary."""

    def __init__(self, spec: TrainSpec, log, validate, checkpoint, selector: _Selector):
        self.spec, self.log, self.validate, self.checkpoint, self.selector = spec, log, validate, checkpoint, selector
        self.schedule = spec.schedule()
        self.t0 = time.perf_counter()
        self.start = self.trained = 0
        self.loss, self.first_loss, self.diverged = jnp.asarray(math.nan), None, None

    def validating(self) -> bool:
        return self.validate is not None and bool(self.spec.val_every)

    def log_step(self, step: int, horizon: int, gnorm) -> bool:
        """Log the training loss; True when it shows the run has diverged."""
        loss = float(self.loss)
        self.first_loss = loss if self.first_loss is None else self.first_loss
        self.diverged = divergence(loss, self.first_loss, step)
        rec = {"step": step, "horizon": horizon, "loss": loss, "grad_norm": float(gnorm), "wall_s": self.wall()}
        self.log({**rec, **({"diverged": self.diverged} if self.diverged else {})})
        return self.diverged is not None

    def froze(self, step: int, loss: float, alone: bool) -> None:
        """Its update went non-finite at `step` and was masked: diverged, its parameters frozen there."""
        self.loss, self.trained = loss, step
        self.first_loss = loss if self.first_loss is None else self.first_loss
        rest = "" if alone else " while the rest of its bundle trained on"
        self.diverged = (
            f"non-finite training loss or gradient (loss {loss}) at step {step}; "
            f"the seed's parameters were frozen there{rest}"
        )
        rec = {"step": step, "horizon": horizon_at(self.schedule, step), "loss": loss, "grad_norm": math.nan}
        self.log({**rec, "diverged": self.diverged, "wall_s": self.wall()})  # a training record like any other

    def validated(self, rec: dict, params, step: int, horizon: int) -> None:
        rec = {"step": step, "horizon": horizon, **rec, "wall_s": self.wall()}
        self.selector.add(rec, params)
        self.log(rec)

    def wall(self) -> float:
        return time.perf_counter() - self.t0

    def result(self, params) -> tuple[dict, dict]:
        """(the selected parameters, the training summary)."""
        spec, trained = self.spec, self.trained
        summary = {
            "diverged": self.diverged is not None,
            "divergence": self.diverged,
            "steps": spec.steps,
            "steps_trained": trained,
            "stopped_early": trained < spec.steps,
            "final_loss": float(self.loss) if trained > self.start else None,  # None: no step ran in this process
            "wall_s": self.wall(),
            "resumed_from_step": self.start,
            "curriculum": {
                "kind": spec.curriculum,
                "stages": [list(s) for s in self.schedule],
                "mean_horizon": mean_horizon(self.schedule, spec.steps),
            },
        }
        if not self.validating():
            reason = {"reason": "no validation (train.val_every = 0)"}
            judged = {"converged": None, "failed_to_learn": None, "convergence": reason}
            return params, {**summary, "selected_step": trained, **judged}
        cap = getattr(self.validate, "horizon", None)
        persistence = getattr(self.validate, "persistence_one_step_mse", None)
        selection = _selection_summary(self.selector, trained, spec, cap, persistence)
        return self.selector.best_params, {**summary, **selection}


def _selection_summary(
    selector: _Selector, trained: int, spec: TrainSpec, cap: int | None, persistence: float | None
) -> dict:
    """selected_step, the convergence verdict and a compact validation curve for metrics.json."""
    h = selector.history
    steps, vpt, one = [r["step"] for r in h], [r["val_vpt_steps"] for r in h], [r["val_one_step_mse"] for r in h]
    verdict = convergence(steps, vpt, trained, tol=spec.plateau_tol, cap=cap, one_step=one, persistence=persistence)
    keys = ("step", "horizon", "val_vpt_steps", "val_one_step_mse", "val_rollout_mse")
    return {
        "selected_step": selector.best["step"],
        "converged": verdict["converged"],
        "failed_to_learn": verdict["failed_to_learn"],
        "convergence": verdict,
        "validation": {
            "every": spec.val_every,
            "best": selector.best,
            "first": h[0],
            "last": h[-1],
            "curve": {k: [r[k] for r in h] for k in keys},
        },
    }


class _Loop:
    """Steps the stacked seeds of a run; each seed's `_Seed` keeps its own log, validation and summary."""

    def __init__(self, seeds: list[_Seed], keys):
        self.seeds, self.keys = seeds, keys
        self.spec, self.schedule = seeds[0].spec, seeds[0].schedule
        self.active = [True] * len(seeds)  # host view: the seeds still training
        self.health = healthy(len(seeds))  # device view (alive, bad_step, bad_loss), carried by the step

    def run(self, updates: _Updates, params, opt_state, start: int):
        spec = self.spec
        for seed in self.seeds:
            seed.start = seed.trained = start  # stays so when resumed from the final checkpoint: nothing to do
        if self.seeds[0].validating() and start == 0:
            self._validation(params, 0, horizon_at(self.schedule, 0))
        for step in range(start, spec.steps):
            horizon = horizon_at(self.schedule, step)
            step_ = jnp.asarray(step)
            params, opt_state, self.loss, self.gnorm, self.health = updates.at(step)(
                params, opt_state, self.keys, step_, horizon, self.health
            )
            for i in self._running():
                self.seeds[i].trained = step + 1
            if step % spec.log_every == 0 or step == spec.steps - 1:
                self._log_step(step, horizon)
            if updates.cosine is not None and step % spec.grad_cosine_every == 0:
                self._cosine(updates.cosine(params, self.keys, step_, horizon), step, horizon)
            self._after_step(params, opt_state, step + 1, horizon)
            if not any(self.active):
                break
        return params  # the last step logged, so every frozen seed has been seen

    def _running(self) -> list[int]:
        return [i for i, a in enumerate(self.active) if a]

    def _stop(self, i: int) -> None:
        self.active[i] = False
        alive, bad_step, bad_loss = self.health
        self.health = (alive.at[i].set(False), bad_step, bad_loss)

    def _sync(self) -> None:
        """Seeds whose update was masked since the last look (a non-finite loss or gradient): frozen, diverged."""
        alive, bad_step, bad_loss = (np.asarray(a) for a in self.health)
        for i in self._running():
            if not alive[i]:
                self.seeds[i].froze(int(bad_step[i]), float(bad_loss[i]), alone=len(self.seeds) == 1)
                self.active[i] = False

    def _log_step(self, step: int, horizon: int) -> None:
        self._sync()
        gnorm = np.asarray(self.gnorm)
        for i in self._running():
            seed = self.seeds[i]
            seed.loss = self.loss[i]
            if seed.log_step(step, horizon, gnorm[i]):
                self._stop(i)

    def _cosine(self, cos, step: int, horizon: int) -> None:
        self._sync()  # a seed frozen since the last look gets no records after its fault
        cos = np.asarray(cos)
        for i in self._running():
            self.seeds[i].log({"step": step, "horizon": horizon, "grad_cosine_full": float(cos[i])})

    def _after_step(self, params, opt_state, done: int, horizon: int) -> None:
        """Validate and checkpoint when due; a seed whose patience ran out stops."""
        spec, first = self.spec, self.seeds[0]
        validate = first.validating() and (done % spec.val_every == 0 or done == spec.steps)
        save = first.checkpoint is not None and spec.checkpoint_every and done % spec.checkpoint_every == 0
        if not (validate or save):
            return
        self._sync()
        if not any(self.active):
            return  # every seed stopped at this step: nothing left to score or save
        if validate:
            self._validation(params, done, horizon)
            for i in self._running():
                if spec.patience and self.seeds[i].selector.since >= spec.patience:
                    self.seeds[i].loss = self.loss[i]  # its summary's final loss: this step's
                    self._stop(i)
        if save:
            for i in self._running():
                seed = self.seeds[i]
                state = (unstack(params, i), unstack(opt_state, i), seed.selector.best_params)
                seed.checkpoint(done, state, {"history": seed.selector.history})

    def _validation(self, params, step: int, horizon: int) -> None:
        validate = self.seeds[0].validate
        records = validate.bundle(params, horizon) if hasattr(validate, "bundle") else None
        for i in self._running():
            seed_params = unstack(params, i)
            rec = records[i] if records is not None else validate(seed_params, horizon)
            self.seeds[i].validated(rec, seed_params, step, horizon)
