"""Figures, each drawn only from the tidy DataFrame; saved as PNG and PDF."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from sympscale.analysis.stats import (  # noqa: E402
    bounded_table,
    labels_note,
    oracle_table,
    paired_ratios,
    ratio_table,
    vpt_difference_table,
)


def _save(fig, out: Path, name: str, used: pd.DataFrame | None = None) -> list[Path]:
    """Save as PNG and PDF; with `used` (the runs drawn), a footnote names every cell that falls short."""
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    fig.tight_layout()
    note = labels_note(used) if used is not None else ""
    if note:
        text = "\n".join(textwrap.wrap(note, width=int(fig.get_figwidth() * 22)))
        lines = text.count("\n") + 1
        fig.subplots_adjust(bottom=min(0.5, fig.subplotpars.bottom + 0.035 * lines))
        fig.text(0.01, 0.005, text, fontsize=6, va="bottom", ha="left", color="firebrick")
    for p in paths:
        fig.savefig(p, dpi=150)
    plt.close(fig)
    return paths


def _d_ticks(ax, D) -> None:
    """Ticks at the D values of the sweep (a log axis over one or two values has unreadable default ticks)."""
    values = sorted({int(d) for d in D})
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(values))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FixedFormatter([str(v) for v in values]))
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlim(min(values) / 1.6, max(values) * 1.6)


def reliability_vs_D(df: pd.DataFrame, out: Path) -> list[Path]:
    """Per system: bounded fraction per model vs D (per-seed points), and the GRU/Symp ratio median + IQR."""
    ok = df[df["ok"]]
    paths = []
    for system, sdf in ok.groupby("system"):
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        frac = bounded_table(sdf)
        rng = np.random.default_rng(0)
        frac["method"] = [m if not s else f"{m} [{s}]" for m, s in zip(frac["model"], frac["setting"], strict=True)]
        for k, (method, mdf) in enumerate(sorted(frac.groupby("method"))):
            color = f"C{k}"
            ax1.plot(mdf["D"], mdf["fraction"], "o-", color=color, label=method)
            seeds = sdf[sdf["method"] == method]
            x = seeds["D"].to_numpy(float) * np.exp(rng.uniform(-0.06, 0.06, len(seeds)))
            y = seeds["bounded"].astype(float).to_numpy() + rng.uniform(-0.03, 0.03, len(seeds))
            ax1.scatter(x, y, color=color, alpha=0.35, s=14)
        ax1.legend(title="model")
        ax1.set(
            xscale="log",
            ylim=(-0.1, 1.1),
            xlabel="D",
            ylabel="bounded fraction (points: seeds)",
            title=f"{system}: bounded rollouts vs D",
        )
        _d_ticks(ax1, sdf["D"])
        rt = ratio_table(sdf)
        rt = rt[np.isfinite(rt["median"].astype(float)) & (rt["median"] > 0)]  # a log axis: finite, positive
        pairs = paired_ratios(sdf)
        pairs = pairs[np.isfinite(pairs["ratio"].astype(float)) & (pairs["ratio"] > 0)]
        if not rt.empty:
            ax2.errorbar(
                rt["D"],
                rt["median"],
                yerr=[rt["median"] - rt["q25"], rt["q75"] - rt["median"]],
                fmt="o-",
                capsize=4,
                label="median (IQR)",
            )
            ax2.scatter(pairs["D"], pairs["ratio"], alpha=0.4, s=12, label="per seed")
            ax2.axhline(1.0, color="grey", lw=0.8, ls="--")
            ax2.legend()
        ax2.set(
            xscale="log",
            yscale="log",
            xlabel="D",
            ylabel="GRU / Symp last-100 MSE",
            title=f"{system}: GRU/Symp error ratio vs D",
        )
        _d_ticks(ax2, sdf["D"])
        paths += _save(fig, out, f"reliability_vs_D_{system}", sdf)
    return paths


class SkipFigure(Exception):
    """A figure with nothing to draw: all_figures notes the reason and goes on."""


def _dodge(data: pd.DataFrame, hue: str) -> float | bool:
    """Offset between hue levels; seaborn's dodge divides by (levels - 1), so none for a single level."""
    return 0.1 if data[hue].nunique() > 1 else False


