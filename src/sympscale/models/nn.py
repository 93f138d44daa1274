"""Tiny pure-JAX building blocks: dense layers, MLPs, parameter counting (no framework, explicit float64)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

Array = jnp.ndarray
ACTIVATIONS = {"tanh": jnp.tanh, "softplus": jax.nn.softplus, "gelu": jax.nn.gelu}


def dense_init(key: Array, n_in: int, n_out: int, *, scale: float = 1.0) -> dict[str, Array]:
    """LeCun-normal weights (variance scale / n_in), zero bias."""
    w = jax.random.normal(key, (n_in, n_out), dtype=jnp.float64) * (scale / math.sqrt(n_in))
    return {"w": w, "b": jnp.zeros((n_out,), dtype=jnp.float64)}


def dense(layer: dict[str, Array], x: Array) -> Array:
    return x @ layer["w"] + layer["b"]


def mlp_init(key: Array, sizes: list[int], *, last_scale: float = 1.0) -> list[dict[str, Array]]:
    keys = jax.random.split(key, len(sizes) - 1)
    n = len(sizes) - 1
    return [
        dense_init(k, a, b, scale=last_scale if i == n - 1 else 1.0)
        for i, (k, a, b) in enumerate(zip(keys, sizes[:-1], sizes[1:], strict=True))
    ]


def mlp(layers: list[dict[str, Array]], x: Array, activation: str = "tanh") -> Array:
    act = ACTIVATIONS[activation]
    for layer in layers[:-1]:
        x = act(dense(layer, x))
    return dense(layers[-1], x)


def mlp_param_count(sizes: list[int]) -> int:
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def param_count(params) -> int:
    return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))


class StateCarry:
    """World-model interface for models whose carry is the physical state itself (symp, rk4, freeform)."""

    def encode(self, params, x0: Array) -> Array:
        return x0

    def observe(self, carry: Array) -> Array:
        return carry

    def replace_state(self, carry: Array, x: Array) -> Array:
        return x
