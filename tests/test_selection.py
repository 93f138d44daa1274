"""Validation during training: the best-scoring parameters are the ones kept, the convergence rule, resume."""

import math

import jax
import numpy as np
import pytest

from sympscale import checkpoint
from sympscale.data import DataSpec, load_or_generate
from sympscale.models import Capacity, build
from sympscale.selection import better, convergence, make_validator, validation_windows
from sympscale.systems import make_system
from sympscale.training import Resume, TrainSpec, fit, make_optimizer

# ----- the convergence rule on synthetic validation curves --------------------------------------------------


def test_plateau_is_converged_and_a_rising_curve_is_not():
    steps = np.arange(0, 1001, 100)
    plateau = 20 * (1 - np.exp(-steps / 100))  # flat within 1 % after ~500 steps
    rising = 0.02 * steps  # still gaining 30 % over the last quarter
    assert convergence(steps, plateau, 1000, tol=0.05)["converged"]
    verdict = convergence(steps, rising, 1000, tol=0.05)
    assert not verdict["converged"] and verdict["reason"] == "still improving"
    assert verdict["improvement"] == pytest.approx((20 - 14) / 14)  # relative to the window's start


def test_noisy_plateau_converges_and_zero_never_does():
    steps = np.arange(0, 2001, 100)
    rng = np.random.default_rng(0)
    noisy = 30 + rng.normal(0, 0.3, len(steps))  # a plateau with noise well under the tolerance
    assert convergence(steps, noisy, 2000, tol=0.05)["converged"]
    flat_zero = np.zeros(len(steps))
    assert convergence(steps, flat_zero, 2000, tol=0.05)["reason"] == "failed to learn (validation VPT 0)"
    assert not convergence(steps, flat_zero, 2000, tol=0.05)["converged"]
    assert convergence([1000], [5.0], 1000, tol=0.05)["reason"] == "too few validations to judge"
    assert convergence([0, 1000], [0.0, 5.0], 1000, tol=0.05)["improvement"] == math.inf


def test_a_curve_flat_at_the_validation_cap_is_not_judged_converged():
    steps = np.arange(0, 1001, 100)
    capped = np.minimum(200.0, 0.5 * steps)  # reaches the 200-step cap at step 400 and stays there
    verdict = convergence(steps, capped, 1000, tol=0.05, cap=200)
    assert not verdict["converged"] and "raise train.val_horizon" in verdict["reason"]
    assert convergence(steps, np.minimum(150.0, 0.5 * steps), 1000, tol=0.05, cap=200)["converged"]


def test_a_late_jump_is_not_a_plateau():
    steps = np.arange(0, 1001, 100)
    curve = np.where(steps < 900, 10.0, 12.0)  # flat, then +20 % at the end
    assert not convergence(steps, curve, 1000, tol=0.05)["converged"]


def test_better_prefers_longer_vpt_then_lower_one_step_error():
    a = {"val_vpt_steps": 10.0, "val_one_step_mse": 1e-3}
    assert better(a, None)
    assert better({"val_vpt_steps": 11.0, "val_one_step_mse": 1.0}, a)
    assert better({"val_vpt_steps": 10.0, "val_one_step_mse": 1e-4}, a)
    assert not better({"val_vpt_steps": math.nan, "val_one_step_mse": 1e-9}, a)


# ----- the validator ----------------------------------------------------------------------------------------


def test_validator_scores_the_oracle_far_above_a_fresh_model(fput8):
    s, traj, std, model = fput8
    oracle, _ = build("oracle", D=s.D, dt=s.dt_obs, mean=traj.mean((0, 1)), std=std, capacity=Capacity(), system=s)
    validate = make_validator(model, traj, std, horizon=60, starts=3)
    fresh = validate(model.init(jax.random.key(0)), 4)
    best = make_validator(oracle, traj, std, horizon=60, starts=3)({}, 4)
    assert best["val_one_step_mse"] < 1e-4 < 1e-2 < fresh["val_one_step_mse"]
    assert best["val_vpt_steps"] == 60.0 > fresh["val_vpt_steps"]  # the oracle never leaves the truth here
    assert validate.n_windows == 6 * 3
    assert list(validation_windows(80, 60, 3)) == [0, 10, 19]


def test_validator_early_exit_does_not_change_the_score(fput8):
    """The rollout stops once every window crossed: the same VPT as a rollout to the full horizon."""
    s, traj, std, model = fput8
    params = model.init(jax.random.key(1))
    short = make_validator(model, traj, std, horizon=70, starts=2)(params, 1)
    full = make_validator(model, traj, std, horizon=70, starts=2)(params, 70)  # must run all 70 steps
    assert short["val_vpt_steps"] == full["val_vpt_steps"] and short["val_one_step_mse"] == full["val_one_step_mse"]


# ----- selection inside fit ---------------------------------------------------------------------------------


