"""The columns of the tidy DataFrame: one job's config.json and metrics.json flattened into a row.

Every reader here takes parsed JSON of any shape: a missing or misshapen key gives None, never an exception
(whether the run is usable is decided in `checks`). `tidy_types` then gives each column one type, so that
junk in an excluded run cannot turn a numeric column into text.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from sympscale.analysis.conditions import model_label
from sympscale.recipe import effective_train, is_tuned, recipe_source

TEXT = ("system", "model", "model_name", "bptt_window", "train_preset", "horizon_schedule", "memory", "projection")
TEXT += ("experiment", "overrides", "platform", "device", "job", "job_dir", "status", "error", "problem")
TEXT += ("source_digest", "libraries")
TEXT += (
    "observable",
    "computation",
    "setting",
    "method",
    "energy_invariant",
    "recipe_source",
    "verdict",
    "failure",
    "dataset_key",
)
INTEGERS = ("D", "seed", "data_seed", "train_steps", "train_horizon", "batch_size", "width", "depth", "params")
INTEGERS += ("steps_trained", "selected_step", "eval_horizon", "n_test", "width_used", "rank", "rank_dimension")
INTEGERS += ("eval_start",)
FLAGS = ("bounded", "converged", "failed_to_learn", "exceeds_ground_truth", "capacity_limited", "tuned", "diverged")


def _get(d, keys, default=None):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def _obj(v) -> dict:
    return v if isinstance(v, dict) else {}


def horizon_schedule_label(train: dict) -> str:
    """'geometric 1→10 (ramp 0.5)' or 'constant 10': the free-running horizon protocol of a run."""
    horizon = train.get("horizon")
    if train.get("curriculum", "constant") == "constant" or horizon is None:
        return f"constant {horizon}"
    start, ramp = train.get("horizon_start", 1), train.get("ramp_fraction", 0.5)
    if not all(isinstance(v, (int, float)) for v in (start, horizon, ramp)):  # a hand-edited config
        return f"geometric {start}→{horizon} (ramp {ramp})"
    return f"geometric {min(start, horizon)}→{horizon} (ramp {ramp:g})"


def _train(cfg: dict) -> dict:
    """The train settings as the model ran them (its recipe applied); {} for a config without them."""
    train = _obj(cfg.get("train"))
    return effective_train(_layers(train), str(_get(cfg, ("model", "name"))))


def _layers(train: dict) -> dict:
    """The train node with its recipe layers in the shapes `effective_train` reads (junk dropped)."""
    recipes = {k: v for k, v in _obj(train.get("recipes")).items() if isinstance(v, dict)}
    tuned = _obj(train.get("tuned"))
    tuned = tuned if isinstance(tuned.get("values"), dict) else {}
    factors = {k: train[k] for k in ("lr_factor", "horizon_factor") if isinstance(train.get(k), (int, float))}
    return {**train, "recipes": recipes, "tuned": tuned, **factors}


def _defaults(recorded) -> dict | None:
    return recorded if isinstance(recorded, dict) else None


def config_fields(cfg: dict) -> dict:
    """The config keys that identify a run in the study (train settings as the model ran them: its recipe)."""
    g = lambda *keys: _get(cfg, keys)  # noqa: E731
    train, window, overrides = _train(cfg), g("bptt_window", "name"), g("_hydra", "overrides")
    return {
        "system": g("system", "name"),
        "D": g("D"),
        # a variant or a projected model is its own method in every table and figure
        "model": model_label(_obj(g("model")), _defaults(g("_model_defaults"))),
        "model_name": g("model", "name"),
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
        "budget": _get(cfg, ("capacity", "budget"), 1.0),
        "lr_factor": _get(cfg, ("train", "lr_factor"), 1.0),
        "horizon_factor": _get(cfg, ("train", "horizon_factor"), 1.0),
        # which recipe layer set the run's training settings: a tuned file, or the preset's untuned default
        "recipe_source": (source := recipe_source(_layers(_obj(cfg.get("train"))), str(g("model", "name")))),
        "tuned": is_tuned(source),
        "projection": _get(cfg, ("model", "projection"), "none"),
        "experiment": g("_hydra", "choices", "experiment"),
        "overrides": " ".join(map(str, overrides)) if isinstance(overrides, list) else "",
    }


def metric_fields(m: dict) -> dict:
    """The metrics of a finished run, one column each (conservation: one column per invariant)."""
    ev = lambda *keys: _get(m, ("eval", *keys))  # noqa: E731
    tr = lambda *keys: _get(m, ("train", *keys))  # noqa: E731
    row = {
        "params": m.get("params"),
        "capacity_ratio": m.get("capacity_ratio"),
        "final_loss": tr("final_loss"),
        "steps_trained": tr("steps_trained"),
        "selected_step": tr("selected_step"),
        # None: not judged (no parameters, or no validation); False: the run is not a result yet
        "converged": tr("converged"),
        "failed_to_learn": tr("failed_to_learn"),
        "diverged": tr("diverged"),  # training diverged: a failure, counted with the values of FAILED (collect)
        "failure": None,  # why the run counts as a failure (collect)
        "verdict": tr("convergence", "reason"),
        "convergence_improvement": tr("convergence", "improvement"),
        "val_vpt_best_steps": tr("validation", "best", "val_vpt_steps"),
        "val_one_step_best": tr("validation", "best", "val_one_step_mse"),
        "persistence_one_step_mse": tr("convergence", "persistence"),
        "width_used": _get(m, ("capacity", "width_used")),
        "budget_ratio": _get(m, ("capacity", "budget_ratio")),
        "rank": _get(m, ("capacity", "rank")),
        "rank_dimension": _get(m, ("capacity", "dimension")),
        "rank_floor_mse": _get(m, ("capacity", "rank_floor_mse")),
        "capacity_limited": _get(m, ("capacity", "capacity_limited")),
        "mean_train_horizon": tr("curriculum", "mean_horizon"),
        "one_step_mse": ev("one_step_mse"),
        "train_wall_s": tr("wall_s"),  # of the process that trained it: a seed bundle's is shared by its seeds
        "bundle_size": tr("bundle", "size") or 1,
        "train_device_s": None if tr("wall_s") is None else tr("wall_s") / (tr("bundle", "trained_with") or 1),
        "last100_mse": ev("last100_mse"),
        "bounded": ev("bounded"),
        "measure_distance": ev("measure_distance"),  # long-term statistics: marginal W1 to the truth's last window
        "measure_ratio": ev("measure_ratio"),  # ... over the truth's own band (<= 1: as close as the truth itself)
        # the system's own long-term statistic (FPUT: energy per normal mode; Toda: the Lax spectrum, its drift)
        "observable": ev("observable"),
        "observable_distance": ev("observable_distance"),
        "observable_ratio": ev("observable_ratio"),
        "steps_to_mse_1": ev("steps_to_mse_1"),
        "lyap_to_mse_1": ev("lyapunov_times_to_mse_1"),
        "vpt_lyap_0.3": ev("vpt_lyapunov", "0.3"),
        "vpt_lyap_0.5": ev("vpt_lyapunov", "0.5"),
        "vpt_steps_0.3": ev("vpt_steps", "0.3"),
        "lyapunov_exponent": _get(m, ("dataset", "lyapunov_exponent")),
        "dataset_key": _get(m, ("dataset", "key")),
        # the learned model's own Lyapunov spectrum (eval.model_spectrum): its λ₁, over the system's, its sum (0:
        # volume-preserving) and the largest |λ_i + λ_{D+1-i}| (a symplectic map: ± pairs)
        "model_lambda1": ev("model_spectrum", "lambda1"),
        "model_lambda1_ratio": ev("model_spectrum", "lambda1_ratio"),
        "spectrum_sum": ev("model_spectrum", "sum"),
        "spectrum_pair_error": ev("model_spectrum", "pair_error"),
        "dt_obs": _get(m, ("dataset", "dt_obs")),
        "exceeds_ground_truth": ev("exceeds_ground_truth"),
        "model_energy_residual": ev("model_energy_residual"),
        # the energy's residual under one name (H, E, or the Jacobi constant C: `energy_invariant` says which)
        "energy_residual": ev("energy_residual"),
        "energy_invariant": ev("energy_invariant"),
        "energy_drift_slope": ev("energy_drift", "slope_per_time"),  # of the median |ΔH|/|H| per time unit
        "energy_drift_final": ev("energy_drift", "median_final"),
        "eval_horizon": ev("horizon"),
        "eval_start": ev("start") if isinstance(m.get("eval"), dict) and "start" in m["eval"] else 0,
        "n_test": ev("n_trajectories"),
        "platform": _get(m, ("env", "platform")),
        "device": _get(m, ("env", "device")),
        "source_digest": _get(m, ("code", "source_digest")),
        "libraries": _libraries(m),
    }
    for kind in ("conservation", "conservation_projected"):
        for name, value in _obj(ev(kind)).items():
            row[f"{kind}_{name}"] = value
    return row


def _libraries(m: dict) -> str | None:
    """'jax 0.11.2, jaxlib 0.11.2, ...' as the run recorded them (earlier runs: the JAX version of `env` only)."""
    libs = _get(m, ("code", "libraries"))
    if isinstance(libs, dict):
        return ", ".join(f"{k} {v}" for k, v in sorted(libs.items()))
    jax = _get(m, ("env", "jax"))
    return f"jax {jax}" if jax else None


def log_fields(path: Path) -> dict:
    """Mean and last logged cosine between the truncated-window and the full-horizon gradient."""
    values = []
    try:
        lines = path.read_text().splitlines()
    except (OSError, ValueError):
        return {}
    for line in lines:
        try:
            values.append(float(json.loads(line)["grad_cosine_full"]))
        except (ValueError, TypeError, KeyError, IndexError, RecursionError):
            continue  # a record without the cosine, or a torn line
    if not values:
        return {}
    return {"grad_cosine_full": sum(values) / len(values), "grad_cosine_full_last": values[-1]}


# what a run whose training diverged counts as in every table and figure (README "Metrics"): never dropped
FAILED = {"steps_to_mse_1": 0.0, "last100_mse": math.inf, "one_step_mse": math.inf, "energy_residual": math.inf}
FAILED |= {"model_energy_residual": math.inf, "energy_drift_slope": math.inf, "energy_drift_final": math.inf}
FAILED |= {"measure_distance": math.inf, "measure_ratio": math.inf}
FAILED_OBSERVABLE = {"observable_distance": math.inf, "observable_ratio": math.inf}  # where the system has one
FAILED_VPT = {"vpt_lyap_0.3": 0.0, "vpt_lyap_0.5": 0.0, "vpt_steps_0.3": 0.0, "lyap_to_mse_1": 0.0}  # where defined
NOT_A_RESULT = ("model_lambda1", "model_lambda1_ratio", "spectrum_sum", "spectrum_pair_error", "failed_to_learn")


def failed_fields(row: dict, why: str) -> dict:
    """A diverged run's row as a failure: `FAILED`'s values, VPT 0 where the dataset has a λ₁, not bounded where
    boundedness was judged, every conservation residual infinite; its own spectrum and learning verdict are not
    results (None), so nothing counts it twice."""
    residuals = {k: math.inf for k in row if k.startswith("conservation_")}
    lam = row.get("lyapunov_exponent")
    vpt = FAILED_VPT if _is_number(lam) and math.isfinite(lam) else {}
    bounded = {} if row.get("bounded") is None else {"bounded": False}
    observable = {k: v for k, v in FAILED_OBSERVABLE.items() if row.get(k) is not None or k == "observable_distance"}
    observable = observable if row.get("observable") is not None else {}  # ratio: None where the truth conserves it
    gone = dict.fromkeys(NOT_A_RESULT)
    return {**FAILED, **vpt, **bounded, **observable, **residuals, **gone, "diverged": True, "failure": why}


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


COLUMNS = ["job_dir", "job", "status", "error", "problem", "ok", *config_fields({}), *metric_fields({})]


def _optional_bool(v):
    return v if isinstance(v, bool) else None


def _text(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def tidy_types(df: pd.DataFrame) -> pd.DataFrame:
    """Every standard column present; text as str, flags as True/False/None, the rest numeric (integers: Int64)."""
    df = df.reindex(columns=[*COLUMNS, *[c for c in df.columns if c not in COLUMNS]])
    for col in df.columns:
        if col == "ok":
            df[col] = df[col].fillna(False).astype(bool)
        elif col in FLAGS:
            df[col] = df[col].map(_optional_bool).astype(object)
        elif col in TEXT:
            df[col] = df[col].map(_text).astype(object)
        else:
            df[col] = _numeric(df[col], integer=col in INTEGERS)
    return df


def _numeric(col: pd.Series, integer: bool) -> pd.Series:
    """Numbers as float (anything else: NaN); Int64 for an integer column whose values are all whole."""
    num = pd.Series([_number(v) for v in col], index=col.index, dtype=float)
    vals = num.dropna()
    whole = integer and np.isfinite(vals).all() and (vals == vals.round()).all()
    return num.astype("Int64") if whole else num


def _number(v) -> float:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return math.nan
    try:
        return float(v)
    except OverflowError:  # an integer beyond float range
        return math.inf if v > 0 else -math.inf