def steps_to_mse_1_vs_D(df: pd.DataFrame, out: Path) -> list[Path]:
    ok = df[df["ok"]]
    if ok.empty or ok["steps_to_mse_1"].isna().all():
        raise SkipFigure("no steps-to-MSE-1 in any used run")
    lyap = "lyap_to_mse_1" in ok and ok["lyap_to_mse_1"].notna().any()
    ycols = ["steps_to_mse_1"] + (["lyap_to_mse_1"] if lyap else [])
    systems = sorted(ok["system"].unique())
    fig, axes = plt.subplots(len(ycols), len(systems), figsize=(4.5 * len(systems), 3.8 * len(ycols)), squeeze=False)
    for j, system in enumerate(systems):
        for i, y in enumerate(ycols):
            data = ok[(ok["system"] == system) & ok[y].notna()]
            if data.empty:  # nothing to draw in this panel; the others still are
                axes[i][j].text(0.5, 0.5, f"no {y} values", ha="center", transform=axes[i][j].transAxes)
                continue
            sns.pointplot(
                data=data.astype({"D": float, y: float}),
                x="D",
                y=y,
                hue="model",
                native_scale=True,
                errorbar=("pi", 50),
                estimator="median",
                dodge=_dodge(data, "model"),
                ax=axes[i][j],
            )
            axes[i][j].set(
                xscale="log",
                title=f"{system}: steps to normalised MSE 1 vs D",
                ylabel="steps (median, IQR)" if y == "steps_to_mse_1" else "Lyapunov times",
            )
            _d_ticks(axes[i][j], ok["D"])
    return _save(fig, out, "steps_to_mse_1_vs_D", ok)


def bptt_ablation(df: pd.DataFrame, out: Path) -> list[Path]:
    """Reliability gap (Symp − GRU bounded fraction) and conservation residual vs BPTT window."""
    ok = df[df["ok"]]
    if ok["bptt_window"].nunique() < 2:
        return []
    order = sorted(ok["bptt_window"].unique(), key=lambda w: (w == "full", int(w) if w.isdigit() else 0))
    frac = ok.groupby(["system", "D", "setting", "bptt_window", "model"])["bounded"].mean().unstack("model")
    cosine = "grad_cosine_full" in ok and ok["grad_cosine_full"].notna().any()
    fig, axes = plt.subplots(1, 3 if cosine else 2, figsize=(15 if cosine else 10, 4))
    ax1, ax2 = axes[0], axes[1]
    if cosine:
        sns.pointplot(
            data=ok[ok["bptt_window"] != "full"],
            x="bptt_window",
            y="grad_cosine_full",
            hue="method",
            order=[w for w in order if w != "full"],
            ax=axes[2],
        )
        axes[2].set(ylabel="cos(truncated, full-horizon gradient)", title="gradient agreement vs window")
    if {"symp", "gru"} <= set(frac.columns):
        gap = (frac["symp"] - frac["gru"]).rename("gap").reset_index()
        gap["label"] = (
            gap["system"] + " D=" + gap["D"].astype(str) + gap["setting"].map(lambda s: f" [{s}]" if s else "")
        )
        sns.pointplot(data=gap, x="bptt_window", y="gap", hue="label", order=order, ax=ax1)
    ax1.set(ylabel="bounded fraction: Symp − GRU", title="reliability gap vs BPTT window")
    if "energy_residual" in ok and ok["energy_residual"].notna().any():
        res = ok.assign(resid=pd.to_numeric(ok["energy_residual"], errors="coerce"))
        sns.pointplot(
            data=res,
            x="bptt_window",
            y="resid",
            hue="method",
            order=order,
            estimator="median",
            errorbar=("pi", 50),
            ax=ax2,
        )
        ax2.set(yscale="log", ylabel="energy residual (median, IQR)", title="conservation vs BPTT window")
    return _save(fig, out, "bptt_ablation", ok)


def _runs_per_d(sdf: pd.DataFrame, x: str, y: str, axes_of) -> plt.Figure:
    """One panel per D, one line per run (colour: its method): `axes_of(ax, D)` labels each panel."""
    Ds = sorted(sdf["D"].unique())
    fig, axes = plt.subplots(1, len(Ds), figsize=(4.2 * len(Ds), 3.6), squeeze=False, sharey=True)
    methods = sorted(sdf["method"].unique())
    for ax, D in zip(axes[0], Ds, strict=True):
        for k, method in enumerate(methods):
            runs = sdf[(sdf["D"] == D) & (sdf["method"] == method)]
            for i, (_, run) in enumerate(runs.groupby("job_dir")):
                ax.plot(run[x], run[y], color=f"C{k}", alpha=0.7, lw=1, label=method if i == 0 else None)
        axes_of(ax, D)
        ax.legend(title="model", fontsize=8)
    return fig


def convergence(curves: pd.DataFrame, out: Path) -> list[Path]:
    """Per system: validation VPT (Lyapunov times) against training step, one line per run, one panel per D."""
    paths = []
    for system, sdf in curves.groupby("system"):
        label = lambda ax, D, system=system: ax.set(  # noqa: E731
            title=f"{system} D={D}", xlabel="training step", ylabel="validation VPT(0.3), Lyapunov times"
        )
        paths += _save(_runs_per_d(sdf, "step", "val_vpt_lyap", label), out, f"convergence_{system}")
    return paths


def energy_drift(curves: pd.DataFrame, out: Path, used: pd.DataFrame) -> list[Path]:
    """Per system: the median energy residual |ΔH|/|H| over time, one line per run, one panel per D (log y)."""
    paths = []
    curves = curves.assign(drawn=curves["median_residual"].clip(lower=1e-16))  # log axis: exact drawn at 1e-16
    for system, sdf in curves.groupby("system"):
        e = next(iter(sdf["energy_invariant"].dropna()), "energy")
        label = lambda ax, D, system=system, e=e: ax.set(  # noqa: E731
            yscale="log", title=f"{system} D={D}", xlabel="time", ylabel=f"median |Δ{e}|/|{e}|"
        )
        fig = _runs_per_d(sdf, "time", "drawn", label)
        paths += _save(fig, out, f"energy_drift_{system}", used[used["system"] == system])
    return paths


