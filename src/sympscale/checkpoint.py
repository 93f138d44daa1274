"""Save and restore a training state (any pytree of arrays, the step and a JSON record) atomically, as .npz."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import jax
import numpy as np


def save(path: str | os.PathLike, step: int, state, *, tag: str, meta: dict | None = None) -> None:
    """Write `state` at `step` with a JSON-able `meta`; `tag` identifies the run it belongs to (a resume checks it)."""
    path = Path(path)
    leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(state)]
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        np.savez(
            f, *leaves, __step__=np.asarray(step), __tag__=np.asarray(tag), __meta__=np.asarray(json.dumps(meta or {}))
        )
    os.replace(tmp, path)


def load(path: str | os.PathLike, template, *, tag: str):
    """(step, state, meta) with state shaped like `template`, or None when there is no usable checkpoint for this run."""
    path = Path(path)
    if not path.exists():
        return None
    with np.load(path) as z:
        if str(z["__tag__"]) != tag:
            return None
        leaves_t, treedef = jax.tree_util.tree_flatten(template)
        leaves = [z[f"arr_{i}"] for i in range(len(leaves_t))]
        if any(a.shape != np.shape(b) for a, b in zip(leaves, leaves_t, strict=True)):
            return None
        state = jax.tree_util.tree_unflatten(
            treedef, [jax.numpy.asarray(a, dtype=np.asarray(b).dtype) for a, b in zip(leaves, leaves_t, strict=True)]
        )
        meta = json.loads(str(z["__meta__"])) if "__meta__" in z.files else {}
        return int(z["__step__"]), state, meta
