"""SympScale's launcher hook: what the generic `local_devices` launcher may know of a SympScale job.

The task function's module names it (`LAUNCHER_HOOK = sympscale.launcher_hook` in `sympscale.train`); the
interface is documented in `sympscale.launcher.hook` and in the README's launcher section:

- `cost`: steps x horizon x batch x D x width, so the longest jobs start first;
- `job_key`: `sympscale.identity.digest` — where a job logs, caches or checkpoints does not count;
- `code`: `sympscale.provenance.record()` — the package version and a digest of its source, so a rerun after
  a code change lists the finished jobs that older code computed (stale) instead of keeping them silently;
- `result`: the job's own `status.json` must agree that it is done, and a status a killed job left "running"
  is corrected to the launcher's verdict;
- `estimate`: the device time of jobs and seed bundles from measured training steps (`python -m
  sympscale.estimate`, one process of its own for the whole dry run);
- `describe`: each job's width, parameter count, increment rank and floor (`python -m sympscale.describe`).

Imported by the launcher's process, which must never initialise JAX: nothing here imports it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from sympscale import atomic, identity, provenance
from sympscale.estimate import step_key
from sympscale.jobdir import JobDir, damaged, npz_damaged, write_json
from sympscale.launcher.jsonfile import read_json

log = logging.getLogger(__name__)


def cost(task_cfg: Mapping) -> float:
    """Relative cost of a job (0 when its config lacks a factor: it then runs after the sized ones)."""
    try:
        t = task_cfg["train"]
        return float(t["steps"]) * t["horizon"] * t["batch_size"] * task_cfg["D"] * task_cfg["capacity"]["width"]
    except (KeyError, TypeError, ValueError) as e:
        log.debug(f"job cost unknown ({type(e).__name__}: {e}); it is ordered as 0")
        return 0.0


ESTIMATE_TIMEOUT = 600  # seconds per distinct training step: a compile of the largest preset on a GPU takes minutes
DESCRIBE_TIMEOUT = 900  # seconds for the job descriptions (shapes and arithmetic; floors from cached datasets)


def estimate(requests: list[tuple[Mapping, int]], env: Mapping[str, str] | None = None) -> list[dict]:
    """Predicted device seconds of each (job config, seeds) — a job or a bundle of `seeds` — measured in one
    process (`sympscale.estimate`) with the environment `env` (the launcher's: that of a job on the first planned
    device, so a CPU sweep is timed on the CPU, and a GPU sweep on the GPU its jobs get; default: this process's);
    seconds None where the measurement could not run (the basis says why). Configurations whose training step is
    the same program (a GRU on toda and on fput at one D) are measured once."""
    keys = [step_key(cfg, seeds) for cfg, seeds in requests]
    distinct = dict(zip(keys, requests, strict=True))
    answers = _measure(list(distinct.values()), os.environ if env is None else env) if distinct else []
    by_key = dict(zip(distinct, answers, strict=True))
    return [dict(by_key[k]) for k in keys]


def _measure(requests: list[tuple[Mapping, int]], env: Mapping[str, str]) -> list[dict]:
    """One `sympscale.estimate` process for all `requests`, its answers read as it printed them (each with the index
    of its request): those it did not give (it failed, or ran out of time) are unknown, with the reason."""
    request = json.dumps({"requests": [{"config": dict(c), "seeds": n} for c, n in requests]}, default=str)
    cmd = [sys.executable, "-m", "sympscale.estimate"]
    env = {**env, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}  # a running sweep may share the device
    limit = ESTIMATE_TIMEOUT * len(requests)
    try:
        out = subprocess.run(cmd, input=request, capture_output=True, text=True, timeout=limit, env=env)
        printed, why = out.stdout, None
        if out.returncode:
            why = (out.stderr.strip().splitlines() or [f"exit status {out.returncode}"])[-1][:300]
    except subprocess.TimeoutExpired as e:
        printed = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout or ""
        why = f"the measured steps took over {limit} s ({ESTIMATE_TIMEOUT} s each)"
    answers = [{"seconds": None, "basis": f"unavailable: {why or 'no answer'}"}] * len(requests)
    for line in printed.splitlines():
        try:  # each answer names its request: a line another library printed (or garbled) moves nothing
            said = json.loads(line[line.find('{"index"') :]) if '{"index"' in line else None
            i = said["index"] if isinstance(said, dict) else None
            if isinstance(i, int) and 0 <= i < len(requests) and isinstance(said["estimate"], dict):
                answers[i] = said["estimate"]
        except (ValueError, KeyError, TypeError):
            continue
    return answers


def describe(task_cfgs: list[Mapping]) -> list[str]:
    """Each job's potential width, parameter count, increment rank and (dataset cached) floor, for the dry run
    (`python -m sympscale.describe`, one process for all of them)."""
    request = json.dumps({"configs": [dict(c) for c in task_cfgs]}, default=str)
    cmd = [sys.executable, "-m", "sympscale.describe"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}  # shapes and arithmetic only: no device needed
    try:
        out = subprocess.run(cmd, input=request, capture_output=True, text=True, timeout=DESCRIBE_TIMEOUT, env=env)
        lines = json.loads(out.stdout.strip().splitlines()[-1])["lines"]
    except (subprocess.TimeoutExpired, ValueError, IndexError, KeyError) as e:
        return [f"not described ({type(e).__name__})"] * len(task_cfgs)
    return [str(x) for x in lines]


def job_key(task_cfg: Mapping) -> str:
    """What the job computes (`sympscale.identity`)."""
    return identity.digest(task_cfg)


def code() -> dict:
    """The code jobs run now: package version and source digest (`sympscale.provenance`)."""
    return provenance.record()


def result(job_dir: Path, status: str, cause: str | None) -> tuple[str, str | None]:
    """Reconcile the job's `status.json` with the launcher's verdict; returns the status and cause to record.

    A job the launcher saw finish whose status.json is missing counts as done (a task that keeps no status);
    one whose status.json says anything but done is not done. A status a killed job left "running" becomes
    "interrupted" (the launcher stopped it) or "failed", with the launcher's cause, in `JobDir.set_status`'s
    format. A job said done whose metrics.json or params.npz is damaged is not done: the file is kept aside and
    the job runs again; one whose status.json alone is damaged keeps its result (the status is restored from
    metrics.json, the damaged one kept aside).
    """
    path = job_dir / JobDir.STATUS
    rec, problem = read_json(path)
    if problem == "missing":
        return status, cause
    if status == "done":
        lost = _damaged_result(job_dir)
        if lost:
            return "failed", lost
    if problem is not None or not isinstance(rec, dict):
        if status != "done":
            return status, cause
        return _restored(path, problem or "not a record")
    written = rec.get("status")
    if written != "running":
        if status == "done" and written != "done":
            return "failed", f"the task returned but its {JobDir.STATUS} says {written!r}"
        return status, cause
    if status == "done":
        status, cause = "failed", f"the task returned but its {JobDir.STATUS} still says 'running'"
    settled = "interrupted" if status in ("interrupted", "cancelled") else "failed"
    rec.update(status=settled, updated=time.time(), cause=cause)
    if settled == "failed":
        rec["error"] = cause  # the key the pipeline itself uses for a failure
    write_json(path, rec)
    return status, cause


def _damaged_result(job_dir: Path) -> str | None:
    """Why a job said done has no usable result (its metrics.json or params.npz damaged, kept aside; said in one
    line), or None."""
    for name, why in (
        (JobDir.METRICS, damaged(job_dir / JobDir.METRICS)),
        (JobDir.PARAMS, npz_damaged(job_dir / JobDir.PARAMS)),
    ):
        if why:
            kept = atomic.keep_aside(job_dir / name, "damaged")
            line = f"{job_dir / name} cannot be used ({why}); kept as {kept.name}, the job runs again"
            log.warning(line)
            return line
    return None


def _restored(path: Path, problem: str) -> tuple[str, str | None]:
    """A finished job's damaged status.json: kept aside and rewritten from its metrics.json (which was read whole)."""
    kept = atomic.keep_aside(path, "damaged")
    metrics, missing = read_json(path.parent / JobDir.METRICS)
    if missing:
        line = f"{path} cannot be used ({problem}) and there is no {JobDir.METRICS}; kept as {kept.name}, the job runs again"
        log.warning(line)
        return "failed", line
    write_json(path, {"status": "done", "outcome": metrics.get("status"), "restored_from": JobDir.METRICS})
    log.warning(f"{path} cannot be used ({problem}); kept as {kept.name} and restored from {JobDir.METRICS}")
    return "done", None
