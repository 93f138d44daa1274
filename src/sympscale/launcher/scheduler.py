"""A queue of jobs over device slots: one fresh process per job, failures isolated, progress printed.

Generic over what a job runs: it needs a command line, an environment per device, the bytes to write to the
job's stdin, and a log file. The job writes its result record (`sympscale.launcher.wire`) to the descriptor
named by SYMPSCALE_RESULT_FD: an unlinked temporary file only the launcher and that job can reach.

Nothing one job does can stop the others: an error while starting a job (an unwritable job folder, a task
that cannot be shipped) or while recording its end fails that job, with the reason, and the queue goes on.
SIGINT/SIGTERM to the parent stop every child (each runs in its own process group); the jobs it killed are
'interrupted', those never started 'cancelled', and `run` raises SystemExit(128 + signal).
"""

from __future__ import annotations

import dataclasses
import math
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO

from sympscale.launcher.bundles import is_seed
from sympscale.launcher.process import StartError, kill_group, open_log, signal_name, spawn
from sympscale.launcher.wire import decode_result


@dataclasses.dataclass
class Job:
    idx: int
    overrides: list[str]
    job_dir: Path
    cost: float = 0.0  # larger runs first; 0 when unknown
    status: str = "queued"  # queued | running | done | failed | skipped | cancelled | interrupted
    device: str | None = None
    attempts: int = 0
    started: float | None = None
    finished: float | None = None
    cause: str | None = None
    result: dict | None = None  # the job's result record (wire.decode_result), when it wrote one
    exit_code: int | None = None
    stopped: str | None = None  # why the launcher killed it, when it did
    stopped_as: str = "interrupted"  # the status a job the launcher killed gets (fail_fast: cancelled)
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    result_file: IO[bytes] | None = None
    members: list[Job] | None = None  # a bundle: the jobs its one process runs (each keeps its own record)

    @property
    def ref(self) -> str:
        """How lines name it: #idx, or a bundle's members #a,b,c."""
        return f"#{self.idx}" if not self.members else "#" + ",".join(str(m.idx) for m in self.members)

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        return (self.finished or time.time()) - self.started

    @property
    def label(self) -> str:
        return " ".join(self.overrides) or "(no overrides)"


def bundle_unit(members: list[Job]) -> Job:
    """One process for several jobs (`sympscale.launcher.bundles`): its folder and log are the first member's."""
    first = members[0]
    seeds = [next((o.split("=", 1)[1] for o in m.overrides if is_seed(o)), "?") for m in members]
    shared = [o for o in first.overrides if not is_seed(o)]
    unit = Job(
        idx=first.idx,
        overrides=[*shared, f"seed={','.join(seeds)}"],
        job_dir=first.job_dir,
        cost=sum(m.cost for m in members),
        members=list(members),
    )
    unit.log_path = first.log_path
    for m in members:
        m.log_path = unit.log_path
    return unit


