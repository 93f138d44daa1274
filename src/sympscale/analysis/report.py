"""Tables (markdown + LaTeX) and summary.md for a sweep, generated from the tidy DataFrame."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from sympscale.analysis.stats import bounded_table, ci_table, conservation_table, paired_ratios, ratio_table


def _fmt(v) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        return f"{v:.3g}" if abs(v) < 1e4 or math.isinf(v) else f"{v:.2e}"
    return str(v)


def to_markdown(df: pd.DataFrame) -> str:
    if df.empty:
        return "_(no rows)_\n"
    head = "| " + " | ".join(df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body]) + "\n"


def to_latex(df: pd.DataFrame) -> str:
    cols = "l" * len(df.columns)
    esc = lambda s: str(s).replace("_", r"\_").replace("%", r"\%").replace("±", r"$\pm$")  # noqa: E731
    lines = [rf"\begin{{tabular}}{{{cols}}}", r"\toprule", " & ".join(esc(c) for c in df.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(esc(_fmt(v)) for v in row) + r" \\" for row in df.itertuples(index=False)]
    return "\n".join([*lines, r"\bottomrule", r"\end{tabular}"]) + "\n"


def tables(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    ok = df[df["ok"]]
    cap = ok.groupby(["system", "D", "model"]).agg(
        params=("params", "first"), capacity_ratio=("capacity_ratio", "first")
    )
    cap = cap.reset_index().assign(capacity_ratio=lambda t: t["capacity_ratio"].map(lambda r: f"{r:.5f}"))
    return {
        "bounded": bounded_table(df),
        "ratio_gru_symp": ratio_table(df),
        "conservation": conservation_table(df),
        "mean_ci": ci_table(df, by=("system", "D", "model", "bptt_window")),
        "capacity": cap,
    }


def write_tables(tabs: dict[str, pd.DataFrame], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, t in tabs.items():
        (out / f"{name}.md").write_text(to_markdown(t))
        (out / f"{name}.tex").write_text(to_latex(t))


def headline(df: pd.DataFrame) -> str:
    ok = df[df["ok"]]
    if ok.empty:
        return "No finished runs yet."
    parts = []
    for (system, D), grp in ok.groupby(["system", "D"]):
        frac = grp.groupby("model")["bounded"].agg(["sum", "count"])
        desc = ", ".join(f"{m} bounded {int(r['sum'])}/{int(r['count'])}" for m, r in frac.iterrows())
        pairs = paired_ratios(grp)
        if len(pairs):
            q = pairs["ratio"].quantile([0.25, 0.5, 0.75])
            desc += f"; GRU/Symp last-100 MSE ratio median {q[0.5]:.3g}x (IQR {q[0.25]:.3g}–{q[0.75]:.3g}x, {len(pairs)} seeds)"
        parts.append(f"{system} D={D}: {desc}")
    return "; ".join(parts) + "."


def summary_markdown(
    df: pd.DataFrame, tabs: dict[str, pd.DataFrame], figures: list[Path], sweep_dir: Path, commands: list[str]
) -> str:
    n, n_ok = len(df), int(df["ok"].sum()) if len(df) else 0
    lines = [f"# Sweep summary: `{sweep_dir}`", "", "## What was run", ""]
    lines += [f"    {c}" for c in commands] or ["(no command recorded)"]
    status = df["status"].value_counts().to_dict() if n else {}
    lines += [
        "",
        f"{n} job folders: {n_ok} finished and used; " + ", ".join(f"{k}: {v}" for k, v in status.items()),
        "",
    ]
    bad = df[~df["ok"]] if n else df
    if len(bad):
        lines += ["Excluded (not finished or incomplete):", ""]
        lines += [
            f"- `{Path(r.job_dir).name}`: {r.problem}" + (f" — {r.error}" if isinstance(r.error, str) else "")
            for r in bad.itertuples()
        ]
        lines.append("")
    lines += ["## Headline", "", headline(df), ""]
    titles = {
        "bounded": "Bounded rollouts",
        "ratio_gru_symp": "GRU/Symp last-100 MSE ratio (paired by seed)",
        "conservation": "Conservation residuals (median and max over seeds)",
        "mean_ci": "Mean ± 95 % CI across seeds",
        "capacity": "Capacity",
    }
    for name, t in tabs.items():
        lines += [f"## {titles.get(name, name)}", "", to_markdown(t)]
    if figures:
        lines += ["## Figures", ""]
        lines += [f"- [{p.stem}]({p.relative_to(sweep_dir)})" for p in figures if p.suffix == ".png"]
    return "\n".join(lines) + "\n"
