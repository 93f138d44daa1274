"""Planar circular restricted three-body problem in the rotating frame, canonical coordinates (x, y, p_x, p_y).

p_x = ẋ − y, p_y = ẏ + x; H = ½|p|² + (y p_x − x p_y) − (1−μ)/r₁ − μ/r₂ is not separable (SCIENCE §0.1) and the
Jacobi integral is C = 2Ω − |v|² = −2H. Primaries: 1−μ at (−μ, 0), μ at (1−μ, 0). Reference: diffrax Dopri8 (the
Dormand–Prince 8(7) pair) with a PID step-size controller; the second reference uses a 10x tighter tolerance.

Initial conditions: the bounded chaotic family of SCIENCE §4 — on the x-axis between the Earth and L1 with ẋ = 0,
ẏ = +√(2Ω − C) and C just above C_L1 (the Earth realm is closed). Trajectories that pass closer than
`r_min_reject` to either primary (checked on a grid 8x finer than the observations), leave r > `r_escape`, or
whose Jacobi constant the integrator loses are rejected and redrawn.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import brentq

from sympscale.integrators import quadratic_flow, split_step
from sympscale.registry import SYSTEMS
from sympscale.systems.base import Array, InvalidSystemError, System

FINE_SAVES = 8  # close-approach check: states per observation interval


@dataclasses.dataclass(frozen=True)
class CR3BP(System):
    mu: float = 0.01215  # Earth–Moon (Koon, Lo, Marsden & Ross)
    dt_obs: float = 0.1
    rtol: float = 1e-13  # |ΔC| ~ 1e-11 over 1,200 observations (1e-12 gives ~1.5e-10)
    atol: float = 1e-15
    C_range: tuple[float, float] = (3.189, 3.20)  # Jacobi constants, just above C_L1 ≈ 3.1883
    x0_range: tuple[float, float] = (0.75, 0.82)  # start on the x-axis, Earth side of L1
    r_min_reject: float = 0.05  # minimum distance to either primary (Earth radius ≈ 0.017)
    r_escape: float = 2.0
    max_steps: int = 1_000_000

    name: ClassVar[str] = "cr3bp"
    energy: ClassVar[str | None] = "C"  # the Jacobi constant, -2 x the rotating-frame energy
    positive: ClassVar[tuple[str, ...]] = ("mu", "rtol", "atol", "r_escape", "max_steps")
    non_negative: ClassVar[tuple[str, ...]] = ("r_min_reject",)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.mu < 0.5:
            raise InvalidSystemError(f"cr3bp: mu must be in (0, 0.5), got {self.mu}")
        if not 0 < self.rtol < 1e-3 or not self.atol > 0:
            raise InvalidSystemError(f"cr3bp: need 0 < rtol < 1e-3 and atol > 0, got {self.rtol}, {self.atol}")
        (c_lo, c_hi), (x_lo, x_hi) = self.C_range, self.x0_range
        if not c_lo <= c_hi or not x_lo <= x_hi:
            raise InvalidSystemError(f"cr3bp: C_range {self.C_range} and x0_range {self.x0_range} must be ordered")
        omega2 = 2 * omega_at(self.mu, x_hi, 0.0)  # plain floats: validating a config never starts a JAX backend
        if omega2 <= c_lo:
            raise InvalidSystemError(
                f"cr3bp: at x0 = {x_hi} the zero-velocity curve is 2Ω = {omega2:.5f} <= C = {c_lo}: no orbit starts "
                f"there; lower x0_range or C_range"
            )

    @classmethod
    def check_D(cls, D: int) -> str | None:
        if D != 4:
            return f"D={D} is invalid for system 'cr3bp': the planar CR3BP has phase-space dimension D=4 only"
        return None

    # ----- dynamics ----------------------------------------------------------------------------------
    def distances(self, x: Array, y: Array) -> tuple[Array, Array]:
        mu = self.mu
        return jnp.sqrt((x + mu) ** 2 + y**2), jnp.sqrt((x - 1 + mu) ** 2 + y**2)

    def omega(self, x: Array, y: Array) -> Array:
        r1, r2 = self.distances(x, y)
        return 0.5 * (x * x + y * y) + (1 - self.mu) / r1 + self.mu / r2

    def velocity(self, s: Array) -> Array:
        x, y, px, py = jnp.moveaxis(s, -1, 0)
        return jnp.stack([px + y, py - x], axis=-1)

    def vector_field(self, s: Array) -> Array:
        x, y, px, py = jnp.moveaxis(s, -1, 0)
        mu = self.mu
        r1, r2 = self.distances(x, y)
        a1, a2 = (1 - mu) / r1**3, mu / r2**3
        Vx = a1 * (x + mu) + a2 * (x - 1 + mu)  # ∂V/∂x with V = −(1−μ)/r₁ − μ/r₂
        Vy = (a1 + a2) * y
        return jnp.stack([px + y, py - x, py - Vx, -px - Vy], axis=-1)

    def exact_quadratic(self) -> np.ndarray:
        """H_A = ½|p|² + y pₓ − x p_y (kinetic + Coriolis; its flow is a drift then a rotation by −t)."""
        S = np.zeros((4, 4))
        S[2, 2] = S[3, 3] = 1.0
        S[1, 2] = S[2, 1] = 1.0
        S[0, 3] = S[3, 0] = -1.0
        return S

    def potential(self, q: Array) -> Array:
        """V(q) = −(1−μ)/r₁ − μ/r₂: H = H_A + V."""
        r1, r2 = self.distances(q[..., 0], q[..., 1])
        return -(1 - self.mu) / r1 - self.mu / r2

    def step_with(self, x: Array, h: float, *, method: str = "yoshida4") -> Array:
        """The composition `method` of V's kicks and H_A's exact flow exp(t J S): what symp does with the true V."""
        S = jnp.asarray(self.exact_quadratic())
        maps: dict[float, Array] = {}

        def flow_A(q, p, t):
            if float(t) not in maps:
                maps[float(t)] = quadratic_flow(S, t)
            y = jnp.concatenate([q, p], axis=-1) @ maps[float(t)].T
            return y[..., :2], y[..., 2:]

        def kick(q, t):
            return -t * jax.grad(lambda q_: jnp.sum(self.potential(q_)))(q)

        q, p = split_step(kick, flow_A, x[..., :2], x[..., 2:], h, method=method)
        return jnp.concatenate([q, p], axis=-1)

    def jacobi(self, s: Array) -> Array:
        v = self.velocity(s)
        return 2 * self.omega(s[..., 0], s[..., 1]) - jnp.sum(v * v, axis=-1)

    # ----- reference ---------------------------------------------------------------------------------
    def _solve(self, f, y0: Array, ts: Array, rtol: float) -> Array:
        import diffrax  # only the reference integration needs it (a second off every import of the package)

        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(lambda t, y, args: f(y)),
            diffrax.Dopri8(),
            t0=0.0,
            t1=ts[-1],
            dt0=None,
            y0=y0,
            saveat=diffrax.SaveAt(ts=ts),
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=self.atol * rtol / self.rtol),
            max_steps=self.max_steps,
            throw=False,  # a failed solve yields non-finite states, which the filter rejects
        )
        bad = sol.result != diffrax.RESULTS.successful
        return jnp.where(bad, jnp.nan, sol.ys)

    def _rtol(self, fine: bool) -> float:
        return self.rtol / 10 if fine else self.rtol

    def _batched(self, fn, x: Array) -> Array:
        flat = x.reshape(-1, x.shape[-1])
        return jax.vmap(fn)(flat).reshape(*x.shape[:-1], *jax.eval_shape(fn, flat[0]).shape)

    def interval(self, x: Array, fine: bool = False) -> Array:
        ts = jnp.asarray([self.dt_obs], dtype=jnp.float64)
        return self._batched(lambda y: self._solve(self.vector_field, y, ts, self._rtol(fine))[-1], x)

    def tangent_interval(self, x: Array, v: Array) -> tuple[Array, Array]:
        """Variational equations (x, δ)' = (f(x), Df(x)·δ), Df·δ by jax.jvp, solved with the same controller."""
        ts = jnp.asarray([self.dt_obs], dtype=jnp.float64)

        def aug(z):
            y, d = z[:4], z[4:]
            fy, fd = jax.jvp(self.vector_field, (y,), (d,))
            return jnp.concatenate([fy, fd])

        z = self._batched(lambda z: self._solve(aug, z, ts, self.rtol)[-1], jnp.concatenate([x, v], axis=-1))
        return z[..., :4], z[..., 4:]

    def _fine_trajectories(self, x0: Array, n_obs: int, fine: bool) -> Array:
        ts = jnp.arange(1, (n_obs - 1) * FINE_SAVES + 1, dtype=jnp.float64) * (self.dt_obs / FINE_SAVES)
        ys = jax.vmap(lambda y: self._solve(self.vector_field, y, ts, self._rtol(fine)))(x0)
        return jnp.concatenate([x0[:, None], ys], axis=1)

    def trajectories(self, x0: Array, n_obs: int, fine: bool = False) -> Array:
        return self._fine_trajectories(x0, n_obs, fine)[:, ::FINE_SAVES]

    def describe_reference(self, fine: bool = False) -> str:
        rtol = self._rtol(fine)
        return f"diffrax Dopri8, PID controller rtol = {rtol:g}, atol = {self.atol * rtol / self.rtol:g}"

    # ----- initial conditions, filter, invariants ----------------------------------------------------
    def sample_initial(self, key: Array, n: int) -> Array:
        kx, kc = jax.random.split(key)
        x0 = jax.random.uniform(kx, (n,), dtype=jnp.float64, minval=self.x0_range[0], maxval=self.x0_range[1])
        c_top = jnp.minimum(self.C_range[1], 2 * self.omega(x0, 0.0 * x0) - 1e-6)
        C = self.C_range[0] + jax.random.uniform(kc, (n,), dtype=jnp.float64) * (c_top - self.C_range[0])
        vy = jnp.sqrt(2 * self.omega(x0, 0.0 * x0) - C)
        zero = jnp.zeros_like(x0)
        return jnp.stack([x0, zero, zero, vy + x0], axis=-1)  # p_x = ẋ − y = 0, p_y = ẏ + x

    def accept(self, traj: Array) -> dict[str, Array]:
        """Rejections from the observations plus a grid 8x finer (close approaches between observations)."""
        traj = np.asarray(traj)
        fine = np.asarray(
            jax.jit(self._fine_trajectories, static_argnums=(1, 2))(jnp.asarray(traj[:, 0]), traj.shape[1], False)
        )
        r1, r2 = (np.asarray(r) for r in self.distances(fine[..., 0], fine[..., 1]))
        finite = np.isfinite(fine).all(axis=(1, 2))
        C = np.asarray(self.jacobi(jnp.asarray(fine)))
        with np.errstate(invalid="ignore"):
            return {
                "non_finite": ~finite,
                "close_approach": finite & (np.minimum(r1, r2).min(axis=1) < self.r_min_reject),
                "escape": finite & (np.hypot(fine[..., 0], fine[..., 1]).max(axis=1) > self.r_escape),
                "jacobi_lost": finite & (np.abs(C - C[:, :1]).max(axis=1) > 1e-8),
            }

    def invariants(self, x: Array) -> dict[str, Array]:
        return {"C": self.jacobi(x)}

    def invariant_scales(self, x: Array) -> dict[str, Array]:
        return {"C": jnp.abs(self.jacobi(x))}

    def diagnostics(self, traj: Array) -> dict:
        traj = np.asarray(traj)
        r1, r2 = (np.asarray(r) for r in self.distances(traj[..., 0], traj[..., 1]))
        return {
            "lagrange_points": lagrange_points(self.mu),
            "C_initial": [float(c) for c in np.asarray(self.jacobi(jnp.asarray(traj[:, 0])))],
            "r_min_observed": float(np.minimum(r1, r2).min()),
        }


