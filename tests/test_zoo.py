"""The model zoo (rk4, freeform) and hard invariant projection."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sympscale.evaluation import BoundedRule, rollout_metrics
from sympscale.models import (
    Capacity,
    build,
    param_count,
    target_params,
)
from sympscale.projection import make_projector
from sympscale.systems import SYSTEMS, check_D, make_system

GRID = [(s, D) for s in sorted(SYSTEMS) for D in (4, 16, 64, 256, 1024) if check_D(s, D) is None]


@pytest.mark.parametrize("system, D", GRID)
@pytest.mark.parametrize("width", [64, 512])
def test_capacity_ratio_within_0p1_percent_over_the_grid(system, D, width):
    """Every model built for (system, D) as the pipeline builds it: real parameter counts, ratio to symp's."""
    exact = make_system(system, D).exact_quadratic()
    kw = dict(D=D, dt=0.1, mean=np.zeros(D), std=np.ones(D), capacity=Capacity(width=width), exact=exact)
    counts = {}
    for name in ("symp", "gru", "rk4", "freeform"):
        model, info = build(name, **kw)
        shapes = jax.eval_shape(model.init, jax.random.key(0))
        assert sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(shapes)) == info["params"]
        counts[name] = info["params"]
    assert counts["symp"] == target_params(D, Capacity(width=width), exact)
    for name in ("gru", "rk4", "freeform"):
        assert abs(counts[name] / counts["symp"] - 1) <= 1e-3, (name, counts)


@pytest.mark.parametrize("name", ["rk4", "freeform"])
def test_declared_counts_are_real(name):
    D = 16
    model, info = build(name, D=D, dt=0.5, mean=np.zeros(D), std=np.ones(D), capacity=Capacity(width=32))
    params = model.init(jax.random.key(0))
    assert param_count(params) == info["params"] and abs(info["capacity_ratio"] - 1) <= 1e-3
    x = jax.random.normal(jax.random.key(1), (3, D), dtype=jnp.float64)
    assert model.step(params, x).shape == (3, D)


def test_symp_keeps_learned_energy_while_rk4_with_same_parameters_drifts():
    """A briefly trained H_θ: Yoshida-4 keeps it to a bounded oscillation, RK4 (same H_θ, same steps) drifts."""
    from sympscale.training import TrainSpec, fit

    s = make_system("fput", 8)
    traj = np.asarray(jax.jit(s.trajectories, static_argnums=1)(s.sample_initial(jax.random.key(0), 8), 200))
    kw = dict(
        D=8, dt=s.dt_obs, mean=traj.mean(axis=(0, 1)), std=traj.std(axis=(0, 1)), capacity=Capacity(width=16, depth=2)
    )
    symp, _ = build("symp", **kw)
    rk4, _ = build("rk4", **kw)
    spec = TrainSpec(steps=200, batch_size=16, horizon=4, warmup=10, log_every=100)
    params, _ = fit(symp, symp.init(jax.random.key(1)), traj, kw["std"], spec, key=jax.random.key(2))
    x0 = jnp.asarray(traj[:, 0])

    def drift(model):
        def body(x, _):
            x = model.step(params, x)
            return x, model.hamiltonian(params, x)

        _, e = jax.lax.scan(body, x0, None, length=4000)
        e0 = symp.hamiltonian(params, x0)
        return np.asarray(jnp.max(jnp.abs(e - e0) / jnp.abs(e0), axis=1))  # (T,)

    d_symp, d_rk4 = drift(symp), drift(rk4)
    assert d_symp[2000:].max() < 1.5 * d_symp[:2000].max()  # bounded oscillation, no trend
    assert d_rk4[-1] > 2 * d_rk4[999] and d_rk4[-1] > 10 * d_symp.max()  # secular drift


class PerturbedReference:
    """The true interval map plus a small state-dependent error: every invariant drifts, projection has work."""

    def __init__(self, system, std, size=1e-4):
        self.system, self.std, self.size = system, jnp.asarray(std), size

    def encode(self, params, x0):
        return x0

    def observe(self, carry):
        return carry

    def replace_state(self, carry, x):
        return x

    def step(self, params, x):
        return self.system.interval(x) + self.size * self.std * jnp.sin(3.0 * x / self.std + 1.0)


# these tests check projection, not the bounded verdict: one companion per trajectory (each is a reference rollout)
FEW_COMPANIONS = BoundedRule(pairs=2)
PROJECTION_CASES = [
    (name, D, kind)
    for name, D in [("fput", 16), ("toda", 16), ("nbody", 16), ("cr3bp", 4), ("ks", 64)]
    for kind in ("single", "multi")
    if kind == "single" or len(make_system(name, D).projection_invariants("multi")) > 1
]


