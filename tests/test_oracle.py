"""The oracle: the true dynamics by the models' own integrator; no parameters; error at the integrator's level."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sympscale.evaluation import one_step_mse
from sympscale.models import Capacity, build, param_count
from sympscale.systems import make_system

CASES = [("fput", 16), ("toda", 16), ("cr3bp", 4), ("nbody", 8)]


def oracle(system, substeps=4):
    ones = np.ones(system.D)
    kw = dict(D=system.D, dt=system.dt_obs, mean=0 * ones, std=ones, capacity=Capacity(width=8, depth=1))
    return build("oracle", **kw, options={"substeps": substeps}, system=system)


@pytest.mark.parametrize("name, D", CASES)
def test_one_step_error_is_the_integrators(name, D):
    """Yoshida-4 on the true H: the one-step error falls 2⁴ = 16x when the step halves, and is small at the default."""
    system = make_system(name, D)
    x0 = system.sample_initial(jax.random.key(0), 4)
    truth = jax.jit(system.trajectories, static_argnums=1)(x0, 2)[:, 1]
    errs = []
    for substeps in (4, 8):
        model, info = oracle(system, substeps)
        assert info["params"] == 0 and param_count(model.init(jax.random.key(0))) == 0
        pred = jax.jit(lambda x, m=model: m.step({}, x))(x0)
        errs.append(float(jnp.max(jnp.abs(pred - truth))))
    ratio = errs[0] / errs[1]
    assert 11 < ratio < 22, (errs, ratio)  # fourth order: the error is the integrator's truncation error
    scale = float(jnp.max(jnp.abs(x0)))
    assert errs[0] < 1e-2 * scale  # at the default step h = dt_obs / 4: below 1 % of the state


def test_normalised_one_step_mse_of_the_oracle_is_tiny():
    system = make_system("fput", 16)
    traj = np.asarray(jax.jit(system.trajectories, static_argnums=1)(system.sample_initial(jax.random.key(1), 3), 30))
    model, _ = oracle(system)
    std = traj.std(axis=(0, 1))
    mse = one_step_mse(model, {}, traj, std)
    assert 0 < mse < 1e-4  # the models are asked for <= 1e-3; the ceiling is well below it


def test_the_oracle_needs_its_system():
    ones = np.ones(8)
    with pytest.raises(ValueError, match="oracle needs the system"):
        build("oracle", D=8, dt=0.5, mean=ones, std=ones, capacity=Capacity())


def test_ks_oracle_is_etdrk4_at_the_models_step():
    """KS is not Hamiltonian: the oracle runs ETDRK4 at dt_obs / substeps; its error shrinks as the step does."""
    system = make_system("ks", 64)
    x0 = system.sample_initial(jax.random.key(0), 2)
    truth = jax.jit(system.trajectories, static_argnums=1)(x0, 2)[:, 1]
    errs = []
    for substeps in (4, 8):
        model, _ = oracle(system, substeps)
        errs.append(float(jnp.max(jnp.abs(jax.jit(lambda x, m=model: m.step({}, x))(x0) - truth))))
    assert errs[1] < errs[0] / 4 and errs[0] < 1e-2 * float(jnp.max(jnp.abs(x0))), errs
