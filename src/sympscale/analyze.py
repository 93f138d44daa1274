"""`python -m sympscale.analyze <sweep dir>`: results table, figures, tables and summary.md for a sweep.

Works on any sweep folder: one still running, partly failed, or holding junk. Every job folder is a row of
results.parquet; summary.md lists each one not used (and why), and only the rest enter tables and figures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml


class NothingToAnalyse(FileNotFoundError):
    """The folder does not exist, is not a folder, or holds no job folder."""


def _commands(sweep_dir: Path, df) -> list[str]:
    """The command that ran the sweep (multirun.yaml), else one per distinct set of overrides."""
    try:
        record = yaml.safe_load((sweep_dir / "multirun.yaml").read_text())
    except (OSError, ValueError, yaml.YAMLError):  # no record, or not YAML
        record = None
    task = record.get("hydra", {}).get("overrides", {}).get("task") if isinstance(record, dict) else None
    if isinstance(task, list):
        return ["python -m sympscale.train -m " + " ".join(map(str, task))]
    overrides = [o for o in df.get("overrides", []) if isinstance(o, str)]
    return sorted({f"python -m sympscale.train {o}".strip() for o in overrides})


def analyze(sweep_dir: str | Path, out: str | Path | None = None) -> dict:
    """Write results.parquet/.csv, tables/, figures/, validation_curves.csv, energy_drift_curves.csv and
    summary.md for a sweep."""
    from sympscale.analysis.collect import collect, energy_drift_curves, job_dirs, validation_curves
    from sympscale.analysis.figures import all_figures
    from sympscale.analysis.report import summary_markdown, tables, write_tables

    sweep_dir = Path(sweep_dir).resolve()
    if not sweep_dir.exists():
        raise NothingToAnalyse(f"no such sweep folder: {sweep_dir}")
    if not sweep_dir.is_dir():
        raise NothingToAnalyse(f"not a folder: {sweep_dir}")
    if not job_dirs(sweep_dir):
        raise NothingToAnalyse(
            f"nothing to analyse: no job folders (config.json / status.json / metrics.json) under {sweep_dir}"
        )
    out = Path(out) if out else sweep_dir
    df = collect(sweep_dir)
    out.mkdir(parents=True, exist_ok=True)
    df.to_parquet(out / "results.parquet", index=False)
    df.to_csv(out / "results.csv", index=False)
    tabs = tables(df)
    write_tables(tabs, out / "tables")
    curves = validation_curves(df)
    curves.to_csv(out / "validation_curves.csv", index=False)
    drift = energy_drift_curves(df)
    drift.to_csv(out / "energy_drift_curves.csv", index=False)
    figs, notes = all_figures(df, out / "figures", curves, drift)
    summary = summary_markdown(df, tabs, figs, out, _commands(sweep_dir, df), notes)
    (out / "summary.md").write_text(summary)
    return {"rows": len(df), "ok": int(df["ok"].sum()), "figures": figs, "notes": notes, "out": out}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sympscale.analyze", description=__doc__)
    p.add_argument("sweep_dir")
    p.add_argument("--out", help="where to write (default: the sweep folder)")
    a = p.parse_args(argv)
    try:
        res = analyze(a.sweep_dir, a.out)
    except NothingToAnalyse as e:
        print(f"sympscale.analyze: {e}", file=sys.stderr)
        return 2
    skipped = f" ({len(res['notes'])} skipped, see summary.md)" if res["notes"] else ""
    print(
        f"{res['rows']} job folders ({res['ok']} used, {res['rows'] - res['ok']} excluded) -> "
        f"{res['out'] / 'summary.md'}, {res['out'] / 'results.parquet'}, "
        f"{len(res['figures'])} figure files in {res['out'] / 'figures'}{skipped}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
