"""Which code computed a result: the package version, a digest of the package's source files, and the versions of
the numerical libraries it ran on (jax, jaxlib, flax, optax, numpy).

A finished job records them (and its platform and device: `job.environment`). A rerun of the same config with
different code or libraries is then a *stale* result, not a finished one: the launcher lists it (and skips it
unless told to rerun it); the analysis labels every cell whose runs differ in code, libraries or platform.
"""

from __future__ import annotations

import functools
import hashlib
from importlib import metadata
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


LIBRARIES = ("jax", "jaxlib", "flax", "optax", "numpy")


@functools.cache
def libraries() -> dict[str, str | None]:
    """The installed versions of the libraries a result depends on (read from their metadata: nothing imported)."""
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def record() -> dict:
    """What a job writes about the code that ran it."""
    return {"version": sympscale.__version__, "source_digest": source_digest(), "libraries": libraries()}
