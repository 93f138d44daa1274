"""Time integrators: pure float64 step functions.

`composition` holds the symplectic splitting methods (leapfrog, Yoshida 4/6/8) as coefficient tables run
by one kernel; `rk4` is the classical non-symplectic reference.
"""

from sympscale.integrators.composition import METHODS, ORDERS, composition_step, kick_drift_coefficients
from sympscale.integrators.rk4 import rk4_step

__all__ = ["METHODS", "ORDERS", "composition_step", "kick_drift_coefficients", "rk4_step"]
