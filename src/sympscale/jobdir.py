"""One folder per job: resolved config, status, training log, metrics — every file written atomically."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from sympscale import atomic
from sympscale.launcher.jsonfile import damage, read_json, write_json

__all__ = ["JobDir", "write_json"]


class JobDir:
    """The files of one job. Names are part of the analysis contract (README, DESIGN §3)."""

    CONFIG, METRICS, STATUS, LOG = "config.json", "metrics.json", "status.json", "train_log.jsonl"
    PARAMS = "params.npz"  # a finished job's trained parameters

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        atomic.remove_stale_temps(self.path)  # half-written files of a process killed mid-write
        self._t0 = time.time()

    def write_config(self, cfg: dict) -> None:
        write_json(self.path / self.CONFIG, cfg)

    def write_metrics(self, metrics: dict) -> None:
        write_json(self.path / self.METRICS, metrics)

    def set_status(self, status: str, **extra) -> None:
        rec = {"status": status, "started": self._t0, "updated": time.time(), "pid": os.getpid(), "host": atomic.host()}
        write_json(self.path / self.STATUS, {**rec, **extra})

    def start_log(self) -> None:
        (self.path / self.LOG).write_text("")

    def log(self, record: dict) -> None:
        with open(self.path / self.LOG, "a") as f:
            f.write(json.dumps(record) + "\n")


def orphaned(status: object) -> str | None:
    """Why a status record left 'running' belongs to a process that is gone ('its process <pid> on <host> is
    gone'), or None: not running, another host's (the launcher's record judges those), or its process still runs.
    A job killed, or one whose last status could not be written (a full disk), leaves such a record."""
    if not isinstance(status, dict) or status.get("status") != "running":
        return None
    pid, host = status.get("pid"), status.get("host")
    if host != atomic.host() or not isinstance(pid, int) or isinstance(pid, bool) or atomic.alive(pid):
        return None
    return f"its process {pid} on {host} is gone"


def damaged(path: Path) -> str | None:
    """Why a JSON record the project wrote cannot be what it wrote (empty, not JSON, not an object), or None."""
    value, problem = read_json(path)
    return damage(problem, value)


def npz_damaged(path: Path) -> str | None:
    """Why an .npz the project wrote cannot be read back whole (every array read, each member's CRC checked), or
    None (also when it is missing, or unreadable for permissions: that is not damage)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            for name in z.files:
                z[name]
    except (FileNotFoundError, PermissionError, MemoryError):  # not the file's damage (said elsewhere if it matters)
        return None
    except Exception as e:  # noqa: BLE001  (any failure to parse: zipfile raises even NotImplementedError)
        return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else 'unreadable'}"[:160]
    return None


def previous(path: Path) -> list[str]:
    """What a rerun finds of an earlier run in `path`, one line each: its metrics.json or status.json damaged
    (kept aside, never overwritten: `atomic.keep_aside`), or a status left 'running' by a process that is gone."""
    lines = []
    for name in (JobDir.METRICS, JobDir.STATUS):
        why = damaged(path / name)
        if why:
            kept = atomic.keep_aside(path / name, "damaged")
            lines.append(f"WARNING: {path / name} cannot be used ({why}); kept as {kept.name}, the job runs again")
    gone = orphaned(read_json(path / JobDir.STATUS)[0])
    if gone:
        lines.append(f"the earlier run in {path} was interrupted ({gone}): it resumes from its checkpoint, if any")
    return lines
