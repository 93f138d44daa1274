"""Checks of a composed job config that Hydra's typing cannot express, run before any compute starts."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sympscale.curriculum import CURRICULA, horizon_schedule
from sympscale.data import DataSpec
from sympscale.models import (
    MAX_PARAMS,
    MODELS,
    Capacity,
    SympModel,
    context,
    cover_width,
    default_kinetic,
    increment_rank,
)
from sympscale.models import check as check_model
from sympscale.models import options_of as model_options
from sympscale.projection import KINDS as PROJECTIONS
from sympscale.recipe import LAYER_KEYS, effective_train, recipe_errors
from sympscale.selection import PLATEAU_FRACTION, stage_in_window, window_start
from sympscale.systems import SYSTEMS, InvalidSystemError, make_system
from sympscale.training import MEMORY_STRATEGIES

MAX_SUBSTEPS = 256  # integrator substeps per observation (the presets use 4)


def config_errors(cfg: Any) -> list[str]:
    """Every problem with a job config, each naming the key, the bad value and what would be valid."""
    errors: list[str] = []
    system = dict(cfg.system)
    name = system.pop("name")
    made = None
    errors += system_value_errors(system, name)
    if name not in SYSTEMS:
        errors.append(f"system={name!r} is unknown; valid: {', '.join(SYSTEMS)}")
    elif not errors:
        try:
            made = make_system(name, cfg.D, **system)
        except InvalidSystemError as e:
            errors.append(str(e))
    errors += _model_errors(cfg, made)
    projection = cfg.model.get("projection", "none")
    if projection not in PROJECTIONS:
        errors.append(f"model.projection={projection!r} is unknown; valid: {', '.join(PROJECTIONS)}")
    if cfg.eval.projection not in PROJECTIONS[1:]:
        errors.append(f"eval.projection={cfg.eval.projection!r} must be one of {', '.join(PROJECTIONS[1:])}")
    warm = cfg.model.get("leapfrog_steps", 0)
    if not 0 <= warm <= cfg.train.steps:
        errors.append(f"model.leapfrog_steps={warm} must be between 0 and train.steps={cfg.train.steps}")
    if cfg.seed < 0 or cfg.data_seed < 0:
        errors.append(f"seed={cfg.seed}, data_seed={cfg.data_seed}: seeds must be >= 0")
    bad_recipe = recipe_errors(cfg.train, tuple(MODELS))
    if bad_recipe:  # the settings a recipe would give cannot be checked: say only what is wrong with it
        return errors + bad_recipe
    tr, n_obs = _Attrs(effective_train(cfg.train, cfg.model.name)), cfg.data.n_obs
    window = cfg.bptt_window.window
    if window is not None and not 1 <= window <= tr.horizon:
        errors.append(
            f"bptt_window={window} must be between 1 and the training horizon train.horizon={tr.horizon} "
            f"(use bptt_window=full for no truncation)"
        )
    given = _Attrs({k: v for k, v in dict(cfg.train).items() if k not in LAYER_KEYS})  # before any recipe
    for t in (tr, given):  # a value a recipe replaces is still refused (duplicates are dropped below)
        if t.horizon < 1 or t.horizon + 1 > n_obs:
            errors.append(f"train.horizon={t.horizon} must be in 1..{n_obs - 1} (data.n_obs={n_obs})")
    if not 100 <= cfg.eval.horizon <= n_obs - 1:
        errors.append(f"eval.horizon={cfg.eval.horizon} must be in 100..{n_obs - 1} (data.n_obs={n_obs})")
    elif not 0 <= cfg.eval.start <= n_obs - 1 - cfg.eval.horizon:
        errors.append(
            f"eval.start={cfg.eval.start} must be in 0..{n_obs - 1 - cfg.eval.horizon} (the rollout of eval.horizon="
            f"{cfg.eval.horizon} steps from it needs data.n_obs={n_obs} observations)"
        )
    if tr.memory not in (*MEMORY_STRATEGIES, "auto"):
        errors.append(f"train.memory={tr.memory!r} is unknown; valid: {', '.join(MEMORY_STRATEGIES)}, auto")
    if tr.grad_cosine_every < 0:
        errors.append(f"train.grad_cosine_every={tr.grad_cosine_every} must be >= 0")
    for key in ("steps", "batch_size", "log_every"):
        if tr[key] < 1:
            errors.append(f"train.{key}={tr[key]} must be >= 1")
    data_errors = _data_errors(cfg.data)
    errors += data_errors + _schedule_errors(tr, None if data_errors else cfg.data)
    errors += _optimiser_errors(tr) + _optimiser_errors(given) + _eval_errors(cfg.eval)
    errors = list(dict.fromkeys(errors))
    for key in ("width", "depth"):
        if cfg.capacity[key] < 1:
            errors.append(f"capacity.{key}={cfg.capacity[key]} must be >= 1")
    if not _finite_in(cfg.capacity.budget, 0.0, 64.0):
        errors.append(
            f"capacity.budget={cfg.capacity.budget} must be a number in (0, 64] (a multiple of the matched budget)"
        )
    return errors


def _model_errors(cfg: Any, system: Any) -> list[str]:
    """The model's own checks (its registered `check`), with what every model shares: substeps, projection."""
    name = cfg.model.name
    if name not in MODELS:
        return [f"model={name!r} is unknown; valid: {', '.join(MODELS)}"]
    opts = model_options(name, cfg.model)
    errors = []
    if not 1 <= getattr(opts, "substeps", 1) <= MAX_SUBSTEPS:
        errors.append(f"model.substeps={opts.substeps} must be in 1..{MAX_SUBSTEPS}")
    if cfg.capacity.width >= 1 and cfg.capacity.depth >= 1 and cfg.capacity.budget > 0 and system is not None:
        capacity = Capacity(**dict(cfg.capacity))
        if SympModel.count(cfg.D, capacity.width, capacity.depth) > MAX_PARAMS:
            return errors  # no machine trains it: the size check (preflight) refuses such a D in one line
        shapes = np.zeros(cfg.D), np.ones(cfg.D)  # normalisation does not change what can be built
        ctx = context(cfg.D, system.dt_obs, *shapes, capacity, system.exact_quadratic(), system)
        errors += check_model(name, opts, ctx) or _floor_errors(name, opts, ctx, capacity, system)
    return errors


