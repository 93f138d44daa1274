"""What every system provides: invariants, initial conditions and validated reference maps.

`System` is the contract the data layer, projection and evaluation rely on; `HamiltonianSystem` is the
separable lattice case H = |p|²/2 + V(q) integrated by a symplectic composition method. A system is a frozen
dataclass (hashable, so it can be a static argument of `jax.jit`). States are arrays of shape (..., D);
Hamiltonian states hold (q, p) concatenated. Every function works on any leading batch shape.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from sympscale.integrators import METHODS, composition_step

Array = jnp.ndarray


class InvalidSystemError(ValueError):
    """A system was asked for with a dimension or parameters it cannot have."""


@dataclasses.dataclass(frozen=True)
class System(abc.ABC):
    """What the data layer, the projection and the evaluation need from any system.

    Subclasses give the reference map over one observation interval (`interval`), a finer or tighter second
    reference for the ground-truth horizon (`interval(x, fine=True)`), initial conditions and invariants.
    """

    D: int
    dt_obs: float = 0.5  # time between observations

    name: ClassVar[str] = "base"
    energy: ClassVar[str | None] = None  # the invariant that is the energy (H, E, the Jacobi constant C), if any
    positive: ClassVar[tuple[str, ...]] = ("dt_obs",)  # options that must be > 0 (each class adds its own)
    non_negative: ClassVar[tuple[str, ...]] = ()  # options that must be >= 0

    @classmethod
    def bounded_below(cls) -> tuple[set[str], set[str]]:
        """(options that must be > 0, options that must be >= 0), collected over the class hierarchy."""
        pos = {k for c in cls.__mro__ for k in c.__dict__.get("positive", ())}
        nonneg = {k for c in cls.__mro__ for k in c.__dict__.get("non_negative", ())}
        return pos, nonneg

    def __post_init__(self) -> None:
        problem = self.check_D(self.D)
        if problem:
            raise InvalidSystemError(problem)
        if not self.dt_obs > 0:
            raise InvalidSystemError(f"{self.name}: dt_obs must be > 0, got {self.dt_obs}")

    @classmethod
    @abc.abstractmethod
    def check_D(cls, D: int) -> str | None:
        """None when D is a valid phase-space dimension, else a message naming the valid ones."""

    # ----- invariants --------------------------------------------------------------------------------
    @abc.abstractmethod
    def invariants(self, x: Array) -> dict[str, Array]:
        """First integrals C(x), each of shape x.shape[:-1]."""

    @abc.abstractmethod
    def invariant_scales(self, x: Array) -> dict[str, Array]:
        """Positive floors for relative errors |ΔC| / max(|C|, scale) (an invariant may be ≈ 0)."""

    def projection_invariants(self, kind: str) -> tuple[str, ...]:
        """Invariants a hard projection keeps: the first declared one ("single") or every one ("multi")."""
        names = tuple(self.invariants(jnp.ones((self.D,), dtype=jnp.float64)))
        return names[:1] if kind == "single" else names

    def exact_quadratic(self) -> np.ndarray | None:
        """S of a known quadratic part H_A(x) = ½ xᵀ S x of the Hamiltonian that a learned model may keep exact.

        None for most systems. A system whose Hamiltonian is not separable only through such a part (CR3BP's
        Coriolis term) declares it, so the symplectic model integrates exp(t J S) exactly and learns the rest.
        """
        return None

    # ----- initial conditions and reference trajectories ---------------------------------------------
    @abc.abstractmethod
    def sample_initial(self, key: Array, n: int) -> Array:
        """n initial states (n, D) from the system's initial-condition family."""

    @abc.abstractmethod
    def interval(self, x: Array, fine: bool = False) -> Array:
        """The reference map over one observation interval dt_obs (any batch shape).

        fine=True is a second reference computed differently (smaller step or tighter tolerance): the
        ground-truth horizon is where the two part.
        """

    def describe_reference(self, fine: bool = False) -> str:
        return type(self).__name__

    @abc.abstractmethod
    def step_with(self, x: Array, h: float, *, method: str = "yoshida4") -> Array:
        """One step h of the true dynamics by the integrator a learned model uses (the oracle's step).

        Hamiltonian systems: the composition `method` on the true H (with the exact flow of a declared known
        part); systems that are not Hamiltonian use their own scheme at step h.
        """

    def tangent_interval(self, x: Array, v: Array) -> tuple[Array, Array]:
        """(interval(x), D interval(x) · v): the tangent map over one interval, by forward-mode autodiff."""
        return jax.jvp(self.interval, (x,), (v,))

    def trajectories(self, x0: Array, n_obs: int, fine: bool = False) -> Array:
        """Reference trajectories (n, n_obs, D) sampled every dt_obs, starting with x0 (n, D)."""

        def step(x, _):
            x = self.interval(x, fine)
            return x, x

        _, xs = lax.scan(step, x0, None, length=n_obs - 1)
        return jnp.concatenate([x0[None], xs], axis=0).swapaxes(0, 1)

    def accept(self, traj: Array) -> dict[str, Array]:
        """Per-trajectory rejection reasons (name -> bool (n,), True = rejected); empty when all are usable."""
        return {}

    def diagnostics(self, traj: Array) -> dict:
        """System-specific checks of the reference data (JSON-able), stored with the dataset."""
        return {}

    # ----- long-term statistics ----------------------------------------------------------------------
    observable: ClassVar[str | None] = None  # what `measure_observable` returns (None: the system has none)

    def measure_observable(self, x: Array) -> Array:
        """The system's own long-term statistic of a state (..., D) -> (..., K) (the evaluation compares its
        time average over the last window with the truth's): FPUT's normal-mode energies, Toda's Lax spectrum."""
        raise NotImplementedError(f"{self.name} declares no measure observable")


