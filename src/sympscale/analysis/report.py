"""Tables (markdown + LaTeX) and summary.md for a sweep, generated from the tidy DataFrame."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from sympscale.analysis.checks import reason_kind
from sympscale.analysis.inference import clopper_pearson
from sympscale.analysis.stats import (
    _not_converged,
    bounded_table,
    cell_labels,
    ci_table,
    conservation_table,
    convergence_table,
    median_iqr,
    oracle_table,
    paired_ratios,
    ratio_table,
    vpt_difference_table,
)


def _fmt(v) -> str:
    if v is None or v is pd.NA:
        return "–"
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
    extra = {
        c: (c, "first")
        for c in ("width_used", "budget_ratio", "rank", "rank_dimension", "rank_floor_mse", "recipe_source")
        if c in ok.columns
    }
    cap = ok.groupby(["system", "D", "model", "setting"], dropna=False).agg(
        params=("params", "first"), capacity_ratio=("capacity_ratio", "first"), **extra
    )
    five = lambda r: f"{r:.5f}" if pd.notna(r) else "–"  # noqa: E731
    cap = cap.reset_index().assign(capacity_ratio=lambda t: t["capacity_ratio"].map(five))
    metrics = ("last100_mse", "steps_to_mse_1", "vpt_lyap_0.3", "one_step_mse", "measure_ratio", "observable_distance")
    metrics = [m for m in (*metrics, "model_lambda1", "spectrum_pair_error", "energy_drift_slope") if m in ok.columns]
    return {
        "vpt_difference": vpt_difference_table(df),
        "convergence": convergence_table(df),
        "vpt_oracle": oracle_table(df),
        "bounded": bounded_table(df),
        "ratio_gru_symp": ratio_table(df),
        "conservation": conservation_table(df),
        "mean_ci": ci_table(
            df, metrics=metrics, by=("system", "D", "model", "setting", "horizon_schedule", "bptt_window")
        ),
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
        return "No usable runs yet (every job folder is excluded or still running: see above)."
    parts = []
    for (system, D, setting), grp in ok.groupby(["system", "D", "setting"]):
        frac = grp.groupby("model")["bounded"].agg(["sum", "count"])
        desc = ", ".join(_bounded_phrase(m, int(r["sum"]), int(r["count"])) for m, r in frac.iterrows())
        desc += _ratio_phrase(paired_ratios(grp))
        frac = grp.get("vpt_fraction_of_oracle")
        if frac is not None and frac.notna().any():
            per_model = grp[frac.notna()].groupby("model")["vpt_fraction_of_oracle"].median()
            desc += "; VPT/oracle " + ", ".join(f"{m} {v:.2f}" for m, v in per_model.items())
        labels = "; ".join(f"{m}: {lab}" for m, g in grp.groupby("model") if (lab := cell_labels(g)))
        if labels:
            desc += f" [WARNING: {labels}]"
        parts.append(f"{system} D={D}{f' [{setting}]' if setting else ''}: {desc}")
    return "; ".join(parts) + "."


def _bounded_phrase(model: str, k: int, n: int) -> str:
    """'symp bounded 9/10 (95 % CI 0.55–1)': the fraction with its Clopper–Pearson interval."""
    lo, hi = clopper_pearson(k, n)
    return f"{model} bounded {k}/{n}" + (f" (95 % CI {lo:.2g}–{hi:.2g})" if n else "")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _ratio_phrase(pairs: pd.DataFrame) -> str:
    """'; GRU/Symp ... ratio median 25x (IQR ...)' over the pairs that have a ratio ('' when none has)."""
    defined = pairs[pairs["ratio"].notna()]
    undefined = len(pairs) - len(defined)
    note = f"; {_count(undefined, 'pair')} with no ratio (both rollouts blew up)" if undefined else ""
    if defined.empty:
        return note
    med, q25, q75 = median_iqr(defined["ratio"])
    return (
        f"; GRU/Symp last-100 MSE ratio median {med:.3g}x (IQR {q25:.3g}–{q75:.3g}x, {_count(len(defined), 'seed')})"
        + note
    )


def summary_markdown(
    df: pd.DataFrame,
    tabs: dict[str, pd.DataFrame],
    figures: list[Path],
    sweep_dir: Path,
    commands: list[str],
    notes: list[str] = (),
) -> str:
    """The sweep's report: what ran, what was used and what was excluded (and why), headline, tables, figures."""
    n, n_ok = len(df), int(df["ok"].sum()) if len(df) else 0
    lines = [f"# Sweep summary: `{sweep_dir}`", "", "## What was run", ""]
    lines += [f"    {c}" for c in commands] or ["(no command recorded)"]
    status = df["status"].value_counts().to_dict() if n else {}
    seeds = df.loc[df["ok"], "seed"].nunique() if n else 0
    lines += [
        "",
        f"{_count(n, 'job folder')}: {n_ok} finished and used ({_count(seeds, 'seed')}), {n - n_ok} excluded; "
        + "status: "
        + ", ".join(f"{k}: {v}" for k, v in status.items()),
        "",
    ]
    lines += excluded_lines(df)
    lines += _convergence_lines(df)
    titles = {
        "vpt_difference": "Primary endpoint: paired symp − GRU VPT(0.3) difference (Lyapunov times) per cell, mean "
        "over pairs on the same data, 95 % bootstrap interval, exact sign-flip p, Holm-adjusted across cells "
        "(a diverged run counts as VPT 0)",
        "convergence": "Verdicts: failed to learn (validation VPT 0, or one-step MSE > 0.1 x persistence's), converged "
        "(best validation VPT gained < tol over the last quarter, relative to its start), not converged",
        "vpt_oracle": "VPT(0.3) as a fraction of the oracle's (same system, D, data)",
        "bounded": "Bounded rollouts",
        "ratio_gru_symp": "GRU/Symp last-100 MSE ratio (paired by seed)",
        "conservation": "Conservation residuals (median and max over seeds)",
        "mean_ci": "Mean ± 95 % CI across seeds",
        "capacity": "Capacity: potential width used, budget, increment rank of the dimension it must cover, its "
        "one-step MSE floor, and the recipe's source",
    }
    first = [name for name in ("vpt_difference",) if name in tabs]  # the primary endpoint leads
    for name in first:
        lines += [f"## {titles[name]}", "", to_markdown(tabs[name])]
    lines += ["## Headline", "", headline(df), ""]
    for name, t in tabs.items():
        if name not in first:
            lines += [f"## {titles.get(name, name)}", "", to_markdown(t)]
    if figures or notes:
        lines += ["## Figures", ""]
        lines += [f"- [{p.stem}]({p.relative_to(sweep_dir)})" for p in figures if p.suffix == ".png"]
        lines += [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def excluded_lines(df: pd.DataFrame) -> list[str]:
    """The 'Excluded job folders' section: counts per reason, then every excluded folder with its reason."""
    bad = df[~df["ok"]] if len(df) else df
    if bad.empty:
        return []
    counts = bad["problem"].map(reason_kind).value_counts()
    lines = ["## Excluded job folders", ""]
    lines += [f"{len(bad)} of {len(df)} job folders are not used in any table, figure or headline.", ""]
    lines += ["| reason | folders |", "|---|---|", *[f"| {k} | {v} |" for k, v in counts.items()], ""]
    lines += [f"- `{r.job}`: {r.problem}" for r in bad.sort_values("job").itertuples()]
    return [*lines, ""]


def _convergence_lines(df: pd.DataFrame) -> list[str]:
    """How many used runs did not converge, and which: every comparison resting on them is flagged."""
    if "converged" not in df or not len(df):
        return []
    ok = df[df["ok"]]
    bad = ok[_not_converged(ok)]
    judged = int(ok["converged"].notna().sum())
    if not judged:  # no run records a verdict (older metrics, or only the oracle)
        return []
    failed = {
        word: int(ok[col].map(lambda v: v is True).sum())
        for col, word in (("diverged", "diverged"), ("failed_to_learn", "failed to learn"))
        if col in ok
    }
    converged = judged - len(bad) - sum(failed.values())
    tail = "".join(f"; {n} {word}" for word, n in failed.items() if n)
    lines = [f"Convergence: {converged} of {judged} trained runs converged; {len(bad)} did not{tail}.", ""]
    if len(bad):
        lines += ["Not converged (their results are reported but flagged in the headline and the ratio table):", ""]
        lines += [f"- {r.system} D={r.D} {r.model} seed={r.seed} ({r.horizon_schedule})" for r in bad.itertuples()]
        lines.append("")
    return lines