def _floor_errors(name: str, opts: Any, ctx: Any, capacity: Capacity, system: Any) -> list[str]:
    """A model whose one-step change cannot span the dimension it must cover has an error floor (SCIENCE §13):
    refused unless capacity.allow_floor=true."""
    rank = increment_rank(name, opts, ctx)
    if rank is None or not rank.short or capacity.allow_floor:
        return []
    what = {"state": f"D={ctx.D}", "momentum": f"N={rank.dimension} momenta"}[rank.block]
    cover = cover_width(ctx.D, capacity.depth, default_kinetic(system.exact_quadratic()))
    return [
        f"capacity: model={name} at D={ctx.D} has increment rank {rank.rank} < {what} at potential width "
        f"{ctx.capacity.width} ({ctx.target:,} parameters): an error floor no training removes; capacity.width={cover} "
        f"(or capacity.cover=true) removes it, capacity.allow_floor=true runs it labelled capacity-limited"
    ]


class _Attrs(dict):
    """The effective train settings with attribute access (tr.horizon), as the composed config has."""

    __getattr__ = dict.__getitem__


def _schedule_errors(tr: Any, data: Any) -> list[str]:
    """The horizon curriculum and the validation settings (`data`: None when its own settings are already wrong)."""
    errors = []
    if tr.curriculum not in CURRICULA:
        errors.append(f"train.curriculum={tr.curriculum!r} is unknown; valid: {', '.join(CURRICULA)}")
    if tr.horizon_start < 1:
        errors.append(f"train.horizon_start={tr.horizon_start} must be >= 1")
    for key in ("ramp_fraction", "decay_fraction"):
        if not 0.0 <= tr[key] <= 1.0:
            errors.append(f"train.{key}={tr[key]} must be in [0, 1]")
    for key in ("val_every", "patience"):
        if tr[key] < 0:
            errors.append(f"train.{key}={tr[key]} must be >= 0 (0: off)")
    if tr.val_starts < 1:
        errors.append(f"train.val_starts={tr.val_starts} must be >= 1")
    if tr.val_horizon < 1:  # capped at the data's n_obs - 1 by the validator
        errors.append(f"train.val_horizon={tr.val_horizon} must be >= 1")
    if not tr.plateau_tol > 0:
        errors.append(f"train.plateau_tol={tr.plateau_tol} must be > 0")
    if not errors and tr.steps >= 1 and tr.horizon >= 1:
        errors += _window_errors(tr)
    if data is not None and tr.val_every and int(round(data.val_fraction * data.n_trajectories)) < 1:
        errors.append(
            f"train.val_every={tr.val_every} needs validation trajectories, and data.val_fraction={data.val_fraction} "
            f"of data.n_trajectories={data.n_trajectories} gives none: raise either, or set train.val_every=0"
        )
    return errors


