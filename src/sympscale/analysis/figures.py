"""Figures, each drawn only from the tidy DataFrame; saved as PNG and PDF."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from sympscale.analysis.stats import bounded_table, paired_ratios, ratio_table  # noqa: E402


def _save(fig, out: Path, name: str) -> list[Path]:
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    fig.tight_layout()
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
        for k, (model, mdf) in enumerate(sorted(frac.groupby("model"))):
            color = f"C{k}"
            ax1.plot(mdf["D"], mdf["fraction"], "o-", color=color, label=model)
            seeds = sdf[sdf["model"] == model]
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
        pairs = paired_ratios(sdf)
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
        paths += _save(fig, out, f"reliability_vs_D_{system}")
    return paths


def horizon_vs_D(df: pd.DataFrame, out: Path) -> list[Path]:
    ok = df[df["ok"]]
    if ok.empty:
        return []
    lyap = "prediction_horizon_lyap" in ok and ok["prediction_horizon_lyap"].notna().any()
    ycols = ["prediction_horizon"] + (["prediction_horizon_lyap"] if lyap else [])
    systems = sorted(ok["system"].unique())
    fig, axes = plt.subplots(len(ycols), len(systems), figsize=(4.5 * len(systems), 3.8 * len(ycols)), squeeze=False)
    for j, system in enumerate(systems):
        for i, y in enumerate(ycols):
            sns.pointplot(
                data=ok[ok["system"] == system],
                x="D",
                y=y,
                hue="model",
                native_scale=True,
                errorbar=("pi", 50),
                estimator="median",
                dodge=0.1,
                ax=axes[i][j],
            )
            axes[i][j].set(
                xscale="log",
                title=f"{system}: prediction horizon vs D",
                ylabel="steps (median, IQR)" if y == "prediction_horizon" else "Lyapunov times",
            )
            _d_ticks(axes[i][j], ok["D"])
    return _save(fig, out, "prediction_horizon_vs_D")


def bptt_ablation(df: pd.DataFrame, out: Path) -> list[Path]:
    """Reliability gap (Symp − GRU bounded fraction) and conservation residual vs BPTT window."""
    ok = df[df["ok"]]
    if ok["bptt_window"].nunique() < 2:
        return []
    order = sorted(ok["bptt_window"].unique(), key=lambda w: (w == "full", int(w) if w.isdigit() else 0))
    frac = ok.groupby(["system", "D", "bptt_window", "model"])["bounded"].mean().unstack("model")
    cosine = "grad_cosine_full" in ok and ok["grad_cosine_full"].notna().any()
    fig, axes = plt.subplots(1, 3 if cosine else 2, figsize=(15 if cosine else 10, 4))
    ax1, ax2 = axes[0], axes[1]
    if cosine:
        sns.pointplot(
            data=ok[ok["bptt_window"] != "full"],
            x="bptt_window",
            y="grad_cosine_full",
            hue="model",
            order=[w for w in order if w != "full"],
            ax=axes[2],
        )
        axes[2].set(ylabel="cos(truncated, full-horizon gradient)", title="gradient agreement vs window")
    if {"symp", "gru"} <= set(frac.columns):
        gap = (frac["symp"] - frac["gru"]).rename("gap").reset_index()
        gap["label"] = gap["system"] + " D=" + gap["D"].astype(str)
        sns.pointplot(data=gap, x="bptt_window", y="gap", hue="label", order=order, ax=ax1)
    ax1.set(ylabel="bounded fraction: Symp − GRU", title="reliability gap vs BPTT window")
    if "conservation_H" in ok:
        res = ok.assign(resid=pd.to_numeric(ok["conservation_H"], errors="coerce"))
        sns.pointplot(
            data=res,
            x="bptt_window",
            y="resid",
            hue="model",
            order=order,
            estimator="median",
            errorbar=("pi", 50),
            ax=ax2,
        )
        ax2.set(yscale="log", ylabel="energy residual (median, IQR)", title="conservation vs BPTT window")
    return _save(fig, out, "bptt_ablation")


def all_figures(df: pd.DataFrame, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    sns.set_theme(style="whitegrid")
    if df.empty or not df["ok"].any():
        return []
    return reliability_vs_D(df, out) + horizon_vs_D(df, out) + bptt_ablation(df, out)
