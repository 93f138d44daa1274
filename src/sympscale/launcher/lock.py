"""One launcher per sweep folder: an exclusive `flock` on `<sweep>/.launcher/lock`.

Two launchers started on the same sweep folder would both see every job as unfinished and run it twice.
The first takes the lock (and writes who it is into the file); any other fails at once, naming the holder.
A node array's shares run side by side (`own`): each holds the sweep's lock shared and its share's own lock
exclusively, so a launcher of the whole grid is refused while any share runs, and a share while the whole grid
runs (either would run the other's jobs beside it).

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
    """A non-blocking lock on a file, exclusive (its holder's note written into it) or `shared`; `release()` (or
    process exit) frees it."""

    def __init__(self, path: str | os.PathLike, shared: bool = False):
        self.path, self.shared = Path(path), shared
        self._fd: int | None = None

    def acquire(self) -> SweepLock:
        """Take the lock or raise SweepLocked naming the holder (host, PID, start time), or the shares holding it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            why = self._holders(fd)
            os.close(fd)
            raise SweepLocked(
                f"sweep folder {self.path.parent.parent} is in use by {why}; "
                f"wait for it to finish, or stop it, or choose another hydra.sweep.dir"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        if not self.shared:
            self._write_note()
        return self

    def _holders(self, fd: int) -> str:
        """Who holds the lock this process could not take: shared holders only (node-array shares; the note is
        then a past holder's), or the exclusive holder its note names."""
        if not self.shared:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                return (
                    "the launchers of node-array shares of it (hydra.launcher.shard), whose jobs this one would run too"
                )
            except BlockingIOError:
                pass
        return f"another launcher ({describe(_read_holder(fd))})"

    def _write_note(self) -> None:
        fd = self._fd
        note = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": time.time(),
            "started_at": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "command": sys.argv,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(note) + "\n").encode(), 0)

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


def own(sweep_dir: Path, shard: tuple[int, int] | None) -> list[SweepLock]:
    """Take ownership of a sweep folder for the whole grid (its lock, exclusive) or for one share of a node array
    (the sweep's lock shared, the share's own exclusive); raises SweepLocked. Give them up with `release`."""
    from sympscale.launcher.records import shard_suffix

    work = Path(sweep_dir) / ".launcher"
    if shard is None:
        return [SweepLock(work / "lock").acquire()]
    whole = SweepLock(work / "lock", shared=True).acquire()
    try:
        return [whole, SweepLock(work / f"lock{shard_suffix(shard)}").acquire()]
    except BaseException:
        whole.release()
        raise


def release(locks: list[SweepLock]) -> None:
    """Give up what `own` took, in reverse order."""
    for lock in reversed(locks):
        lock.release()


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