@dataclasses.dataclass(frozen=True)
class HamiltonianSystem(System):
    """Separable H(q, p) = |p|²/2 + V(q) with unit masses, integrated by a composition method; subclasses give V."""

    ref_method: str = "yoshida8"  # reference integrator (validated order in tests)
    ref_substeps: int = 20  # steps per observation interval

    min_particles: ClassVar[int] = 2
    dof: ClassVar[int] = 1  # configuration coordinates per particle: D = 2 * dof * N
    energy: ClassVar[str | None] = "H"
    positive: ClassVar[tuple[str, ...]] = ("ref_substeps",)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.ref_substeps < 1:
            raise InvalidSystemError(f"{self.name}: ref_substeps must be >= 1, got {self.ref_substeps}")
        if self.ref_method not in METHODS:
            raise InvalidSystemError(
                f"{self.name}: ref_method must be one of {sorted(METHODS)}, got {self.ref_method!r}"
            )

    # ----- dimension ---------------------------------------------------------------------------------
    @classmethod
    def check_D(cls, D: int) -> str | None:
        per = 2 * cls.dof
        if not isinstance(D, int) or D % per or D // per < cls.min_particles:
            return (
                f"D={D} is invalid for system '{cls.name}': D = {per}N must be a multiple of {per} with "
                f"N >= {cls.min_particles} particles (e.g. D={per * max(cls.min_particles, 4)}, 64, 256, 1024)"
            )
        return None

    @property
    def N(self) -> int:
        """Number of configuration coordinates (= particles for lattices)."""
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
        return {"H": self.hamiltonian(x)}

    def invariant_scales(self, x: Array) -> dict[str, Array]:
        q, p = self.split(x)
        return {"H": self.kinetic(p) + jnp.abs(self.potential(q))}

    # ----- reference trajectories --------------------------------------------------------------------
    def step_with(self, x: Array, h: float, *, method: str = "yoshida4") -> Array:
        q, p = self.split(x)
        q, p = composition_step(lambda p_: p_, self.grad_V, q, p, h, method=method)
        return jnp.concatenate([q, p], axis=-1)

    def interval(self, x: Array, fine: bool = False) -> Array:
        n = self.ref_substeps * (2 if fine else 1)
        h = self.dt_obs / n
        return lax.fori_loop(0, n, lambda _i, y: self.step_with(y, h, method=self.ref_method), x)

    def describe_reference(self, fine: bool = False) -> str:
        n = self.ref_substeps * (2 if fine else 1)
        return f"{self.ref_method}, h = dt_obs/{n} = {self.dt_obs / n:g}"


@dataclasses.dataclass(frozen=True)
class Lattice(HamiltonianSystem):
    """One-dimensional lattices (FPUT, Toda): random initial states at a fixed energy density."""

    energy_density: float = 1.0  # E / N of the initial conditions
    ref_substeps: int = 20  # h = 0.025: energy error ~1e-11 at eps = 1 (measured; 10 gives ~1e-8)

    translation_invariant: ClassVar[bool] = False  # periodic lattices: zero the mean of q and p
    positive: ClassVar[tuple[str, ...]] = ("energy_density",)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.energy_density <= 0:
            raise InvalidSystemError(f"{self.name}: energy_density must be > 0, got {self.energy_density}")

    def sample_initial(self, key: Array, n: int) -> Array:
        """n random states with energy exactly N * energy_density (and zero momentum when periodic)."""
        x = jax.random.normal(key, (n, self.D), dtype=jnp.float64)
        if self.translation_invariant:
            q, p = self.split(x)
            q = q - jnp.mean(q, axis=-1, keepdims=True)
            p = p - jnp.mean(p, axis=-1, keepdims=True)
            x = jnp.concatenate([q, p], axis=-1)
        return x * _energy_scale(self.hamiltonian, x, self.N * self.energy_density)[:, None]


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
