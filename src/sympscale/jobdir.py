"""One folder per job: resolved config, status, training log, metrics — every file written atomically."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from sympscale import atomic
from sympscale.launcher.jsonfile import write_json

__all__ = ["JobDir", "write_json"]


class JobDir:
    """The files of one job. Names are part of the analysis contract (README, DESIGN §3)."""

    CONFIG, METRICS, STATUS, LOG = "config.json", "metrics.json", "status.json", "train_log.jsonl"

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
        rec = {"status": status, "started": self._t0, "updated": time.time(), "pid": os.getpid(), **extra}
        write_json(self.path / self.STATUS, rec)

    def start_log(self) -> None:
        (self.path / self.LOG).write_text("")

    def log(self, record: dict) -> None:
        with open(self.path / self.LOG, "a") as f:
            f.write(json.dumps(record) + "\n")
