"""Every test runs with float64 on and strict dtype promotion (an accidental float32 or int/float mix raises)."""

import os

# The tests compile thousands of small XLA programs, in this process and in the CLI's and launcher's child
# processes (which inherit the environment): LLVM's optimisation level 0 compiles them about twice as fast
# (a tiny training job 19 s -> 11 s; tests/test_training.py and test_cr3bp.py 93 s -> 58 s) and computes the
# same float64 operations (XLA's CPU fast-math is off by default, so no reassociation); the generated code runs
# slower, which the tests' toy sizes do not notice. Users' runs compile at XLA's default level.
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import sympscale  # noqa: F401  (turns on x64 before any array exists)

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def strict_x64():
    assert jax.config.jax_enable_x64
    return jax.config.jax_numpy_dtype_promotion


@pytest.fixture(autouse=True)
def _isolated_hydra_state(hydra_restore_singletons):
    """Each test starts from the same Hydra global state (version base, config store, plugins).

    Without this, a test that composes with version_base="1.3" changes how later tests' jobs choose their
    working directory.
    """
    yield


@pytest.fixture(scope="module")
def fput8():
    """A tiny FPUT D=8 dataset (6 trajectories x 80 observations) and a small symp model for it."""
    from sympscale.models import Capacity, build
    from sympscale.systems import make_system

    s = make_system("fput", 8)
    traj = np.asarray(jax.jit(s.trajectories, static_argnums=1)(s.sample_initial(jax.random.key(0), 6), 80))
    mean, std = traj.mean(axis=(0, 1)), traj.std(axis=(0, 1))
    model, _ = build("symp", D=s.D, dt=s.dt_obs, mean=mean, std=std, capacity=Capacity(width=8, depth=2))
    return s, traj, std, model