def vpt_difference_vs_D(df: pd.DataFrame, out: Path) -> list[Path]:
    """The primary endpoint: per system, the paired symp − GRU VPT(0.3) difference against D, with its 95 %
    bootstrap interval (Holm-adjusted p in summary.md)."""
    table = vpt_difference_table(df).dropna(subset=["difference"])
    if table.empty:  # no symp/GRU pairs with a VPT (the table in summary.md says so)
        return []
    systems = sorted(table["system"].unique())
    fig, axes = plt.subplots(1, len(systems), figsize=(4.5 * len(systems), 3.8), squeeze=False)
    for ax, system in zip(axes[0], systems, strict=True):
        st = table[table["system"] == system]
        for k, (setting, mt) in enumerate(st.groupby("setting", dropna=False)):
            mt = mt.sort_values("D")
            lo = (mt["difference"] - mt["ci95_low"]).fillna(0).clip(lower=0)
            hi = (mt["ci95_high"] - mt["difference"]).fillna(0).clip(lower=0)
            x = mt["D"].to_numpy(float) * (1.0 + 0.04 * k)
            label = setting if isinstance(setting, str) and setting else "symp − GRU"
            ax.errorbar(x, mt["difference"], yerr=[lo, hi], fmt="o-", capsize=3, label=label)
        ax.axhline(0.0, color="grey", lw=0.8, ls="--")
        ax.set(
            xscale="log", xlabel="D", ylabel="symp − GRU VPT(0.3), Lyapunov times", title=f"{system}: paired difference"
        )
        _d_ticks(ax, st["D"])
        ax.legend(fontsize=7)
    return _save(fig, out, "vpt_difference_vs_D", df[df["ok"]])


def vpt_fraction_vs_D(df: pd.DataFrame, out: Path) -> list[Path]:
    """Per system: each model's VPT as a fraction of the oracle's (median and IQR over seeds) against D."""
    table = oracle_table(df)
    table = table[table["model"] != "oracle"].dropna(subset=["fraction_median"])
    if table.empty:
        return []
    systems = sorted(table["system"].unique())
    fig, axes = plt.subplots(1, len(systems), figsize=(4.5 * len(systems), 3.8), squeeze=False)
    for ax, system in zip(axes[0], systems, strict=True):
        st = table[table["system"] == system]
        for k, ((model, setting, schedule), mt) in enumerate(st.groupby(["model", "setting", "horizon_schedule"])):
            mt = mt.sort_values("D")
            err = [mt["fraction_median"] - mt["fraction_q25"], mt["fraction_q75"] - mt["fraction_median"]]
            x = mt["D"].to_numpy(float) * (1.0 + 0.04 * k)  # a small offset per model keeps error bars apart
            ax.errorbar(
                x,
                mt["fraction_median"],
                yerr=err,
                fmt="o-",
                capsize=3,
                label=f"{model} [{', '.join(filter(None, (setting, schedule)))}]",
            )
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set(
            xscale="log",
            xlabel="D",
            ylabel="VPT / oracle VPT (median, IQR)",
            title=f"{system}: VPT vs the oracle's (a reference)",
        )
        _d_ticks(ax, st["D"])
        ax.legend(fontsize=7)
    return _save(fig, out, "vpt_fraction_of_oracle_vs_D", df[df["ok"]])


def all_figures(
    df: pd.DataFrame, out: Path, curves: pd.DataFrame | None = None, drift: pd.DataFrame | None = None
) -> tuple[list[Path], list[str]]:
    """Every figure the used runs allow, and a note for each one skipped (nothing to draw, or it failed)."""
    out.mkdir(parents=True, exist_ok=True)
    sns.set_theme(style="whitegrid")
    if df.empty or not df["ok"].any():
        return [], ["no figures: no run is usable yet"]
    draws = [vpt_difference_vs_D, reliability_vs_D, steps_to_mse_1_vs_D, bptt_ablation, vpt_fraction_vs_D]
    jobs = [(f.__name__, lambda f=f: f(df, out)) for f in draws]
    if curves is not None and not curves.empty:
        jobs.append(("convergence", lambda: convergence(curves, out)))
    if drift is not None and not drift.empty:
        jobs.append(("energy_drift", lambda: energy_drift(drift, out, df[df["ok"]])))
    paths, notes = [], []
    for name, draw in jobs:
        try:
            paths += draw()
        except SkipFigure as e:
            notes.append(f"{name} skipped: {e}")
        except Exception as e:  # a figure that cannot be drawn must not cost the tables and the summary
            plt.close("all")
            notes.append(f"{name} skipped: {type(e).__name__}: {e}")
    return paths, notes
