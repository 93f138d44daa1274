"""What the launcher writes about jobs: `launcher.json` per job, `launcher_summary.json` per sweep; and the
resume verdict read from them: a job is new, finished, or finished by other code (stale).

`launcher.json` holds the job's status and cause, its resume key (`hook.job_key`), the code that ran it
(`hook.code()`: version and source digest) and its JSON return value. Every file goes through
`sympscale.launcher.jsonfile.write_json` (atomic, the user's umask).
"""

from __future__ import annotations

import logging
from pathlib import Path

from sympscale.atomic import keep_aside
from sympscale.launcher.jsonfile import damage, read_json, write_json
from sympscale.launcher.scheduler import Job
from sympscale.launcher.wire import value_of

log = logging.getLogger(__name__)
RECORD, SUMMARY = "launcher.json", "launcher_summary.json"
STALE = "stale"  # the cause of a finished job that other code computed starts with this word
NO_CODE = "finished before the launcher recorded code versions"


def read(job_dir: Path, keep: bool = True) -> dict | None:
    """The job's `launcher.json`, or None when there is none or it cannot be used (the job counts as new, said in
    one line; a damaged record is kept aside as `launcher.damaged-<time>.json` unless `keep` is False: a dry run
    writes nothing)."""
    path = job_dir / RECORD
    rec, problem = read_json(path)
    if problem == "missing":
        return None
    if problem is None and isinstance(rec, dict):
        return rec
    damaged = damage(problem, rec)
    if keep and damaged:
        log.warning(
            f"{path} cannot be used ({damaged}); kept as {keep_aside(path, 'damaged').name}, the job runs again"
        )
    else:
        log.warning(f"{path} cannot be used ({damaged or problem}); the job runs again")
    return None


def verdict(prior: dict | None, keys: tuple[str, ...], code: dict) -> tuple[str, str | None]:
    """("new", None) | ("finished", None) | ("stale", why): what an earlier run of this job left.

    Finished means recorded done under one of `keys` (the job's key first, then the key an older launcher
    would have written). A finished job is stale when the code that ran it is not `code` (its source digest, or
    the library versions `code` names, differ) or was not recorded.
    """
    if not prior or prior.get("status") != "done" or prior.get("key") not in keys:
        return "new", None
    then, now = prior.get("code"), code.get("source_digest")
    if now is None:  # nothing to compare with
        return "finished", None
    if not isinstance(then, dict) or not then.get("source_digest"):
        return "stale", NO_CODE
    if then["source_digest"] != now:
        version = f"version {then.get('version')}, " if then.get("version") else ""
        return "stale", f"ran other code ({version}source {then['source_digest']}; now {now})"
    libs_then, libs_now = then.get("libraries"), code.get("libraries")
    if isinstance(libs_now, dict) and libs_then != libs_now:  # a record without them: an earlier version's
        if not isinstance(libs_then, dict):
            return "stale", "its library versions were not recorded"
        changed = [f"{k} {libs_then.get(k)} -> {v}" for k, v in libs_now.items() if libs_then.get(k) != v]
        return "stale", f"ran on other libraries ({', '.join(changed)})"
    return "finished", None


def stale_line(stale: list[tuple[Job, str]], root: Path, rerunning: bool, shown: int = 3) -> str:
    """One line on the finished jobs that other code computed: how many, a few folders, why, what to do."""
    names = []
    for job, _ in stale[:shown]:
        try:
            names.append(job.job_dir.relative_to(root).as_posix())
        except ValueError:  # a job folder outside the sweep folder
            names.append(str(job.job_dir))
    more = f" and {len(stale) - shown} more" if len(stale) > shown else ""
    reasons = list(dict.fromkeys(why for _, why in stale))
    reasons = "; ".join(reasons[:2]) + ("; ..." if len(reasons) > 2 else "")
    n = f"{len(stale)} finished job{' is' if len(stale) == 1 else 's are'} stale ({', '.join(names)}{more}: {reasons})"
    if rerunning:
        return f"local_devices: {n}; rerunning them (hydra.launcher.rerun_stale=true)"
    return f"local_devices: {n}; skipped, their old results kept: rerun them with hydra.launcher.rerun_stale=true"


def record_end(job: Job, key: str, code: dict) -> None:
    """After a job's process ended (or could not start): write its launcher.json."""
    record = {k: getattr(job, k) for k in ("status", "cause", "device", "attempts", "overrides")}
    record.update(key=key, code=code, started=job.started, seconds=job.duration, exit_code=job.exit_code)
    record["value"] = value_of(job.result) if job.status == "done" and job.result else None
    write_json(job.job_dir / RECORD, record)


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
