"""Where the jobs' persistent compilation cache lives: a folder private to the user by default.

JAX loads and runs the compiled executables it finds in its cache: a cache others can write is native code they
can plant. The default is `$XDG_CACHE_HOME/sympscale/jax-compile` (else `~/.cache/...`), created 0700 and used
only while it is the user's own and writable by nobody else; a folder the user names is used as given (their
choice, shown by the dry run). JAX keys each entry by program, backend and version: one folder serves every
sweep and device.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

AUTO = "auto"


def default_dir(env: dict | None = None, name: str = "jax-compile") -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return Path(base) / "sympscale" / name


def private_dir(name: str, env: dict | None = None) -> tuple[Path | None, str]:
    """(`default_dir` for `name`, made 0700 and used only while it is the user's own and writable by nobody else,
    or None; why, in a few words)."""
    folder = default_dir(env, name)
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = folder.stat()
    except OSError as e:
        return None, f"off: {folder} cannot be made ({type(e).__name__})"
    if st.st_uid != os.geteuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None, f"off: {folder} is not private to this user (owner {st.st_uid}, mode {stat.S_IMODE(st.st_mode):o})"
    return folder, "private to this user"


def resolve(setting: str | None, env: dict | None = None) -> tuple[Path | None, str]:
    """(the folder jobs cache compiled programs in, or None for no cache; why, in a few words)."""
    if setting is None or str(setting).strip() in ("", "null", "none"):
        return None, "off (hydra.launcher.compilation_cache=null)"
    if str(setting) != AUTO:
        return Path(str(setting)), "the folder given (hydra.launcher.compilation_cache)"
    return private_dir("jax-compile", env)
