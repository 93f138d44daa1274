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

from sympscale.recipe import effective_train

JOB_FILES = ("config.json", "status.json", "metrics.json", "launcher.json")


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# model options that make a different method when changed from their defaults (symp and rk4)
VARIANT_OPTIONS = {"kinetic": "auto", "spectral_norm": False, "exact_part": True, "method": "yoshida4"}


def model_label(model: dict) -> str:
    """The method a run belongs to: symp, symp+multi, symp(kinetic=mlp, spectral_norm=True)+single, ..."""
    name, projection = model.get("name"), model.get("projection") or "none"
    changed = [f"{k}={model[k]}" for k, v in VARIANT_OPTIONS.items() if k in model and model[k] != v]
    if name == "rk4":  # rk4 has no `method` (it is the method)
        changed = [c for c in changed if not c.startswith("method=")]
    label = f"{name}({', '.join(changed)})" if changed else str(name)
    return label if projection == "none" else f"{label}+{projection}"


def _config_fields(cfg: dict) -> dict:
    """The config keys that identify a run in the study (train settings as the model ran them: its recipe)."""
    g = lambda *keys, default=None: _get(cfg, keys, default)  # noqa: E731
    train = g("train", default={})
    train = effective_train(train, str(g("model", "name"))) if isinstance(train, dict) else {}
    window = g("bptt_window", "name")
    name, projection = g("model", "name"), g("model", "projection", default="none")
    return {
        "system": g("system", "name"),
        "D": g("D"),
        # a variant or a projected model is its own method in every table and figure
        "model": model_label(g("model", default={}) or {}),
        "model_name": name,
        "seed": g("seed"),
        "data_seed": g("data_seed"),
        "bptt_window": str(window) if window is not None else None,
        "train_preset": g("train", "preset"),
        "train_steps": g("train", "steps"),
        "train_horizon": train.get("horizon"),
        "lr": train.get("lr"),
        # the training-horizon protocol is part of the method: kept visible in every table
        "horizon_schedule": horizon_schedule_label(train),
        "batch_size": g("train", "batch_size"),
        "memory": g("train", "memory"),
        "width": g("capacity", "width"),
        "depth": g("capacity", "depth"),
        "projection": projection,
        "experiment": (g("_hydra", "choices", default={}) or {}).get("experiment"),
        "overrides": " ".join(g("_hydra", "overrides", default=[]) or []),
    }


def horizon_schedule_label(train: dict) -> str:
    """'geometric 1→10 (ramp 0.5)' or 'constant 10': the free-running horizon protocol of a run."""
    horizon = train.get("horizon")
    if train.get("curriculum", "constant") == "constant" or horizon is None:
        return f"constant {horizon}"
    start, ramp = train.get("horizon_start", 1), train.get("ramp_fraction", 0.5)
    return f"geometric {min(start, horizon)}→{horizon} (ramp {ramp:g})"


def _get(d: dict, keys, default=None):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def _metric_fields(m: dict) -> dict:
    ev, tr = m.get("eval", {}), m.get("train", {})
    row = {
        "params": m.get("params"),
        "capacity_ratio": m.get("capacity_ratio"),
        "final_loss": tr.get("final_loss"),
        "steps_trained": tr.get("steps_trained"),
        "selected_step": tr.get("selected_step"),
        # None: not judged (no parameters, or no validation); False: the run is not a result yet
        "converged": tr.get("converged"),
        "convergence_improvement": (tr.get("convergence") or {}).get("improvement"),
        "mean_train_horizon": (tr.get("curriculum") or {}).get("mean_horizon"),
        "one_step_mse": ev.get("one_step_mse"),
        "train_wall_s": tr.get("wall_s"),
        "last100_mse": ev.get("last100_mse"),
        "bounded": ev.get("bounded"),
        "prediction_horizon": ev.get("prediction_horizon"),
        "prediction_horizon_lyap": ev.get("prediction_horizon_lyapunov"),
        "vpt_lyap_0.3": (ev.get("vpt_lyapunov") or {}).get("0.3"),
        "vpt_lyap_0.5": (ev.get("vpt_lyapunov") or {}).get("0.5"),
        "lyapunov_exponent": _get(m, ("dataset", "lyapunov_exponent")),
        "dt_obs": _get(m, ("dataset", "dt_obs")),
        "exceeds_ground_truth": ev.get("exceeds_ground_truth"),
        "model_energy_residual": ev.get("model_energy_residual"),
        "eval_horizon": ev.get("horizon"),
        "n_test": ev.get("n_trajectories"),
        "platform": _get(m, ("env", "platform")),
        "device": _get(m, ("env", "device")),
    }
    for kind in ("conservation", "conservation_projected"):
        for name, value in (ev.get(kind) or {}).items():
            row[f"{kind}_{name}"] = value
    return row


