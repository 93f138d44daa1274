"""Atomic JSON files: what the launcher and the jobs it runs write, so a reader never sees half a file."""

from __future__ import annotations

import json
from pathlib import Path

from sympscale import atomic


def write_json(path: Path, obj) -> None:
    """Write JSON through `atomic.write` (temp file, fsync, rename; the user's umask; the temp removed on failure).
    Non-finite floats become Infinity / NaN."""
    atomic.write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
