"""Classical fourth-order Runge–Kutta: accurate, not symplectic (energy drifts secularly)."""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp

Array = jnp.ndarray


def rk4_step(f: Callable[[Array], Array], y: Array, h: float | Array) -> Array:
    """One RK4 step of the autonomous ODE y' = f(y)."""
    k1 = f(y)
    k2 = f(y + (h / 2) * k1)
    k3 = f(y + (h / 2) * k2)
    k4 = f(y + h * k3)
    return y + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
