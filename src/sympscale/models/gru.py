"""Free-form GRU world model (DreamerV3-style core in float64; DreamerV3 itself computes in bfloat16).

h₀ = tanh(W_enc z₀) encodes the first observation; each step feeds the model's own previous prediction
through an embedding into a GRU cell, and a residual decoder adds the predicted change:
z_{t+1} = z_t + W_dec h_{t+1}, all in normalised units z = (x − μ) / σ. Two widths (hidden H, embedding E)
are solved so that the parameter count matches the symplectic model's within 0.1 %.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from sympscale.models.nn import Array, dense, dense_init


@dataclasses.dataclass(frozen=True, eq=False)
class GRUModel:
    D: int
    hidden: int
    embed: int
    mean: np.ndarray | None = None  # (D,) normalisation of the training split
    std: np.ndarray | None = None

    name = "gru"

    @staticmethod
    def count(D: int, hidden: int, embed: int) -> int:
        H, E = hidden, embed
        return (D * H + H) + (D * E + E) + (3 * H * E + 3 * H * H + 6 * H) + (H * D + D)

    def init(self, key: Array) -> dict:
        k = jax.random.split(key, 5)
        H, E = self.hidden, self.embed
        return {
            "enc": dense_init(k[0], self.D, H),
            "emb": dense_init(k[1], self.D, E),
            "w_i": dense_init(k[2], E, 3 * H),
            "w_h": dense_init(k[3], H, 3 * H),
            "dec": dense_init(k[4], H, self.D, scale=0.1),  # start near persistence
        }

    def _cell(self, params, h: Array, e: Array) -> Array:
        gi, gh = dense(params["w_i"], e), dense(params["w_h"], h)
        ir, iz, in_ = jnp.split(gi, 3, axis=-1)
        hr, hz, hn = jnp.split(gh, 3, axis=-1)
        r = jax.nn.sigmoid(ir + hr)
        z = jax.nn.sigmoid(iz + hz)
        n = jnp.tanh(in_ + r * hn)
        return (1.0 - z) * n + z * h

    def encode(self, params, x0: Array) -> tuple[Array, Array]:
        z0 = (x0 - self.mean) / self.std
        return jnp.tanh(dense(params["enc"], z0)), z0

    def observe(self, carry) -> Array:
        return carry[1] * self.std + self.mean

    def step(self, params, carry):
        h, z = carry
        h = self._cell(params, h, jnp.tanh(dense(params["emb"], z)))
        return h, z + dense(params["dec"], h)


def solve_gru_sizes(D: int, target: int, *, rtol: float = 1e-3) -> tuple[int, int]:
    """(hidden, embed) whose GRU parameter count is closest to `target`, within rtol if at all possible.

    Among pairs within tolerance whose embedding is between H/4 and 4H (a core that is neither starved nor
    swamped), the one with the smallest mismatch wins.
    """
    best, best_key = None, None
    for H in range(1, int(np.sqrt(target / 3.0)) + 2):
        rest = GRUModel.count(D, H, 0)
        per_e = D + 1 + 3 * H
        for E in {max(1, (target - rest) // per_e), max(1, (target - rest) // per_e + 1)}:
            err = abs(GRUModel.count(D, H, E) - target) / target
            key = (err > rtol, not (H / 4 <= E <= 4 * H), err)
            if best_key is None or key < best_key:
                best, best_key = (H, E), key
    if best is None or best_key[0]:
        raise ValueError(f"no GRU widths match {target} parameters within {rtol:.1%} at D={D}")
    return best