class ScriptedValidator:
    """Returns a scripted score per call and remembers the parameters it saw."""

    def __init__(self, scores):
        self.scores, self.seen = list(scores), []

    def __call__(self, params, horizon):
        self.seen.append(params)
        vpt = self.scores[len(self.seen) - 1]
        return {"val_vpt_steps": vpt, "val_vpt_median_steps": vpt, "val_one_step_mse": 1.0, "val_rollout_mse": 1.0}


def leaves_equal(a, b):
    return all(
        np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True)
    )


def test_fit_returns_the_best_validation_parameters(fput8):
    _, traj, std, model = fput8
    spec = TrainSpec(steps=50, batch_size=4, horizon=4, warmup=2, val_every=10)
    validator = ScriptedValidator([0.0, 3.0, 9.0, 4.0, 2.0, 1.0])  # step 0, 10, 20 (best), 30, 40, 50
    params, summary = fit(
        model, model.init(jax.random.key(2)), traj, std, spec, key=jax.random.key(3), validate=validator
    )
    assert summary["selected_step"] == 20
    assert leaves_equal(params, validator.seen[2]) and not leaves_equal(params, validator.seen[-1])
    assert summary["validation"]["curve"]["step"] == [0, 10, 20, 30, 40, 50]
    assert summary["converged"] and summary["convergence"]["reason"] == "plateau"


def test_patience_stops_early_and_keeps_the_best(fput8):
    _, traj, std, model = fput8
    spec = TrainSpec(steps=100, batch_size=4, horizon=4, warmup=2, val_every=10, patience=2)
    validator = ScriptedValidator([0.0, 5.0, 4.0, 3.0] + [9.0] * 10)
    params, summary = fit(
        model, model.init(jax.random.key(2)), traj, std, spec, key=jax.random.key(3), validate=validator
    )
    assert summary["steps_trained"] == 30 and summary["stopped_early"] and summary["selected_step"] == 10
    assert leaves_equal(params, validator.seen[1])


def test_resume_restores_the_best_parameters_and_history(fput8, tmp_path):
    _, traj, std, model = fput8
    spec = TrainSpec(steps=40, batch_size=4, horizon=4, warmup=2, val_every=10, checkpoint_every=20)
    scores = [0.0, 8.0, 1.0, 2.0, 3.0]
    init = model.init(jax.random.key(4))
    reference, ref_summary = fit(
        model, init, traj, std, spec, key=jax.random.key(5), validate=ScriptedValidator(scores)
    )
    path = tmp_path / "ckpt.npz"

    class Stop(Exception):
        pass

    def save_then_stop(step, state, meta):
        checkpoint.save(path, step, state, tag="run", meta=meta)
        raise Stop

    with pytest.raises(Stop):
        fit(
            model,
            init,
            traj,
            std,
            spec,
            key=jax.random.key(5),
            validate=ScriptedValidator(scores),
            checkpoint=save_then_stop,
        )
    step, (params, opt_state, best), meta = checkpoint.load(
        path, (init, make_optimizer(spec).init(init), init), tag="run"
    )
    assert step == 20 and [r["step"] for r in meta["history"]] == [0, 10, 20]
    resumed, summary = fit(
        model,
        params,
        traj,
        std,
        spec,
        key=jax.random.key(5),
        validate=ScriptedValidator(scores[3:]),
        resume=Resume(step, opt_state, best, meta["history"]),
    )
    assert summary["selected_step"] == ref_summary["selected_step"] == 10
    assert leaves_equal(resumed, reference)
    assert summary["validation"]["curve"] == ref_summary["validation"]["curve"]


# ----- the data: validation trajectories are their own -------------------------------------------------------


def test_validation_trajectories_are_disjoint_from_train_and_test(tmp_path):
    s = make_system("toda", 6)
    spec = DataSpec(
        n_trajectories=10, n_obs=40, lyapunov_intervals=20, ground_truth_trajectories=1, lyapunov_trajectories=1
    )
    data = load_or_generate(s, spec, data_seed=3, cache_dir=tmp_path, log=lambda _: None)
    assert (len(data.train), len(data.val), len(data.test)) == (7, 1, 2)
    starts = {
        split: {tuple(np.round(x, 12)) for x in np.asarray(getattr(data, split))[:, 0]}
        for split in ("train", "val", "test")
    }
    assert (
        not starts["val"] & starts["train"]
        and not starts["val"] & starts["test"]
        and not starts["train"] & starts["test"]
    )
    # and no validation state appears anywhere in a training or test trajectory
    val_states = np.asarray(data.val).reshape(-1, 6)
    other = np.concatenate([np.asarray(data.train), np.asarray(data.test)]).reshape(-1, 6)
    d = np.min(np.linalg.norm(val_states[:, None] - other[None], axis=-1))
    assert d > 1e-6