class Scheduler:
    def __init__(
        self,
        devices: list[str],
        *,
        jobs_per_device: int = 1,
        max_retries: int = 0,
        fail_fast: bool = False,
        progress_every: float = 30.0,
        echo: Callable[[str], None] = print,
        poll: float = 0.1,
    ):
        self.slots = [(d, k) for d in devices for k in range(jobs_per_device)]
        if not self.slots:
            raise ValueError(
                f"no worker slots: devices={list(devices)!r}, jobs_per_device={jobs_per_device!r}; "
                f"need at least one device and jobs_per_device >= 1"
            )
        self.devices = devices
        self.max_retries = max_retries
        self.fail_fast = fail_fast
        self.progress_every = progress_every
        self.echo = echo
        self.poll = poll
        self.stop_signal: int | None = None
        self.first_failure: Job | None = None  # the job that failed first (after its retries)

    # ----------------------------------------------------------------------------------------------------
    def run(
        self,
        jobs: list[Job],
        command: Callable[[Job], list[str]],
        env_for: Callable[[str], dict],
        on_finish: Callable[[Job], None],
        stdin_for: Callable[[Job], bytes | None] = lambda job: None,
    ) -> list[Job]:
        """Run every queued job. `on_finish(job)` records a job's final status (it may raise: the job fails)."""
        queue = deque(sorted((j for j in jobs if j.status == "queued"), key=lambda j: (-j.cost, j.idx)))
        running: dict[tuple[str, int], Job] = {}
        t0, last_progress = time.time(), 0.0
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while queue or running:
                if self.stop_signal is not None:
                    name = signal.Signals(self.stop_signal).name
                    self._stop_all(running, queue, "interrupted", f"launcher stopped by {name}", on_finish)
                    raise SystemExit(128 + self.stop_signal)
                for slot, job in list(running.items()):
                    code = job.proc.poll()
                    if code is None:
                        continue
                    del running[slot]
                    self._finish(job, code, on_finish)
                    if self._settle(job, queue, running, on_finish):
                        return jobs
                for slot in self.slots:
                    while slot not in running and queue and self.stop_signal is None:
                        job = queue.popleft()
                        if self._start(job, slot[0], command, env_for, stdin_for, on_finish):
                            running[slot] = job
                        elif self._settle(job, queue, running, on_finish):
                            return jobs
                now = time.time()
                if now - last_progress >= self.progress_every:
                    self.echo(self.progress_line(jobs, running, t0))
                    last_progress = now
                time.sleep(self.poll)
        except BaseException as e:  # an error of the launcher itself: no job may outlive it unrecorded
            if running or queue:
                self._stop_all(running, queue, "interrupted", f"launcher failed: {type(e).__name__}: {e}", on_finish)
            raise
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        return jobs

    def _on_signal(self, signum, frame) -> None:
        self.stop_signal = signum

    def _settle(self, job: Job, queue: deque, running: dict, on_finish) -> bool:
        """After a job ended: retry it, or (fail_fast) stop the sweep. True when the sweep must end now."""
        if job.status != "failed":
            return False
        if job.attempts <= self.max_retries:
            if job.members:  # only the members that did not finish run again
                job.members = [m for m in job.members if m.status != "done"]
            self.echo(f"[launcher] retrying {job.ref} (attempt {job.attempts + 1}): {job.cause}")
            job.status = "queued"
            queue.appendleft(job)
            return False
        if self.first_failure is None:
            self.first_failure = next((m for m in job.members or [] if m.status == "failed"), job)
        if self.fail_fast:
            self.echo(f"[launcher] fail_fast: {job.ref} failed, stopping the sweep")
            self._stop_all(running, queue, "cancelled", f"cancelled by fail_fast after {job.ref} failed", on_finish)
            return True
        return False

    # ----------------------------------------------------------------------------------------------------
    def _start(self, job: Job, device: str, command, env_for, stdin_for, on_finish) -> bool:
        """Start a job's process; on any error the job is failed with the reason (and False returned)."""
        job.attempts += 1
        job.status, job.device, job.started, job.finished = "running", device, time.time(), None
        job.cause, job.result, job.exit_code, job.stopped, job.proc = None, None, None, None, None
        for m in job.members or []:
            m.attempts += 1
            m.status, m.device, m.started, m.finished = "running", device, job.started, None
        try:
            try:
                data = stdin_for(job)
            except Exception as e:
                raise StartError(f"could not prepare the job: {type(e).__name__}: {e}") from e
            job.proc, job.result_file = spawn(
                command(job), env_for(device), job_dir=job.job_dir, log_path=job.log_path, stdin=data
            )
        except Exception as e:
            job.status, job.finished = "failed", time.time()
            job.cause = str(e) if isinstance(e, StartError) else f"could not start the job: {type(e).__name__}: {e}"
            self._close(job)
            self._record(job, on_finish, quiet=True)  # the folder may be what failed: keep the first cause
            self.echo(f"[launcher] FAILED {job.ref:<5} on {device:<6} {job.label} — {job.cause}")
            return False
        self._point_to_bundle_log(job)
        self.echo(f"[launcher] start  {job.ref:<5} on {device:<6} {job.label}")
        return True

    @staticmethod
    def _point_to_bundle_log(unit: Job) -> None:
        """Each member folder's launcher.log says where its bundle's output goes (appended: nothing is lost)."""
        for m in (unit.members or [])[1:]:
            try:
                with open_log(m.job_dir, m.job_dir / "launcher.log") as f:
                    f.write(
                        f"[launcher] {time.ctime()}: runs in bundle {unit.ref}; output in {unit.log_path}\n".encode()
                    )
            except StartError:  # the member's own set-up in the bundle reports its folder
                pass

    def _finish(self, job: Job, code: int, on_finish) -> None:
        """Read what a job left behind, decide its status, record it, print one line."""
        job.finished, job.exit_code = time.time(), code
        try:
            job.result_file.seek(0)
            job.result = decode_result(job.result_file.read())
            unreadable = None
        except Exception as e:
            job.result, unreadable = None, str(e)
        finally:
            self._close(job)
        if job.result is not None and job.result["status"] == "COMPLETED":
            job.status, job.cause = "done", None
        elif job.stopped:
            job.status, job.cause = job.stopped_as, job.stopped
        else:
            job.status = "failed"
            if job.result is not None:
                job.cause = job.result.get("error") or "the job reported a failure without a reason"
            elif code < 0:
                job.cause = f"killed by {signal_name(code)}"
            elif code != 0:
                job.cause = f"exited with code {code}"
            else:
                job.cause = f"exited with code 0 but left no result ({unreadable})"
        self._record(job, on_finish)
        word = {"done": "done  ", "failed": "FAILED"}.get(job.status, job.status.upper())
        tail = "" if job.status == "done" else f" — {job.cause} (log: {job.log_path})"
        self.echo(f"[launcher] {word} {job.ref:<5} on {job.device:<6} {job.duration:7.1f}s {job.label}{tail}")

    def _record(self, job: Job, on_finish, quiet: bool = False) -> None:
        if job.members:
            self._record_members(job, on_finish, quiet)
            return
        try:
            on_finish(job)
        except Exception as e:
            if quiet:
                return
            reason = f"could not record the job's end: {type(e).__name__}: {e}"
            if job.status == "done":
                job.status, job.cause = "failed", reason
            else:
                job.cause = f"{job.cause}; {reason}" if job.cause else reason

    def _record_members(self, unit: Job, on_finish, quiet: bool) -> None:
        """A bundle ended: each member's status from its own result record (the bundle's when it left none),
        recorded as a job of its own; the bundle is done when every member is."""
        records = (unit.result or {}).get("members") or []
        for k, m in enumerate(unit.members):
            rec = records[k] if k < len(records) else None
            m.device, m.started, m.finished, m.exit_code, m.result = (
                unit.device,
                unit.started,
                unit.finished,
                unit.exit_code,
                rec,
            )
            if rec is not None and rec["status"] == "COMPLETED":
                m.status, m.cause = "done", None
            elif rec is not None and not unit.stopped:
                m.status, m.cause = "failed", rec.get("error") or "the job reported a failure without a reason"
            elif unit.status == "done":  # the bundle's record lacks this member
                m.status, m.cause = "failed", "the bundle's result has no record of this job"
            else:
                m.status, m.cause = unit.status, unit.cause
            self._record(m, on_finish, quiet)
        bad = [m for m in unit.members if m.status != "done"]
        if bad:
            unit.status = unit.stopped_as if unit.stopped else "failed"
            unit.cause = "; ".join(f"#{m.idx}: {m.cause}" for m in bad)

    @staticmethod
    def _close(job: Job) -> None:
        if job.result_file is not None:
            job.result_file.close()
            job.result_file = None

    def _stop_all(self, running: dict, queue: deque, status: str, reason: str, on_finish) -> None:
        """Stop every running job (SIGTERM, then SIGKILL after 10 s); record them and the never-started ones."""
        jobs = list(running.values())
        for job in jobs:
            job.stopped, job.stopped_as = reason, status
            kill_group(job.proc, signal.SIGTERM)
        deadline = time.time() + 10
        for job in jobs:
            try:
                job.proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                kill_group(job.proc, signal.SIGKILL)
                job.proc.wait()
        running.clear()
        for job in jobs:
            self._finish(job, job.proc.returncode, on_finish)
        for job in queue:
            for m in [job, *(job.members or [])]:
                m.status, m.cause = "cancelled", f"not started: {reason}"
        queue.clear()

    # ----------------------------------------------------------------------------------------------------
    def progress_line(self, jobs: list[Job], running: dict, t0: float) -> str:
        members = [m for j in jobs for m in (j.members or [j])]  # a bundle counts its members
        counts = {s: sum(j.status == s for j in members) for s in ("queued", "running", "done", "failed", "skipped")}
        finished = [j.duration for j in jobs if j.status in ("done", "failed") and j.duration]  # processes
        eta = ""
        if finished:
            remaining = sum(j.status == "queued" for j in jobs) + 0.5 * len(running)
            eta = f" | ETA {_fmt(sum(finished) / len(finished) * remaining / max(len(self.slots), 1))}"
        occ = " ".join(
            f"{d}:" + (",".join(j.ref for j in running.values() if j.device == d) or "-") for d in self.devices
        )
        return (
            f"[launcher] {_fmt(time.time() - t0)} | queued {counts['queued']} running {counts['running']} "
            f"done {counts['done']} failed {counts['failed']} skipped {counts['skipped']} | {occ}{eta}"
        )


