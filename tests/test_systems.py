"""Systems: invariants of the references, Lax traces, initial conditions, D validation."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sympscale.systems import InvalidSystemError, check_D, make_system


def rel_drift(system, traj):
    inv = system.invariants(traj)
    scales = system.invariant_scales(traj[:, 0])
    return {
        k: float(jnp.max(jnp.abs(v - v[:, :1]) / jnp.maximum(jnp.abs(v[:, :1]), scales[k][:, None])))
        for k, v in inv.items()
    }


@pytest.mark.parametrize("name", ["fput", "toda"])
def test_initial_conditions_energy_and_momentum(name):
    s = make_system(name, 32, energy_density=0.7)
    x0 = s.sample_initial(jax.random.key(0), 16)
    assert x0.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(s.hamiltonian(x0)), 16 * 0.7, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(jnp.sum(s.split(x0)[1], axis=-1)), 0.0, atol=1e-12)
    assert np.std(np.asarray(x0)) > 0.1  # genuinely random


def test_toda_reference_conserves_invariants_over_dataset_horizon():
    """Default dataset horizon (1,200 observations, t = 600): H, P, I3, I4 to <= 1e-9 relative."""
    s = make_system("toda", 32)
    traj = jax.jit(s.trajectories, static_argnums=1)(s.sample_initial(jax.random.key(1), 4), 1200)
    drift = rel_drift(s, traj)
    assert set(drift) == {"H", "P", "I3", "I4"}
    assert max(drift.values()) <= 1e-9, drift
    # isospectrality of the Lax matrix: every eigenvalue, relative to the spectral radius
    lam = np.asarray(s.spectrum(traj))
    assert np.abs(lam - lam[:, :1]).max() / np.abs(lam[:, 0]).max() <= 1e-10
    assert s.diagnostics(traj)["isospectral_drift"] <= 1e-10


def test_fput_reference_conserves_energy_and_momentum():
    s = make_system("fput", 32)
    traj = jax.jit(s.trajectories, static_argnums=1)(s.sample_initial(jax.random.key(2), 4), 1200)
    drift = rel_drift(s, traj)
    assert drift["H"] <= 1e-9 and drift["P"] <= 1e-11, drift
    assert float(jnp.std(traj[:, -1] - traj[:, 0])) > 0.1  # the lattice actually moved


def test_fixed_boundary_has_only_energy():
    s = make_system("fput", 16, boundary="fixed")
    x = s.sample_initial(jax.random.key(0), 2)
    assert set(s.invariants(x)) == {"H"}
    np.testing.assert_allclose(np.asarray(s.bonds(s.split(x)[0])).shape, (2, 9))


@pytest.mark.parametrize("N", [3, 4, 5, 6, 9])
def test_toda_lax_traces_match_dense_products(N):
    s = make_system("toda", 2 * N)
    x = s.sample_initial(jax.random.key(N), 3)
    L = s.lax_matrix(x)
    tr3, tr4 = s.lax_traces(x)
    lam = jnp.linalg.eigvalsh(L)
    np.testing.assert_allclose(np.asarray(tr3), np.asarray(jnp.sum(lam**3, axis=-1)), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(tr4), np.asarray(jnp.sum(lam**4, axis=-1)), rtol=1e-10)
    # tr L² = H_exp / 2 with H_exp = Σ p²/2 + Σ e^{-r} (SCIENCE §2)
    q, p = s.split(x)
    h_exp = 0.5 * jnp.sum(p * p, axis=-1) + jnp.sum(jnp.exp(-s.bonds(q)), axis=-1)
    np.testing.assert_allclose(np.asarray(jnp.trace(L @ L, axis1=-2, axis2=-1)), np.asarray(h_exp / 2), rtol=1e-13)


@pytest.mark.parametrize("name, D", [("fput", 15), ("fput", 2), ("toda", 4), ("toda", 7), ("nope", 16)])
def test_invalid_dimension_is_refused_with_valid_values(name, D):
    msg = check_D(name, D)
    assert msg is not None
    # names the bad value and what would be valid ("valid" alone would match "invalid")
    says = (
        [f"unknown system '{name}'", "valid", "fput"]
        if name == "nope"
        else [f"D={D} is invalid for system '{name}'", "(e.g. D="]
    )
    assert all(s in msg for s in says), msg
    with pytest.raises(InvalidSystemError, match=re.escape(msg)):
        make_system(name, D)


def test_unphysical_parameters_refused():
    with pytest.raises(InvalidSystemError, match="barrier"):
        make_system("fput", 16, alpha=0.25, beta=0.0, energy_density=0.3)
    with pytest.raises(InvalidSystemError, match="unbounded"):
        make_system("fput", 16, alpha=0.25, beta=-0.1)
    make_system("fput", 16, alpha=0.25, beta=0.0, energy_density=0.2)  # the measured safe pure-α energy
    make_system("fput", 16, alpha=0.25, beta=0.1, energy_density=3.0)  # α+β: bounded below
    with pytest.raises(InvalidSystemError, match="boundary"):
        make_system("fput", 16, boundary="open")
