"""The seed axis: a run trains a bundle of seeds (a single run is a bundle of one) whose pytrees carry a leading
seed axis, and every per-seed function is mapped over it by `over_seeds`.

A bundle of one runs the per-seed program itself (its inputs squeezed, its outputs given the axis back) rather
than a vmap of size one: a batched matrix product rounds differently from the plain one, and a chaotic rollout
turns that last bit into a different valid prediction time, so a single run keeps the numbers it always had.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def stack(trees: list):
    """Per-seed pytrees -> one pytree whose leaves carry a leading seed axis."""
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def unstack(tree, i: int):
    """Seed `i` of a stacked pytree."""
    return jax.tree_util.tree_map(lambda a: a[i], tree)


def n_seeds(*trees) -> int:
    """The length of the seed axis of stacked pytrees (1 when they hold no arrays: a model without parameters)."""
    leaves = jax.tree_util.tree_leaves(trees)
    return int(leaves[0].shape[0]) if leaves else 1


def over_seeds(fn: Callable) -> Callable:
    """fn(*per-seed args) -> fn over args whose every leaf carries the seed axis; the outputs carry it too."""
    batched = jax.vmap(fn)

    def mapped(*args):
        if n_seeds(*args) > 1:
            return batched(*args)
        out = fn(*jax.tree_util.tree_map(lambda a: a[0], args))
        return jax.tree_util.tree_map(lambda a: jnp.expand_dims(a, 0), out)

    return mapped
