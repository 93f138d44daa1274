"""What passes between the launcher and a job process: data only, never through the sweep folder.

Job spec (launcher -> child), JSON on the child's stdin pipe (format "sympscale-job/1")::

    {"format": "sympscale-job/1",
     "config": "<the composed job config, hydra node included, as unresolved YAML>",
     "flags": {"struct": true, "readonly": false, "hydra_readonly": true},
     "cache": {"now": [[["%H-%M-%S"], "13-11-57"]]},  # the launcher's resolver cache, its JSON-able part
     "task": {"module": "sympscale.train", "qualname": "_task", "file": null, "unwrap": false} | null,
     "sys_path": [...], "cwd": "/where/the/sweep/was/started", "version_base": "1.3" | null,
     "pickled": {"task": "<base64>" | null, "resolvers": {"name": "<base64>"}},
     "members": [{"config": "...", "flags": {...}, "cache": {...}}, ...] | absent,  # a bundle: every member's
     "bundle_task": {"module": ..., "qualname": "LAUNCHER_BUNDLE_TASK", ...} | absent}

The cache carries what a caching resolver (Hydra's `now`) gave the launcher: a sweep folder named by the time is
the launcher's folder in every job, not each job's own start time.

A bundle's child runs each member's Hydra job set-up (folder, .hydra/ files) with the bundle task's `prepare`,
then the members together with its `run` (`sympscale.launcher.bundles`).

The task function travels by name: its module (or, for a script run as `__main__`, its file) and qualified
name, imported by the child, which re-registers the module's config-store entries and resolvers as a side
effect. Only what cannot be imported by name (a closure, a callable object, a resolver registered at run
time) is cloudpickled, and only into this pipe, which the launcher alone writes: a file planted in the sweep
folder is never executed or unpickled. The child unpickles a resolver only when importing the task did not
register one of that name.

Result (child -> launcher), JSON written to an unlinked temporary file the launcher opened and passed to the
child as a file descriptor (format "sympscale-result/1")::

    {"format": "sympscale-result/1", "status": "COMPLETED" | "FAILED",
     "value": <the return value as JSON> | null, "value_repr": "<repr when not JSON-able>" | null,
     "error": "<ExceptionType: message>" | null, "exception": <remote_error.describe(the task's exception)> | null,
     "task_name": "...", "output_dir": "...", "working_dir": "...",
     "members": [<a result record per member>] | absent}  # a bundle: COMPLETED when every member completed
"""

from __future__ import annotations

import base64
import importlib
import importlib.util
import io
import json
import logging
import marshal
import os
import re
import sys
import types
from collections import ChainMap
from collections.abc import Callable, Mapping

JOB_FORMAT, RESULT_FORMAT = "sympscale-job/1", "sympscale-result/1"
MAIN_ALIAS = "__mp_main__"  # a script's module in the child, as multiprocessing names it (its main guard is off)
_RESOLVER_USE = re.compile(r"\$\{\s*([A-Za-z_][\w.\-]*)\s*:")
_BUILTIN_RESOLVERS = ("hydra",)  # registered by Hydra's setup_globals in every process

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- task by name
def task_reference(fn: Callable) -> dict | None:
    """How the child can import `fn` by name, or None when it cannot (closure, lambda, callable object)."""
    module_name, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if not isinstance(module_name, str) or not isinstance(qualname, str) or "<" in qualname:
        return None
    module = sys.modules.get(module_name)
    obj = _lookup(module, qualname) if module is not None else None
    if obj is None or not (obj is fn or getattr(obj, "__wrapped__", None) is fn):
        return None
    ref = {"module": module_name, "qualname": qualname, "file": None, "unwrap": obj is not fn}
    if module_name in ("__main__", MAIN_ALIAS):
        spec = getattr(module, "__spec__", None)
        if spec is not None and spec.name and spec.name not in ("__main__", MAIN_ALIAS):  # python -m pkg.mod
            ref["module"] = spec.name
        elif getattr(module, "__file__", None):  # python path/to/app.py
            ref["module"], ref["file"] = None, os.path.abspath(module.__file__)
        else:  # an interactive session: nothing to import
            return None
    return ref


def load_task(ref: Mapping) -> Callable:
    """Import the task function a `task_reference` names (in the child)."""
    if ref.get("file"):
        module = sys.modules.get(MAIN_ALIAS)
        if module is None or getattr(module, "__file__", None) != ref["file"]:
            spec = importlib.util.spec_from_file_location(MAIN_ALIAS, ref["file"])
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot import the task's script {ref['file']}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[MAIN_ALIAS] = module
            spec.loader.exec_module(module)
        sys.modules["__main__"] = module  # so pickles that name __main__ find the script's objects
    else:
        module = importlib.import_module(ref["module"])
    obj = _lookup(module, ref["qualname"])
    if obj is None:
        where = ref.get("file") or ref["module"]
        raise ImportError(f"task function {ref['qualname']} not found in {where}")
    return obj.__wrapped__ if ref.get("unwrap") else obj


