"""The bring-up report: one record per check, the verdict, and the JSON and Markdown files.

A check is `pass`, `warn` (works, but worth a look), `fail` (do not start the sweep) or `skip` (not run, with the
reason). The verdict is `ready` when nothing failed; otherwise the first failure, in the order the checks run
(devices before isolation before numerics ...), is the first thing to fix.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from sympscale import atomic

SCHEMA_VERSION = 1
STATUSES = ("pass", "warn", "fail", "skip")
STATUSES_BY_SEVERITY = ("skip", "pass", "warn", "fail")
SECTIONS = ("devices", "isolation", "numerics", "memory", "speed", "data", "sweep")  # the order they run in


@dataclasses.dataclass
class Check:
    section: str  # devices | isolation | numerics | memory | speed | data | sweep
    name: str
    status: str
    detail: str  # one line a person reads
    seconds: float = 0.0
    values: dict[str, Any] = dataclasses.field(default_factory=dict)  # the measured numbers, JSON-able

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status={self.status!r}; valid: {', '.join(STATUSES)}")


def verdict(checks: list[Check], not_run: list[str] | tuple = ()) -> dict:
    """`ready` when no check failed; else the first failure is the first thing to fix. Sections not run and
    skipped checks are named in the summary: a partial bring-up says so."""
    failed = [c for c in checks if c.status == "fail"]
    counts = {s: sum(c.status == s for c in checks) for s in STATUSES}
    if not failed:
        summary = "ready: every check passed" + _caveats(counts, not_run)
        return {"ready": True, "summary": summary, "first_fix": None, "not_run": list(not_run), **counts}
    first = failed[0]
    return {
        "ready": False,
        "summary": f"not ready: {len(failed)} check(s) failed" + _caveats(counts, not_run),
        "first_fix": f"{first.section}/{first.name}: {first.detail}",
        "not_run": list(not_run),
        **counts,
    }


def _caveats(counts: dict, not_run) -> str:
    notes = [f"{counts[s]} {word}" for s, word in (("warn", "warning(s)"), ("skip", "skipped")) if counts[s]]
    if not_run:
        notes.append(f"not run: {', '.join(not_run)}")
    return f" ({'; '.join(notes)})" if notes else ""


def build(checks: list[Check], *, mode: str, environment: dict, started: float, not_run=()) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "mode": mode,
        "created": dt.datetime.fromtimestamp(started, dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": environment,
        "verdict": verdict(checks, not_run),
        "checks": [dataclasses.asdict(c) for c in checks],
    }


def write(report: dict, out_dir: Path) -> list[str]:
    """Write report.json and report.md into out_dir; a previous report is kept under its own date, never replaced.
    Returns what was moved aside (for the user to see)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    kept = _keep_previous(out_dir)
    atomic.write_text(out_dir / "report.json", json.dumps(report, indent=2, default=str) + "\n")
    atomic.write_text(out_dir / "report.md", markdown(report))
    return kept


def _keep_previous(out_dir: Path) -> list[str]:
    """Move an existing report.json / report.md aside under the earlier report's date (its `created`, else the
    file's modification time)."""
    present = [out_dir / n for n in ("report.json", "report.md") if (out_dir / n).exists()]
    if not present:
        return []
    stamp = _created(out_dir / "report.json") or dt.datetime.fromtimestamp(
        present[0].stat().st_mtime, dt.timezone.utc
    ).isoformat(timespec="seconds")
    stamp = stamp.replace(":", "").replace("+0000", "Z")
    moved = []
    for src in present:
        dst = atomic.free_name(src.with_name(src.name.replace("report.", f"report.{stamp}.")))
        os.replace(src, dst)
        moved.append(str(dst))
    return moved


def _created(path: Path) -> str | None:
    try:
        created = json.loads(path.read_text())["created"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return created if isinstance(created, str) else None


def markdown(report: dict) -> str:
    v, env = report["verdict"], report["environment"]
    lines = [
        f"# Bring-up report ({report['mode']} mode, {report['created']})",
        "",
        f"**{v['summary']}**" + (f" — first thing to fix: {v['first_fix']}" if v["first_fix"] else ""),
        "",
        "| | |",
        "|---|---|",
        *(f"| {k} | {val} |" for k, val in env.items()),
        "",
    ]
    for section in dict.fromkeys(c["section"] for c in report["checks"]):
        lines += [f"## {section}", "", "| check | status | seconds | detail |", "|---|---|---:|---|"]
        for c in report["checks"]:
            if c["section"] == section:
                detail = c["detail"].replace("|", "\\|")
                lines.append(f"| {c['name']} | {c['status']} | {c['seconds']:.1f} | {detail} |")
        lines.append("")
    return "\n".join(lines)


def console(report: dict, paths: list[str]) -> str:
    """The short verdict printed at the end: counts, the first thing to fix, where the report is."""
    v = report["verdict"]
    out = [v["summary"]]
    if v["first_fix"]:
        out.append(f"first thing to fix: {v['first_fix']}")
    out.append("report: " + ", ".join(paths))
    return "\n".join(out)
