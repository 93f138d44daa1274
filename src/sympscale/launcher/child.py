"""Child-process entry: `python -m sympscale.launcher.child` (started by the launcher, one per job).

Reads its job spec (JSON, `sympscale.launcher.wire`) from stdin, runs the job with Hydra's own `run_job` (so
output dirs, .hydra/ files and logging behave as with any launcher) and writes a JSON result to the file
descriptor named by SYMPSCALE_RESULT_FD. Nothing is read from the sweep folder. A task that raises gives a
FAILED result carrying "Type: message" and the exception as data (`remote_error.describe`: the launcher
rebuilds it, traceback and chain included); the traceback also goes to the job's log. A hard crash or a
SystemExit leaves no result, and the launcher reports the exit status.
"""

from __future__ import annotations

import collections
import os
import sys
import traceback

from hydra.errors import CompactHydraException


class JobFailure(CompactHydraException, RuntimeError):
    """A job's failure, carried across the process boundary as text (Hydra prints it without a traceback)."""


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
    except (ImportError, OSError, AttributeError) as e:  # no ctypes, no glibc (musl), no prctl
        print(f"[child] cannot ask to die with the launcher ({type(e).__name__}: {e})", file=sys.stderr)
        return
    if os.getppid() != int(parent):  # the launcher died before the request took effect
        sys.exit(143)


def _result_writer():
    """Where the result goes: the launcher's descriptor (kept from the task's own subprocesses), else stdout."""
    fd = os.environ.pop("SYMPSCALE_RESULT_FD", None)
    if fd is None:
        return lambda data: print(data.decode(), flush=True)
    fd = int(fd)
    os.set_inheritable(fd, False)

    def write(data: bytes) -> None:
        with os.fdopen(fd, "wb") as f:
            f.write(data)

    return write


def _read_spec() -> dict:
    from sympscale.launcher.wire import decode_job

    data = sys.stdin.buffer.read()
    null = os.open(os.devnull, os.O_RDONLY)  # the task sees an empty stdin, as before
    os.dup2(null, 0)
    os.close(null)
    return decode_job(data)


def _prepare(spec: dict):
    """Set up this process as Hydra's would be for the job; returns (task function, config, hydra context)."""
    from hydra.core.utils import JobRuntime, setup_globals
    from hydra.types import HydraContext
    from omegaconf import OmegaConf
    from omegaconf.basecontainer import BaseContainer

    from sympscale.launcher.wire import load_task, unpickle

    os.chdir(spec["cwd"])
    sys.path[:0] = [p for p in spec["sys_path"] if p not in sys.path]
    if spec.get("version_base"):
        from hydra import version

        # what `hydra.main(version_base=...)` recorded in the launcher: a packaging Version in Hydra 1.3, the
        # "major.minor" string in 1.4 (whose setbase would warn that the parameter is deprecated)
        base = spec["version_base"]
        if isinstance(version.VersionBase.instance().getbase(), str):
            version.VersionBase.instance().setbase(base)
        else:
            from packaging.version import Version

            version.VersionBase.instance().setbase(Version(base))
    setup_globals()
    task = load_task(spec["task"]) if spec.get("task") else unpickle(spec["pickled"]["task"])
    for name, text in spec["pickled"].get("resolvers", {}).items():  # only those the import did not register
        if not OmegaConf.has_resolver(name):
            BaseContainer._resolvers[name] = unpickle(text)
    config = _member_config(spec)
    JobRuntime.instance().set("name", config.hydra.job.name)
    from hydra._internal.callbacks import Callbacks

    # run_job uses only the callbacks of its context; the config was composed by the launcher
    return task, config, HydraContext(config_loader=None, callbacks=Callbacks(config))


def _member_config(member: dict):
    """A job's (or a bundle member's) config with its flags and the launcher's resolver cache."""
    from omegaconf import OmegaConf

    from sympscale.launcher.wire import cache_entries

    config = _config(member["config"])
    # what the launcher's `now` said, not this process's (a defaultdict, as OmegaConf's own cache)
    OmegaConf.set_cache(config, collections.defaultdict(dict, cache_entries(member.get("cache") or {})))
    flags = member["flags"]
    OmegaConf.set_struct(config, bool(flags.get("struct")))
    OmegaConf.set_readonly(config.hydra, bool(flags.get("hydra_readonly")) or None)
    OmegaConf.set_readonly(config, bool(flags.get("readonly")) or None)
    return config


