"""Free-form GRU world model (DreamerV3-style core in float64; DreamerV3 itself computes in bfloat16).

h₀ = tanh(W_enc z₀) encodes the first observation; each step feeds the model's own previous prediction
through an embedding into a GRU cell, and a residual decoder adds the predicted change:
z_{t+1} = z_t + dec(h_{t+1}), all in normalised units z = (x − μ) / σ. The decoder is linear, or an MLP with
one hidden layer of K units when that is needed to hit the parameter budget. The widths (hidden H, embedding E,
decoder K) are solved so that the parameter count matches the symplectic model's within 0.1 %.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from sympscale.models.nn import Array, dense, dense_init, mlp, mlp_init


@dataclasses.dataclass(frozen=True, eq=False)
class GRUModel:
    D: int
    hidden: int
    embed: int
    decoder_hidden: int = 0  # 0: linear decoder
    mean: np.ndarray | None = None  # (D,) normalisation of the training split
    std: np.ndarray | None = None

    name = "gru"

    @staticmethod
    def count(D: int, hidden: int, embed: int, decoder_hidden: int = 0) -> int:
        H, E, K = hidden, embed, decoder_hidden
        decoder = (H * D + D) if K == 0 else (H * K + K + K * D + D)
        return (D * H + H) + (D * E + E) + (3 * H * E + 3 * H * H + 6 * H) + decoder

    def init(self, key: Array) -> dict:
        k = jax.random.split(key, 6)
        H, E, K = self.hidden, self.embed, self.decoder_hidden
        dec_sizes = [H, self.D] if K == 0 else [H, K, self.D]
        return {
            "enc": dense_init(k[0], self.D, H),
            "emb": dense_init(k[1], self.D, E),
            "w_i": dense_init(k[2], E, 3 * H),
            "w_h": dense_init(k[3], H, 3 * H),
            "dec": mlp_init(k[4], dec_sizes, last_scale=0.1),  # small last layer: start near persistence
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

    def replace_state(self, carry, x: Array):
        return carry[0], (x - self.mean) / self.std

    def step(self, params, carry):
        h, z = carry
        h = self._cell(params, h, jnp.tanh(dense(params["emb"], z)))
        return h, z + mlp(params["dec"], h, "tanh")


def solve_gru_sizes(D: int, target: int, *, rtol: float = 1e-3, max_decoder_hidden: int = 32) -> tuple[int, int, int]:
    """(hidden, embed, decoder_hidden) whose GRU parameter count matches `target` within rtol.

    Preference among matches: an embedding between H/4 and 4H (a core neither starved nor swamped), then a
    linear decoder (K = 0) or the smallest K, then the smallest mismatch.
    """
    best, best_key = None, None
    for H in range(2, int(np.sqrt(target / 3.0)) + 2):
        for K in range(0, max_decoder_hidden + 1):
            rest = GRUModel.count(D, H, 0, K)
            per_e = D + 1 + 3 * H
            for E in {max(1, (target - rest) // per_e), max(1, (target - rest) // per_e + 1)}:
                err = abs(GRUModel.count(D, H, E, K) - target) / target
                key = (err > rtol, not (H / 4 <= E <= 4 * H), K, err)
                if best_key is None or key < best_key:
                    best, best_key = (H, E, K), key
            if best_key is not None and best_key[:3] == (False, False, 0):
                break  # a balanced match with a linear decoder: larger K cannot be preferred
    if best is None or best_key[0]:
        raise ValueError(f"no GRU widths match {target} parameters within {rtol:.1%} at D={D}")
    return best
