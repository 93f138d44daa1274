"""JSON files: written atomically (what the launcher and the jobs it runs write, so a reader never sees half a
file), and read without an exception escaping (`read_json` says why a file cannot be used)."""

from __future__ import annotations

import json
from pathlib import Path

from sympscale import atomic


def write_json(path: Path, obj) -> None:
    """Write JSON through `atomic.write` (temp file, fsync, rename; the user's umask; the temp removed on failure).
    Non-finite floats become Infinity / NaN."""
    atomic.write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


DAMAGED = ("empty", "not valid JSON")  # `read_json`'s problems of a file that cannot be what was written


def damage(problem: str | None, value: object) -> str | None:
    """Of `read_json`'s answer for a record written as a JSON object: why it cannot be what was written (empty,
    not JSON, not an object), or None (whole, missing, or unreadable for permissions: that is not damage)."""
    if problem in DAMAGED:
        return problem
    return "not an object" if problem is None and not isinstance(value, dict) else None


def read_json(path: Path) -> tuple[object, str | None]:
    """(the parsed value, None), or (None, why not): 'missing', 'not a regular file', 'unreadable (<why>)' (the
    file may be whole: permissions), or what marks it damaged: 'empty', 'not valid JSON'."""
    if not path.exists():
        return None, "missing"
    if not path.is_file():  # a named pipe or a device would block the read forever
        return None, "not a regular file"
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None, "missing"
    except OSError as e:
        return None, f"unreadable ({type(e).__name__})"
    except ValueError:  # bytes that are not UTF-8
        return None, "not valid JSON"
    if not text.strip():
        return None, "empty"
    try:
        return json.loads(text), None
    except (ValueError, RecursionError):
        return None, "not valid JSON"
