"""What the launcher writes about jobs: `launcher.json` per job, `launcher_summary.json` per sweep, and the
correction of a `status.json` a killed job left claiming "running". Also the resume test that reads them.

Every file goes through `sympscale.jobdir.write_json` (atomic, the user's umask).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from sympscale.jobdir import JobDir, write_json
from sympscale.launcher.scheduler import Job

RECORD, SUMMARY = "launcher.json", "launcher_summary.json"


def finished(job_dir: Path, key: str) -> bool:
    """Finished earlier with the same key, and (for SympScale jobs) its own status file says done."""
    status, marker = job_dir / JobDir.STATUS, job_dir / RECORD
    try:
        rec = json.loads(marker.read_text()) if marker.exists() else {}
        if rec.get("status") != "done" or rec.get("key") != key:
            return False
        return not status.exists() or json.loads(status.read_text()).get("status") == "done"
    except (OSError, ValueError, AttributeError):
        return False


def record_end(job: Job, key: str) -> None:
    """After a job's process ended (or could not start): settle its status.json, then write launcher.json."""
    settle_status_file(job)
    record = {k: getattr(job, k) for k in ("status", "cause", "device", "attempts", "overrides")}
    record.update(key=key, started=job.started, seconds=job.duration, exit_code=job.exit_code)
    write_json(job.job_dir / RECORD, record)


def settle_status_file(job: Job) -> None:
    """A job that ended must not stay 'running' in its status.json (format of `JobDir.set_status`).

    Rewritten only when the job left it 'running' (a job killed by a signal writes nothing more):
    'interrupted' when the launcher stopped it, 'failed' otherwise, with the launcher's cause
    (e.g. "killed by SIGKILL"). A task that returned but left 'running' did not finish its own record: the
    job is failed (launcher and status file agree, and a rerun runs it again).
    """
    path = job.job_dir / JobDir.STATUS
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(rec, dict) or rec.get("status") != "running":
        return
    if job.status == "done":
        job.status, job.cause = "failed", "the task returned but its status.json still says 'running'"
    status = "interrupted" if job.status in ("interrupted", "cancelled") else "failed"
    rec.update(status=status, updated=time.time(), cause=job.cause, exit_code=job.exit_code)
    if status == "failed":
        rec["error"] = job.cause  # the key the pipeline itself uses for a failure
    write_json(path, rec)


def shard_suffix(shard: tuple[int, int] | None) -> str:
    """'' for a whole grid; '.shard<i>of<n>' for one node's share (a node array's tasks share the sweep dir)."""
    return "" if shard is None else f".shard{shard[0]}of{shard[1]}"


def write_summary(
    sweep_dir: Path, jobs: list[Job], platform: str, devices: list[str], shard: tuple[int, int] | None = None
) -> None:
    """`launcher_summary.json` (one shard of a node array: `launcher_summary.shard<i>of<n>.json`): one row per job
    of this launcher, with its final status and cause."""
    rows = [
        {
            "idx": j.idx,
            "overrides": j.overrides,
            "status": j.status,
            "device": j.device,
            "seconds": j.duration,
            "attempts": j.attempts,
            "cause": j.cause,
            "exit_code": j.exit_code,
            "job_dir": str(j.job_dir),
            "log": str(j.log_path),
        }
        for j in sorted(jobs, key=lambda j: j.idx)
    ]
    name = SUMMARY.replace(".json", f"{shard_suffix(shard)}.json")
    write_json(sweep_dir / name, {"platform": platform, "devices": list(devices), "jobs": rows})
