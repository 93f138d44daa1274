"""Fermi–Pasta–Ulam–Tsingou lattice: H = Σ p²/2 + Σ_bonds (r²/2 + α r³/3 + β r⁴/4), unit masses.

Variants: β (α = 0, the default), α (β = 0; refused above the energy at which bonds escape over the cubic
barrier) and α+β. Default is the β model (α = 0, β = 1), periodic, at energy density ε = 1: strongly chaotic with a Lyapunov
time of order 10 that hardly depends on N (SCIENCE §1, §12) — the cleanest axis for scaling in D = 2N.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax.numpy as jnp
import numpy as np

from sympscale.registry import SYSTEMS
from sympscale.systems.base import Array, InvalidSystemError, Lattice

BOUNDARIES = ("periodic", "fixed")
# Pure α-FPUT dynamics depend only on α²ε. Measured at α = 0.25: ε = 0.2 stays bounded to t = 2e5, ε = 0.3 escapes
# (SCIENCE §0.2), so α²ε ≤ 0.2 · 0.25² is the largest energy we accept.
ALPHA_SAFE = 0.0125


@dataclasses.dataclass(frozen=True)
class FPUT(Lattice):
    alpha: float = 0.0
    beta: float = 1.0
    boundary: str = "periodic"  # periodic: N bonds, P conserved; fixed: q_0 = q_{N+1} = 0, N + 1 bonds

    name: ClassVar[str] = "fput"
    observable: ClassVar[str | None] = "normal-mode energies"
    non_negative: ClassVar[tuple[str, ...]] = ("beta",)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.boundary not in BOUNDARIES:
            raise InvalidSystemError(f"fput: boundary must be one of {BOUNDARIES}, got {self.boundary!r}")
        if self.beta < 0:
            raise InvalidSystemError(f"fput: beta={self.beta} < 0 makes V unbounded below; use beta >= 0")
        if self.beta == 0 and self.alpha == 0:
            raise InvalidSystemError("fput: alpha = beta = 0 is the harmonic chain (integrable, no chaos)")
        if self.beta == 0 and self.alpha**2 * self.energy_density > ALPHA_SAFE:
            # Pure α: V is unbounded below past the barrier 1/(6α²) at r = −1/α; bonds that cross it run to −∞.
            raise InvalidSystemError(
                f"fput: alpha={self.alpha}, energy_density={self.energy_density} escapes over the cubic barrier "
                f"V_max = 1/(6 alpha^2) = {1 / (6 * self.alpha**2):.4g} (SCIENCE §0.2): the pure alpha model needs "
                f"alpha^2 * energy_density <= {ALPHA_SAFE} (energy_density <= {ALPHA_SAFE / self.alpha**2:.4g} here), "
                f"or add a quartic term beta > 0 (alpha+beta model)"
            )

    @property
    def translation_invariant(self) -> bool:  # type: ignore[override]
        return self.boundary == "periodic"

    def bonds(self, q: Array) -> Array:
        if self.boundary == "periodic":
            return jnp.roll(q, -1, axis=-1) - q
        zero = jnp.zeros(q.shape[:-1] + (1,), dtype=q.dtype)
        return jnp.diff(jnp.concatenate([zero, q, zero], axis=-1), axis=-1)

    def potential(self, q: Array) -> Array:
        r = self.bonds(q)
        v = 0.5 * r**2 + (self.alpha / 3.0) * r**3 + (self.beta / 4.0) * r**4
        return jnp.sum(v, axis=-1)

    def grad_V(self, q: Array) -> Array:
        """Analytic ∂V/∂q_j = V'(r_{j-1}) − V'(r_j) (faster than autodiff, and its tangent map fuses well)."""
        r = self.bonds(q)
        f = r + self.alpha * r * r + self.beta * r**3
        if self.boundary == "periodic":
            return jnp.roll(f, 1, axis=-1) - f
        return f[..., :-1] - f[..., 1:]

    def normal_modes(self) -> tuple[np.ndarray, np.ndarray]:
        """(S, ω): the harmonic chain's orthonormal normal modes (columns of S, N x N) and their frequencies.

        Periodic: the real Fourier basis, ω_k = 2 sin(π k / N); fixed ends: the sine basis, ω_k = 2 sin(π k / (2N + 2)).
        """
        n, k = np.arange(self.N)[:, None], np.arange(self.N)[None, :]
        if self.boundary == "fixed":
            arg = np.pi * (n + 1) * (k + 1) / (self.N + 1)
            return np.sqrt(2.0 / (self.N + 1)) * np.sin(arg), 2.0 * np.sin(np.pi * (k[0] + 1) / (2 * self.N + 2))
        arg = 2.0 * np.pi * n * k / self.N
        basis = np.where(k <= self.N // 2, np.cos(arg), np.sin(arg))  # k > N/2: the sine partner of N − k
        return basis / np.linalg.norm(basis, axis=0), 2.0 * np.sin(np.pi * k[0] / self.N)

    def measure_observable(self, x: Array) -> Array:
        """Harmonic energy per normal mode (..., N): E_k = ½ (P_k² + ω_k² Q_k²), Q = Sᵀq, P = Sᵀp. Their sum is
        the quadratic part of H; their time averages approach equipartition in the chaotic regime (SCIENCE §1)."""
        basis, omega = self.normal_modes()
        q, p = self.split(x)
        Q, P = q @ jnp.asarray(basis), p @ jnp.asarray(basis)
        return 0.5 * (P**2 + jnp.asarray(omega) ** 2 * Q**2)

    def invariants(self, x: Array) -> dict[str, Array]:
        out = super().invariants(x)
        if self.boundary == "periodic":
            out["P"] = jnp.sum(self.split(x)[1], axis=-1)
        return out

    def invariant_scales(self, x: Array) -> dict[str, Array]:
        out = super().invariant_scales(x)
        if self.boundary == "periodic":
            out["P"] = jnp.sqrt(jnp.sum(self.split(x)[1] ** 2, axis=-1))
        return out


SYSTEMS.register("fput", options=FPUT, make=FPUT)
