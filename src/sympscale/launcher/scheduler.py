"""A queue of jobs over device slots: one fresh process per job, failures isolated, progress printed.

Generic over what a job runs: it only needs a command line, an environment per device, a log file and a
result file. SIGINT/SIGTERM to the parent stop every child (each runs in its own process group).
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path


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
    result: object = None
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    result_path: Path | None = None

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        return (self.finished or time.time()) - self.started

    @property
    def label(self) -> str:
        return " ".join(self.overrides) or "(no overrides)"


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


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
        self.devices = devices
        self.max_retries = max_retries
        self.fail_fast = fail_fast
        self.progress_every = progress_every
        self.echo = echo
        self.poll = poll
        self._stop_signal: int | None = None

    # ----------------------------------------------------------------------------------------------------
    def run(
        self,
        jobs: list[Job],
        command: Callable[[Job], list[str]],
        env_for: Callable[[str], dict],
        on_finish: Callable[[Job, int], None],
    ) -> list[Job]:
        """Run every queued job; `on_finish(job, returncode)` sets job.status / cause / result."""
        queue = deque(sorted((j for j in jobs if j.status == "queued"), key=lambda j: (-j.cost, j.idx)))
        running: dict[tuple[str, int], Job] = {}
        t0, last_progress = time.time(), 0.0
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while queue or running:
                if self._stop_signal is not None:
                    self._stop_all(running, queue, "interrupted")
                    raise SystemExit(128 + self._stop_signal)
                for slot, job in list(running.items()):
                    code = job.proc.poll()
                    if code is None:
                        continue
                    del running[slot]
                    self._finish(job, code, on_finish)
                    if job.status == "failed" and job.attempts <= self.max_retries:
                        self.echo(f"[launcher] retrying #{job.idx} (attempt {job.attempts + 1}): {job.cause}")
                        job.status = "queued"
                        queue.appendleft(job)
                    elif job.status == "failed" and self.fail_fast:
                        self.echo(f"[launcher] fail_fast: #{job.idx} failed, stopping the sweep")
                        self._stop_all(running, queue, "cancelled")
                        return jobs
                for slot in self.slots:
                    if slot not in running and queue:
                        job = queue.popleft()
                        self._start(job, slot[0], command, env_for)
                        running[slot] = job
                now = time.time()
                if now - last_progress >= self.progress_every:
                    self.echo(self.progress_line(jobs, running, t0))
                    last_progress = now
                time.sleep(self.poll)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        return jobs

    def _on_signal(self, signum, frame) -> None:
        self._stop_signal = signum

    def _start(self, job: Job, device: str, command, env_for) -> None:
        job.attempts += 1
        job.status, job.device, job.started, job.finished = "running", device, time.time(), None
        job.log_path.parent.mkdir(parents=True, exist_ok=True)
        if job.result_path.exists():
            job.result_path.unlink()
        with open(job.log_path, "ab") as log:
            job.proc = subprocess.Popen(
                command(job),
                env={**env_for(device), "SYMPSCALE_LAUNCHER_PID": str(os.getpid())},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # own process group: the parent forwards signals to all of it
            )
        self.echo(f"[launcher] start  #{job.idx:<4} on {device:<6} {job.label}")

    def _finish(self, job: Job, code: int, on_finish) -> None:
        job.finished = time.time()
        on_finish(job, code)
        if job.status == "failed" and job.cause is None:
            job.cause = f"killed by {_signal_name(code)}" if code < 0 else f"exited with code {code}"
        word = "done  " if job.status == "done" else "FAILED"
        tail = "" if job.status == "done" else f" — {job.cause} (log: {job.log_path})"
        self.echo(f"[launcher] {word} #{job.idx:<4} on {job.device:<6} {job.duration:7.1f}s {job.label}{tail}")

    def _stop_all(self, running: dict, queue: deque, status: str) -> None:
        procs = [j.proc for j in running.values()]
        for p in procs:
            _kill_group(p, signal.SIGTERM)
        deadline = time.time() + 10
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                _kill_group(p, signal.SIGKILL)
                p.wait()
        for job in running.values():
            job.status, job.finished, job.cause = status, time.time(), f"{status} by the launcher"
        for job in queue:
            job.status, job.cause = "cancelled" if status == "cancelled" else "queued", None
        running.clear()

    # ----------------------------------------------------------------------------------------------------
    def progress_line(self, jobs: list[Job], running: dict, t0: float) -> str:
        counts = {s: sum(j.status == s for j in jobs) for s in ("queued", "running", "done", "failed", "skipped")}
        finished = [j.duration for j in jobs if j.status in ("done", "failed") and j.duration]
        eta = ""
        if finished:
            remaining = counts["queued"] + 0.5 * counts["running"]
            eta = f" | ETA {_fmt(sum(finished) / len(finished) * remaining / max(len(self.slots), 1))}"
        occ = " ".join(
            f"{d}:" + (",".join(f"#{j.idx}" for j in running.values() if j.device == d) or "-") for d in self.devices
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
        cause = f"  <- {j.cause}; log {j.log_path}" if j.status in ("failed", "interrupted") else ""
        rows.append(f"{j.idx:>4}  {j.status:<11} {j.device or '-':<8} {t:>8}  {j.label}{cause}")
    return "\n".join(rows)