def _window_errors(tr: Any) -> list[str]:
    """A curriculum stage may not start inside the convergence rule's judging window (SCIENCE §13)."""
    schedule = horizon_schedule(
        tr.curriculum, horizon=tr.horizon, steps=tr.steps, start=tr.horizon_start, ramp_fraction=tr.ramp_fraction
    )
    late = stage_in_window(schedule, tr.steps)
    if late is None:
        return []
    return [
        f"train.ramp_fraction={tr.ramp_fraction} starts the horizon-{late[1]} curriculum stage at step {late[0]}, inside "
        f"the convergence window (steps {window_start(tr.steps)}-{tr.steps}), which would judge a new horizon as "
        f"settled training: use train.ramp_fraction <= {1 - PLATEAU_FRACTION}"
    ]


def system_value_errors(system: dict, name: str | None = None) -> list[str]:
    """Non-finite or meaningless physical parameters (a NaN coupling must fail here, not after data generation);
    which must be positive or non-negative, the system's class says (`System.bounded_below`)."""
    positive, non_negative = SYSTEMS[name].options.bounded_below() if name in SYSTEMS else (set(), set())
    errors = []
    for key, value in system.items():
        values = list(value) if isinstance(value, list | tuple) else [value]
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if any(not math.isfinite(v) for v in numbers):
            errors.append(f"system.{key}={value} must be finite")
        elif key in positive and any(v <= 0 for v in numbers):
            errors.append(f"system.{key}={value} must be > 0")
        elif key in non_negative and any(v < 0 for v in numbers):
            errors.append(f"system.{key}={value} must be >= 0")
    if "mu" in system and not errors and not 0 < system["mu"] <= 0.5:
        errors.append(f"system.mu={system['mu']} must be in (0, 0.5] (the smaller primary's mass fraction)")
    return errors


def _finite_in(value: Any, lo: float, hi: float = math.inf, *, lo_open: bool = True) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    return (value > lo if lo_open else value >= lo) and value <= hi


def _optimiser_errors(tr: Any) -> list[str]:
    """Learning rate, warm-up, final-lr ratio and clip: a negative or non-finite value is refused, not trained."""
    errors = []
    if not _finite_in(tr.lr, 0.0):
        errors.append(f"train.lr={tr.lr} must be a finite number > 0 (e.g. 1e-3)")
    if tr.warmup < 0:
        errors.append(f"train.warmup={tr.warmup} must be >= 0 steps")
    if not _finite_in(tr.min_lr_ratio, 0.0, 1.0, lo_open=False):
        errors.append(f"train.min_lr_ratio={tr.min_lr_ratio} must be in [0, 1]")
    if not _finite_in(tr.clip, 0.0):
        errors.append(f"train.clip={tr.clip} must be a finite number > 0 (the global gradient-norm bound)")
    if tr.checkpoint_every < 1:
        errors.append(f"train.checkpoint_every={tr.checkpoint_every} must be >= 1")
    return errors


def _data_errors(data: Any) -> list[str]:
    spec = {k: v for k, v in dict(data).items() if k != "cache_dir"}
    errors = []
    for key in ("train_fraction", "val_fraction"):
        if not _finite_in(spec[key], 0.0, 1.0, lo_open=key == "train_fraction"):
            errors.append(f"data.{key}={spec[key]} must be in {'(0' if key == 'train_fraction' else '[0'}, 1)")
    if spec["n_trajectories"] < 2:
        errors.append(f"data.n_trajectories={spec['n_trajectories']} must be >= 2 (train and test need one each)")
    if errors:
        return errors
    try:
        DataSpec(**spec).split_sizes()
    except ValueError as e:
        errors.append(str(e))
    return errors


def _eval_errors(ev: Any) -> list[str]:
    errors = []
    if not _finite_in(ev.bounded_level, 0.0, 1.0) or ev.bounded_level == 1:
        errors.append(f"eval.bounded_level={ev.bounded_level} must be in (0, 1) (the truth's pass probability)")
    if not _finite_in(ev.bounded_floor, 0.0, lo_open=False):
        errors.append(f"eval.bounded_floor={ev.bounded_floor} must be a finite number >= 0 (a |log| ratio)")
    if not 2 <= ev.bounded_pairs <= 10_000:
        errors.append(f"eval.bounded_pairs={ev.bounded_pairs} must be an integer in 2..10000 (pairs of truths)")
    if ev.spectrum_intervals < 0 or ev.spectrum_trajectories < 1:
        errors.append(
            f"eval.spectrum_intervals={ev.spectrum_intervals} must be >= 0 (0: off) and eval.spectrum_trajectories="
            f"{ev.spectrum_trajectories} >= 1"
        )
    elif ev.spectrum_intervals and not 0 <= ev.spectrum_transient < ev.spectrum_intervals:
        errors.append(
            f"eval.spectrum_transient={ev.spectrum_transient} must be in [0, eval.spectrum_intervals="
            f"{ev.spectrum_intervals})"
        )
    return errors
