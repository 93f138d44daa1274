"""The study's statistics: bounded fractions, paired GRU/Symp ratios (median + IQR), mean ± 95 % CI."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as sps


def median_iqr(values) -> tuple[float, float, float]:
    """(median, 25th percentile, 75th percentile) with linear interpolation (numpy's default)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return (math.nan, math.nan, math.nan)
    q25, med, q75 = np.percentile(v, [25, 50, 75])
    return float(med), float(q25), float(q75)


def mean_ci(values, level: float = 0.95) -> tuple[float, float]:
    """(mean, half-width of the Student-t confidence interval); half-width is NaN for fewer than 2 values."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (math.nan, math.nan)
    if v.size < 2:
        return (float(v.mean()), math.nan)
    t = sps.t.ppf(0.5 + level / 2, df=v.size - 1)
    return float(v.mean()), float(t * v.std(ddof=1) / math.sqrt(v.size))


PAIR_KEYS = ["system", "D", "seed", "data_seed", "bptt_window", "train_preset", "width", "depth"]


def paired_ratios(df: pd.DataFrame, num: str = "gru", den: str = "symp", metric: str = "last100_mse") -> pd.DataFrame:
    """num/den ratio of `metric` for runs that agree on everything but the model (paired by seed)."""
    keys = [k for k in PAIR_KEYS if k in df.columns]
    ok = df[df["ok"]]
    a = ok[ok["model"] == num][[*keys, metric]].rename(columns={metric: "num"})
    b = ok[ok["model"] == den][[*keys, metric]].rename(columns={metric: "den"})
    pairs = a.merge(b, on=keys, how="inner")
    pairs["ratio"] = pairs["num"] / pairs["den"]
    return pairs


def bounded_table(df: pd.DataFrame) -> pd.DataFrame:
    ok = df[df["ok"]]
    g = ok.groupby(["system", "D", "model"], dropna=False)["bounded"]
    return g.agg(bounded="sum", n="count").assign(fraction=lambda t: t["bounded"] / t["n"]).reset_index()


def ratio_table(df: pd.DataFrame, num: str = "gru", den: str = "symp") -> pd.DataFrame:
    pairs = paired_ratios(df, num, den)
    rows = []
    for (system, D), grp in pairs.groupby(["system", "D"]):
        med, q25, q75 = median_iqr(grp["ratio"])
        rows.append({"system": system, "D": D, "n_pairs": len(grp), "median": med, "q25": q25, "q75": q75})
    return pd.DataFrame(rows, columns=["system", "D", "n_pairs", "median", "q25", "q75"])


def ci_table(
    df: pd.DataFrame, metrics=("last100_mse", "prediction_horizon"), by=("system", "D", "model")
) -> pd.DataFrame:
    ok = df[df["ok"]]
    rows = []
    for key, grp in ok.groupby(list(by), dropna=False):
        row = dict(zip(by, key, strict=True), n=len(grp))
        for m in metrics:
            row[f"{m}_mean"], row[f"{m}_ci95"] = mean_ci(grp[m])
        rows.append(row)
    return pd.DataFrame(rows)


def conservation_table(df: pd.DataFrame) -> pd.DataFrame:
    """Median and max of each invariant's residual per (system, D, model), with and without projection."""
    ok = df[df["ok"]]
    cols = [c for c in ok.columns if c.startswith("conservation_")]
    rows = []
    for (system, D, model), grp in ok.groupby(["system", "D", "model"]):
        for c in cols:
            v = pd.to_numeric(grp[c], errors="coerce").dropna()
            if v.empty:
                continue
            kind, inv = (
                ("projected", c[len("conservation_projected_") :])
                if c.startswith("conservation_projected_")
                else ("none", c[len("conservation_") :])
            )
            rows.append(
                {
                    "system": system,
                    "D": D,
                    "model": model,
                    "invariant": inv,
                    "projection": kind,
                    "median": float(v.median()),
                    "max": float(v.max()),
                    "n": len(v),
                }
            )
    return pd.DataFrame(rows)
