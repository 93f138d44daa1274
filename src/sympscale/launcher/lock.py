"""One launcher per sweep folder: an exclusive `flock` on `<sweep>/.launcher/lock`.

Two launchers started on the same sweep folder would both see every job as unfinished and run it twice.
The first takes the lock (and writes who it is into the file); any other fails at once, naming the holder.

The kernel drops a `flock` when its holder dies, however it dies, so a lock file left behind by a dead
launcher never blocks a new one: the file's content is only a note for the error message, never the lock.
Caveat: on NFS, `flock` may be local to one client (older kernels and some mounts), so two launchers on two
nodes sharing a sweep folder over NFS may not see each other's lock; give each node its own `shard` instead.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path


class SweepLocked(RuntimeError):
    """Another live launcher holds the sweep folder."""


class SweepLock:
    """An exclusive, non-blocking lock on a file; `release()` (or process exit) frees it."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> SweepLock:
        """Take the lock or raise SweepLocked naming the holder (host, PID, start time)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise SweepLocked(
                f"sweep folder {self.path.parent.parent} is in use by another launcher ({describe(holder)}); "
                f"wait for it to finish, or stop it, or choose another hydra.sweep.dir"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        note = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": time.time(),
            "started_at": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "command": sys.argv,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(note) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Free the lock (the file stays: removing it would let a third launcher lock a different inode)."""
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> SweepLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> dict:
    try:
        text = os.pread(fd, 1 << 16, 0).decode(errors="replace")
        holder = json.loads(text) if text.strip() else {}
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}


def describe(holder: dict) -> str:
    """'host H, PID P, started T' from a lock note ('unknown' for what it does not say)."""
    if not holder:
        return "host, PID and start time not yet written"
    return (
        f"host {holder.get('host', 'unknown')}, PID {holder.get('pid', 'unknown')}, "
        f"started {holder.get('started_at', 'unknown')}"
    )
