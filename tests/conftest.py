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