def lagrange_points(mu: float) -> dict[str, dict[str, float]]:
    """Positions and Jacobi constants of L1..L5 (collinear points by bracketing root finding to 1e-15)."""

    def omega_x(x: float) -> float:
        return x - (1 - mu) * (x + mu) / abs(x + mu) ** 3 - mu * (x - 1 + mu) / abs(x - 1 + mu) ** 3

    eps = 1e-9
    xs = {
        "L1": brentq(omega_x, -mu + eps, 1 - mu - eps, xtol=1e-15, rtol=1e-15),
        "L2": brentq(omega_x, 1 - mu + eps, 2.0, xtol=1e-15, rtol=1e-15),
        "L3": brentq(omega_x, -2.0, -mu - eps, xtol=1e-15, rtol=1e-15),
    }
    out = {k: {"x": x, "y": 0.0, "C": 2 * omega_at(mu, x, 0.0)} for k, x in xs.items()}
    for k, y in (("L4", math.sqrt(3) / 2), ("L5", -math.sqrt(3) / 2)):
        out[k] = {"x": 0.5 - mu, "y": y, "C": 2 * omega_at(mu, 0.5 - mu, y)}
    return out


def omega_at(mu: float, x: float, y: float) -> float:
    """The effective potential Ω at one point, in plain floats (`CR3BP.omega` is its array form)."""
    r1, r2 = math.hypot(x + mu, y), math.hypot(x - 1 + mu, y)
    return 0.5 * (x * x + y * y) + (1 - mu) / r1 + mu / r2


SYSTEMS.register("cr3bp", options=CR3BP, make=CR3BP)