def _log_fields(path: Path) -> dict:
    """Mean and last logged cosine between the truncated-window and the full-horizon gradient."""
    values = []
    try:
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if "grad_cosine_full" in rec:
                values.append(float(rec["grad_cosine_full"]))
    except (OSError, ValueError):
        return {}
    if not values:
        return {}
    return {"grad_cosine_full": sum(values) / len(values), "grad_cosine_full_last": values[-1]}


def job_dirs(sweep_dir: str | Path) -> list[Path]:
    """Every folder under the sweep that holds a job's files (any depth)."""
    root = Path(sweep_dir)
    found = {p.parent for name in JOB_FILES for p in root.rglob(name)}
    return sorted(d for d in found if not any(part.startswith(".") for part in d.relative_to(root).parts))


def collect(sweep_dir: str | Path) -> pd.DataFrame:
    """One row per job folder with its config fields, status, and metrics when it finished."""
    rows = []
    for d in job_dirs(sweep_dir):
        cfg = _read(d / "config.json")
        status = _read(d / "status.json") or {}
        metrics = _read(d / "metrics.json")
        launcher = _read(d / "launcher.json") or {}
        state = status.get("status") or launcher.get("status") or "unknown"
        row = {"job_dir": str(d), "status": state}
        row["error"] = status.get("error") or launcher.get("cause")
        if cfg is not None:
            row.update(_config_fields(cfg))
        if metrics is not None:
            row.update(_metric_fields(metrics))
        row.update(_log_fields(d / "train_log.jsonl"))
        problem = None
        if cfg is None:
            problem = "no config.json"
        elif state == "done" and metrics is None:
            problem = "finished without metrics.json"
        elif state != "done":
            problem = f"status {state}"
        row["problem"] = problem
        row["ok"] = problem is None
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    for col in ("last100_mse", "prediction_horizon", "capacity_ratio", "one_step_mse", "vpt_lyap_0.3"):
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    for col in ("bounded", "converged"):
        if col in df:
            df[col] = df[col].map(_optional_bool).astype(object)
    if "steps_trained" in df and "horizon_schedule" in df:  # a model with nothing to train has no schedule
        untrained = pd.to_numeric(df["steps_trained"], errors="coerce") == 0
        df.loc[untrained, "horizon_schedule"] = "not trained"
    return add_oracle_fraction(df)


def _optional_bool(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else bool(v)


ORACLE_KEYS = ["system", "D", "data_seed", "eval_horizon"]  # what an oracle run and a model run must share


def add_oracle_fraction(df: pd.DataFrame) -> pd.DataFrame:
    """`vpt_fraction_of_oracle`: each run's VPT(0.3) over the oracle's (median of its runs) on the same data."""
    keys = [k for k in ORACLE_KEYS if k in df.columns]
    if "model_name" not in df or "vpt_lyap_0.3" not in df or len(keys) < 2:
        df["vpt_fraction_of_oracle"] = math.nan
        return df
    ok = df[df["ok"] & (df["model_name"] == "oracle")]
    ceiling = ok.groupby(keys)["vpt_lyap_0.3"].median().rename("oracle_vpt_lyap_0.3").reset_index()
    df = df.drop(columns=["oracle_vpt_lyap_0.3"], errors="ignore").merge(ceiling, on=keys, how="left")
    df["vpt_fraction_of_oracle"] = df["vpt_lyap_0.3"] / df["oracle_vpt_lyap_0.3"]
    return df


def validation_curves(df: pd.DataFrame) -> pd.DataFrame:
    """Every validation record of every finished run (from its train_log.jsonl), one row per (run, step).

    Columns: job_dir, system, D, model, seed, horizon_schedule, step, horizon, val_vpt_steps,
    val_vpt_lyap (VPT in Lyapunov times), val_one_step_mse, val_rollout_mse.
    """
    rows = []
    keys = ["job_dir", "system", "D", "model", "seed", "horizon_schedule", "lyapunov_exponent", "dt_obs"]
    for run in df[df["ok"]].to_dict("records"):
        try:
            lines = (Path(run["job_dir"]) / "train_log.jsonl").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and "val_vpt_steps" in rec:
                rows.append({**{k: run.get(k) for k in keys}, **{k: rec.get(k) for k in VAL_FIELDS}})
    out = pd.DataFrame(rows, columns=[*keys, *VAL_FIELDS])
    out["val_vpt_lyap"] = pd.to_numeric(out["val_vpt_steps"]) * out["lyapunov_exponent"] * out["dt_obs"]
    return out


VAL_FIELDS = ("step", "horizon", "val_vpt_steps", "val_one_step_mse", "val_rollout_mse")
