"""The study's statistics: the primary endpoint (the paired symp − GRU VPT difference per cell, bootstrap interval,
Holm-adjusted sign-flip p), bounded fractions (Clopper–Pearson), paired GRU/Symp ratios (median + IQR), mean ± CI."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as sps

from sympscale.analysis.inference import bootstrap_mean_ci, clopper_pearson, holm, sign_flip_p


def median_iqr(values) -> tuple[float, float, float]:
    """(median, 25th percentile, 75th percentile) with linear interpolation (numpy's default)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return (math.nan, math.nan, math.nan)
    if np.isinf(v).any() and not np.isnan(v).any():  # numpy interpolates towards inf as NaN
        q25, med, q75 = (_percentile_inf(np.sort(v), q) for q in (0.25, 0.5, 0.75))
    else:
        q25, med, q75 = np.percentile(v, [25, 50, 75])
    return float(med), float(q25), float(q75)


def _percentile_inf(v: np.ndarray, q: float) -> float:
    """Linear-interpolation percentile of sorted `v` where a value between x and inf is inf."""
    pos = q * (v.size - 1)
    lo = math.floor(pos)
    frac = pos - lo
    if frac == 0 or v[lo] == v[lo + 1]:
        return float(v[lo])
    return float(v[lo] + (v[lo + 1] - v[lo]) * frac)


def mean_ci(values, level: float = 0.95) -> tuple[float, float]:
    """(mean, half-width of the Student-t confidence interval); half-width is NaN for fewer than 2 values.

    Missing values (NaN: not measured) are left out; an infinite one (a rollout that blew up, a diverged run) is
    a result: the mean is infinite, its interval NaN."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return (math.nan, math.nan)
    if np.isinf(v).any():
        return (float(v.sum()), math.nan)  # inf, -inf, or NaN when both signs
    if v.size < 2:
        return (float(v.mean()), math.nan)
    t = sps.t.ppf(0.5 + level / 2, df=v.size - 1)
    return float(v.mean()), float(t * v.std(ddof=1) / math.sqrt(v.size))


# runs that agree on these and differ in the model are a pair; each model keeps its own recipe (horizon schedule),
# which the ratio table shows for both sides
PAIR_KEYS = ["system", "D", "seed", "data_seed", "bptt_window", "train_preset", "width", "depth", "setting"]
PAIR_KEYS += ["eval_horizon", "eval_start"]  # the same evaluation
# a group is one method in one setting (sympscale.analysis.conditions): runs that differ in anything but the seed
# are never pooled; every table keeps the training-horizon protocol visible
GROUP = ["system", "D", "model", "setting", "bptt_window", "horizon_schedule"]


def _group(df: pd.DataFrame, extra=()) -> list[str]:
    return [k for k in [*GROUP, *extra] if k in df.columns]


def _unconverged(v) -> bool:
    """A run judged and found not converged (None = not judged: the oracle, or no validation)."""
    return v is False or v == False  # noqa: E712  (numpy bools)


def paired_ratios(df: pd.DataFrame, num: str = "gru", den: str = "symp", metric: str = "last100_mse") -> pd.DataFrame:
    """num/den ratio of `metric` for runs that agree on everything but the model (paired by seed)."""
    keys = [k for k in PAIR_KEYS if k in df.columns]
    ok = df[df["ok"]]
    conv = "converged" if "converged" in ok.columns else None
    extra = [c for c in (conv, "horizon_schedule") if c and c in ok.columns]
    cols = [*keys, metric, *extra]
    names = {"converged": "{}_converged", "horizon_schedule": "{}_schedule"}
    a = ok[ok["model"] == num][cols].rename(columns={metric: "num", **{c: names[c].format("num") for c in extra}})
    b = ok[ok["model"] == den][cols].rename(columns={metric: "den", **{c: names[c].format("den") for c in extra}})
    pairs = a.merge(b, on=keys, how="inner")
    if metric.endswith("_mse"):  # a used run's MSE is NaN only when its rollout blew up: infinite error
        pairs[["num", "den"]] = pairs[["num", "den"]].astype(float).fillna(math.inf)
    pairs["ratio"] = pairs["num"] / pairs["den"]  # NaN when both blew up: no ratio (counted, never quoted)
    pairs["unconverged"] = (
        pairs["num_converged"].map(_unconverged) | pairs["den_converged"].map(_unconverged) if conv else False
    )
    return pairs


def bounded_table(df: pd.DataFrame) -> pd.DataFrame:
    """Bounded runs per group over the judged ones (a diverged run counts, as not bounded), with the fraction's
    95 % Clopper–Pearson interval."""

    def summarise(grp):
        k = _flagged(grp["bounded"])
        n = int(grp["bounded"].notna().sum())  # judged runs (None: not judged)
        lo, hi = clopper_pearson(k, n)
        return {"bounded": k, "n": n, "fraction": k / n if n else math.nan, "ci95_low": lo, "ci95_high": hi}

    return _per_group(df, "bounded", ["bounded", "n", "fraction", "ci95_low", "ci95_high"], summarise)


PRIMARY = "vpt_lyap_0.3"  # the primary endpoint's metric: VPT(0.3) in Lyapunov times (a diverged run: 0)


def vpt_difference_table(df: pd.DataFrame, a: str = "symp", b: str = "gru", metric: str = PRIMARY) -> pd.DataFrame:
    """The primary endpoint per cell: the mean paired difference a − b of `metric` (pairs agree on everything but
    the model, data included), its 95 % percentile-bootstrap interval, the exact sign-flip p and its Holm
    adjustment across every cell of the table; each side's mean, its failures and its labels."""
    pairs = paired_ratios(df, a, b, metric)
    keys = [k for k in ("system", "D", "setting", "num_schedule", "den_schedule") if k in pairs.columns]
    time = paired_ratios(df, a, b, "vpt_time_0.3") if "vpt_time_0.3" in df else pairs.iloc[:0]
    rows = []
    for key, grp in pairs.groupby(keys, dropna=False):
        cell = dict(zip(keys, key, strict=True))
        defined = grp[grp["num"].notna() & grp["den"].notna()]
        diff = (defined["num"] - defined["den"]).astype(float)
        lo, hi = bootstrap_mean_ci(diff)
        runs = _cell_runs(df, cell)
        runs = runs[runs["model"].isin([a, b])]
        datasets, windows, data_label = _test_data(runs)
        mixed = provenance_label(runs)  # the two sides computed by other code, libraries or platforms
        model_labels = [
            f"{m}: {lab}" for m in (a, b) if (lab := _without(cell_labels(runs[runs["model"] == m]), mixed))
        ]
        rows.append(
            {
                **cell,
                "n_pairs": len(defined),
                f"{a}_mean": float(defined["num"].mean()) if len(defined) else math.nan,
                f"{b}_mean": float(defined["den"].mean()) if len(defined) else math.nan,
                "difference": float(diff.mean()) if len(defined) else math.nan,
                "ci95_low": lo,
                "ci95_high": hi,
                "p": sign_flip_p(diff),
                "difference_time": _mean_difference(time, cell),
                "undefined_pairs": len(grp) - len(defined),
                "datasets": datasets,
                "test_windows": windows,
                "labels": "; ".join([*data_label, *([mixed] if mixed else []), *model_labels]),
            }
        )
    out = pd.DataFrame(
        rows,
        columns=[
            *keys,
            "n_pairs",
            f"{a}_mean",
            f"{b}_mean",
            "difference",
            "ci95_low",
            "ci95_high",
            "p",
            "p_holm",
            "difference_time",
            "undefined_pairs",
            "datasets",
            "test_windows",
            "labels",
        ],
    )
    out["p_holm"] = holm(out["p"]) if len(out) else []
    return out.rename(columns={"num_schedule": f"{a}_schedule", "den_schedule": f"{b}_schedule"})


MIN_TEST_WINDOWS = 100  # a cell's VPT rests on at least this many test windows (issue: referee's floor)


def _without(labels: str, mixed: str) -> str:
    """A side's labels without its own provenance label where the cell's already says it."""
    return (
        "; ".join(x for x in labels.split("; ") if x and not (mixed and x.startswith("mixed provenance")))
        if labels
        else ""
    )


def _test_data(runs: pd.DataFrame) -> tuple[int, int, list[str]]:
    """(datasets, test windows over them, labels) of a cell's runs: the distinct datasets its seeds trained and
    were scored on, the test trajectories they hold together (each one VPT window per run), and what falls short:
    one dataset (the interval covers model seeds only, not the data's variance), fewer than MIN_TEST_WINDOWS."""
    key = "dataset_key" if "dataset_key" in runs and runs["dataset_key"].notna().all() else "data_seed"
    sets = runs.drop_duplicates(key) if key in runs else runs.iloc[:0]
    n, windows = len(sets), int(_num(sets, "n_test").fillna(0).sum())
    labels = []
    if n == 1 and len(runs) > 2:
        labels.append("one dataset: the interval covers model seeds, not data draws")
    if windows < MIN_TEST_WINDOWS:
        labels.append(f"{windows} test windows (< {MIN_TEST_WINDOWS})")
    return n, windows, labels


def _in_cell(frame: pd.DataFrame, cell: dict) -> pd.Series:
    """Rows of `frame` that match `cell` on every key both have (a missing value matches a missing value)."""
    mask = pd.Series(True, index=frame.index)
    for k, v in cell.items():
        if k in frame:
            mask &= frame[k].astype(object).eq(v) | (frame[k].isna() & pd.isna(v))
    return mask


def _mean_difference(pairs: pd.DataFrame, cell: dict) -> float:
    """The mean paired difference num − den of one cell's pairs (NaN when none has both values)."""
    d = (pairs["num"] - pairs["den"])[_in_cell(pairs, cell)].dropna()
    return float(d.mean()) if len(d) else math.nan


def _cell_runs(df: pd.DataFrame, cell: dict) -> pd.DataFrame:
    """The used runs of one cell (system, D, setting), for its labels."""
    ok = df[df["ok"]]
    return ok[_in_cell(ok, {k: v for k, v in cell.items() if k in ("system", "D", "setting")})]


def ratio_table(df: pd.DataFrame, num: str = "gru", den: str = "symp") -> pd.DataFrame:
    pairs = paired_ratios(df, num, den)
    keys = [k for k in ("system", "D", "setting", "num_schedule", "den_schedule") if k in pairs.columns]
    cols = [*keys, "n_pairs", "median", "q25", "q75", "unconverged_pairs", "undefined_pairs"]
    rows = []
    for key, grp in pairs.groupby(keys):
        defined = grp[grp["ratio"].notna()]
        med, q25, q75 = median_iqr(defined["ratio"])
        row = dict(zip(keys, key, strict=True), n_pairs=len(defined), median=med, q25=q25, q75=q75)
        rows.append(
            {**row, "unconverged_pairs": int(defined["unconverged"].sum()), "undefined_pairs": len(grp) - len(defined)}
        )
    return pd.DataFrame(rows, columns=cols)


def ci_table(df: pd.DataFrame, metrics=("last100_mse", "steps_to_mse_1"), by=("system", "D", "model")) -> pd.DataFrame:
    ok = df[df["ok"]]
    by = [k for k in by if k in ok.columns]
    rows = []
    for key, grp in ok.groupby(list(by), dropna=False):
        row = dict(zip(by, key, strict=True), n=len(grp))
        for m in metrics:  # a used run's NaN MSE is a rollout that blew up: infinite error, never dropped
            values = grp[m].astype(float).fillna(math.inf) if m.endswith("_mse") else grp[m]
            row[f"{m}_mean"], row[f"{m}_ci95"] = mean_ci(values)
        rows.append({**row, "labels": cell_labels(grp)})
    return pd.DataFrame(rows)


def conservation_table(df: pd.DataFrame) -> pd.DataFrame:
    """Median and max of each invariant's residual per (system, D, model), with and without projection."""
    ok = df[df["ok"]]
    cols = [c for c in ok.columns if c.startswith("conservation_")]
    rows = []
    keys = _group(ok)
    for key, grp in ok.groupby(keys):
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
                    **dict(zip(keys, key, strict=True)),
                    "invariant": inv,
                    "projection": kind,
                    "median": float(v.median()),
                    "max": float(v.max()),
                    "n": len(v),
                }
            )
    return pd.DataFrame(rows)


