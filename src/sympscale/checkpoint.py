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


class Unusable(ValueError):
    """A checkpoint exists but cannot resume this run: `why` says what differs."""

    def __init__(self, why: str, meta: dict | None = None):
        super().__init__(why)
        self.why, self.meta = why, meta or {}

    def reason(self, now: dict | None = None) -> str:
        """`why`, with what differs between the checkpoint's run and `now` ({"computation", "code", "data"}, as
        the run records them in its checkpoints): the settings, the code or the data."""
        old = self.meta
        if not now or not isinstance(old.get("computation"), dict):
            return self.why
        from sympscale.identity import differences

        changed = differences(old["computation"], now.get("computation", {}))
        if changed:
            return f"{self.why}: {'; '.join(changed)}"
        if old.get("code") != now.get("code"):
            return f"{self.why}: the code changed ({_code(old.get('code'))} -> {_code(now.get('code'))})"
        if old.get("data") != now.get("data"):
            return f"{self.why}: other data ({old.get('data')} -> {now.get('data')})"
        return self.why


def _code(record) -> str:
    if not isinstance(record, dict):
        return "unrecorded"
    return f"version {record.get('version')}, source {record.get('source_digest')}"


def load(path: str | os.PathLike, template, *, tag: str):
    """(step, state, meta) with state shaped like `template`; None when there is no checkpoint. A checkpoint of
    another run, of other shapes, or that cannot be read raises `Unusable` with the reason."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with np.load(path) as z:
            meta = json.loads(str(z["__meta__"])) if "__meta__" in z.files else {}
            if str(z["__tag__"]) != tag:
                raise Unusable("it belongs to another run", meta)
            leaves_t, treedef = jax.tree_util.tree_flatten(template)
            names = [f"arr_{i}" for i in range(len(leaves_t))]
            if any(n not in z.files for n in names) or any(
                z[n].shape != np.shape(b) for n, b in zip(names, leaves_t, strict=True)
            ):
                raise Unusable("its arrays do not have this model's shapes", meta)
            state = jax.tree_util.tree_unflatten(
                treedef,
                [jax.numpy.asarray(z[n], dtype=np.asarray(b).dtype) for n, b in zip(names, leaves_t, strict=True)],
            )
            return int(z["__step__"]), state, meta
    except Unusable:
        raise
    except (OSError, ValueError, KeyError, EOFError) as e:  # truncated, not an .npz, a member missing
        raise Unusable(f"it cannot be read ({type(e).__name__}: {e})") from e