def _lookup(module, qualname: str):
    obj = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def referenced_resolvers(config_yaml: str) -> list[str]:
    """Names of the resolvers an (unresolved) config calls, except those every Hydra process registers."""
    names = set(_RESOLVER_USE.findall(config_yaml))
    return sorted(n for n in names if n not in _BUILTIN_RESOLVERS and not n.startswith("oc."))


# ---------------------------------------------------------------------------------------------- job spec
def ship_task(task: Callable) -> tuple[dict | None, str | None]:
    """(reference, None) when the child can import `task` by name, else (None, its cloudpickle as base64).

    Raises TypeError naming the task when it can be neither imported nor pickled.
    """
    ref = task_reference(task)
    return (ref, None) if ref is not None else (None, pickled(task, "the task function"))


def resolver_cache(config) -> dict:
    """The resolver cache of an OmegaConf config as JSON: {resolver: [[args, value], ...]}, for the resolvers whose
    cached arguments and values are JSON-able (OmegaConf keys each entry by its argument tuple)."""
    from omegaconf import OmegaConf

    out = {}
    for name, entries in OmegaConf.get_cache(config).items():
        pairs = [[list(k) if isinstance(k, tuple) else k, v] for k, v in entries.items()]
        try:
            json.dumps(pairs)
        except (TypeError, ValueError):
            if name not in _UNSHIPPED:
                _UNSHIPPED.add(name)
                log.warning(f"resolver {name!r}: its cached values are not JSON; each job resolves it anew")
            continue
        out[name] = pairs
    return out


_UNSHIPPED: set[str] = set()


def cache_entries(cache: Mapping) -> dict:
    """`resolver_cache`'s JSON back as OmegaConf's cache: {resolver: {args tuple: value}}."""
    return {name: {tuple(k) if isinstance(k, list) else k: v for k, v in pairs} for name, pairs in cache.items()}


def encode_job(
    *,
    config_yaml: str,
    flags: Mapping,
    cache: Mapping,
    task_ref: Mapping | None,
    pickled_task: str | None,
    pickled_resolvers: Mapping[str, str],
    cwd: str,
    version_base: str | None,
    members: list[Mapping] | None = None,
    bundle_task: Mapping | None = None,
) -> bytes:
    """The job spec as JSON bytes (see the module docstring)."""
    spec = {
        "format": JOB_FORMAT,
        "config": config_yaml,
        "flags": dict(flags),
        "cache": dict(cache),
        "task": None if task_ref is None else dict(task_ref),
        "sys_path": [p for p in sys.path if isinstance(p, str)],
        "cwd": cwd,
        "version_base": version_base,
        "pickled": {"task": pickled_task, "resolvers": dict(pickled_resolvers)},
    }
    if members is not None:
        if bundle_task is None:
            raise ValueError("a bundle's spec needs the bundle task")
        spec["members"] = [{"config": m["config"], "flags": dict(m["flags"]), "cache": m["cache"]} for m in members]
        spec["bundle_task"] = dict(bundle_task)
    return json.dumps(spec).encode()


def decode_job(data: bytes) -> dict:
    """Parse a job spec (JSON only) and check its shape."""
    spec = json.loads(data.decode())
    if not isinstance(spec, dict) or spec.get("format") != JOB_FORMAT:
        raise ValueError(f"not a {JOB_FORMAT} job spec")
    for key, kind in (("config", str), ("flags", dict), ("sys_path", list), ("cwd", str), ("pickled", dict)):
        if not isinstance(spec.get(key), kind):
            raise ValueError(f"job spec: {key!r} missing or not a {kind.__name__}")
    if "members" in spec:
        members = spec["members"]
        if not isinstance(members, list) or not members or not isinstance(spec.get("bundle_task"), dict):
            raise ValueError("job spec: a bundle needs a non-empty 'members' list and a 'bundle_task'")
        for m in members:
            if not isinstance(m, dict) or not isinstance(m.get("config"), str) or not isinstance(m.get("flags"), dict):
                raise ValueError("job spec: every bundle member needs a 'config' string and 'flags'")
    return spec