def _is_true(col: pd.Series) -> pd.Series:
    return col.map(lambda v: v is True or v == True).astype(bool)  # noqa: E712  (numpy bools)


def _flagged(col: pd.Series) -> int:
    return int(_is_true(col).sum())


def _not_converged(grp: pd.DataFrame) -> pd.Series:
    """Judged and not converged, but neither failed to learn nor diverged (each counted under its own name)."""
    mask = grp["converged"].map(_unconverged).astype(bool)
    for col in ("failed_to_learn", "diverged"):
        if col in grp:
            mask &= ~_is_true(grp[col])
    return mask


NEAR_REGULAR_LT = 5.0  # λ₁ x the eval horizon below this: the system barely decorrelates within a rollout


def cell_labels(grp: pd.DataFrame) -> str:
    """What a group's comparison falls short of (SCIENCE §13), '' when nothing: a near-regular dataset (VPT in
    Lyapunov times not comparable along D), runs that diverged, whose model cannot span the dynamics
    (capacity-limited), trained with an untuned recipe, that failed to learn or did not converge."""
    n = len(grp)
    labels = []
    horizon = _num(grp, "horizon_lyapunov").dropna()
    if len(horizon) and horizon.median() < NEAR_REGULAR_LT:
        labels.append(f"near-regular (λ₁ x eval horizon {horizon.median():.2g} Lyapunov times)")
    for col, word in (
        ("diverged", "diverged"),
        ("capacity_limited", "capacity-limited"),
        ("failed_to_learn", "failed to learn"),
    ):
        k = _flagged(grp[col]) if col in grp else 0
        if k:
            labels.append(f"{word} {k}/{n}")
    labels += [mixed] if (mixed := provenance_label(grp)) else []
    trained = grp[_num(grp, "steps_trained").fillna(0) > 0] if "steps_trained" in grp else grp.iloc[:0]
    if "tuned" in grp and len(trained) and not _flagged(trained["tuned"]) == len(trained):
        labels.append(f"untuned {len(trained) - _flagged(trained['tuned'])}/{n}")
    if "converged" in grp:
        bad = int(_not_converged(grp).sum())
        if bad > 0:
            labels.append(f"unconverged {bad}/{n}")
    return "; ".join(labels)


