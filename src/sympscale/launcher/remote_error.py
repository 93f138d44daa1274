"""A task's exception across the process boundary, as data: type name, message, frames, and its chain.

The job process `describe`s the exception its task raised (JSON-able: strings, numbers, lists); the launcher
`rebuild`s it: the same builtin exception type (any other type becomes a stand-in class of the same name
deriving from its nearest builtin base, so `except ValueError` still catches it), the same message, a
traceback whose frames name the task's own files, functions and lines, and its `__cause__`/`__context__`
chain. Nothing is unpickled and no module is imported: what a job wrote is only ever read as text.
`failure(job)` is what a failed job's JobReturn raises in the launcher.
"""

from __future__ import annotations

import builtins
import logging
from types import FunctionType, TracebackType

log = logging.getLogger(__name__)
MAX_CHAIN = 20  # chained exceptions kept (a longer or cyclic chain is cut)
MAX_FRAMES = 200  # frames kept per exception (the innermost ones)


class _Stub(Exception):
    """Raised by the one-line stub that makes each rebuilt frame."""


_STUB = compile("raise _Stub", "<remote>", "exec")


def describe(exc: BaseException, depth: int = 0) -> dict:
    """The exception as plain data (see the module docstring)."""
    kind = type(exc)
    base = next(c for c in kind.__mro__ if c.__module__ == "builtins")
    frames, tb = [], exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        frames.append([code.co_filename, code.co_name, tb.tb_lineno])
        tb = tb.tb_next
    out = {
        "module": kind.__module__,
        "qualname": kind.__qualname__,
        "builtin": base.__name__,
        "message": _message(exc),
        "args": list(exc.args) if all(_scalar(a) for a in exc.args) else None,
        "frames": frames[-MAX_FRAMES:],
    }
    chained, relation = exc.__cause__, "cause"
    if chained is None and not exc.__suppress_context__:
        chained, relation = exc.__context__, "context"
    if chained is not None and depth < MAX_CHAIN:
        out["chain"] = {"relation": relation, **describe(chained, depth + 1)}
    return out


def rebuild(desc: dict) -> BaseException:
    """An exception like the one `describe` saw, with its traceback and chain (raises KeyError/TypeError on a
    malformed description)."""
    exc = _instance(desc)
    exc = exc.with_traceback(_traceback(desc.get("frames") or []))
    chain = desc.get("chain")
    if isinstance(chain, dict):
        setattr(exc, "__cause__" if chain.get("relation") == "cause" else "__context__", rebuild(chain))
    return exc


def failure(job) -> BaseException:
    """What a failed job's return value raises: the task's own exception, rebuilt with its traceback, when the
    task raised one; otherwise a JobFailure with the launcher's cause (killed, exited, could not start...)."""
    from sympscale.launcher.child import JobFailure  # a Hydra exception: imported only by the launcher

    where = f"; log: {job.log_path}" if job.log_path.is_file() else ""
    context = f"job #{job.idx} ({job.label}) {job.status}: {job.cause}{where}"
    described = (job.result or {}).get("exception")
    if job.result is None or job.result.get("status") != "FAILED" or not described:
        return JobFailure(context)
    try:
        exc = rebuild(described)
    except (KeyError, TypeError, ValueError) as e:
        log.warning(f"job #{job.idx}: its exception cannot be rebuilt ({type(e).__name__}: {e}); reported as text")
        return JobFailure(context)
    if hasattr(exc, "add_note"):  # Python 3.11+: printed under the traceback
        exc.add_note(context)
    return exc


def _instance(desc: dict) -> BaseException:
    message, qualname, module = str(desc["message"]), str(desc["qualname"]), str(desc["module"])
    base = getattr(builtins, str(desc.get("builtin")), None)
    if not (isinstance(base, type) and issubclass(base, BaseException)):
        base = Exception
    if module == "builtins" and qualname == base.__name__:
        kind = base
    else:
        kind = type(qualname.rsplit(".", 1)[-1], (base,), {"__module__": module, "__qualname__": qualname})
    args = desc.get("args")
    for attempt in ([tuple(args)] if isinstance(args, list) else []) + [(message,)]:
        try:
            exc = kind(*attempt)
        except (TypeError, ValueError):  # a builtin base that wants other arguments (UnicodeError, groups)
            continue
        if _message(exc) == message:
            return exc
    stand_in = type(kind.__name__, (Exception,), {"__module__": module, "__qualname__": qualname})
    return stand_in(message)


def _traceback(frames: list) -> TracebackType | None:
    tb = None
    for filename, name, lineno in reversed(frames):
        tb = TracebackType(tb, _frame(str(filename), str(name), int(lineno)), -1, int(lineno))
    return tb


def _frame(filename: str, name: str, lineno: int):
    """A real frame object whose code names `filename`, `name` and `lineno` (as jinja2 builds template frames)."""
    code = _STUB.replace(co_filename=filename, co_name=name, co_firstlineno=max(lineno, 1))
    if hasattr(code, "co_qualname"):
        code = code.replace(co_qualname=name)
    try:
        FunctionType(code, {"_Stub": _Stub})()
    except _Stub as e:
        return e.__traceback__.tb_next.tb_frame
    raise AssertionError("the frame stub did not raise")


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception as e:  # an exception whose __str__ itself fails must still be reported
        return f"<{type(exc).__name__}.__str__ failed: {type(e).__name__}>"


def _scalar(value) -> bool:
    return value is None or isinstance(value, str | int | float | bool)
