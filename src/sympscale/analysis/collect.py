"""Read every job folder of a sweep into one tidy DataFrame: one row per run, config fields as columns.

Rows come from each job's own files (config.json, status.json, metrics.json), never from folder names.
Failed, running and incomplete runs are kept as rows with their status so they can be counted and listed;
`ok` marks the rows every statistic is computed from.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from sympscale.analysis.checks import (
    config_problem,
    divergence,
    file_problem,
    metrics_problem,
    state_problem,
)
from sympscale.analysis.conditions import model_label, setting_labels
from sympscale.analysis.fields import config_fields, failed_fields, log_fields, metric_fields, tidy_types
from sympscale.identity import digest
from sympscale.jobdir import orphaned
from sympscale.launcher.jsonfile import read_json

__all__ = ["collect", "energy_drift_curves", "job_dirs", "model_label", "read_job", "validation_curves"]

JOB_FILES = ("config.json", "status.json", "metrics.json", "launcher.json")


def job_dirs(sweep_dir: str | Path) -> list[Path]:
    """Every folder under the sweep that holds a job's files (any depth)."""
    root = Path(sweep_dir)
    found = {p.parent for name in JOB_FILES for p in root.rglob(name)}
    return sorted(d for d in found if not any(part.startswith(".") for part in d.relative_to(root).parts))


def _state(status: dict, launcher: dict, metrics) -> str:
    """The job's state: its status.json, else the launcher's record, else what its metrics.json says."""
    state = status.get("status")
    if state == "running" and launcher.get("status") == "failed":  # the launcher saw it die after it started
        return "failed"
    if orphaned(status):  # killed, or its last status could not be written
        return "interrupted"
    for candidate in (state, launcher.get("status"), metrics.get("status") if isinstance(metrics, dict) else None):
        if isinstance(candidate, str) and candidate:
            return candidate
    return "unknown"


def _cause(status: dict, launcher: dict) -> str | None:
    """First line of the recorded cause of a failure (status.json `error`, or the launcher's `cause`), or why a
    'running' status is an interruption."""
    for cause in (status.get("error"), launcher.get("cause"), orphaned(status)):
        if isinstance(cause, str) and cause.strip():
            line = cause.strip().splitlines()[0]
            return line if len(line) <= 200 else line[:197] + "..."
    return None


def _finished_at(status: dict, metrics_path: Path) -> float | None:
    """When the job last reported: status.json `updated`, else the time metrics.json was written."""
    updated = status.get("updated")
    if isinstance(updated, (int, float)) and not isinstance(updated, bool):
        return float(updated)
    try:
        return metrics_path.stat().st_mtime
    except OSError:
        return None


def read_job(d: Path, root: Path) -> tuple[dict, str | None, dict | None]:
    """One job folder as a row (whatever of it could be read), why it is excluded (None: usable) and its config
    (None when it cannot be used)."""
    (cfg, cfg_err), (metrics, m_err) = read_json(d / "config.json"), read_json(d / "metrics.json")
    (status, status_err), (launcher, _) = read_json(d / "status.json"), read_json(d / "launcher.json")
    status, launcher = (v if isinstance(v, dict) else {} for v in (status, launcher))
    state, error = _state(status, launcher, metrics), _cause(status, launcher)
    row = {"job_dir": str(d), "job": d.relative_to(root).as_posix(), "status": state, "error": error}
    row["finished_at"] = _finished_at(status, d / "metrics.json")
    bad_config = config_problem(cfg, cfg_err)
    if bad_config is None:
        row.update(config_fields(cfg), computation=digest(cfg))
    if isinstance(metrics, dict):
        row.update(metric_fields(metrics))
    row.update(log_fields(d / "train_log.jsonl"))
    diverged = _diverged(state, error, metrics)
    reason = (
        (None if diverged else state_problem(state, error, m_err == "missing", status_err))
        or bad_config
        or ("finished without metrics.json" if m_err == "missing" else file_problem("metrics.json", m_err))
        or (None if diverged and isinstance(metrics, dict) else metrics_problem(metrics))
    )
    if diverged and reason is None:  # a failure of the method: counted, never dropped
        row.update(failed_fields(row, diverged))
    return row, reason, (cfg if bad_config is None else None)


def _diverged(state: str, error: str | None, metrics) -> str | None:
    """'diverged: <reason>' when the job's status or its metrics say training diverged (None otherwise)."""
    if state not in ("done", "diverged"):
        return None
    return divergence(metrics) or (state_problem(state, error, False) if state == "diverged" else None)


def collect(sweep_dir: str | Path) -> pd.DataFrame:
    """One row per job folder: config fields, status, metrics; `ok` marks the runs every result is drawn from.

    `problem` says why a row is not used: not finished, unreadable or misshapen files, non-finite headline
    metrics, or a second folder of the same computation (`sympscale.identity.digest`). A run whose training
    diverged is used, as a failure: `diverged`, `failure` and the values of `fields.FAILED` (VPT 0, not bounded).
    """
    root = Path(sweep_dir)
    rows, configs = [], []
    for d in job_dirs(root):
        row, reason, cfg = read_job(d, root)
        rows.append({**row, "problem": reason, "ok": reason is None})
        configs.append(cfg)
    for row, setting in zip(rows, setting_labels(configs), strict=True):
        row["setting"] = setting
        # what a figure's legend names: the method, and the setting when the sweep has more than one
        row["method"] = f"{row['model']} [{setting}]" if setting and row.get("model") else row.get("model")
    df = tidy_types(pd.DataFrame(rows))
    if df.empty:
        return df
    untrained = df["steps_trained"] == 0  # a model with nothing to train has no schedule
    df.loc[untrained.fillna(False), "horizon_schedule"] = "not trained"
    df["vpt_time_0.3"] = df["vpt_steps_0.3"] * df["dt_obs"]  # in the system's time units (Toda: λ₁ is finite-time)
    df["horizon_lyapunov"] = df["eval_horizon"].astype(float) * df["dt_obs"] * df["lyapunov_exponent"]
    return add_oracle_fraction(mark_duplicates(df))