PROVENANCE = {"source_digest": "code", "libraries": "libraries", "platform": "platform"}


def provenance_label(runs: pd.DataFrame) -> str:
    """'mixed provenance: code 2 versions; platform cpu / gpu' when the runs pooled differ in the code, the
    library versions or the platform that computed them ('' when they agree or did not record it)."""
    parts = []
    for col, name in PROVENANCE.items():
        values = sorted({str(v) for v in runs[col].dropna()}) if col in runs else []
        if len(values) > 1:
            parts.append(f"{name} {len(values)} versions" if col == "source_digest" else f"{name} {' / '.join(values)}")
    return f"mixed provenance: {', '.join(parts)}" if parts else ""


def labels_note(df: pd.DataFrame) -> str:
    """'Labelled: fput D=64 gru: untuned 3/3; ...' over the used runs' (system, D, model) cells ('' when none)."""
    ok = df[df["ok"]] if "ok" in df else df
    keys = [k for k in ("system", "D", "model") if k in ok.columns]
    if len(keys) < 3 or ok.empty:
        return ""
    parts = [
        f"{system} D={D} {model}: {lab}"
        for (system, D, model), grp in ok.groupby(keys, dropna=False)
        if (lab := cell_labels(grp))
    ]
    return "Labelled: " + "; ".join(parts) if parts else ""