@pytest.mark.parametrize("name, D, kind", PROJECTION_CASES)
def test_projection_holds_invariants_over_1000_steps(name, D, kind):
    s = make_system(name, D)
    test = np.asarray(jax.jit(s.trajectories, static_argnums=1)(s.sample_initial(jax.random.key(5), 4), 1001))
    mean, std = test.mean(axis=(0, 1)), test.std(axis=(0, 1))
    projector = make_projector(s, kind)
    model = PerturbedReference(s, std)
    ev = rollout_metrics(model, None, s, test, mean, std, horizon=1000, projector=projector, bounded=FEW_COMPANIONS)
    assert min(ev["conservation"][k] for k in projector.names) > 1e-8  # without projection every one drifts
    for inv in projector.names:
        assert ev["conservation_projected"][inv] <= 1e-10, ev["conservation_projected"]
    stats = ev["projection"]
    assert stats["n_not_converged"] == 0 and stats["frac_steps_within_5"] >= 0.99, stats
    assert sum(stats["iterations_histogram"]) == stats["n_steps"] == 4 * 1000


def test_projection_gradient_is_straight_through():
    s = make_system("toda", 8)
    projector = make_projector(s, "multi")
    x0 = s.sample_initial(jax.random.key(0), 1)
    c0, scales = projector.targets(x0)
    y = x0 + 0.01 * jax.random.normal(jax.random.key(1), x0.shape, dtype=jnp.float64)
    J = jax.jacrev(lambda v: projector(v, c0, scales)[0])(y)  # (1, D, 1, D)
    np.testing.assert_allclose(np.asarray(J[0, :, 0, :]), np.eye(s.D), atol=0)
    y_proj = projector(y, c0, scales)[0]
    assert float(jnp.max(jnp.abs(y_proj - y))) > 1e-6  # the forward value did move


def test_unknown_projection_refused():
    with pytest.raises(ValueError, match="projection"):
        make_projector(make_system("fput", 8), "all")


def test_leapfrog_warmup_then_yoshida():
    """start_with=(leapfrog model, k): the first k steps are exactly leapfrog training, the rest Yoshida-4."""
    from sympscale.training import TrainSpec, fit

    s = make_system("fput", 8)
    traj = np.asarray(jax.jit(s.trajectories, static_argnums=1)(s.sample_initial(jax.random.key(0), 4), 40))
    kw = dict(
        D=8, dt=s.dt_obs, mean=traj.mean(axis=(0, 1)), std=traj.std(axis=(0, 1)), capacity=Capacity(width=16, depth=2)
    )
    yosh, _ = build("symp", **kw)
    leap, _ = build("symp", **kw, options={"method": "leapfrog"})
    init = yosh.init(jax.random.key(1))
    spec = TrainSpec(steps=6, batch_size=4, horizon=3, warmup=1, log_every=1)

    def run(model, steps, **extra):
        return fit(
            model, init, traj, kw["std"], TrainSpec(**{**spec.__dict__, "steps": steps}), key=jax.random.key(2), **extra
        )[0]

    warm3 = run(yosh, 3, start_with=(leap, 3))
    leap3 = run(leap, 3)
    same = jax.tree_util.tree_map(lambda a, b: bool(jnp.all(a == b)), warm3, leap3)
    assert all(jax.tree_util.tree_leaves(same))  # identical while warming up
    warm6, plain6 = run(yosh, 6, start_with=(leap, 3)), run(yosh, 6)
    diff = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(jax.tree_util.tree_leaves(warm6), jax.tree_util.tree_leaves(plain6), strict=True)
    )
    assert diff > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fput", "toda"])
def test_projection_on_a_smoke_trained_model(name):
    """A symp model trained at smoke scale, rolled out 1,000 steps with and without multi-invariant projection:
    invariants to 1e-10, Newton within 5 iterations on >= 99 % of steps, MSE no worse than 2x unprojected."""
    from sympscale.training import TrainSpec, fit

    s = make_system(name, 16)
    data = np.asarray(jax.jit(s.trajectories, static_argnums=1)(s.sample_initial(jax.random.key(0), 20), 1001))
    train, test = data[:16], data[16:]
    mean, std = train.mean(axis=(0, 1)), train.std(axis=(0, 1))
    model, _ = build("symp", D=16, dt=s.dt_obs, mean=mean, std=std, capacity=Capacity(width=32))
    spec = TrainSpec(steps=300, batch_size=32, horizon=8, lr=3e-3, warmup=20, log_every=1000)
    params, _ = fit(model, model.init(jax.random.key(1)), train, std, spec, key=jax.random.key(2))
    projector = make_projector(s, "multi")
    ev = rollout_metrics(model, params, s, test, mean, std, horizon=1000, projector=projector, bounded=FEW_COMPANIONS)
    assert max(ev["conservation_projected"].values()) <= 1e-10, ev["conservation_projected"]
    assert ev["projection"]["n_not_converged"] == 0 and ev["projection"]["frac_steps_within_5"] >= 0.99
    assert ev["last100_mse_projected"] <= 2 * ev["last100_mse"], (ev["last100_mse_projected"], ev["last100_mse"])