def unpickle(text: str):
    """Load an object the launcher pickled into the job spec (called only for what could not be imported)."""
    import pickle

    import cloudpickle  # noqa: F401  (cloudpickled closures need it importable)

    return pickle.loads(base64.b64decode(text))


def pickled(obj, what: str) -> str:
    """`obj` cloudpickled, as base64 text; TypeError naming `what` when it cannot be pickled.

    Code objects travel whole (marshal: the child runs the same interpreter), so a shipped closure keeps its
    file name, which cloudpickle would replace by "<dynamic-code>": tracebacks in the job's log and the one
    the launcher rebuilds then point at the task's own source.
    """
    try:
        import cloudpickle

        class Pickler(cloudpickle.Pickler):
            dispatch_table = ChainMap(
                {types.CodeType: lambda code: (marshal.loads, (marshal.dumps(code),))},
                cloudpickle.Pickler.dispatch_table,
            )

        buffer = io.BytesIO()
        Pickler(buffer).dump(obj)
        return base64.b64encode(buffer.getvalue()).decode()
    except Exception as e:
        raise TypeError(f"{what} ({obj!r}) can neither be imported by name nor pickled: {e}") from None


# ---------------------------------------------------------------------------------------------- result
def plain(value):
    """A JSON-able copy of `value` (NumPy scalars and arrays, OmegaConf containers converted), or raise TypeError."""

    def default(o):
        if hasattr(o, "tolist") and callable(o.tolist):  # NumPy / JAX arrays and scalars
            return o.tolist()
        try:
            from omegaconf import Container, OmegaConf

            if isinstance(o, Container):
                return OmegaConf.to_container(o, resolve=True)
        except ImportError:
            pass
        if isinstance(o, set | frozenset | tuple):
            return list(o)
        raise TypeError(f"{type(o).__name__} is not JSON-able")

    return json.loads(json.dumps(value, default=default, allow_nan=True))


def encode_result(**fields) -> bytes:
    """The result record (`result_record`'s keywords) as JSON bytes."""
    return json.dumps(result_record(**fields), allow_nan=True).encode()


def encode_bundle_result(members: list[dict]) -> bytes:
    """A bundle's record: its members' records (`result_record`), COMPLETED when every one completed."""
    completed = all(m["status"] == "COMPLETED" for m in members)
    failed = [m["error"] for m in members if m["status"] != "COMPLETED"]
    rec = result_record(
        completed=completed,
        error=None if completed else f"{len(failed)} of {len(members)} members failed; first: {failed[0]}",
    )
    return json.dumps({**rec, "members": members}, allow_nan=True).encode()


def result_record(
    *,
    completed: bool,
    value=None,
    error: str | None = None,
    exception: dict | None = None,
    task_name=None,
    output_dir=None,
    working_dir=None,
) -> dict:
    """A result record (see the module docstring) as a dict."""
    rec = {
        "format": RESULT_FORMAT,
        "status": "COMPLETED" if completed else "FAILED",
        "value": None,
        "value_repr": None,
        "error": error,
        "exception": exception,
        "task_name": task_name,
        "output_dir": output_dir,
        "working_dir": working_dir,
    }
    if completed:
        try:
            rec["value"] = plain(value)
        except (TypeError, ValueError, RecursionError):
            rec["value_repr"] = repr(value)
    return rec


def decode_result(data: bytes) -> dict:
    """Parse a result record (JSON only); ValueError when it is missing, truncated or malformed."""
    if not data:
        raise ValueError("the job wrote no result")
    rec = _checked(json.loads(data.decode(errors="replace")))
    if "members" in rec:
        if not isinstance(rec["members"], list) or not rec["members"]:
            raise ValueError("result field 'members' is not a non-empty list")
        rec["members"] = [_checked(m) for m in rec["members"]]
    return rec


def _checked(rec) -> dict:
    if not isinstance(rec, dict) or rec.get("format") != RESULT_FORMAT:
        raise ValueError(f"not a {RESULT_FORMAT} record")
    if rec.get("status") not in ("COMPLETED", "FAILED"):
        raise ValueError(f"result status {rec.get('status')!r} is neither COMPLETED nor FAILED")
    for key in ("error", "value_repr", "task_name", "output_dir", "working_dir"):
        if rec.get(key) is not None and not isinstance(rec[key], str):
            raise ValueError(f"result field {key!r} is not a string")
    if rec.get("exception") is not None and not isinstance(rec["exception"], dict):
        raise ValueError("result field 'exception' is not a record")
    return rec


def value_of(rec: Mapping):
    """The job's return value from a result record (its repr string when it was not JSON-able)."""
    return rec["value_repr"] if rec.get("value_repr") is not None else rec.get("value")
