"""Child-process entry: `python -m sympscale.launcher.child PAYLOAD RESULT`.

Runs one Hydra job with Hydra's own `run_job` (so output dirs, .hydra/ files and logging behave as with any
launcher) and writes the pickled JobReturn to RESULT. A task that raises gives a FAILED JobReturn whose value
carries the formatted traceback; a hard crash leaves no RESULT, and the parent reports the exit status.
"""

from __future__ import annotations

import os
import pickle
import sys
import traceback


class JobFailure(RuntimeError):
    """A job's exception, carried across the process boundary as text."""


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when the launcher dies, even by SIGKILL (no orphaned GPU jobs).

    Done here, in the child, rather than with Popen(preexec_fn=...), which is unsafe in a threaded parent.
    """
    parent = os.environ.get("SYMPSCALE_LAUNCHER_PID")
    if not parent or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        return
    if os.getppid() != int(parent):  # the launcher died before the request took effect
        sys.exit(143)


def _restore(payload_path: str):
    with open(payload_path, "rb") as f:
        sys_path = pickle.load(f)  # first, so the task function's module can be imported
        sys.path[:0] = [p for p in sys_path if p not in sys.path]
        import cloudpickle  # noqa: F401  (registers nothing, but must be importable for the load)

        return pickle.load(f)


def main(payload_path: str, result_path: str) -> int:
    die_with_parent()
    payload = _restore(payload_path)
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.singleton import Singleton
    from hydra.core.utils import JobStatus, run_job, setup_globals
    from omegaconf.basecontainer import BaseContainer

    Singleton.set_state(payload["singletons"])
    setup_globals()
    for name, fn in payload["resolvers"].items():  # resolvers the parent registered at run time
        BaseContainer._resolvers.setdefault(name, fn)
    config = payload["config"]
    HydraConfig.instance().set_config(config)
    os.chdir(payload["cwd"])
    ret = run_job(
        hydra_context=payload["hydra_context"],
        task_function=payload["task_function"],
        config=config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
    if ret.status == JobStatus.FAILED:
        exc = ret._return_value
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        print(text, file=sys.stderr, flush=True)
        ret._return_value = JobFailure(f"{type(exc).__name__}: {exc}")
    import cloudpickle

    tmp = f"{result_path}.tmp"
    with open(tmp, "wb") as f:
        try:
            cloudpickle.dump(ret, f)
        except Exception as e:  # an unpicklable return value must not lose the job's status
            f.seek(0)
            f.truncate()
            ret._return_value = repr(ret._return_value) if ret.status != JobStatus.FAILED else ret._return_value
            print(f"return value not picklable ({e}); stored its repr", file=sys.stderr)
            cloudpickle.dump(ret, f)
    os.replace(tmp, result_path)
    return 0 if ret.status == JobStatus.COMPLETED else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
