"""What every system provides: the separable Hamiltonian, its invariants, initial conditions, references.

A system is a frozen dataclass (hashable, so it can be a static argument of `jax.jit`). States are arrays
of shape (..., D) holding (q, p) concatenated; every function below works on any leading batch shape.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
from jax import lax

from sympscale.integrators import composition_step

Array = jnp.ndarray


class InvalidSystemError(ValueError):
    """A system was asked for with a dimension or parameters it cannot have."""


@dataclasses.dataclass(frozen=True)
class HamiltonianSystem(abc.ABC):
    """Base of separable systems H(q, p) = |p|²/2 + V(q) with unit masses; subclasses give V and invariants."""

    D: int
    energy_density: float = 1.0  # E / N of the initial conditions
    dt_obs: float = 0.5  # time between observations
    ref_method: str = "yoshida8"  # reference integrator (validated order in tests)
    ref_substeps: int = 20  # h = 0.025: energy error ~1e-11 at eps = 1 (measured; 10 gives ~1e-8)

    name: ClassVar[str] = "base"
    min_particles: ClassVar[int] = 2
    translation_invariant: ClassVar[bool] = False  # periodic lattices: zero the mean of q and p

    def __post_init__(self) -> None:
        problem = self.check_D(self.D)
        if problem:
            raise InvalidSystemError(problem)
        if self.energy_density <= 0:
            raise InvalidSystemError(f"{self.name}: energy_density must be > 0, got {self.energy_density}")
        if self.dt_obs <= 0 or self.ref_substeps < 1:
            raise InvalidSystemError(
                f"{self.name}: need dt_obs > 0 and ref_substeps >= 1, got {self.dt_obs}, {self.ref_substeps}"
            )

    # ----- dimension ---------------------------------------------------------------------------------
    @classmethod
    def check_D(cls, D: int) -> str | None:
        """None when D is a valid phase-space dimension, else a message naming the valid ones."""
        if not isinstance(D, int) or D % 2 or D // 2 < cls.min_particles:
            return (
                f"D={D} is invalid for system '{cls.name}': D = 2N must be an even integer with "
                f"N >= {cls.min_particles} particles (e.g. D=16, 64, 256)"
            )
        return None

    @property
    def N(self) -> int:
        return self.D // 2

    def split(self, x: Array) -> tuple[Array, Array]:
        return x[..., : self.N], x[..., self.N :]

    # ----- Hamiltonian -------------------------------------------------------------------------------
    @abc.abstractmethod
    def potential(self, q: Array) -> Array:  # (..., N) -> (...)
        """V(q) for states of any batch shape."""

    def kinetic(self, p: Array) -> Array:
        return 0.5 * jnp.sum(p * p, axis=-1)

    def hamiltonian(self, x: Array) -> Array:
        q, p = self.split(x)
        return self.kinetic(p) + self.potential(q)

    def grad_V(self, q: Array) -> Array:
        return jax.grad(lambda q_: jnp.sum(self.potential(q_)))(q)

    def vector_field(self, x: Array) -> Array:
        q, p = self.split(x)
        return jnp.concatenate([p, -self.grad_V(q)], axis=-1)

    # ----- invariants --------------------------------------------------------------------------------
    def invariants(self, x: Array) -> dict[str, Array]:
        """First integrals C(x), each of shape x.shape[:-1]."""
        return {"H": self.hamiltonian(x)}

    def projection_invariants(self, kind: str) -> tuple[str, ...]:
        """Invariants a hard projection keeps: the energy ("single") or every declared one ("multi")."""
        if kind == "single":
            return ("H",)
        return tuple(self.invariants(jnp.zeros((self.D,), dtype=jnp.float64)))

    def invariant_scales(self, x: Array) -> dict[str, Array]:
        """Positive floors for relative errors |ΔC| / max(|C|, scale) (an invariant may be ≈ 0)."""
        q, p = self.split(x)
        return {"H": self.kinetic(p) + jnp.abs(self.potential(q))}

    # ----- initial conditions and reference trajectories ---------------------------------------------
    def sample_initial(self, key: Array, n: int) -> Array:
        """n random states with energy exactly N * energy_density (and zero momentum when periodic)."""
        x = jax.random.normal(key, (n, self.D), dtype=jnp.float64)
        if self.translation_invariant:
            q, p = self.split(x)
            q = q - jnp.mean(q, axis=-1, keepdims=True)
            p = p - jnp.mean(p, axis=-1, keepdims=True)
            x = jnp.concatenate([q, p], axis=-1)
        return x * _energy_scale(self.hamiltonian, x, self.N * self.energy_density)[:, None]

    def reference_step(self, x: Array, h: float) -> Array:
        q, p = self.split(x)
        q, p = composition_step(lambda p_: p_, self.grad_V, q, p, h, method=self.ref_method)
        return jnp.concatenate([q, p], axis=-1)

    def trajectories(self, x0: Array, n_obs: int) -> Array:
        """Reference trajectories (n, n_obs, D) sampled every dt_obs, starting with x0 (n, D)."""
        h = self.dt_obs / self.ref_substeps

        def interval(x, _):
            x = lax.fori_loop(0, self.ref_substeps, lambda _i, y: self.reference_step(y, h), x)
            return x, x

        _, xs = lax.scan(interval, x0, None, length=n_obs - 1)
        return jnp.concatenate([x0[None], xs], axis=0).swapaxes(0, 1)


def _energy_scale(hamiltonian, x: Array, target: float, iters: int = 200) -> Array:
    """Per-row λ > 0 with H(λ x) = target, by bracketing then bisection (H(λx) increases with λ)."""

    def H_at(lam):
        return hamiltonian(x * lam[:, None])

    lo = jnp.zeros(x.shape[0], dtype=jnp.float64)
    hi = jnp.ones(x.shape[0], dtype=jnp.float64)
    hi = lax.fori_loop(0, 64, lambda _i, h: jnp.where(H_at(h) < target, 2.0 * h, h), hi)

    def bisect(_i, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        below = H_at(mid) < target
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo, hi = lax.fori_loop(0, iters, bisect, (lo, hi))
    return 0.5 * (lo + hi)
