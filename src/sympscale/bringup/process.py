"""Run a command in its own process group, so that a timeout stops it and everything it started."""

from __future__ import annotations

import signal
import subprocess

from sympscale.launcher.process import kill_group


def run_group(argv: list[str], *, timeout: float, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    """subprocess.run with a process group: on timeout the whole group is killed, then TimeoutExpired is raised."""
    proc = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)
