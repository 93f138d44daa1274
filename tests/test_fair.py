"""A fair comparison at every D (SCIENCE §13): rank floors, the capacity rule that removes them, tuned recipes per
cell, and verdicts that call a failure to learn by its name."""

import math
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from sympscale import confdir, job, rankfloor, recipe, train
from sympscale.analysis.stats import cell_labels
from sympscale.models import MODELS, Capacity, context, effective_capacity, increment_rank, options_of
from sympscale.seeds import rewrite_args
from sympscale.selection import convergence, stage_in_window
from sympscale.tune import grid_scores, winner
from sympscale.validation import config_errors

CONF = train.config_dir()


def composed(overrides):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(config_name="config", overrides=rewrite_args(overrides))


# ----- the floor ---------------------------------------------------------------------------------------------


def low_rank_increments(n=4000, D=6, variances=(9.0, 4.0, 1.0, 0.25, 0.04, 0.01), seed=0):
    """Changes with exactly these principal variances (orthonormal directions, centred, whitened per column)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, D))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(z.T @ z / n)).T  # sample covariance exactly I
    q, _ = np.linalg.qr(rng.standard_normal((D, D)))
    return (z * np.sqrt(variances)) @ q.T + 5.0  # an offset: the subspace is affine


@pytest.mark.parametrize("rank", [0, 2, 4, 6, 9])
def test_the_floor_is_the_variance_outside_the_top_principal_components(rank):
    variances = np.array((9.0, 4.0, 1.0, 0.25, 0.04, 0.01))
    x = low_rank_increments(variances=variances)
    assert rankfloor.rank_floor_mse(x, rank) == pytest.approx(variances[rank:].sum() / 6, rel=1e-9, abs=1e-15)


def test_the_momentum_floor_confines_only_the_second_half_and_averages_over_all_d():
    x = low_rank_increments()
    q = np.random.default_rng(1).standard_normal((len(x), 6)) * 100  # q's changes: not confined, any size
    both = np.concatenate([q, x], axis=1)  # D = 12: the momenta are the second half
    assert rankfloor.rank_floor_mse(both, 3, "momentum") == pytest.approx((0.25 + 0.04 + 0.01) / 12, rel=1e-9)
    assert rankfloor.rank_floor_mse(both, 6, "momentum") == 0.0


def test_normalised_increments_are_the_scaled_one_step_changes():
    traj = np.arange(2 * 3 * 2, dtype=np.float64).reshape(2, 3, 2) ** 2
    inc = rankfloor.normalised_increments(traj, np.array([1.0, 2.0]))
    assert inc.shape == (4, 2) and inc[0].tolist() == [(4 - 0) / 1, (9 - 1) / 2]


# ----- the capacity rule -------------------------------------------------------------------------------------


@pytest.mark.parametrize("D", [8, 16, 32, 64, 256])
@pytest.mark.parametrize("width", [32, 64, 512])
def test_the_cover_rule_leaves_no_model_short_and_matches_parameters(D, width):
    ctx = context(D, 0.1, np.zeros(D), np.ones(D), Capacity(width, 3, cover=True))
    assert ctx.capacity.width >= width
    for name, entry in MODELS.items():
        if entry.rank is None:
            continue
        r = increment_rank(name, options_of(name), ctx)
        assert not r.short, (name, D, width, r)
    from sympscale.models import build

    for name in ("symp", "gru", "freeform"):
        _, info = build(name, D=D, dt=0.1, mean=np.zeros(D), std=np.ones(D), capacity=Capacity(width, 3, cover=True))
        assert abs(info["capacity_ratio"] - 1) <= 1e-3 and info["width"] == ctx.capacity.width


def test_without_the_rule_the_gru_is_short_at_d64_and_the_rule_widens_only_where_needed():
    D = 64
    ctx = context(D, 0.1, np.zeros(D), np.ones(D), Capacity(64, 3))
    assert increment_rank("gru", options_of("gru"), ctx).rank == 37  # the H = 37
    assert increment_rank("symp", options_of("symp"), ctx).rank == 32
    assert effective_capacity(16, Capacity(64, 3, cover=True)).width == 64  # D = 16: already covered
    assert effective_capacity(64, Capacity(64, 3, cover=True)).width == 107
    wide = [effective_capacity(D, Capacity(64, 3, cover=True)).width for D in (16, 64, 128, 256)]
    assert wide == sorted(wide)


@pytest.mark.parametrize("budget", [0.25, 4.0])
def test_a_budget_multiple_scales_the_parameter_count(budget):
    one = context(64, 0.1, np.zeros(64), np.ones(64), Capacity(64, 3, cover=True)).target
    scaled = context(64, 0.1, np.zeros(64), np.ones(64), Capacity(64, 3, cover=True, budget=budget)).target
    assert scaled / one == pytest.approx(budget, rel=0.03)


def test_a_floored_command_is_refused_in_one_line_before_anything_runs(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "sympscale.train", "D=64", "model=gru", "capacity.cover=false", f"hydra.run.dir={run}"]
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "rank 37 < D=64" in lines[0] and "capacity.width=107" in lines[0], lines
    assert "capacity.allow_floor=true" in lines[0] and not run.exists()


def test_allow_floor_lets_the_same_config_through_and_symp_is_short_below_n():
    assert not config_errors(composed(["D=64", "model=gru", "capacity.cover=false", "capacity.allow_floor=true"]))
    errors = config_errors(composed(["D=64", "model=symp", "capacity.cover=false", "capacity.width=16"]))
    assert len(errors) == 1 and "rank 16 < N=32 momenta" in errors[0]


def fake_run(rank, dimension, block, data):
    return SimpleNamespace(
        system=SimpleNamespace(exact_quadratic=lambda: None),
        info={
            "rank": {"rank": rank, "dimension": dimension, "block": block},
            "width": 8,
            "symp_params": 1000,
            "params": 990,
        },
        data=data,
    )


def test_a_measured_floor_above_the_limit_stops_the_job_unless_allowed():
    traj = np.cumsum(low_rank_increments(n=401, D=6)[None], axis=1)  # one trajectory whose changes are those
    data = SimpleNamespace(train=traj, std=np.ones(6))
    spec = SimpleNamespace(D=6, model="gru", capacity=Capacity(8, 3), **{"recipe_source": recipe.UNTUNED})
    with pytest.raises(rankfloor.CapacityFloor, match=r"rank 2 < 6: its one-step MSE cannot go below 0\.2"):
        job._capacity(spec, fake_run(2, 6, "state", data), print)
    allowed = SimpleNamespace(**{**vars(spec), "capacity": Capacity(8, 3, allow_floor=True)})
    said = []
    rec = job._capacity(allowed, fake_run(2, 6, "state", data), said.append)
    assert rec["capacity_limited"] and rec["rank_floor_mse"] > rankfloor.FLOOR_MAX and "capacity-limited" in said[0]
    assert job._capacity(spec, fake_run(6, 6, "state", data), print)["rank_floor_mse"] == 0.0


# ----- recipes -----------------------------------------------------------------------------------------------


def test_recipe_layers_and_their_source(tmp_path):
    base = {"lr": 0.02, "horizon": 2, "recipes": {"gru": {"lr": 5e-3, "horizon": 16}}}
    tuned = {"values": {"lr": 1e-3, "horizon": 8}, "source": "outputs/tune, 2026-12-05"}
    assert recipe.effective_train({**base, "tuned": tuned}, "gru") | {} == {"lr": 1e-3, "horizon": 8}
    assert recipe.effective_train({**base, "tuned": tuned, "recipe": "preset"}, "gru") == {"lr": 5e-3, "horizon": 16}
    assert recipe.effective_train({**base, "tuned": tuned, "recipe": "none"}, "gru") == {"lr": 0.02, "horizon": 2}
    grid = {**base, "recipe": "preset", "lr_factor": 2.0, "horizon_factor": 0.5}
    assert recipe.effective_train(grid, "gru") == {"lr": 1e-2, "horizon": 8}
    assert recipe.recipe_source({**base, "tuned": tuned}, "gru") == "tuned: outputs/tune, 2026-12-05"
    assert recipe.recipe_source(base, "gru") == "untuned default (the preset's train.recipes.gru)"
    assert recipe.recipe_source(base, "symp") == "untuned default (the preset's train settings)"
    assert "tuning grid point (lr_factor 2.0" in recipe.recipe_source(grid, "gru")
    assert not recipe.is_tuned(recipe.recipe_source(base, "gru"))


def test_a_cells_recipe_file_is_found_at_composition_and_recorded(tmp_path, monkeypatch):
    (tmp_path / "recipes" / "default").mkdir(parents=True)
    path = recipe.recipe_path(tmp_path / "recipes", "default", "toda", 64, "gru")
    path.write_text("values: {lr: 0.00125, horizon: 32}\nsource: outputs/tune (test)\nedge: []\n")
    monkeypatch.setattr(confdir, "config_dir", lambda: str(tmp_path))
    cfg = composed(["system=toda", "D=64", "model=gru"])
    spec = job.JobSpec.from_config(cfg)
    assert spec.train.lr == 0.00125 and spec.train.horizon == 32 and spec.recipe_source == "tuned: outputs/tune (test)"
    other = job.JobSpec.from_config(composed(["system=fput", "D=64", "model=gru"]))  # no file for this cell
    assert other.train.lr == 5e-3 and other.recipe_source.startswith(recipe.UNTUNED)
    path.write_text("values: {lr: fast}\n")
    errors = config_errors(composed(["system=toda", "D=64", "model=gru"]))
    assert errors == ["train.tuned.values.lr='fast' must be a float"]


def test_the_tuning_winner_counts_diverged_seeds_and_flags_the_grid_edge():
    rows = []
    for lf, lr in ((0.5, 1e-3), (1.0, 2e-3), (2.0, 4e-3)):
        for seed in (1, 2):
            vpt = {0.5: 10.0, 1.0: 30.0, 2.0: 40.0}[lf]
            status = "diverged" if (lf == 2.0 and seed == 2) else "done"  # 40 and 0: mean 20
            rows.append(dict(train_preset="default", system="fput", D=64, model_name="gru", lr_factor=lf,
                             horizon_factor=1.0, lr=lr, train_horizon=16, seed=seed, status=status,
                             val_vpt_best_steps=vpt, val_one_step_best=0.01))  # fmt: skip
    scores = grid_scores(pd.DataFrame(rows))
    best, edges = winner(scores)
    assert best["lr"] == 2e-3 and edges == [] and scores["diverged"].sum() == 1
    best, edges = winner(scores[scores["lr_factor"] >= 1.0])
    assert best["lr"] == 2e-3 and edges == ["learning rate: the smallest of the grid"]


def test_the_tune_experiment_sweeps_the_grid_around_the_preset_recipe():
    cfg = composed(["experiment=tune", "model=gru", "train.lr_factor=2", "train.horizon_factor=0.5"])
    spec = job.JobSpec.from_config(cfg)
    assert (spec.train.lr, spec.train.horizon, spec.train.steps) == (1e-2, 8, 3500)
    assert cfg.train.recipe == "preset" and not config_errors(cfg)


# ----- verdicts ----------------------------------------------------------------------------------------------


def test_a_plateau_at_vpt_zero_failed_to_learn():
    v = convergence([0, 400, 800, 1200, 1600], [0.0] * 5, 1600, tol=0.05)
    assert not v["converged"] and v["failed_to_learn"] and "validation VPT 0" in v["reason"]


def test_a_one_step_error_above_a_tenth_of_persistence_failed_to_learn():
    steps, vpt = [0, 400, 800, 1200, 1600], [1.0, 2.0, 3.0, 3.0, 3.0]
    v = convergence(steps, vpt, 1600, tol=0.05, one_step=[0.9, 0.5, 0.3, 0.25, 0.24], persistence=1.0)
    assert v["failed_to_learn"] and not v["converged"] and "0.24 > 0.1 x persistence's 1" in v["reason"]
    v = convergence(steps, vpt, 1600, tol=0.05, one_step=[0.9, 0.5, 0.3, 0.1, 0.09], persistence=1.0)
    assert v["converged"] and not v["failed_to_learn"]


def test_the_gain_is_relative_to_the_window_start():
    # 100 -> 105.26: 5.26 % over the window's start (5.0 % of the final best): not converged at tol 5 %
    v = convergence([0, 7500, 10000], [50.0, 100.0, 105.26], 10000, tol=0.05)
    assert v["improvement"] == pytest.approx(0.0526) and not v["converged"]
    assert convergence([0, 7500, 10000], [50.0, 100.0, 104.9], 10000, tol=0.05)["converged"]
    assert math.isinf(convergence([0, 7500, 10000], [0.0, 0.0, 3.0], 10000, tol=0.05)["improvement"])


def test_no_curriculum_stage_starts_inside_the_judging_window():
    assert stage_in_window(((0, 1), (7000, 2)), 14000) is None
    assert stage_in_window(((0, 1), (10500, 2)), 14000) is None  # at the window's first step: judged after it
    assert stage_in_window(((0, 1), (12600, 2)), 14000) == (12600, 2)
    errors = config_errors(composed(["train.ramp_fraction=0.9"]))
    assert len(errors) == 1 and "inside the convergence window" in errors[0] and "<= 0.75" in errors[0]
    for preset in ("default", "paper", "smoke"):
        assert not config_errors(composed([f"train={preset}", "model=symp"])), preset
        assert not config_errors(composed([f"train={preset}", "model=gru"])), preset


def test_labels_name_every_shortfall_of_a_cell():
    grp = pd.DataFrame(
        {
            "capacity_limited": [True, False],
            "failed_to_learn": [True, False],
            "converged": [False, False],
            "tuned": [False, True],
            "steps_trained": [100, 100],
        }
    )
    assert cell_labels(grp) == "capacity-limited 1/2; failed to learn 1/2; untuned 1/2; unconverged 1/2"
    clean = grp.assign(capacity_limited=False, failed_to_learn=False, converged=True, tuned=True)
    assert cell_labels(clean) == ""


def test_a_departure_from_the_preset_recipe_must_beat_it_by_more_than_noise():
    def grid(off_centre):
        return pd.DataFrame(
            [
                dict(lr_factor=1.0, horizon_factor=1.0, lr=5e-3, train_horizon=16, val_vpt_steps=30.0, val_one_step_mse=0.02),
                dict(lr_factor=2.0, horizon_factor=0.5, lr=1e-2, train_horizon=8, val_vpt_steps=off_centre, val_one_step_mse=0.01),
            ]
        )  # fmt: skip

    assert winner(grid(31.0))[0]["lr"] == 5e-3  # 3 % better: noise, the preset's recipe stays
    assert winner(grid(33.0))[0]["lr"] == 1e-2  # 10 % better: a real departure


def test_a_tuned_recipe_counts_in_a_runs_identity_by_its_values_and_only_where_it_applies():
    from sympscale.analysis.conditions import setting_labels
    from sympscale.identity import digest

    base = {"system": {"name": "fput"}, "D": 64, "seed": 1, "model": {"name": "gru"}, "train": {"lr": 0.02}}
    tuned = {"values": {"lr": 1e-3}, "source": "outputs/tune, 2026-12-05", "edge": []}
    a = {**base, "train": {"lr": 0.02, "recipe": "auto", "tuned": tuned}}
    b = {**base, "train": {"lr": 0.02, "recipe": "auto", "tuned": {**tuned, "source": "outputs/tune2, 2026-12-06"}}}
    c = {**base, "train": {"lr": 0.02, "recipe": "auto", "tuned": {**tuned, "values": {"lr": 2e-3}}}}
    assert digest(a) == digest(b) != digest(c)  # the sweep's record is bookkeeping; the values are the computation
    p = {**base, "train": {"lr": 0.02, "recipe": "preset", "tuned": tuned}}
    q = {**base, "train": {"lr": 0.02, "recipe": "preset", "tuned": {**tuned, "values": {"lr": 2e-3}}}}
    assert digest(p) == digest(q)  # a recipe the run does not use is not part of it
    symp = {**c, "model": {"name": "symp"}, "train": {**c["train"], "tuned": {"values": {"lr": 4e-2}}}}
    assert setting_labels([a, symp]) == ["", ""]  # each model's own tuned recipe: no setting, the pair stays


def test_the_cover_rule_keeps_widening_where_coverage_is_not_monotone_and_depth_one_does_not_hang():
    for D, width in ((16, 27), (16, 30), (8, 19)):
        ctx = context(D, 0.1, np.zeros(D), np.ones(D), Capacity(width, 3, cover=True))
        assert not increment_rank("gru", options_of("gru"), ctx).short, (D, width)
    assert effective_capacity(16, Capacity(64, 1, cover=True)).width >= 64  # the free-form solver's depth 1
