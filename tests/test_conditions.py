"""The analysis never pools or pairs runs that differ in anything but the seed, and says what differs."""

import json
import subprocess
import sys
from pathlib import Path

from sympscale.analysis import collect
from sympscale.analysis.conditions import model_label, setting_labels
from sympscale.analysis.report import tables
from sympscale.analysis.stats import paired_ratios

SEEDS = (1, 2, 3)


def config(model: dict, seed: int, horizon: int) -> dict:
    return {
        "system": {"name": "fput", "beta": 1.0},
        "D": 16,
        "model": model,
        "seed": seed,
        "data_seed": 0,
        "bptt_window": {"name": "full", "window": None},
        "train": {"preset": "smoke", "steps": 10, "horizon": horizon, "lr": 0.003, "log_every": 5},
        "capacity": {"width": 32, "depth": 3},
        "name": "sweep",
        "_hydra": {"overrides": [], "choices": {}},
    }


def write_run(root: Path, cfg: dict, mse: float) -> None:
    d = root / f"run{len(list(root.iterdir())) if root.exists() else 0}"
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "status.json").write_text(json.dumps({"status": "done"}))
    metrics = {
        "schema_version": 1,
        "status": "done",
        "params": 100,
        "capacity_ratio": 1.0,
        "train": {"final_loss": 0.1, "converged": True},
        "eval": {"last100_mse": mse, "bounded": True, "steps_to_mse_1": 5.0, "horizon": 300, "conservation": {}},
    }
    (d / "metrics.json").write_text(json.dumps(metrics))


def sweep(root: Path) -> None:
    """symp with substeps 4 and 8, and gru, each at train.horizon 1 and 10, seeds 1-3: every MSE distinct."""
    symp = {"name": "symp", "substeps": 4, "method": "yoshida4", "projection": "none"}
    for horizon in (1, 10):
        for seed in SEEDS:
            write_run(root, config(symp, seed, horizon), 1.0 * seed * horizon)
            write_run(root, config({**symp, "substeps": 8}, seed, horizon), 2.0 * seed * horizon)
            write_run(root, config({"name": "gru", "projection": "none"}, seed, horizon), 100.0 * seed * horizon)


def test_options_and_settings_that_differ_make_separate_groups(tmp_path):
    sweep(tmp_path)
    df = collect(tmp_path)
    assert df["ok"].all() and len(df) == 18
    assert set(df["model"]) == {"symp", "symp(substeps=8)", "gru"}
    assert set(df["setting"]) == {"train.horizon=1", "train.horizon=10"}
    bounded = tables(df)["bounded"]
    assert len(bounded) == 6 and set(bounded["n"]) == {3}  # 3 methods x 2 settings, 3 seeds each

    pairs = paired_ratios(df)  # gru / symp: only the default symp, only within a setting, one pair per seed
    assert len(pairs) == 6 and set(pairs["ratio"]) == {100.0}
    ratios = tables(df)["ratio_gru_symp"]
    assert list(ratios["n_pairs"]) == [3, 3] and set(ratios["setting"]) == {"train.horizon=1", "train.horizon=10"}
    means = tables(df)["mean_ci"].set_index(["model", "setting"])
    assert means.loc[("symp(substeps=8)", "train.horizon=10"), "last100_mse_mean"] == 2.0 * 2 * 10


def test_a_model_option_left_at_its_default_is_no_variant():
    assert model_label({"name": "symp", "substeps": 4, "activation": "softplus", "leapfrog_steps": 0}) == "symp"
    assert model_label({"name": "symp", "activation": "tanh", "leapfrog_steps": 500}) == (
        "symp(activation=tanh, leapfrog_steps=500)"
    )
    assert model_label({"name": "freeform", "substeps": 8, "projection": "single"}) == "freeform(substeps=8)+single"


def test_the_analysis_reads_the_defaults_a_run_recorded_and_imports_no_jax():
    """Method labels come from the run's own config.json (`_model_defaults`), so reading a sweep needs neither the
    models nor JAX; a run that recorded no defaults falls back to the registry."""
    recorded = {"name": "symp", "substeps": 8, "activation": "softplus"}
    assert model_label(recorded, {"substeps": 8, "activation": "tanh"}) == "symp(activation=softplus)"
    code = (
        "import sys; from sympscale.analysis import collect; from sympscale.analysis.conditions import model_label; "
        "import sympscale.analyze, sympscale.analysis.report, sympscale.analysis.figures; "
        "assert model_label({'name': 'gru', 'projection': 'multi'}, {}) == 'gru+multi'; print('jax' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_settings_are_what_runs_of_a_system_differ_in():
    a = config({"name": "gru"}, 1, 10)
    b = config({"name": "gru"}, 2, 10)
    c = {**config({"name": "gru"}, 1, 10), "system": {"name": "toda"}}  # another system: not compared with fput
    d = json.loads(json.dumps(a))
    d["train"]["log_every"] = 50  # does not change the computation
    assert setting_labels([a, b, c, d, None]) == ["", "", "", "", None]
    e = json.loads(json.dumps(a))
    e["system"]["beta"] = 2.0
    e["bptt_window"] = {"name": "4", "window": 4}  # a column of its own, not part of the setting
    assert setting_labels([a, e]) == ["system.beta=1.0", "system.beta=2.0"]
