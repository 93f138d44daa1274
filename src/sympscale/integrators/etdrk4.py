"""ETDRK4 (Cox & Matthews 2002) for diagonal stiff systems v' = c ⊙ v + N(v) in Fourier space.

The φ-function coefficients are evaluated by the contour-integral trick of Kassam & Trefethen (2005): averaging
over M points on a circle around each h·c avoids the cancellation of (e^z − 1 − z − …)/z^k near z = 0. The
circle is the upper half of the unit circle and the real part is taken, which is exact for real c.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import numpy as np

Array = jnp.ndarray


def etdrk4_coefficients(c: np.ndarray, h: float, M: int = 32) -> dict[str, np.ndarray]:
    """E = e^{hc}, E2 = e^{hc/2} and the Q, f1, f2, f3 weights for a real diagonal linear part c."""
    c = np.asarray(c, dtype=np.float64)
    hc = h * c
    r = np.exp(1j * np.pi * (np.arange(1, M + 1) - 0.5) / M)
    z = hc[..., None] + r
    ez = np.exp(z)
    q = h * np.real(np.mean((np.exp(z / 2) - 1) / z, axis=-1))
    f1 = h * np.real(np.mean((-4 - z + ez * (4 - 3 * z + z * z)) / z**3, axis=-1))
    f2 = h * np.real(np.mean((2 + z + ez * (-2 + z)) / z**3, axis=-1))
    f3 = h * np.real(np.mean((-4 - 3 * z - z * z + ez * (4 - z)) / z**3, axis=-1))
    return {"E": np.exp(hc), "E2": np.exp(hc / 2), "Q": q, "f1": f1, "f2": f2, "f3": f3}


def etdrk4_step(nonlinear: Callable[[Array], Array], coef: dict, v: Array) -> Array:
    """One ETDRK4 step of size h (baked into `coef`) for v' = c v + nonlinear(v)."""
    E, E2, Q = coef["E"], coef["E2"], coef["Q"]
    Nv = nonlinear(v)
    a = E2 * v + Q * Nv
    Na = nonlinear(a)
    b = E2 * v + Q * Na
    Nb = nonlinear(b)
    c = E2 * a + Q * (2 * Nb - Nv)
    Nc = nonlinear(c)
    return E * v + Nv * coef["f1"] + 2 * (Na + Nb) * coef["f2"] + Nc * coef["f3"]
