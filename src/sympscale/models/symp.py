"""Learned separable Hamiltonian H_θ(q, p) = T_θ(p) + V_θ(q), integrated with Yoshida-4.

The model acts on canonical coordinates, so each step is exactly a symplectic map of (q, p); normalisation
happens only inside the networks (fixed affine maps of q, which keep V a function of q alone).
T(p) = ½ |Lᵀ p|² with L lower triangular and a softplus diagonal (positive definite, identity at init);
V(q) = E₀ · MLP((q − μ_q) / σ_q), with E₀ the mean kinetic energy of the training split.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from sympscale.integrators import composition_step, rk4_step
from sympscale.models.nn import Array, StateCarry, mlp, mlp_init, mlp_param_count

_SOFTPLUS_INV_1 = float(np.log(np.expm1(1.0)))


@dataclasses.dataclass(frozen=True, eq=False)
class SympModel(StateCarry):
    D: int
    width: int
    depth: int  # hidden layers of the potential MLP
    dt: float  # observation interval the step covers
    substeps: int = 4  # Yoshida-4 steps per observation interval
    method: str = "yoshida4"  # or "rk4": the same learned H, integrated by RK4 (structure only in the field)
    activation: str = "softplus"
    q_mean: np.ndarray | None = None  # (N,) from the training split
    q_std: np.ndarray | None = None
    energy_scale: float = 1.0

    @property
    def name(self) -> str:
        return "rk4" if self.method == "rk4" else "symp"

    @property
    def N(self) -> int:
        return self.D // 2

    def potential_sizes(self) -> list[int]:
        return [self.N] + [self.width] * self.depth + [1]

    @staticmethod
    def count(D: int, width: int, depth: int) -> int:
        """Exact parameter count without building the model (used to match capacities)."""
        N = D // 2
        return mlp_param_count([N] + [width] * depth + [1]) + N * (N + 1) // 2

    def init(self, key: Array) -> dict:
        return {
            "V": mlp_init(key, self.potential_sizes(), last_scale=0.01),  # V ≈ 0 at init: near-free motion
            "T_diag": jnp.full((self.N,), _SOFTPLUS_INV_1, dtype=jnp.float64),
            "T_off": jnp.zeros((self.N * (self.N - 1) // 2,), dtype=jnp.float64),
        }

    def _cholesky(self, params) -> Array:
        rows, cols = np.tril_indices(self.N, k=-1)
        L = jnp.zeros((self.N, self.N), dtype=jnp.float64).at[rows, cols].set(params["T_off"])
        return L + jnp.diag(jax.nn.softplus(params["T_diag"]))

    def kinetic(self, params, p: Array) -> Array:
        u = p @ self._cholesky(params)  # Lᵀ p for each row
        return 0.5 * jnp.sum(u * u, axis=-1)

    def potential(self, params, q: Array) -> Array:
        z = (q - self.q_mean) / self.q_std
        return self.energy_scale * mlp(params["V"], z, self.activation)[..., 0]

    def hamiltonian(self, params, x: Array) -> Array:
        q, p = x[..., : self.N], x[..., self.N :]
        return self.kinetic(params, p) + self.potential(params, q)

    # ----- world-model interface: encode -> step* -> observe ---------------------------------------------

    def step(self, params, x: Array) -> Array:
        """Advance (..., D) states by one observation interval (substeps of Yoshida-4)."""

        def grad_T(p):
            return jax.grad(lambda p_: jnp.sum(self.kinetic(params, p_)))(p)

        def grad_V(q):
            return jax.grad(lambda q_: jnp.sum(self.potential(params, q_)))(q)

        h = self.dt / self.substeps
        if self.method == "rk4":

            def field(y):
                return jnp.concatenate([grad_T(y[..., self.N :]), -grad_V(y[..., : self.N])], axis=-1)

            for _ in range(self.substeps):
                x = rk4_step(field, x, h)
            return x
        q, p = x[..., : self.N], x[..., self.N :]
        for _ in range(self.substeps):
            q, p = composition_step(grad_T, grad_V, q, p, h, method=self.method)
        return jnp.concatenate([q, p], axis=-1)
