"""Planar N-body gravity with Plummer softening, G = m = 1: H = Σ|p_i|²/2 − Σ_{i<j} 1/√(|q_i − q_j|² + ε²).

State: q = (x₁, y₁, …, x_N, y_N), p likewise; D = 4N. Invariants: E, P_x, P_y, L_z (softening is pairwise and
isotropic, so all four are exact). Forces are vectorised O(N²) with the pair distances from one batched matmul.

Initial-condition family (any N ≥ 2): a virialised disc. Positions uniform in a disc of radius
R = (N/2)^{1/3}, which makes the crossing time R/v_rms ≈ 0.8 for every N; isotropic Gaussian velocities scaled
to virial equilibrium 2K = |W|, each capped at 0.8 of its body's local escape speed; centre-of-mass frame with
zero total momentum. Softening ε = `softening` × the mean inter-particle spacing R√(π/N) (Rodionov & Sotnikova
recommend 1.5–2x below it). Trajectories that eject a body (unbound and beyond `escape_radius` × R at the end)
are rejected and redrawn.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from sympscale.registry import SYSTEMS
from sympscale.systems.base import Array, HamiltonianSystem, InvalidSystemError


@dataclasses.dataclass(frozen=True)
class NBody(HamiltonianSystem):
    dt_obs: float = 0.005  # 1,200 observations span ~7 crossing times
    softening: float = 0.5  # Plummer ε in units of the mean inter-particle spacing of the initial disc
    escape_radius: float = 4.0  # ejection: unbound and beyond this many disc radii at the last observation
    velocity_cap: float = 0.8  # initial speeds at most this fraction of the local escape speed
    ref_method: str = "yoshida6"
    ref_substeps: int = 1  # h = 0.005: |ΔE/E| ~ 1e-12 at N = 4, ~1e-8 at N = 256 (BENCHMARKS.md)

    name: ClassVar[str] = "nbody"
    dof: ClassVar[int] = 2
    energy: ClassVar[str | None] = "E"
    positive: ClassVar[tuple[str, ...]] = ("softening", "escape_radius", "velocity_cap")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.softening > 0 or not self.escape_radius > 1 or not 0 < self.velocity_cap < 1:
            raise InvalidSystemError(
                f"nbody: need softening > 0, escape_radius > 1 and 0 < velocity_cap < 1; got {self.softening}, "
                f"{self.escape_radius}, {self.velocity_cap}"
            )

    @property
    def n_bodies(self) -> int:
        return self.D // 4

    @property
    def radius(self) -> float:
        return (self.n_bodies / 2) ** (1 / 3)

    @property
    def eps(self) -> float:
        return self.softening * self.radius * math.sqrt(math.pi / self.n_bodies)

    def bodies(self, z: Array) -> Array:
        return z.reshape(*z.shape[:-1], self.n_bodies, 2)

    def _inverse_distances(self, q: Array) -> Array:
        """1/√(|q_i − q_j|² + ε²), (..., N, N), with the self-pairs zeroed."""
        qb = self.bodies(q)
        sq = jnp.sum(qb * qb, axis=-1)
        r2 = sq[..., :, None] + sq[..., None, :] - 2 * jnp.einsum("...id,...jd->...ij", qb, qb)
        r2 = jnp.maximum(r2, 0.0) + self.eps**2
        return lax.rsqrt(r2) * (1.0 - jnp.eye(self.n_bodies, dtype=q.dtype))

    def potential(self, q: Array) -> Array:
        return -0.5 * jnp.sum(self._inverse_distances(q), axis=(-2, -1))

    def grad_V(self, q: Array) -> Array:
        """∂V/∂q_i = Σ_j (q_i − q_j) / (|q_i − q_j|² + ε²)^{3/2}, by two batched matmuls."""
        qb = self.bodies(q)
        w = self._inverse_distances(q) ** 3
        g = qb * jnp.sum(w, axis=-1)[..., None] - jnp.einsum("...ij,...jd->...id", w, qb)
        return g.reshape(q.shape)

    # ----- invariants --------------------------------------------------------------------------------
    def invariants(self, x: Array) -> dict[str, Array]:
        q, p = (self.bodies(z) for z in self.split(x))
        return {
            "E": self.hamiltonian(x),
            "Px": jnp.sum(p[..., 0], axis=-1),
            "Py": jnp.sum(p[..., 1], axis=-1),
            "Lz": jnp.sum(q[..., 0] * p[..., 1] - q[..., 1] * p[..., 0], axis=-1),
        }

    def invariant_scales(self, x: Array) -> dict[str, Array]:
        out = super().invariant_scales(x)  # "H": kinetic + |potential|
        q, p = (self.bodies(z) for z in self.split(x))
        speed = jnp.sqrt(jnp.sum(p * p, axis=-1))
        pnorm = jnp.sum(speed, axis=-1)
        return {
            "E": out["H"],
            "Px": pnorm,
            "Py": pnorm,
            "Lz": jnp.sum(jnp.sqrt(jnp.sum(q * q, axis=-1)) * speed, axis=-1),
        }

    # ----- initial conditions and filter -------------------------------------------------------------
    def sample_initial(self, key: Array, n: int) -> Array:
        kr, ka, kv = jax.random.split(key, 3)
        N, R = self.n_bodies, self.radius
        rad = R * jnp.sqrt(jax.random.uniform(kr, (n, N), dtype=jnp.float64))
        ang = 2 * math.pi * jax.random.uniform(ka, (n, N), dtype=jnp.float64)
        qb = jnp.stack([rad * jnp.cos(ang), rad * jnp.sin(ang)], axis=-1)
        qb = qb - jnp.mean(qb, axis=-2, keepdims=True)
        q = qb.reshape(n, 2 * N)
        inv = self._inverse_distances(q)
        W = -0.5 * jnp.sum(inv, axis=(-2, -1))
        v_esc = jnp.sqrt(2 * jnp.sum(inv, axis=-1))  # per body: √(−2 φ_i)
        pb = jax.random.normal(kv, (n, N, 2), dtype=jnp.float64)
        pb = pb - jnp.mean(pb, axis=-2, keepdims=True)
        pb = pb * jnp.sqrt(-W / jnp.sum(pb * pb, axis=(-2, -1)))[:, None, None]  # 2K = |W|
        speed = jnp.sqrt(jnp.sum(pb * pb, axis=-1))
        pb = pb * jnp.minimum(1.0, self.velocity_cap * v_esc / speed)[..., None]
        pb = pb - jnp.mean(pb, axis=-2, keepdims=True)
        return jnp.concatenate([q, pb.reshape(n, 2 * N)], axis=-1)

    def accept(self, traj: Array) -> dict[str, Array]:
        """Reject ejections: at the last observation a body beyond `escape_radius` disc radii that is unbound
        (½|p_i|² + φ_i > 0); or any body beyond 5x that radius at any observation (runaway)."""
        traj = np.asarray(traj)
        finite = np.isfinite(traj).all(axis=(1, 2))
        q = traj[..., : self.D // 2].reshape(*traj.shape[:2], self.n_bodies, 2)
        r = np.sqrt(np.sum((q - q.mean(axis=-2, keepdims=True)) ** 2, axis=-1))  # (n, T, N)
        last = jnp.asarray(np.where(finite[:, None], traj[:, -1], 0.0))
        phi = -np.asarray(jnp.sum(self._inverse_distances(self.split(last)[0]), axis=-1))  # (n, N)
        p = np.asarray(self.bodies(self.split(last)[1]))
        unbound = 0.5 * np.sum(p * p, axis=-1) + phi > 0
        with np.errstate(invalid="ignore"):
            far = r[:, -1] > self.escape_radius * self.radius
            runaway = r.max(axis=(1, 2)) > 5 * self.escape_radius * self.radius
            return {"non_finite": ~finite, "escape": finite & ((far & unbound).any(axis=-1) | runaway)}

    def diagnostics(self, traj: Array) -> dict:
        x0 = jnp.asarray(np.asarray(traj)[:, 0])
        q, p = self.split(x0)
        K, W = self.kinetic(p), self.potential(q)
        return {
            "softening_eps": self.eps,
            "disc_radius": self.radius,
            "virial_ratio_2K_over_W": [float(v) for v in np.asarray(2 * K / -W)],
            "crossing_time_estimate": float(np.mean(self.radius / np.sqrt(2 * np.asarray(K) / self.n_bodies))),
        }


__all__ = ["NBody"]


SYSTEMS.register("nbody", options=NBody, make=NBody)
