"""Seed bundles: the seeds of one configuration as one vmapped program equal the single-seed programs."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sympscale.models import Capacity, build
from sympscale.projection import make_projector
from sympscale.selection import make_validator
from sympscale.training import (
    Resume,
    TrainSpec,
    _bundle_updater,
    _updater,
    fit,
    fit_bundle,
    make_loss,
    make_optimizer,
    sample_windows,
    stack,
    unstack,
)

SEEDS = (11, 12, 13)


@pytest.fixture(scope="module")
def data():
    s = make_system_fput()
    traj = np.asarray(jax.jit(s.trajectories, static_argnums=1)(s.sample_initial(jax.random.key(0), 6), 60))
    mean, std = traj.mean(axis=(0, 1)), traj.std(axis=(0, 1))
    return s, traj[:4], traj[4:], mean, std


def make_system_fput():
    from sympscale.systems import make_system

    return make_system("fput", 8)


def model_of(name, data):
    s, _, _, mean, std = data
    width = 32 if name == "freeform" else 16  # (free-form widths cannot match the smaller capacity at D = 8)
    return build(name, D=s.D, dt=s.dt_obs, mean=mean, std=std, capacity=Capacity(width=width, depth=2), system=s)[0]


def rel(a, b) -> float:
    """max |a - b| / max |b| over the leaves of two pytrees."""
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    scale = max(float(jnp.max(jnp.abs(y))) for y in lb)
    return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(la, lb, strict=True)) / scale


VARIANTS = [  # (projection, window, memory): each factor at both of its levels, for every model
    ("none", None, "remat"),
    ("multi", 4, "blocked"),
    ("none", 4, "remat"),
    ("multi", None, "blocked"),
]


@pytest.mark.parametrize("name", ["symp", "gru", "rk4", "freeform"])
@pytest.mark.parametrize("projection, window, memory", VARIANTS)
def test_bundled_loss_and_gradient_equal_the_single_seed_program(name, projection, window, memory, data):
    s, train, _, _, std = data
    model = model_of(name, data)
    spec = TrainSpec(horizon=8, batch_size=4, window=window, memory=memory)
    loss = make_loss(model, std, spec, make_projector(s, projection))
    params = [model.init(jax.random.key(k)) for k in SEEDS]
    batches = [sample_windows(jax.random.key(k + 100), jnp.asarray(train), 4, 8) for k in SEEDS]
    single = jax.jit(jax.value_and_grad(loss))
    bundled = jax.jit(jax.vmap(jax.value_and_grad(loss)))(stack(params), *stack(batches))
    for i, (p, (x0, targets)) in enumerate(zip(params, batches, strict=True)):
        value, grad = single(p, x0, targets)
        assert abs(float(bundled[0][i]) - float(value)) <= 1e-12 * abs(float(value))
        assert rel(unstack(bundled[1], i), grad) <= 1e-12


@pytest.mark.parametrize("name", ["symp", "gru"])
def test_the_bundled_update_equals_the_single_update(name, data):
    """The step the bundle runs (masking included): each seed's loss, gradient norm and new state as alone."""
    s, train, _, _, std = data
    model = model_of(name, data)
    spec = TrainSpec(horizon=6, batch_size=4, warmup=0)
    opt, train_dev = make_optimizer(spec), jnp.asarray(train)
    params = [model.init(jax.random.key(k)) for k in SEEDS]
    keys = [jax.random.key(k + 7) for k in SEEDS]
    bundled = _bundle_updater(model, std, spec, opt, train_dev, None)
    out = bundled(
        stack(params),
        stack([opt.init(p) for p in params]),
        jnp.stack(keys),
        jnp.asarray(3),
        6,
        jnp.ones(len(SEEDS), dtype=bool),
    )
    for i, (p, k) in enumerate(zip(params, keys, strict=True)):
        new, state, value, gnorm = _updater(model, std, spec, opt, train_dev, k, None)(
            p, opt.init(p), jnp.asarray(3), 6
        )
        assert abs(float(out[2][i]) - float(value)) <= 1e-12 * abs(float(value))
        assert abs(float(out[3][i]) - float(gnorm)) <= 1e-12 * abs(float(gnorm))
        assert rel(unstack(out[0], i), new) <= 1e-12 and rel(unstack(out[1], i), state) <= 1e-12
        assert bool(out[4][i])


def _spec(**kw):
    return TrainSpec(steps=20, batch_size=6, horizon=4, warmup=3, log_every=5, val_every=5, val_horizon=20, **kw)


def _singles(model, data, spec, params, validate, seeds=SEEDS, **kw):
    _, train, _, _, std = data
    out = []
    for p, k in zip(params, seeds, strict=True):
        logs = []
        result = fit(model, p, train, std, spec, key=jax.random.key(k), log=logs.append, validate=validate, **kw)
        out.append((*result, logs))
    return out


