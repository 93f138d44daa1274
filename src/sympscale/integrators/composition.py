"""Symmetric composition of Störmer–Verlet for separable H(q, p) = T(p) + V(q).

Each method is a table of leapfrog weights w (Yoshida 1990, Phys Lett A 150:262). One kernel turns the table
into kick/drift coefficients with first-same-as-last merging, so a method with s stages costs s + 1 force
evaluations per step.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import numpy as np

Array = jnp.ndarray


def _symmetric(outer_to_inner: list[float]) -> np.ndarray:
    """Full weight sequence (w_m, ..., w_1, w_0, w_1, ..., w_m) with w_0 = 1 - 2 Σ w_i."""
    w = np.asarray(outer_to_inner, dtype=np.float64)  # (w_m, ..., w_1)
    w0 = 1.0 - 2.0 * w.sum()
    return np.concatenate([w, [w0], w[::-1]])


_CBRT2 = 2.0 ** (1.0 / 3.0)

# Leapfrog weights per method. Yoshida 6 "solution A" and 8 "solution D" (SCIENCE §6).
METHODS: dict[str, np.ndarray] = {
    "leapfrog": np.array([1.0]),
    "yoshida4": _symmetric([1.0 / (2.0 - _CBRT2)]),
    "yoshida6": _symmetric([0.78451361047755726382, 0.23557321335935813368, -1.17767998417887100695]),
    "yoshida8": _symmetric(
        [
            0.914844246229740,
            0.253693336566229,
            -1.44485223686048,
            -0.158240635368243,
            1.93813913762276,
            -1.96061023297549,
            0.102799849391985,
        ]
    ),
}
ORDERS: dict[str, int] = {"leapfrog": 2, "yoshida4": 4, "yoshida6": 6, "yoshida8": 8}


def kick_drift_coefficients(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge consecutive half-kicks of the leapfrog stages.

    Returns (kick, drift) with len(kick) = len(drift) + 1: the step is
    p += kick[0] h F(q); then for each i: q += drift[i] h ∇T(p); p += kick[i+1] h F(q).
    """
    w = np.asarray(weights, dtype=np.float64)
    kick = np.concatenate([[w[0] / 2], (w[:-1] + w[1:]) / 2, [w[-1] / 2]])
    return kick, w.copy()


def composition_step(
    grad_T: Callable[[Array], Array],
    grad_V: Callable[[Array], Array],
    q: Array,
    p: Array,
    h: float | Array,
    *,
    method: str = "yoshida4",
) -> tuple[Array, Array]:
    """One step of size h of the named composition method (kick-drift-kick form)."""
    if method not in METHODS:
        raise ValueError(f"unknown integrator {method!r}; valid: {sorted(METHODS)}")
    kick, drift = kick_drift_coefficients(METHODS[method])
    p = p - (kick[0] * h) * grad_V(q)
    for d, k in zip(drift, kick[1:], strict=True):
        q = q + (d * h) * grad_T(p)
        p = p - (k * h) * grad_V(q)
    return q, p
