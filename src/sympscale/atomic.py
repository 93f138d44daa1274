"""One way to write a file: a temp file in the same folder, flushed and fsynced, renamed over the target.

A reader never sees half a file; the temp is removed on any failure (a full disk included); the file's mode
follows the user's umask (0o666 & ~umask, as `open` gives, not tempfile's private 0o600), so a group sharing a
node's sweeps can resume each other's runs. A write that fails for lack of space, quota or a read-only
filesystem raises `StorageFull` with one line: what, where, how much is free, what to do.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")  # what `write` leaves while it writes
LEGACY = re.compile(r"^\.checkpoint\.npz\.[A-Za-z0-9_]{8}\.npz$")  # earlier versions' checkpoint temps (no pid)
FULL = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only filesystem",
}


class StorageFull(OSError):
    """A write failed for lack of space or quota, or on a read-only filesystem: the message is the one line."""

    def __str__(self) -> str:
        return str(self.strerror)


def write(path: str | os.PathLike, fill: Callable[[BinaryIO], None]) -> None:
    """Write `path` by `fill(binary file)` through a temp file in its folder, fsync, and an atomic rename."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the kernel applies the umask
        with os.fdopen(fd, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # a read-only filesystem refuses even that (and then nothing was created)
            pass
        if isinstance(e, OSError) and e.errno in FULL:
            raise StorageFull(e.errno, full_message(path, e.errno)) from e
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    write(path, lambda f: f.write(text.encode()))


def full_message(path: Path, code: int) -> str:
    """'<why> writing <path> (<free> free there): <what to do>'."""
    try:
        free = f"{shutil.disk_usage(path.parent if path.parent.exists() else Path.cwd()).free / 2**30:.2f} GiB free"
    except OSError:
        free = "free space unknown"
    todo = (
        "make the folder writable or choose another (name=..., data.cache_dir=...)"
        if code == errno.EROFS
        else "free space there (or raise the quota), or choose another folder (name=..., data.cache_dir=...), then "
        "rerun the same command: finished jobs are kept and interrupted ones resume"
    )
    return f"{FULL[code]} writing {path} ({free}): {todo}"


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove the temp files `write` left in `folder` when its process died (its pid no longer runs), and earlier
    versions' checkpoint temps (called by the one process that owns the folder); returns them."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for p in entries:
        m = TEMP.match(p.name)
        try:
            if ((m and not _alive(int(m["pid"]))) or LEGACY.match(p.name)) and p.is_file():
                p.unlink()
                removed.append(p)
        except (OSError, OverflowError):  # gone meanwhile, not ours to remove, or not a pid
            continue
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True
