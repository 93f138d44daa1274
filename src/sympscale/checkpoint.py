"""Save and restore a training state (any pytree of arrays, the step and a JSON record) atomically, as .npz."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import numpy as np

from sympscale import atomic


def save(path: str | os.PathLike, step: int, state, *, tag: str, meta: dict | None = None) -> None:
    """Write `state` at `step` with a JSON-able `meta`; `tag` identifies the run it belongs to (a resume checks it)."""
    leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(state)]
    extra = {"__step__": np.asarray(step), "__tag__": np.asarray(tag), "__meta__": np.asarray(json.dumps(meta or {}))}
    atomic.write(path, lambda f: np.savez(f, *leaves, **extra))


class Unusable(ValueError):
    """A checkpoint exists but cannot resume this run: `why` says what differs; `kind` names it in one word
    (`damaged`: it cannot be read; `other-run`: another computation's; `other-shapes`: not this model's arrays)."""

    def __init__(self, why: str, meta: dict | None = None, kind: str = "other-run"):
        super().__init__(why)
        self.why, self.meta, self.kind = why, meta or {}, kind

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
    another run, of other shapes or dtypes, or that cannot be read for any reason (truncated, bytes flipped, not
    an .npz, empty) raises `Unusable` with the reason: nothing else escapes."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with np.load(path) as z:
            step, arrays, treedef, meta = _read(z, template, tag)
    except (Unusable, PermissionError, MemoryError):
        raise  # a permission or memory problem is not the file's damage: it is said as it is
    except Exception as e:  # noqa: BLE001  (any failure to parse: the file is damaged, never a crash)
        raise Unusable(f"it cannot be read ({type(e).__name__}: {e})", kind="damaged") from e
    return step, jax.tree_util.tree_unflatten(treedef, [jax.numpy.asarray(a) for a in arrays]), meta


def _read(z, template, tag: str):
    meta = json.loads(str(z["__meta__"])) if "__meta__" in z.files else {}
    if str(z["__tag__"]) != tag:
        raise Unusable("it belongs to another run", meta)
    leaves_t, treedef = jax.tree_util.tree_flatten(template)
    names = [f"arr_{i}" for i in range(len(leaves_t))]
    if any(n not in z.files for n in names) or any(
        z[n].shape != np.shape(b) for n, b in zip(names, leaves_t, strict=True)
    ):
        raise Unusable("its arrays do not have this model's shapes", meta, kind="other-shapes")
    arrays = [z[n] for n in names]
    wrong = {str(a.dtype) for a, b in zip(arrays, leaves_t, strict=True) if a.dtype != np.asarray(b).dtype}
    if wrong:
        raise Unusable(f"its arrays are {', '.join(sorted(wrong))}, not this model's dtypes", meta, kind="other-shapes")
    step = int(z["__step__"])
    if step < 0:
        raise Unusable(f"its step {step} is negative", meta, kind="damaged")
    return step, arrays, treedef, meta
