"""Time integrators: pure float64 step functions.

`composition` holds the symplectic splitting methods (leapfrog, Yoshida 4/6/8) as coefficient tables run
by one kernel; `rk4` is the classical non-symplectic reference; `etdrk4` the exponential integrator for stiff
diagonal (Fourier-space) systems. The adaptive Dormand–Prince 8(7) reference comes from diffrax (CR3BP).
"""

from sympscale.integrators.composition import (
    METHODS,
    ORDERS,
    composition_step,
    kick_drift_coefficients,
    quadratic_flow,
    split_step,
)
from sympscale.integrators.etdrk4 import etdrk4_coefficients, etdrk4_step
from sympscale.integrators.rk4 import rk4_step

__all__ = [
    "METHODS",
    "ORDERS",
    "composition_step",
    "etdrk4_coefficients",
    "etdrk4_step",
    "kick_drift_coefficients",
    "quadratic_flow",
    "rk4_step",
    "split_step",
]
