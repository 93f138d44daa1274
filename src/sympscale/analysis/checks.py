"""Is one job folder a usable result? Each check returns None (usable so far) or the reason it is excluded.

The reasons are written for the person reading summary.md: they name the file, the key and the bad value.
A rollout that blew up is a result (README: non-finite values are stored and the run finishes `done`), so a
non-finite `eval.last100_mse` is accepted when `eval.bounded` is false or null; NaN anywhere else in the headline
metrics means the run has no result to report. `eval.bounded` null: not judged (test data too short to
calibrate the rule on).
"""

from __future__ import annotations

import math
import re

HEADLINE_NUMBERS = ("last100_mse", "steps_to_mse_1")  # every finished run's eval has them (evaluation.py)
CONFIG_KEYS = {("system", "name"): str, ("model", "name"): str, ("D",): int, ("seed",): int}


def file_problem(name: str, problem: str | None) -> str | None:
    """'metrics.json is not valid JSON (empty file)' and the like; None when the file was read."""
    if problem in (None, "missing"):
        return None
    if problem.startswith(("unreadable", "not a regular")):
        return f"{name} is {problem}"
    return f"{name} is not valid JSON" + (" (empty file)" if problem == "empty" else "")


def _kind(value) -> str:
    return "null" if value is None else {dict: "object", list: "list", str: "string"}.get(type(value), "value")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _json_repr(v: float) -> str:
    return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")


def config_problem(cfg, problem: str | None) -> str | None:
    """Why config.json cannot identify the run: missing, unreadable, or lacking system/model/D/seed."""
    if problem == "missing":
        return "no config.json"
    if problem:
        return file_problem("config.json", problem)
    if not isinstance(cfg, dict):
        return f"config.json has the wrong shape: a {_kind(cfg)}, not an object"
    for keys, want in CONFIG_KEYS.items():
        node = cfg
        for k in keys:
            node = node.get(k) if isinstance(node, dict) else None
        name = ".".join(keys)
        if node is None:
            return f"config.json has the wrong shape: {name} missing"
        if not isinstance(node, want) or isinstance(node, bool):
            return f"config.json has the wrong shape: {name} is not {'an integer' if want is int else 'a string'} ({node!r})"
    return None


def state_problem(state: str, error: str | None, metrics_missing: bool, status_file: str | None = None) -> str | None:
    """Why a job that has not finished cleanly is not a result yet (None when its state is 'done').

    `status_file`: what was wrong with status.json ('missing', 'empty', 'not valid JSON'), if anything.
    """
    if state == "done":
        return None
    if state == "diverged":
        return f"diverged: {error}" if error else "diverged: no reason recorded"
    if state == "failed":
        return f"failed: {error}" if error else "failed (no cause recorded)"
    if state == "running":
        return "running (no metrics.json)" if metrics_missing else "running"
    if state == "interrupted":
        return f"interrupted{f': {error}' if error else ''} (rerun the same command: it resumes)"
    if state == "unknown":
        return f"status unknown (status.json {'is ' + status_file if status_file else 'has no status'})"
    return f"status {state}"


def divergence(metrics) -> str | None:
    """'diverged: <reason>' when training marked the run as diverged (older runs have no marker: not diverged)."""
    if not isinstance(metrics, dict):
        return None
    train = metrics.get("train") if isinstance(metrics.get("train"), dict) else {}
    if metrics.get("status") != "diverged" and train.get("diverged") is not True:
        return None
    reason = train.get("divergence")
    return f"diverged: {reason}" if isinstance(reason, str) and reason else "diverged: no reason recorded"


def metrics_problem(metrics) -> str | None:
    """Why a finished run's metrics.json cannot be used: its shape, divergence, or non-finite headline metrics."""
    if not isinstance(metrics, dict):
        return f"metrics.json has the wrong shape: a {_kind(metrics)}, not an object"
    diverged = divergence(metrics)
    if diverged:
        return diverged
    ev = metrics.get("eval")
    if ev is None:
        return "metrics.json has the wrong shape: eval missing"
    if not isinstance(ev, dict):
        return f"metrics.json has the wrong shape: eval is a {_kind(ev)}, not an object"
    return _eval_shape(ev) or _non_finite(ev)


def _eval_shape(ev: dict) -> str | None:
    for key in (*HEADLINE_NUMBERS, "bounded"):
        v = ev.get(key)
        if key not in ev or (v is None and key != "bounded"):
            return f"metrics.json has the wrong shape: eval.{key} missing"
        if key == "bounded":  # null: not judged; NaN: reported as non-finite
            ok = v is None or isinstance(v, bool) or (isinstance(v, float) and math.isnan(v))
        else:
            ok = _is_number(v)
        if not ok:
            want = "true/false" if key == "bounded" else "a number"
            return f"metrics.json has the wrong shape: eval.{key} is not {want} ({v!r})"
    return None


def _non_finite(ev: dict) -> str | None:
    """Headline values that are NaN/Infinity, except the MSE of a rollout that blew up (bounded false)."""
    bad = [
        k for k in ("last100_mse", "bounded", "steps_to_mse_1") if isinstance(ev[k], float) and not math.isfinite(ev[k])
    ]
    if ev["bounded"] in (False, None) and "last100_mse" in bad:
        bad.remove("last100_mse")
    return f"non-finite headline metrics ({', '.join(f'{k} {_json_repr(ev[k])}' for k in bad)})" if bad else None


def reason_kind(reason: str) -> str:
    """The reason without its particulars, for counting: 'failed: OOM' -> 'failed', 'duplicate of x' -> 'duplicate'."""
    return re.split(r": | \(| of ", reason, maxsplit=1)[0]
