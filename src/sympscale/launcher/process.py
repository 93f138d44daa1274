"""One job's process: started in its own session with its log, its spec on stdin and a private result file.

The result file is an unlinked temporary file that only the launcher and the job hold (passed as a file
descriptor, named by SYMPSCALE_RESULT_FD): nothing in the sweep folder carries a job's result.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import IO


class StartError(RuntimeError):
    """A job could not be started; the message is the cause the job is failed with."""


def spawn(argv: list[str], env: dict, *, job_dir: Path, log_path: Path, stdin: bytes | None):
    """Start a job; returns (process, result file). StartError names an unwritable job folder."""
    log = open_log(job_dir, log_path)
    result = None
    try:
        result = tempfile.TemporaryFile(prefix="sympscale-result-")
        fd = result.fileno()
        proc = subprocess.Popen(
            argv,
            env={**env, "SYMPSCALE_LAUNCHER_PID": str(os.getpid()), "SYMPSCALE_RESULT_FD": str(fd)},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
            pass_fds=(fd,),
            start_new_session=True,  # own process group: the parent forwards signals to all of it
        )
    except BaseException:
        if result is not None:
            result.close()
        raise
    finally:
        log.close()
    if stdin is not None:
        threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True).start()
    return proc, result


def open_log(job_dir: Path, log_path: Path):
    """The job's log file, opened for appending; StartError naming the folder when it cannot be written."""
    try:
        job_dir.mkdir(parents=True, exist_ok=True)
        return open(log_path, "ab")
    except OSError as e:
        if job_dir.exists() and not job_dir.is_dir():
            why = "a file of that name is in the way"
        else:
            why = e.strerror or str(e)
        raise StartError(f"cannot write job folder {job_dir}: {why}") from e


def _feed(pipe: IO[bytes], data: bytes) -> None:
    """Write the job spec to a child's stdin (in a thread: a spec larger than the pipe must not block the queue)."""
    try:
        pipe.write(data)
    except OSError:  # the child died first; its exit status tells why
        pass
    finally:
        try:
            pipe.close()
        except OSError:
            pass


def kill_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def signal_name(code: int) -> str:
    """'SIGKILL' for a return code of -9."""
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"
