"""Planar N-body: analytic forces, conservation over the dataset horizon, initial-condition family, filter."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sympscale.systems import InvalidSystemError, check_D, make_system
from sympscale.systems.base import HamiltonianSystem


@pytest.mark.parametrize("D", [8, 12, 64])
def test_matmul_forces_match_autodiff(D):
    s = make_system("nbody", D)
    q = s.sample_initial(jax.random.key(D), 3)[:, : D // 2]
    np.testing.assert_allclose(np.asarray(s.grad_V(q)), np.asarray(HamiltonianSystem.grad_V(s, q)), atol=1e-12)


def test_initial_conditions_centre_of_mass_frame_and_virial():
    s = make_system("nbody", 64)
    x = s.sample_initial(jax.random.key(0), 6)
    q, p = (s.bodies(z) for z in s.split(x))
    assert float(jnp.max(jnp.abs(jnp.sum(p, axis=-2)))) < 1e-12  # zero total momentum
    assert float(jnp.max(jnp.abs(jnp.mean(q, axis=-2)))) < 1e-12  # centre of mass at the origin
    Q = 2 * s.kinetic(s.split(x)[1]) / -s.potential(s.split(x)[0])
    assert bool(jnp.all((Q > 0.7) & (Q <= 1.0 + 1e-12)))  # virialised, speeds capped below escape


def test_conservation_over_dataset_horizon():
    s = make_system("nbody", 16)  # N = 4 with the default softening and step
    traj = np.asarray(jax.jit(s.trajectories, static_argnums=1)(s.sample_initial(jax.random.key(1), 8), 1200))
    inv, scales = s.invariants(traj), s.invariant_scales(traj[:, 0])
    rel = {k: np.max(np.abs(v - v[:, :1]) / np.maximum(np.abs(v[:, :1]), scales[k][:, None])) for k, v in inv.items()}
    assert rel["E"] <= 1e-8, rel
    for k in ("Px", "Py", "Lz"):
        assert rel[k] <= 1e-12, rel


@pytest.mark.parametrize("D", [4, 10, 18])
def test_impossible_D_refused(D):
    msg = check_D("nbody", D)
    assert msg is not None and f"D={D} is invalid" in msg and "4N" in msg and "(e.g. D=" in msg, msg
    with pytest.raises(InvalidSystemError, match=re.escape(msg)):  # "valid" alone would match "invalid"
        make_system("nbody", D)


def test_escape_filter_flags_unbound_bodies_far_out():
    s = make_system("nbody", 12)
    x = np.asarray(s.sample_initial(jax.random.key(2), 2))
    traj = np.stack([x, x], axis=1)  # (2, 2, D)
    assert not s.accept(traj)["escape"].any()
    far = traj.copy()
    far[0, -1, 0] = 10 * s.radius  # body 1 far out...
    far[0, -1, s.D // 2 : s.D // 2 + 2] = 0.0  # ...at rest: bound, it will fall back, kept
    assert not s.accept(far)["escape"][0]
    far[0, -1, s.D // 2] = 50.0  # ...and fast: unbound -> ejected
    assert s.accept(far)["escape"].tolist() == [True, False]
