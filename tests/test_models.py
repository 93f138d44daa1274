"""Models: exact parameter counts, capacity matching, symplecticity, learned-energy conservation."""

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


def test_symp_keeps_learned_energy_bounded():
    D = 8
    mean, std = stats(D)
    model, _ = build("symp", D=D, dt=0.5, mean=mean, std=std, capacity=Capacity(width=16, depth=2))
    params = model.init(jax.random.key(4))
    x0 = jax.random.normal(jax.random.key(5), (3, D), dtype=jnp.float64) * 0.5

    def body(x, _):
        x = model.step(params, x)
        return x, model.hamiltonian(params, x)

    _, e = jax.lax.scan(body, x0, None, length=2000)
    e0 = model.hamiltonian(params, x0)
    rel = np.asarray(jnp.abs(e - e0) / jnp.abs(e0))
    assert rel.max() < 1e-4
    assert rel[1000:].max() < 3 * rel[:1000].max()  # no secular drift


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
