"""`python -m sympscale.analyze <sweep dir>`: results table, figures, tables and summary.md for a sweep.

Works on a sweep that is still running or partly failed: it reports what is there and lists what is not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml


def _commands(sweep_dir: Path, df) -> list[str]:
    mr = sweep_dir / "multirun.yaml"
    if mr.exists():
        task = (yaml.safe_load(mr.read_text()) or {}).get("hydra", {}).get("overrides", {}).get("task", [])
        return ["python -m sympscale.train -m " + " ".join(task)]
    return sorted({f"python -m sympscale.train {o}".strip() for o in df.get("overrides", [])})


def analyze(sweep_dir: str | Path, out: str | Path | None = None) -> dict:
    from sympscale.analysis.collect import collect, validation_curves
    from sympscale.analysis.figures import all_figures
    from sympscale.analysis.report import summary_markdown, tables, write_tables

    sweep_dir = Path(sweep_dir).resolve()
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"no such sweep folder: {sweep_dir}")
    out = Path(out) if out else sweep_dir
    df = collect(sweep_dir)
    if df.empty:
        raise FileNotFoundError(f"no job folders (config.json / status.json / metrics.json) under {sweep_dir}")
    out.mkdir(parents=True, exist_ok=True)
    df.to_parquet(out / "results.parquet", index=False)
    df.to_csv(out / "results.csv", index=False)
    tabs = tables(df)
    write_tables(tabs, out / "tables")
    curves = validation_curves(df)
    curves.to_csv(out / "validation_curves.csv", index=False)
    figs = all_figures(df, out / "figures", curves)
    (out / "summary.md").write_text(summary_markdown(df, tabs, figs, out, _commands(sweep_dir, df)))
    return {"rows": len(df), "ok": int(df["ok"].sum()), "figures": figs, "out": out}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sympscale.analyze", description=__doc__)
    p.add_argument("sweep_dir")
    p.add_argument("--out", help="where to write (default: the sweep folder)")
    a = p.parse_args(argv)
    try:
        res = analyze(a.sweep_dir, a.out)
    except FileNotFoundError as e:
        print(f"sympscale.analyze: {e}", file=sys.stderr)
        return 2
    print(
        f"{res['rows']} runs ({res['ok']} finished) -> {res['out'] / 'summary.md'}, "
        f"{res['out'] / 'results.parquet'}, {len(res['figures'])} figure files in {res['out'] / 'figures'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