def _config(text: str):
    """The job config from its YAML, with the hydra node typed again (Hydra's HydraConfig insists on it)."""
    from hydra.conf import HydraConf
    from omegaconf import OmegaConf, open_dict

    config = OmegaConf.create(text)
    schema = OmegaConf.structured(HydraConf)
    OmegaConf.set_struct(schema, False)  # groups such as hydra/env add keys the schema does not declare
    with open_dict(config):
        config.hydra = OmegaConf.merge(schema, config.hydra)
    return config


def main() -> int:
    die_with_parent()
    write = _result_writer()
    from sympscale.launcher.remote_error import describe
    from sympscale.launcher.wire import encode_result

    try:
        spec = _read_spec()
        task, config, context = _prepare(spec)
    except Exception as e:
        traceback.print_exc()
        write(encode_result(completed=False, error=f"could not set up the job: {type(e).__name__}: {e}"))
        return 1
    if "members" in spec:
        write(_run_bundle(spec, context))
        return 0
    from hydra.core.utils import JobStatus, run_job

    ret = run_job(
        hydra_context=context,
        task_function=task,
        config=config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
    completed = ret.status == JobStatus.COMPLETED
    error = exception = None
    if not completed:
        exc = ret._return_value
        print("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)), file=sys.stderr, flush=True)
        exception = describe(exc)
        error = f"{type(exc).__name__}: {exception['message']}"
    write(
        encode_result(
            completed=completed,
            value=ret._return_value if completed else None,
            error=error,
            exception=exception,
            task_name=ret.task_name,
            output_dir=str(config.hydra.runtime.output_dir),
            working_dir=ret.working_dir,
        )
    )
    return 0 if completed else 1


def _failure(exc: BaseException, **where) -> dict:
    from sympscale.launcher.remote_error import describe
    from sympscale.launcher.wire import result_record

    print("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)), file=sys.stderr, flush=True)
    exception = describe(exc)
    return result_record(
        completed=False, error=f"{type(exc).__name__}: {exception['message']}", exception=exception, **where
    )


def _run_bundle(spec: dict, context) -> bytes:
    """A seed bundle: each member's Hydra job set-up runs the bundle task's `prepare` (its folder, .hydra/ files
    and HydraConfig as for a single job), then `run` trains the prepared members together. A member whose
    preparation fails fails alone; the members' results go back as one record."""
    from hydra.core.utils import JobStatus, run_job

    from sympscale.launcher.wire import encode_bundle_result, load_task, result_record

    records: list = [None] * len(spec["members"])
    try:
        bundle = load_task(spec["bundle_task"])
    except Exception as e:  # every member fails with the cause
        return encode_bundle_result([_failure(e) for _ in records])
    prepared, where = [], {}
    for k, member in enumerate(spec["members"]):
        try:
            config = _member_config(member)
        except Exception as e:  # this member alone
            records[k] = _failure(e)
            continue
        ret = run_job(
            hydra_context=context,
            task_function=bundle.prepare,
            config=config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
            configure_logging=k == 0,
        )
        where[k] = {
            "task_name": ret.task_name,
            "output_dir": str(config.hydra.runtime.output_dir),
            "working_dir": ret.working_dir,
        }
        if ret.status == JobStatus.COMPLETED:
            prepared.append((k, ret._return_value))
        else:
            records[k] = _failure(ret._return_value, **where[k])
    try:
        outcomes = bundle.run([p for _, p in prepared]) if prepared else []
    except Exception as e:  # the bundle itself failed: every member it held fails with that cause
        outcomes = [e] * len(prepared)
    for (k, _), outcome in zip(prepared, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            records[k] = _failure(outcome, **where[k])
        else:
            records[k] = result_record(completed=True, value=outcome, **where[k])
    return encode_bundle_result(records)


if __name__ == "__main__":
    sys.exit(main())