def _bundle(model, data, spec, params, validate, **kw):
    _, train, _, _, std = data
    logs = [[] for _ in SEEDS]
    keys = [jax.random.key(k) for k in SEEDS]
    results = fit_bundle(
        model, params, train, std, spec, keys=keys, logs=[x.append for x in logs], validate=validate, **kw
    )
    return [(*r, log) for r, log in zip(results, logs, strict=True)]


def _same_run(bundled, single, tol=1e-9):
    (pb, sb, lb), (ps, ss, ls) = bundled, single
    assert rel(pb, ps) <= tol
    for key in ("steps_trained", "selected_step", "converged", "stopped_early", "diverged", "resumed_from_step"):
        assert sb[key] == ss[key], key
    assert [r["step"] for r in lb] == [r["step"] for r in ls]
    for rb, rs in zip(lb, ls, strict=True):
        for key in ("loss", "grad_norm", "val_vpt_steps", "val_one_step_mse", "val_rollout_mse"):
            if key in rs:
                assert rb[key] == pytest.approx(rs[key], rel=1e-9, abs=1e-300), (rs["step"], key)


@pytest.mark.parametrize("name", ["symp", "gru"])
def test_twenty_steps_of_a_bundle_of_three_equal_three_single_runs(name, data):
    s, _, val, _, std = data
    model = model_of(name, data)
    spec = _spec()
    validate = make_validator(model, val, std, horizon=spec.val_horizon, starts=2)
    params = [model.init(jax.random.key(k)) for k in SEEDS]
    for b, one in zip(
        _bundle(model, data, spec, params, validate), _singles(model, data, spec, params, validate), strict=True
    ):
        _same_run(b, one)


def test_a_non_finite_seed_is_frozen_and_the_others_finish_as_alone(data):
    s, _, val, _, std = data
    model = model_of("symp", data)
    spec = _spec()
    validate = make_validator(model, val, std, horizon=spec.val_horizon, starts=2)
    params = [model.init(jax.random.key(k)) for k in SEEDS]
    poisoned = jax.tree_util.tree_map(lambda a: a * 1e300, params[1])  # the loss overflows at the first step
    bundle = _bundle(model, data, spec, [params[0], poisoned, params[2]], validate)
    singles = _singles(model, data, spec, [params[0], params[2]], validate, seeds=SEEDS[::2])
    _same_run(bundle[0], singles[0])
    _same_run(bundle[2], singles[1])
    frozen, summary, logs = bundle[1]
    assert summary["diverged"] and "non-finite" in summary["divergence"] and summary["steps_trained"] == 0
    assert logs[-1]["diverged"] == summary["divergence"]
    assert rel(frozen, poisoned) == 0.0  # never updated: its last finite parameters are kept


def test_patience_and_explosion_stop_seeds_as_they_would_alone(data):
    """Per-seed stopping: validation patience (each seed stops at its own step) and an exploding loss."""
    s, _, val, _, std = data
    model = model_of("gru", data)
    validate = make_validator(model, val, std, horizon=20, starts=2)
    params = [model.init(jax.random.key(k)) for k in SEEDS]
    spec = dataclasses.replace(_spec(), steps=40, val_every=2, patience=1)
    for b, one in zip(
        _bundle(model, data, spec, params, validate), _singles(model, data, spec, params, validate), strict=True
    ):
        _same_run(b, one)
    wild = TrainSpec(steps=60, batch_size=6, horizon=4, warmup=0, lr=1e9, log_every=5, clip=1e12)
    for b, one in zip(_bundle(model, data, wild, params, None), _singles(model, data, wild, params, None), strict=True):
        assert b[1]["diverged"] == one[1]["diverged"]
        assert b[1]["steps_trained"] == one[1]["steps_trained"]


def test_an_interrupted_bundle_resumes_exactly(data):
    s, train, val, _, std = data
    model = model_of("symp", data)
    spec = dataclasses.replace(_spec(), checkpoint_every=10)
    validate = make_validator(model, val, std, horizon=spec.val_horizon, starts=2)
    params = [model.init(jax.random.key(k)) for k in SEEDS]
    saved = [{} for _ in SEEDS]
    whole = _bundle(
        model,
        data,
        spec,
        params,
        validate,
        checkpoints=[lambda step, state, meta, d=d: d.setdefault(step, (state, list(meta["history"]))) for d in saved],
    )  # a copy: the history goes on growing, as a file would not
    resumes = [Resume(10, d[10][0][1], d[10][0][2], d[10][1]) for d in saved]
    resumed = _bundle(model, data, spec, [d[10][0][0] for d in saved], validate, resumes=resumes)
    for (p, s_, _), (q, t, _) in zip(resumed, whole, strict=True):
        assert rel(p, q) == 0.0 and s_["selected_step"] == t["selected_step"] and s_["resumed_from_step"] == 10
    mixed = resumes[:2] + [None]
    with pytest.raises(ValueError, match="resume at one step"):
        _bundle(model, data, spec, params, validate, resumes=mixed)
