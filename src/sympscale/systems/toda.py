"""Periodic Toda lattice: H = Σ p²/2 + Σ (e^{-r} + r − 1), r_n = q_{n+1} − q_n (cyclic).

Liouville integrable (all Lyapunov exponents 0): the study's integrable control in high dimension. Invariants
used here are the well-conditioned subset of SCIENCE §0.3: H, P and the Lax traces I_k = tr(L^k)/k, k = 3, 4,
in Flaschka variables a_n = ½ exp(−r_n/2), b_n = −p_n/2.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from sympscale.registry import SYSTEMS
from sympscale.systems.base import Array, Lattice


@dataclasses.dataclass(frozen=True)
class Toda(Lattice):
    name: ClassVar[str] = "toda"
    min_particles: ClassVar[int] = 3  # the cyclic Lax matrix needs N >= 3
    translation_invariant: ClassVar[bool] = True
    observable: ClassVar[str | None] = "Lax spectrum"

    def bonds(self, q: Array) -> Array:
        return jnp.roll(q, -1, axis=-1) - q

    def potential(self, q: Array) -> Array:
        r = self.bonds(q)
        return jnp.sum(jnp.exp(-r) + r - 1.0, axis=-1)

    def grad_V(self, q: Array) -> Array:
        """Analytic ∂V/∂q_n = V'(r_{n-1}) − V'(r_n) with V'(r) = 1 − e^{−r}."""
        f = 1.0 - jnp.exp(-self.bonds(q))
        return jnp.roll(f, 1, axis=-1) - f

    def flaschka(self, x: Array) -> tuple[Array, Array]:
        q, p = self.split(x)
        return 0.5 * jnp.exp(-0.5 * self.bonds(q)), -0.5 * p

    def lax_matrix(self, x: Array) -> Array:
        """Dense symmetric cyclic tridiagonal L (..., N, N): diagonal b, L[n, n+1] = L[n+1, n] = a_n."""
        a, b = self.flaschka(x)
        eye = jnp.eye(self.N, dtype=x.dtype)
        up = jnp.roll(eye, 1, axis=-1)  # up[n, n+1] = 1 (cyclic)
        off = a[..., :, None] * up
        return b[..., :, None] * eye + off + jnp.swapaxes(off, -1, -2)

    def lax_traces(self, x: Array) -> tuple[Array, Array]:
        """tr(L³), tr(L⁴) by counting closed walks: O(N), exact for N >= 5; dense products below that."""
        if self.N < 5:
            L = self.lax_matrix(x)
            L2 = L @ L
            return jnp.trace(L2 @ L, axis1=-2, axis2=-1), jnp.sum(L2 * L2, axis=(-2, -1))
        a, b = self.flaschka(x)
        a2, b1 = a * a, jnp.roll(b, -1, axis=-1)  # a_n², b_{n+1}
        tr3 = jnp.sum(b**3 + 3.0 * a2 * (b + b1), axis=-1)
        tr4 = jnp.sum(
            b**4 + 4.0 * a2 * (b * b + b * b1 + b1 * b1) + 2.0 * a2 * a2 + 4.0 * a2 * jnp.roll(a2, -1, axis=-1),
            axis=-1,
        )
        return tr3, tr4

    def spectrum(self, x: Array) -> Array:
        """Sorted eigenvalues of the Lax matrix (..., N): the full isospectral invariant set (diagnostic)."""
        return jnp.linalg.eigvalsh(self.lax_matrix(x))

    def measure_observable(self, x: Array) -> Array:
        """The sorted Lax eigenvalues (..., N): every one a constant of the true motion (the measure's label)."""
        return self.spectrum(x)

    def diagnostics(self, traj: Array) -> dict:
        """Isospectrality over the dataset: max |λ_i(t) − λ_i(0)| relative to the spectral radius at t = 0."""
        traj = np.asarray(traj)
        idx = np.unique(np.linspace(0, traj.shape[1] - 1, 25).astype(int))  # 25 times: eigvalsh is O(N³)
        lam = np.asarray(jax.jit(self.spectrum)(jnp.asarray(traj[:, idx])))
        radius = np.abs(lam[:, :1]).max(axis=-1, keepdims=True)
        drift = np.abs(lam - lam[:, :1]).max(axis=-1) / radius[..., 0]
        return {
            "isospectral_drift": float(drift.max()),
            "n_times_checked": int(len(idx)),
            "min_eigenvalue_gap": float(np.diff(lam[:, 0], axis=-1).min()),
        }

    def invariants(self, x: Array) -> dict[str, Array]:
        tr3, tr4 = self.lax_traces(x)
        return {
            "H": self.hamiltonian(x),
            "P": jnp.sum(self.split(x)[1], axis=-1),
            "I3": tr3 / 3.0,
            "I4": tr4 / 4.0,
        }

    def invariant_scales(self, x: Array) -> dict[str, Array]:
        lam = jnp.linalg.eigvalsh(self.lax_matrix(x))  # spectrum: scale of the odd traces, which can be ≈ 0
        out = super().invariant_scales(x)
        out["P"] = jnp.sqrt(jnp.sum(self.split(x)[1] ** 2, axis=-1))
        out["I3"] = jnp.sum(jnp.abs(lam) ** 3, axis=-1) / 3.0
        out["I4"] = jnp.sum(lam**4, axis=-1) / 4.0
        return out


SYSTEMS.register("toda", options=Toda, make=Toda)
