"""One folder per job: resolved config, status, training log, metrics — every file written atomically."""

from __future__ import annotations

import json
import os
import secrets
import time
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


class JobDir:
    """The files of one job. Names are part of the analysis contract (README, DESIGN §3)."""

    CONFIG, METRICS, STATUS, LOG = "config.json", "metrics.json", "status.json", "train_log.jsonl"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._t0 = time.time()

    def write_config(self, cfg: dict) -> None:
        write_json(self.path / self.CONFIG, cfg)

    def write_metrics(self, metrics: dict) -> None:
        write_json(self.path / self.METRICS, metrics)

    def set_status(self, status: str, **extra) -> None:
        rec = {"status": status, "started": self._t0, "updated": time.time(), "pid": os.getpid(), **extra}
        write_json(self.path / self.STATUS, rec)

    def start_log(self) -> None:
        (self.path / self.LOG).write_text("")

    def log(self, record: dict) -> None:
        with open(self.path / self.LOG, "a") as f:
            f.write(json.dumps(record) + "\n")
