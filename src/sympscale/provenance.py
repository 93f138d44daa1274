"""Which code computed a result: the package version and a digest of the package's source files.

A finished job records both. A rerun of the same config with different code is then a *stale* result, not a
finished one: the launcher lists it (and skips it unless told to rerun it), and the analysis can tell results of
different code apart.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import sympscale

PACKAGE_ROOT = Path(sympscale.__file__).resolve().parent


def package_files(root: Path = PACKAGE_ROOT) -> list[Path]:
    """The package's Python sources, in a stable order (caches and hidden folders left out)."""
    return sorted(p for p in root.rglob("*.py") if not any(part.startswith((".", "__pycache__")) for part in p.parts))


@functools.cache
def source_digest(root: Path = PACKAGE_ROOT) -> str:
    """A short SHA-256 over every source file's relative path and bytes: changes whenever any code changes."""
    h = hashlib.sha256()
    for path in package_files(root):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:20]


def record() -> dict:
    """What a job writes about the code that ran it."""
    return {"version": sympscale.__version__, "source_digest": source_digest()}