def mark_duplicates(df: pd.DataFrame) -> pd.DataFrame:
    """Among usable runs, one per computation (the last to finish); the others become 'duplicate of <job>'."""
    used = df[df["ok"] & df["computation"].notna()]
    latest = used.sort_values(["finished_at", "job"], na_position="first").groupby("computation")["job"].last()
    dup = used.index[used["job"] != used["computation"].map(latest)]
    df = df.copy()
    df.loc[dup, "problem"] = [f"duplicate of {latest[c]} (same computation)" for c in df.loc[dup, "computation"]]
    df.loc[dup, "ok"] = False
    return df


# what an oracle run and a model run must share: the dataset (its key covers the system, every system setting, D,
# the data size and seed) and the eval horizon
ORACLE_KEYS = ["system", "D", "data_seed", "dataset_key", "eval_horizon", "eval_start"]


def add_oracle_fraction(df: pd.DataFrame) -> pd.DataFrame:
    """`vpt_fraction_of_oracle`: each run's VPT(0.3) over the oracle's (median of its runs) on the same dataset and
    eval horizon (`ORACLE_KEYS`); a reference, not a ceiling."""
    keys = [k for k in ORACLE_KEYS if k in df.columns]
    if "model_name" not in df or "vpt_lyap_0.3" not in df or len(keys) < 2:
        df["vpt_fraction_of_oracle"] = math.nan
        return df
    ok = df[df["ok"] & (df["model_name"] == "oracle")]
    reference = ok.groupby(keys, dropna=False)["vpt_lyap_0.3"].median().rename("oracle_vpt_lyap_0.3").reset_index()
    reference = reference.astype({k: df[k].dtype for k in keys})  # a key missing everywhere: NaN of its own type
    df = df.drop(columns=["oracle_vpt_lyap_0.3"], errors="ignore").merge(reference, on=keys, how="left")
    df["vpt_fraction_of_oracle"] = df["vpt_lyap_0.3"] / df["oracle_vpt_lyap_0.3"]
    return df


def validation_curves(df: pd.DataFrame) -> pd.DataFrame:
    """Every validation record of every finished run (from its train_log.jsonl), one row per (run, step).

    Columns: job_dir, system, D, model, seed, horizon_schedule, step, horizon, val_vpt_steps,
    val_vpt_lyap (VPT in Lyapunov times), val_one_step_mse, val_rollout_mse.
    """
    rows = []
    keys = ["job_dir", "system", "D", "model", "method", "seed", "horizon_schedule", "lyapunov_exponent", "dt_obs"]
    for run in df[df["ok"]].to_dict("records"):
        try:
            lines = (Path(run["job_dir"]) / "train_log.jsonl").read_text().splitlines()
        except (OSError, ValueError):  # no log, or not text
            continue
        for line in lines:
            try:
                rec = json.loads(line)
            except (ValueError, RecursionError):  # a torn or junk line
                continue
            if isinstance(rec, dict) and "val_vpt_steps" in rec:
                rows.append({**{k: run.get(k) for k in keys}, **{k: rec.get(k) for k in VAL_FIELDS}})
    out = pd.DataFrame(rows, columns=[*keys, *VAL_FIELDS])
    for col in ("step", "horizon", "val_vpt_steps", "val_one_step_mse", "val_rollout_mse", "lyapunov_exponent"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
    out["dt_obs"] = pd.to_numeric(out["dt_obs"], errors="coerce").astype(float)
    out["val_vpt_lyap"] = out["val_vpt_steps"] * out["lyapunov_exponent"] * out["dt_obs"]
    return out


VAL_FIELDS = ("step", "horizon", "val_vpt_steps", "val_one_step_mse", "val_rollout_mse")
DRIFT_KEYS = ["job_dir", "system", "D", "model", "method", "seed", "energy_invariant", "diverged"]


def energy_drift_curves(df: pd.DataFrame) -> pd.DataFrame:
    """The median energy residual |ΔH|/|H| over time of every used run that records one (metrics.json
    `eval.energy_drift`), one row per (run, time); a diverged run has none (it is counted as a failure)."""
    rows = []
    for run in df[df["ok"]].to_dict("records"):
        if run.get("diverged") is True:
            continue
        metrics, _ = read_json(Path(run["job_dir"]) / "metrics.json")
        drift = metrics.get("eval", {}).get("energy_drift") if isinstance(metrics, dict) else None
        if not isinstance(drift, dict) or not isinstance(drift.get("time"), list):
            continue
        for t, v in zip(drift["time"], drift.get("median") or [], strict=False):
            rows.append({**{k: run.get(k) for k in DRIFT_KEYS}, "time": t, "median_residual": v})
    out = pd.DataFrame(rows, columns=[*DRIFT_KEYS, "time", "median_residual"])
    for col in ("time", "median_residual"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
    return out
