"""Atomic JSON files: what the launcher and the jobs it runs write, so a reader never sees half a file."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path


def write_json(path: Path, obj) -> None:
    """Write JSON via a temp file and rename, so a reader never sees a half-written file.

    The file gets the user's umask (mode 0o666 & ~umask, as `open` would give), not tempfile's private 0o600:
    a group sharing a node can read each other's sweeps when their umask says so.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the kernel applies the umask
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=False)  # non-finite floats become Infinity / NaN
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
