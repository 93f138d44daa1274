"""Free-form GRU world model (DreamerV3-style core in float64; DreamerV3 itself computes in bfloat16).

h₀ = tanh(W_enc z₀) encodes the first observation; each step feeds the model's own previous prediction
through an embedding into a GRU cell (flax.linen.GRUCell: biases on the input side and on the candidate's
recurrent term, 3HE + 3H² + 4H parameters), and a residual decoder adds the predicted change:
z_{t+1} = z_t + dec(h_{t+1}), all in normalised units z = (x − μ) / σ. The decoder is linear, or an MLP with
one hidden layer of K units when that is needed to hit the parameter budget. The widths (hidden H, embedding E,
decoder K) are solved so that the parameter count matches the symplectic model's within 0.1 %.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sympscale.models.base import Context, IncrementRank, ModelOptions, capacity_problem
from sympscale.models.nn import F64, MLP, Array, Dense, init_params, lecun_normal
from sympscale.registry import MODELS


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
        return (D * H + H) + (D * E + E) + (3 * H * E + 3 * H * H + 4 * H) + decoder

    @property
    def networks(self) -> dict[str, nn.Module]:
        """Encoder, embedding, GRU cell and decoder (LeCun-normal kernels, recurrent ones too; zero biases)."""
        H, K = self.hidden, self.decoder_hidden
        cell = nn.GRUCell(
            H, kernel_init=lecun_normal(), recurrent_kernel_init=lecun_normal(), dtype=F64, param_dtype=F64
        )
        dec = (self.D,) if K == 0 else (K, self.D)
        # small last layer of the decoder: start near persistence
        return {"enc": Dense(H), "emb": Dense(self.embed), "cell": cell, "dec": MLP(dec, "tanh", last_scale=0.1)}

    def init(self, key: Array) -> dict:
        k = jax.random.split(key, 4)
        nets = self.networks
        x, h, e = (jnp.zeros((n,), dtype=F64) for n in (self.D, self.hidden, self.embed))
        return {
            "enc": init_params(nets["enc"], k[0], x),
            "emb": init_params(nets["emb"], k[1], x),
            "cell": init_params(nets["cell"], k[2], h, e),
            "dec": init_params(nets["dec"], k[3], h),
        }

    def _apply(self, params, name: str, *inputs):
        return self.networks[name].apply({"params": params[name]}, *inputs)

    def encode(self, params, x0: Array) -> tuple[Array, Array]:
        z0 = (x0 - self.mean) / self.std
        return jnp.tanh(self._apply(params, "enc", z0)), z0

    def observe(self, carry) -> Array:
        return carry[1] * self.std + self.mean

    def replace_state(self, carry, x: Array):
        return carry[0], (x - self.mean) / self.std

    def step(self, params, carry):
        h, z = carry
        h, _ = self._apply(params, "cell", h, jnp.tanh(self._apply(params, "emb", z)))
        return h, z + self._apply(params, "dec", h)


def decoder_rank(D: int, hidden: int, decoder_hidden: int) -> int:
    """Directions the one-step change dec(h) can span: a linear decoder's H columns; an MLP decoder's change is a
    function of H numbers through K units, so at most min(H, K) locally (its Jacobian's rank)."""
    return min(hidden, decoder_hidden or hidden, D)


def solve_gru_sizes(D: int, target: int, *, rtol: float = 1e-3, max_decoder_hidden: int = 32) -> tuple[int, int, int]:
    """(hidden, embed, decoder_hidden) whose GRU parameter count matches `target` within rtol.

    Preference among matches: an embedding between H/4 and 4H (a core neither starved nor swamped), then a
    decoder whose rank reaches D (no error floor, `decoder_rank`; else the highest rank), then a linear decoder
    (K = 0) or the smallest K, then the smallest mismatch.
    """
    best, best_key = None, None
    for H in range(2, int(np.sqrt(target / 3.0)) + 2):
        for K in range(0, max_decoder_hidden + 1):
            rest = GRUModel.count(D, H, 0, K)
            per_e = D + 1 + 3 * H
            for E in {max(1, (target - rest) // per_e), max(1, (target - rest) // per_e + 1)}:
                err = abs(GRUModel.count(D, H, E, K) - target) / target
                short = D - decoder_rank(D, H, K)  # directions it cannot span
                key = (err > rtol, not (H / 4 <= E <= 4 * H), short, K, err)
                if best_key is None or key < best_key:
                    best, best_key = (H, E, K), key
            if best_key is not None and best_key[:4] == (False, False, 0, 0):
                break  # a balanced match with a linear decoder: larger K cannot be preferred
    if best is None or best_key[0]:
        raise ValueError(f"no GRU widths match {target} parameters within {rtol:.1%} at D={D}")
    return best


@dataclasses.dataclass(frozen=True)
class GRUOptions(ModelOptions):
    """Free-form GRU world model; hidden, embedding and decoder widths solved to match the symp model's count."""


def make(options: GRUOptions, ctx: Context) -> tuple[GRUModel, dict]:
    H, E, K = solve_gru_sizes(ctx.D, ctx.target)
    model = GRUModel(D=ctx.D, hidden=H, embed=E, decoder_hidden=K, mean=np.asarray(ctx.mean), std=np.asarray(ctx.std))
    return model, {"hidden": H, "embed": E, "decoder_hidden": K}


def check(options: GRUOptions, ctx: Context) -> list[str]:
    return capacity_problem(ctx, solve_gru_sizes, ctx.D, ctx.target)


def rank(options: GRUOptions, ctx: Context) -> IncrementRank:
    """z_{t+1} - z_t = dec(h_{t+1}): every change lies in the span of the decoder's last layer."""
    H, _, K = solve_gru_sizes(ctx.D, ctx.target)
    return IncrementRank(decoder_rank(ctx.D, H, K), ctx.D, "state")


MODELS.register("gru", options=GRUOptions, make=make, check=check, rank=rank)
