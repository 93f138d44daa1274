"""Every test runs with float64 on and strict dtype promotion (an accidental float32 or int/float mix raises)."""

import jax
import pytest

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
