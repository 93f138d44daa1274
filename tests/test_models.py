"""Models: exact parameter counts, capacity matching, symplecticity, learned-energy conservation."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sympscale.models import Capacity, GRUModel, SympModel, build, param_count, solve_gru_sizes


def stats(D, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=D) * 0.1, 0.5 + rng.random(D)


@pytest.mark.parametrize("D", [16, 64, 256])
@pytest.mark.parametrize("width", [32, 64])
def test_capacity_matched_within_0p1_percent(D, width):
    mean, std = stats(D)
    counts = {}
    for name in ("symp", "gru"):
        model, info = build(name, D=D, dt=0.5, mean=mean, std=std, capacity=Capacity(width=width))
        params = model.init(jax.random.key(0))
        assert param_count(params) == info["params"]  # declared count is the real count
        assert all(x.dtype == jnp.float64 for x in jax.tree_util.tree_leaves(params))
        counts[name] = info["params"]
    assert abs(counts["gru"] / counts["symp"] - 1) <= 1e-3, counts


@pytest.mark.parametrize("D, width, depth", [(8, 12, 2), (8, 24, 2), (8, 32, 2), (4, 32, 3), (1024, 64, 3)])
def test_solver_finds_balanced_widths_at_small_and_large_sizes(D, width, depth):
    target = SympModel.count(D, width, depth)
    H, E, K = solve_gru_sizes(D, target)
    assert abs(GRUModel.count(D, H, E, K) / target - 1) <= 1e-3
    assert H >= 2 and H / 4 <= E <= 4 * H


def test_solver_refuses_impossible_targets():
    with pytest.raises(ValueError, match="no GRU widths"):
        solve_gru_sizes(1024, 50)


def test_symp_step_is_symplectic():
    """Jacobian M of the learned one-interval map satisfies Mᵀ J M = J."""
    D = 8
    mean, std = stats(D)
    model, _ = build("symp", D=D, dt=0.5, mean=mean, std=std, capacity=Capacity(width=16, depth=2))
    params = model.init(jax.random.key(1))
    params["T_off"] = 0.1 * jax.random.normal(jax.random.key(2), params["T_off"].shape, dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(3), (D,), dtype=jnp.float64)
    M = jax.jacfwd(lambda y: model.step(params, y))(x)
    n = D // 2
    J = jnp.block([[jnp.zeros((n, n)), jnp.eye(n)], [-jnp.eye(n), jnp.zeros((n, n))]])
    np.testing.assert_allclose(np.asarray(M.T @ J @ M), np.asarray(J), atol=1e-12)


def test_symp_keeps_a_strongly_anharmonic_learned_energy_while_rk4_drifts():
    """Yoshida-4 holds H_θ to a bounded oscillation where RK4 (same H_θ, same steps) drifts secularly.

    At init V ≈ 0 (free motion, which any integrator conserves), so V is made a confining, strongly
    non-quadratic potential first: layers after the first take non-negative kernels (V convex, growing
    linearly far out), the last one ×100. Checked: the orbits exchange energy between T and V and V's
    curvature varies along them, so the test says something about the integrator.
    """
    D, n, T = 8, 4, 2000
    mean, std = stats(D)
    model, _ = build("symp", D=D, dt=0.5, mean=mean, std=std, capacity=Capacity(width=16, depth=2))
    params = model.init(jax.random.key(4))
    layers = sorted(params["V"])  # Dense_0, Dense_1, Dense_2
    for name in layers[1:]:
        scale = 100.0 if name == layers[-1] else 1.0
        params["V"][name] = {**params["V"][name], "kernel": scale * jnp.abs(params["V"][name]["kernel"])}
    x0 = jax.random.normal(jax.random.key(5), (3, D), dtype=jnp.float64) * 0.5 + jnp.asarray(mean)

    def rollout(m):
        def body(x, _):
            x = m.step(params, x)
            return x, (x, m.hamiltonian(params, x))

        return jax.jit(lambda x: jax.lax.scan(body, x, None, length=T)[1])(x0)

    X, e_symp = rollout(model)
    _, e_rk4 = rollout(dataclasses.replace(model, method="rk4"))
    V = np.asarray(model.potential(params, X[..., :n]))  # (T, 3)
    swing = V.max(axis=0) - V.min(axis=0)  # energy exchanged between T and V on each orbit
    assert np.all(swing > 0.5) and np.all(np.abs(np.asarray(X)) < 10)  # bounded orbits, far from free motion
    curv = np.linalg.eigvalsh(np.asarray(jax.vmap(jax.hessian(lambda q: model.potential(params, q)))(X[::50, 0, :n])))
    assert curv.max() > 10 * curv.min() > 0  # V's curvature varies tenfold along an orbit: not a harmonic well

    e0 = np.asarray(model.hamiltonian(params, x0))
    d_symp, d_rk4 = (np.abs(np.asarray(e) - e0) / swing for e in (e_symp, e_rk4))  # (T, 3)
    assert d_symp.max() < 2e-4  # measured 6e-5; RK4 reaches 1.7e-3
    assert d_symp[T // 2 :].max() < 1.5 * d_symp[: T // 2].max()  # no secular drift
    assert np.all(d_rk4[-1] > 1.8 * d_rk4[T // 2 - 1]) and d_rk4[-1].max() > 10 * d_symp.max()  # linear drift (27×)


def test_gru_interface_and_residual_start():
    D = 6
    mean, std = stats(D)
    model = GRUModel(D=D, hidden=8, embed=5, decoder_hidden=3, mean=mean, std=std)
    params = model.init(jax.random.key(0))
    assert param_count(params) == GRUModel.count(D, 8, 5, 3)
    x0 = jax.random.normal(jax.random.key(1), (4, D), dtype=jnp.float64)
    carry = model.encode(params, x0)
    np.testing.assert_allclose(np.asarray(model.observe(carry)), np.asarray(x0), atol=1e-14)
    x1 = model.observe(model.step(params, carry))
    assert x1.shape == (4, D) and x1.dtype == jnp.float64


def test_symp_count_formula():
    assert SympModel.count(16, 64, 3) == (8 * 64 + 64) + 2 * (64 * 64 + 64) + (64 + 1) + 8 * 9 // 2


def test_mlp_parameters_are_drawn_per_layer_into_flax_s_tree():
    """`mlp_params` gives exactly the tree flax's `init` gives (names, shapes, dtypes), its kernels drawn one key
    per layer with variance s²/n_in and zero biases: the draws every earlier result was seeded with."""

    from sympscale.models.nn import MLP, init_params, mlp_params

    mlp = MLP(features=(16, 16, 1), last_scale=0.01)
    ours, flax_own = mlp_params(mlp, jax.random.key(3), 5), init_params(mlp, jax.random.key(3), jnp.zeros(5))
    shape = lambda t: jax.tree_util.tree_map(lambda x: (x.shape, x.dtype), t)  # noqa: E731
    assert shape(ours) == shape(flax_own)
    keys = jax.random.split(jax.random.key(3), 3)
    first = jax.random.normal(keys[0], (5, 16), dtype=jnp.float64) / np.sqrt(5)
    last = jax.random.normal(keys[2], (16, 1), dtype=jnp.float64) * 0.01 / 4.0
    np.testing.assert_array_equal(ours["Dense_0"]["kernel"], first)
    np.testing.assert_array_equal(ours["Dense_2"]["kernel"], last)
    assert all(not np.any(layer["bias"]) for layer in ours.values())
