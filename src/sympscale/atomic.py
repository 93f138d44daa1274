"""One way to write a file: a temp file in the same folder, flushed and fsynced, renamed over the target.

A reader never sees half a file; the temp is removed on any failure (a full disk included); the file's mode
follows the user's umask (0o666 & ~umask, as `open` gives, not tempfile's private 0o600), so a group sharing a
node's sweeps can resume each other's runs. A write that fails for lack of space, quota or a read-only
filesystem raises `StorageFull` with one line: what, where, how much is free, what to do.

A temp's name carries its writer's host and pid (`temp_path`): the next run of the folder removes those of a
process that is gone (`remove_stale_temps`), and leaves another host's alone until they are a day old. A file
that cannot be used is never deleted or overwritten: `keep_aside` renames it under a name that says why.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

# what `write` and the dataset cache leave while they write: `temp_path` (the host part absent in earlier versions)
TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)(@(?P<host>[A-Za-z0-9-]+))?\.[0-9a-f]{8}(\.tmp)?$")
LEGACY = re.compile(r"^\.checkpoint\.npz\.[A-Za-z0-9_]{8}\.npz$")  # earlier versions' checkpoint temps (no pid)
OTHER_HOST_STALE_S = 86400  # another host's temp is judged by age: no write or dataset publish takes a day
FULL = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only filesystem",
}


class StorageFull(OSError):
    """A write failed for lack of space or quota, or on a read-only filesystem: the message is the one line."""

    def __str__(self) -> str:
        return str(self.strerror)


def host() -> str:
    """This machine's name as a temp name carries it (letters, digits and '-'; at most 40)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def temp_path(path: str | os.PathLike, suffix: str = ".tmp") -> Path:
    """`.<name>.<pid>@<host>.<8 hex><suffix>` beside `path`: whose it is, for `remove_stale_temps`."""
    path = Path(path)
    return path.parent / f".{path.name}.{os.getpid()}@{host()}.{secrets.token_hex(4)}{suffix}"


def write(path: str | os.PathLike, fill: Callable[[BinaryIO], None]) -> None:
    """Write `path` by `fill(binary file)` through a temp file in its folder, fsync, and an atomic rename."""
    path = Path(path)
    tmp = temp_path(path)
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
    """Remove the temps (files, or the dataset cache's folders) left in `folder` by a process that is gone: this
    host's whose pid no longer runs, another host's a day old; and earlier versions' checkpoint temps. Called by
    the process that opens the folder; returns what it removed."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for p in entries:
        try:
            if not _stale(p):
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
        except (OSError, OverflowError):  # gone meanwhile, not ours to remove, or not a pid
            continue
    return removed


def _stale(p: Path) -> bool:
    if LEGACY.match(p.name):
        return p.is_file()
    m = TEMP.match(p.name)
    if m is None:
        return False
    if m["host"] in (None, host()):
        return not alive(int(m["pid"]))
    return time.time() - p.lstat().st_mtime > OTHER_HOST_STALE_S


def free_name(path: Path) -> Path:
    """`path`, or `<stem>-1<suffix>`, `-2`, ...: the first that does not exist (nothing kept is overwritten)."""
    k, candidate = 0, path
    while candidate.exists():
        k += 1
        candidate = path.with_name(f"{path.stem}-{k}{path.suffix}")
    return candidate


def keep_aside(path: str | os.PathLike, why: str) -> Path:
    """Rename an unusable file to `<stem>.<why>-<time><suffix>` beside it (never over another); returns the name."""
    path = Path(path)
    kept = free_name(path.with_name(f"{path.stem}.{why}-{time.strftime('%Y%m%dT%H%M%S')}{path.suffix}"))
    os.replace(path, kept)
    return kept


def alive(pid: int) -> bool:
    """Whether process `pid` of this host still runs (another user's counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True
