"""CR3BP: Arenstorf orbit with Dopri8, Jacobi conservation, Lagrange points, initial-condition filter."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sympscale.systems import CR3BP, InvalidSystemError, check_D, make_system
from sympscale.systems.cr3bp import lagrange_points

ARENSTORF_MU = 0.012277471
ARENSTORF_Y0 = (0.994, 0.0, 0.0, -2.00158510637908252240537862224)  # (x, y, ẋ, ẏ)
ARENSTORF_T = 17.0652165601579625588917206249


def test_arenstorf_orbit_returns_with_dopri8_at_rtol_1e12():
    s = make_system("cr3bp", 4, mu=ARENSTORF_MU, rtol=1e-12, atol=1e-14, dt_obs=ARENSTORF_T)
    x, y, vx, vy = ARENSTORF_Y0
    start = jnp.array([x, y, vx - y, vy + x])  # canonical momenta p = v + (−y, x)
    end = s.interval(start)
    assert float(jnp.max(jnp.abs(end - start))) < 1e-8
    mid = s.interval(start[None])  # batched path agrees
    np.testing.assert_allclose(np.asarray(mid[0]), np.asarray(end), atol=1e-12)


def test_jacobi_drift_over_dataset_horizon():
    s = make_system("cr3bp", 4)
    traj = np.asarray(jax.jit(s.trajectories, static_argnums=1)(s.sample_initial(jax.random.key(3), 6), 1200))
    C = np.asarray(s.jacobi(jnp.asarray(traj)))
    assert np.abs(C - C[:, :1]).max() <= 1e-10
    assert ((C[:, 0] >= 3.189) & (C[:, 0] <= 3.20)).all()  # the family's Jacobi constants
    assert not any(v.any() for v in s.accept(traj).values())


def test_jacobi_is_minus_twice_the_canonical_hamiltonian():
    s = make_system("cr3bp", 4)
    x = s.sample_initial(jax.random.key(0), 5)
    v = s.velocity(x)
    r1, r2 = s.distances(x[:, 0], x[:, 1])
    p = x[:, 2:]
    H = 0.5 * jnp.sum(p * p, -1) + x[:, 1] * p[:, 0] - x[:, 0] * p[:, 1] - (1 - s.mu) / r1 - s.mu / r2
    np.testing.assert_allclose(np.asarray(s.jacobi(x)), np.asarray(-2 * H), rtol=1e-14)

    # Hamilton's equations of that H give the vector field
    def hamilton(y):
        g = jax.grad(lambda z: _H(s, z))(y)
        return jnp.concatenate([g[2:], -g[:2]])

    f = jax.vmap(hamilton)
    np.testing.assert_allclose(np.asarray(f(x)), np.asarray(s.vector_field(x)), rtol=1e-12, atol=1e-12)
    assert v.shape == (5, 2)


def _H(s, z):
    r1, r2 = s.distances(z[0], z[1])
    return 0.5 * (z[2] ** 2 + z[3] ** 2) + z[1] * z[2] - z[0] * z[3] - (1 - s.mu) / r1 - s.mu / r2


def test_lagrange_points_ordering_and_equilibrium():
    mu = 0.01215
    L = lagrange_points(mu)
    C = {k: v["C"] for k, v in L.items()}
    assert C["L1"] > C["L2"] > C["L3"] > C["L4"]
    assert C["L4"] == pytest.approx(C["L5"], abs=1e-14)
    assert C["L4"] == pytest.approx(3 - mu * (1 - mu), abs=1e-13)
    assert C["L1"] == pytest.approx(3.1883, abs=1e-3)  # SCIENCE §4: C_L1 ≈ 3.19 for the Earth–Moon μ
    s = make_system("cr3bp", 4, mu=mu)
    grad = jax.grad(lambda xy: s.omega(xy[0], xy[1]))
    for v in L.values():  # equilibria of the rotating frame: ∇Ω = 0, independently of the root finder
        assert float(jnp.max(jnp.abs(grad(jnp.array([v["x"], v["y"]]))))) < 1e-12


@pytest.mark.parametrize("D", [2, 8, 16])
def test_only_D4_is_valid(D):
    assert "D=4" in check_D("cr3bp", D)
    with pytest.raises(InvalidSystemError, match="D=4"):
        make_system("cr3bp", D)


def test_filter_counts_close_approaches():
    s = make_system("cr3bp", 4, r_min_reject=0.5)  # every orbit of the family comes within 0.5 of Earth
    traj = s.trajectories(s.sample_initial(jax.random.key(1), 3), 50)
    assert s.accept(traj)["close_approach"].all()
    with pytest.raises(InvalidSystemError, match="zero-velocity"):
        make_system("cr3bp", 4, x0_range=[0.75, 0.83])


def test_is_registered():
    assert isinstance(make_system("cr3bp", 4), CR3BP)
