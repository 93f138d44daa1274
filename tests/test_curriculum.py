"""Horizon curricula: monotone, reach the final horizon, cheaper than constant; BPTT windows keep their meaning."""

import itertools

import jax
import numpy as np
import pytest

from sympscale.curriculum import horizon_at, horizon_schedule, mean_horizon
from sympscale.training import TrainSpec, fit, make_loss, sample_windows


@pytest.mark.parametrize(
    "horizon, steps, start, ramp",
    list(itertools.product([1, 2, 10, 64, 1000], [1, 3, 100, 40000], [1, 3], [0.0, 0.5, 1.0])),
)
def test_geometric_schedule_is_monotone_and_ends_at_the_final_horizon(horizon, steps, start, ramp):
    sched = horizon_schedule("geometric", horizon=horizon, steps=steps, start=start, ramp_fraction=ramp)
    firsts, hs = [s for s, _ in sched], [h for _, h in sched]
    assert firsts[0] == 0 and all(
        a < b for a, b in zip(firsts, firsts[1:], strict=False)
    )  # stages in order, none empty
    assert all(a < b for a, b in zip(hs, hs[1:], strict=False))  # the horizon only grows
    assert hs[-1] == horizon and firsts[-1] < steps  # the final horizon is trained for at least one step
    if steps >= 100 and ramp > 0:  # a ramp with steps to spend starts at `start`
        assert hs[0] == min(start, horizon)
    per_step = [horizon_at(sched, t) for t in range(min(steps, 3000))]
    assert all(a <= b for a, b in zip(per_step, per_step[1:], strict=False))
    assert horizon_at(sched, steps - 1) == horizon
    if steps >= 100:  # (very short runs drop stages that would get no step)
        assert all(b == 2 * a for a, b in zip(hs, hs[1:], strict=False) if b < horizon)  # stages double
    assert 1 <= mean_horizon(sched, steps) <= horizon


def test_ramp_fraction_places_the_final_stage_and_sets_the_cost():
    sched = horizon_schedule("geometric", horizon=1000, steps=40000, ramp_fraction=0.9)
    assert sched[-1] == (36000, 1000) and [h for _, h in sched[:-1]] == [2**k for k in range(10)]
    assert mean_horizon(sched, 40000) < 0.2 * 1000  # the curriculum is >5x cheaper than horizon 1000 throughout
    assert horizon_schedule("constant", horizon=10, steps=100) == ((0, 10),)
    assert mean_horizon(((0, 10),), 100) == 10


def test_bad_curriculum_is_refused():
    with pytest.raises(ValueError, match="curriculum='linear'"):
        horizon_schedule("linear", horizon=10, steps=100)


def test_fit_follows_the_schedule(fput8):
    _, traj, std, model = fput8
    spec = TrainSpec(
        steps=40, batch_size=4, horizon=8, warmup=2, log_every=1, curriculum="geometric", ramp_fraction=0.5
    )
    logs = []
    fit(model, model.init(jax.random.key(1)), traj, std, spec, key=jax.random.key(2), log=logs.append)
    seen = [(r["step"], r["horizon"]) for r in logs if "loss" in r]
    assert seen == [(t, horizon_at(spec.schedule(), t)) for t in range(40)]
    assert [h for _, h in spec.schedule()] == [1, 2, 4, 8]


def test_window_semantics_do_not_depend_on_the_stage(fput8):
    """bptt_window = k cuts every k steps of whatever horizon is current: no cut while h <= k."""
    _, traj, std, model = fput8
    params = model.init(jax.random.key(3))
    for h in (2, 4, 12):
        x0, targets = sample_windows(jax.random.key(h), jax.numpy.asarray(traj), 5, h)
        g = {w: jax.grad(make_loss(model, std, TrainSpec(horizon=8, window=w)))(params, x0, targets) for w in (None, 4)}
        diff = max(
            float(np.max(np.abs(a - b)))
            for a, b in zip(jax.tree_util.tree_leaves(g[None]), jax.tree_util.tree_leaves(g[4]), strict=True)
        )
        assert (diff == 0.0) == (h <= 4), (h, diff)
