"""All the launcher knows of the application it launches: an optional hook, found next to the task function.

The task function's module may define `LAUNCHER_HOOK`: any object (a module will do) with some of these
callables; each one it lacks keeps the generic behaviour on the right.

    cost(task_cfg) -> float            relative cost; larger jobs start first          generic: 0 (grid order)
    job_key(task_cfg) -> str           identity of what a job computes: a finished     generic: digest of the
                                       job with the same key is not run again          resolved task config and
                                                                                       the task function's name
                                                                                       and source
    code() -> {"version": str,         the code jobs run now; a finished job whose     generic: digest of the
               "source_digest": str}   recorded source_digest differs is *stale*       task function's file
    result(job_dir, status, cause)     the app's account of a job whose process        generic: (status, cause)
        -> (status, cause)             ended (status: done | failed | interrupted |    unchanged
                                       cancelled), and of a job found done on resume;
                                       it may correct the app's own files in job_dir
    estimate([(task_cfg, seeds)], env) predicted device seconds of each job (seeds =   generic: None (the dry
        -> [{"seconds": float | None,  1) or seed bundle, and how it was predicted;    run predicts nothing)
             "basis": str}] | None     one call for the whole dry run (measure them
                                       in one process, in `env`: the environment a
                                       job on the first planned device gets, its
                                       mask and platform; a hook taking requests
                                       alone is called so); it sums them (None:
                                       unknown)
    describe(task_cfgs) -> [str]       one line per job config, printed beside it by   generic: nothing
                                       the dry run (e.g. its model's size)

`task_cfg` is the job's resolved task config as plain dicts and lists (no `hydra` node); `job_dir` a Path.
The hook runs in the launcher's process, which must not initialise JAX: keep it light. A dry run on an
accelerator calls `describe` and `estimate` at once, from two threads. What it returns is
checked (a wrong type is an error naming the hook), and what it raises is not caught.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ATTRIBUTE = "LAUNCHER_HOOK"
METHODS = ("cost", "job_key", "code", "result", "estimate", "describe")
END_STATUSES = ("done", "failed", "interrupted", "cancelled")


class Hook:
    """The application's hook (or none) with the generic behaviour filling in what it leaves out."""

    def __init__(self, app: Any = None, task_function: Callable | None = None, where: str = "no hook"):
        self.app, self.where = app, where
        # a callable object is known by its class
        self._task_fn = task_function if hasattr(task_function, "__qualname__") else type(task_function)
        self._task_source: str | None = None
        for name in METHODS:
            member = getattr(app, name, None)
            if member is not None and not callable(member):
                raise TypeError(f"{where}.{name} is {member!r}, not a function")

    def _call(self, name: str, *args):
        member = getattr(self.app, name, None)
        return None if member is None else (member(*args),)

    def cost(self, task_cfg: Mapping) -> float:
        out = self._call("cost", task_cfg)
        if out is None:
            return 0.0
        value = out[0]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise TypeError(f"{self.where}.cost returned {value!r}; expected a finite number")
        return float(value)

    def job_key(self, task_cfg: Mapping) -> str:
        out = self._call("job_key", task_cfg)
        if out is None:  # the task function (name and source) and its config
            text = json.dumps(task_cfg, sort_keys=True, default=str)
            return hashlib.sha256("\0".join([self._name(), self._source(), text]).encode()).hexdigest()[:20]
        if not isinstance(out[0], str) or not out[0]:
            raise TypeError(f"{self.where}.job_key returned {out[0]!r}; expected a non-empty string")
        return out[0]

    def code(self) -> dict:
        out = self._call("code")
        if out is None:
            return {"source_digest": _file_digest(self._task_fn)}
        rec = out[0]
        if not isinstance(rec, Mapping) or not isinstance(rec.get("source_digest"), str):
            raise TypeError(f"{self.where}.code returned {rec!r}; expected a mapping with a 'source_digest' string")
        return dict(rec)

    def result(self, job_dir: Path, status: str, cause: str | None) -> tuple[str, str | None]:
        out = self._call("result", job_dir, status, cause)
        if out is None:
            return status, cause
        value = out[0]
        if (
            not isinstance(value, tuple)
            or len(value) != 2
            or value[0] not in END_STATUSES
            or not (value[1] is None or isinstance(value[1], str))
        ):
            raise TypeError(f"{self.where}.result returned {value!r}; expected (one of {END_STATUSES}, cause or None)")
        return value

    def estimate(self, requests: list[tuple[Mapping, int]], env: Mapping[str, str]) -> list[dict] | None:
        member = getattr(self.app, "estimate", None)
        out = self._call("estimate", requests, env) if _takes(member, 2) else self._call("estimate", requests)
        if out is None or out[0] is None:
            return None
        recs = out[0]
        if not isinstance(recs, list) or len(recs) != len(requests) or not all(map(_an_estimate, recs)):
            raise TypeError(
                f"{self.where}.estimate returned {recs!r}; expected one {{'seconds': float >= 0 or None, "
                "'basis': str}} per request"
            )
        return [dict(r) for r in recs]

    def describe(self, task_cfgs: list[Mapping]) -> list[str] | None:
        out = self._call("describe", task_cfgs)
        if out is None or out[0] is None:
            return None
        lines = out[0]
        if not isinstance(lines, list) or len(lines) != len(task_cfgs) or not all(isinstance(x, str) for x in lines):
            raise TypeError(f"{self.where}.describe returned {lines!r}; expected one str per config")
        return lines

    def legacy_key(self, key: str) -> str:
        """The key a launcher before code versions wrote for the same job: sha256(config id, task name, task
        source). Lets a rerun recognise such a job, to call it stale rather than run it silently again."""
        return hashlib.sha256("\0".join([key, self._name(), self._source()]).encode()).hexdigest()[:20]

    def _name(self) -> str:
        return f"{getattr(self._task_fn, '__module__', '')}.{getattr(self._task_fn, '__qualname__', '')}"

    def _source(self) -> str:
        if self._task_source is None:
            try:
                self._task_source = inspect.getsource(self._task_fn)
            except (OSError, TypeError):  # no source to read (a builtin, an interactive session)
                self._task_source = ""
        return self._task_source


def find_hook(task_function: Callable) -> Hook:
    """The hook the task function's module defines as `LAUNCHER_HOOK`, or the generic behaviour alone."""
    fn = task_function if hasattr(task_function, "__qualname__") else type(task_function)
    module_name = getattr(fn, "__module__", None)
    module = sys.modules.get(module_name) if isinstance(module_name, str) else None
    app = getattr(module, ATTRIBUTE, None)
    where = f"{module_name}.{ATTRIBUTE}" if app is not None else "no hook"
    return Hook(app, task_function, where)


def _takes(fn: Any, n: int) -> bool:
    """Whether `fn` accepts `n` positional arguments (an app's hook written before an argument was added: not)."""
    try:
        inspect.signature(fn).bind(*range(n))
    except TypeError:
        return False
    except ValueError:  # no signature to read (a builtin): call it the current way
        return True
    return True


def _an_estimate(rec: Any) -> bool:
    seconds = rec.get("seconds") if isinstance(rec, Mapping) else "missing"
    ok = seconds is None or (isinstance(seconds, int | float) and math.isfinite(seconds) and seconds >= 0)
    return ok and isinstance(rec.get("basis"), str)


def _file_digest(fn: Any) -> str | None:
    """sha256 of the file that defines `fn`, or None (then no job is ever judged stale)."""
    try:
        path = inspect.getsourcefile(fn)
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:20] if path else None
    except (OSError, TypeError):
        return None
