"""Fermi–Pasta–Ulam–Tsingou lattice: H = Σ p²/2 + Σ_bonds (r²/2 + α r³/3 + β r⁴/4), unit masses.

Default is the β model (α = 0, β = 1), periodic, at energy density ε = 1: strongly chaotic with a Lyapunov
time of order 10 that hardly depends on N (SCIENCE §1, §12) — the cleanest axis for scaling in D = 2N.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax.numpy as jnp

from sympscale.systems.base import Array, HamiltonianSystem, InvalidSystemError

BOUNDARIES = ("periodic", "fixed")


@dataclasses.dataclass(frozen=True)
class FPUT(HamiltonianSystem):
    alpha: float = 0.0
    beta: float = 1.0
    boundary: str = "periodic"  # periodic: N bonds, P conserved; fixed: q_0 = q_{N+1} = 0, N + 1 bonds

    name: ClassVar[str] = "fput"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.boundary not in BOUNDARIES:
            raise InvalidSystemError(f"fput: boundary must be one of {BOUNDARIES}, got {self.boundary!r}")
        if self.beta < 0 or (self.beta == 0 and self.alpha != 0):
            # Without a positive quartic term the cubic makes V unbounded below (SCIENCE §0.2).
            raise InvalidSystemError(
                f"fput: need beta > 0 when alpha != 0 (V unbounded below otherwise), got alpha={self.alpha}, "
                f"beta={self.beta}"
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