def _per_group(df: pd.DataFrame, needs: str, cols: list[str], summarise) -> pd.DataFrame:
    """One row per (system, D, model, horizon_schedule) of the used runs: the keys, summarise(group) and the
    group's labels (`cell_labels`)."""
    ok = df[df["ok"]]
    keys = _group(ok)
    cols = [*cols, "labels"]
    if needs not in ok.columns or ok.empty:
        return pd.DataFrame(columns=[*keys, *cols])
    rows = [
        {**dict(zip(keys, key, strict=True)), **summarise(grp), "labels": cell_labels(grp)}
        for key, grp in ok.groupby(keys, dropna=False)
    ]
    return pd.DataFrame(rows, columns=[*keys, *cols])


def _num(grp: pd.DataFrame, col: str) -> pd.Series:
    return pd.to_numeric(grp[col], errors="coerce") if col in grp else pd.Series(dtype=float)


def convergence_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per group: runs, converged, not converged, not judged (no parameters / no validation), selected steps."""

    def summarise(grp):
        c = grp["converged"]
        count = lambda col: _flagged(grp[col]) if col in grp else 0  # noqa: E731
        return {
            "n": len(grp),
            "converged": _flagged(c),
            "diverged": count("diverged"),
            "failed_to_learn": count("failed_to_learn"),
            "not_converged": int(_not_converged(grp).sum()),
            "not_judged": int(c.isna().sum()),
            "median_selected_step": _num(grp, "selected_step").median(),
            "median_steps_trained": _num(grp, "steps_trained").median(),
        }

    cols = ["n", "converged", "diverged", "failed_to_learn", "not_converged", "not_judged", "median_selected_step"]
    cols.append("median_steps_trained")
    return _per_group(df, "converged", cols, summarise)


def oracle_table(df: pd.DataFrame) -> pd.DataFrame:
    """VPT(0.3) in Lyapunov times and as a fraction of the oracle's, median and IQR per group."""

    def summarise(grp):
        med, q25, q75 = median_iqr(_num(grp, "vpt_fraction_of_oracle").dropna())
        return {
            "n": len(grp),
            "vpt_median": float(_num(grp, "vpt_lyap_0.3").median()),
            "oracle_vpt": float(_num(grp, "oracle_vpt_lyap_0.3").median()),
            "fraction_median": med,
            "fraction_q25": q25,
            "fraction_q75": q75,
        }

    cols = ["n", "vpt_median", "oracle_vpt", "fraction_median", "fraction_q25", "fraction_q75"]
    return _per_group(df, "vpt_fraction_of_oracle", cols, summarise)
