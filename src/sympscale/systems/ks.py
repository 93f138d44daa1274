"""Kuramoto–Sivashinsky u_t + u u_x + u_xx + u_xxxx = 0 on a periodic domain [0, L): the dissipative contrast.

State: u at D equispaced grid points. Reference: ETDRK4 in Fourier space with contour-integral coefficients
(SCIENCE §5), Kassam–Trefethen wavenumbers (k at the Nyquist index set to 0) and the Nyquist mode zeroed, so it
cannot persist as a sawtooth (SCIENCE §0.9). The spatial mean is conserved (k = 0 has no linear or nonlinear
term); the energy ½∫u² is not, but obeys dE/dt = ‖u_x‖² − ‖u_xx‖², whose time average must vanish.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from sympscale.integrators import etdrk4_coefficients, etdrk4_step
from sympscale.registry import SYSTEMS
from sympscale.systems.base import Array, InvalidSystemError, System


@dataclasses.dataclass(frozen=True)
class KS(System):
    L: float = 22.0  # domain length: 22 is the minimal chaotic cell (λ₁ ≈ 0.048); 32π is Kassam–Trefethen's
    dt_obs: float = 1.0  # ≈ T_λ / 20 at L = 22
    h: float = 0.05  # ETDRK4 step (0.25 halves the ground-truth horizon); the second reference uses h / 4
    transient: float = 300.0  # integrated from the random initial field before the first observation
    ic_modes: int = 4  # random initial field: Fourier modes 1..ic_modes with amplitude ic_amplitude
    ic_amplitude: float = 0.5

    name: ClassVar[str] = "ks"
    min_points: ClassVar[int] = 16
    positive: ClassVar[tuple[str, ...]] = ("L", "h", "ic_modes", "ic_amplitude")
    non_negative: ClassVar[tuple[str, ...]] = ("transient",)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.L > 0 or not self.h > 0 or self.transient < 0:
            raise InvalidSystemError(f"ks: need L > 0, h > 0, transient >= 0; got {self.L}, {self.h}, {self.transient}")
        if abs(self.dt_obs / self.h - round(self.dt_obs / self.h)) > 1e-9:
            raise InvalidSystemError(f"ks: dt_obs={self.dt_obs} must be a whole number of steps h={self.h}")
        if not 1 <= self.ic_modes < self.D // 2:
            raise InvalidSystemError(f"ks: ic_modes={self.ic_modes} must be in 1..{self.D // 2 - 1}")

    @classmethod
    def check_D(cls, D: int) -> str | None:
        if not isinstance(D, int) or D % 2 or D < cls.min_points:
            return (
                f"D={D} is invalid for system 'ks': D is the number of grid points, an even integer >= "
                f"{cls.min_points} (e.g. D=64, 128, 256)"
            )
        return None

    # ----- spectral operators ------------------------------------------------------------------------
    def wavenumbers(self) -> np.ndarray:
        k = 2 * np.pi / self.L * np.arange(self.D // 2 + 1, dtype=np.float64)
        k[-1] = 0.0  # Nyquist: Kassam–Trefethen convention (the mode is zeroed and stays zero)
        return k

    def _coefficients(self, h: float) -> dict:
        k = self.wavenumbers()
        return {n: jnp.asarray(v, dtype=jnp.complex128) for n, v in etdrk4_coefficients(k**2 - k**4, h).items()}

    def _nonlinear(self, v: Array) -> Array:
        g = jnp.asarray(-0.5j * self.wavenumbers())
        u = jnp.fft.irfft(v, n=self.D, axis=-1)
        return g * jnp.fft.rfft(u * u, axis=-1)

    def _advance(self, u: Array, duration: float, h: float) -> Array:
        n = int(round(duration / h))
        coef = self._coefficients(h)
        v = jnp.fft.rfft(u, axis=-1).at[..., -1].set(0.0)
        v = lax.fori_loop(0, n, lambda _i, v: etdrk4_step(self._nonlinear, coef, v), v)
        return jnp.fft.irfft(v, n=self.D, axis=-1)

    def interval(self, x: Array, fine: bool = False) -> Array:
        return self._advance(x, self.dt_obs, self.h / 4 if fine else self.h)

    def step_with(self, x: Array, h: float, *, method: str = "yoshida4") -> Array:
        """ETDRK4 at step h (KS is not Hamiltonian: `method` does not apply)."""
        return self._advance(x, h, h)

    def describe_reference(self, fine: bool = False) -> str:
        return f"ETDRK4 (contour coefficients, M = 32), h = {self.h / 4 if fine else self.h:g}, Nyquist zeroed"

    # ----- initial conditions, invariants, diagnostics -----------------------------------------------
    def sample_initial(self, key: Array, n: int) -> Array:
        """Random low-mode fields (mean 0), integrated for `transient` time units onto the attractor."""
        ka, kp = jax.random.split(key)
        amp = self.ic_amplitude * jax.random.normal(ka, (n, self.ic_modes), dtype=jnp.float64)
        phase = jax.random.uniform(kp, (n, self.ic_modes), dtype=jnp.float64, maxval=2 * math.pi)
        x = jnp.arange(self.D, dtype=jnp.float64) * (self.L / self.D)
        modes = jnp.arange(1, self.ic_modes + 1, dtype=jnp.float64)
        arg = 2 * math.pi / self.L * modes[None, :, None] * x[None, None, :] + phase[..., None]
        u0 = jnp.sum(amp[..., None] * jnp.cos(arg), axis=1)
        return jax.jit(self._advance, static_argnums=(1, 2))(u0, self.transient, self.h) if self.transient else u0

    def invariants(self, x: Array) -> dict[str, Array]:
        return {"mean": jnp.mean(x, axis=-1)}

    def invariant_scales(self, x: Array) -> dict[str, Array]:
        return {"mean": jnp.sqrt(jnp.mean(x * x, axis=-1))}

    def gradient_norms(self, u: Array) -> tuple[Array, Array]:
        """Spatial means of u_x² and u_xx² (spectral derivatives, Parseval)."""
        k = jnp.asarray(self.wavenumbers())
        w = jnp.full(k.shape, 2.0).at[0].set(1.0).at[-1].set(1.0)  # rfft: interior modes count twice
        p = w * jnp.abs(jnp.fft.rfft(u, axis=-1)) ** 2 / self.D**2
        return jnp.sum(p * k**2, axis=-1), jnp.sum(p * k**4, axis=-1)

    def diagnostics(self, traj: Array) -> dict:
        ux2, uxx2 = (float(np.mean(v)) for v in self.gradient_norms(jnp.asarray(traj)))
        return {
            "energy_balance": {
                "mean_ux2": ux2,
                "mean_uxx2": uxx2,
                "relative_imbalance": abs(ux2 - uxx2) / uxx2,
                "note": "time averages of <u_x^2> and <u_xx^2> over the dataset; dE/dt = their difference",
            },
            "mean_u2": float(np.mean(np.asarray(traj) ** 2)),
        }


SYSTEMS.register("ks", options=KS, make=KS)