def _fmt(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def summary_table(jobs: list[Job]) -> str:
    rows = [f"{'#':>4}  {'status':<11} {'device':<8} {'time':>8}  job"]
    for j in sorted(jobs, key=lambda j: j.idx):
        t = f"{j.duration:.1f}s" if j.duration is not None else "-"
        cause = ""
        if j.status in ("failed", "interrupted", "cancelled") and j.cause:
            cause = f"  <- {j.cause}" + (f"; log {j.log_path}" if j.attempts else "")
        elif j.status == "skipped" and j.cause and j.cause.startswith("stale"):  # records.STALE
            cause = f"  <- {j.cause}"
        rows.append(f"{j.idx:>4}  {j.status:<11} {j.device or '-':<8} {t:>8}  {j.label}{cause}")
    return "\n".join(rows)


def bundle_table(units: list[Job], setting, estimates: dict[int, dict | None] | None = None, slots: int = 1) -> str:
    """The processes a sweep will start: each bundle with its members, and the predicted device time (from the
    app's estimates per process, `Hook.estimate`, when it gives them)."""
    queued = [u for u in units if u.status == "queued"]
    bundles = [u for u in queued if u.members]
    estimates = estimates or {}

    def when(u: Job) -> str:
        rec = estimates.get(u.idx)
        return "" if not rec or rec.get("seconds") is None else f"  ~{_fmt(rec['seconds'])}"

    lines = [
        f"bundles (hydra.launcher.bundle={setting}): {len(bundles)} processes for "
        f"{sum(len(b.members) for b in bundles)} jobs, {len(queued) - len(bundles)} jobs alone",
        *(f"  {b.ref:<12} {b.label}{when(b)}" for b in bundles),
    ]
    recs = [estimates.get(u.idx) for u in queued]
    if not recs:
        return "\n".join(lines)
    if any(r is None for r in recs):
        lines.append("predicted device time: unknown (the application gives no estimate)")
    elif any(r.get("seconds") is None for r in recs):
        lines.append(f"predicted device time: unknown ({next(r for r in recs if r.get('seconds') is None)['basis']})")
    else:
        total = sum(r["seconds"] for r in recs)
        lines.append(
            f"predicted device time: {total / 3600:.2f} device-hours in {len(queued)} processes, ~{_fmt(total / max(slots, 1))} "
            f"on {slots} slot(s) if they stay busy; basis: {recs[0]['basis']}"
        )
    return "\n".join(lines)
