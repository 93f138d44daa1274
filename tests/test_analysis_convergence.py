"""Convergence and the oracle in the analysis: counts, flags, VPT as a fraction of the oracle's, the figure."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sympscale.analysis import collect
from sympscale.analysis.report import headline, tables

TRAIN = {
    "preset": "default",
    "steps": 1000,
    "horizon": 4,
    "curriculum": "geometric",
    "horizon_start": 1,
    "ramp_fraction": 0.5,
}
VPT = {
    "symp": {1: 2.0, 2: 1.5, 3: 1.0},
    "gru": {1: 0.5, 2: 0.4, 3: 0.3},
    "oracle": {1: 2.5, 2: 2.5, 3: 2.5, 4: 2.5, 5: 2.5, 6: 2.5},
}
CONVERGED = {
    "symp": {1: True, 2: True, 3: False},
    "gru": {1: True, 2: True, 3: True},
    "oracle": dict.fromkeys((1, 2, 3, 4, 5, 6)),
}


def write_job(root: Path, model: str, seed: int) -> None:
    d = root / f"j{model}{seed}"
    d.mkdir()
    cfg = {
        "system": {"name": "toda"},
        "D": 8,
        "model": {"name": model},
        "seed": seed,
        "data_seed": 0,
        "bptt_window": {"name": "full", "window": None},
        "train": TRAIN,
        "capacity": {"width": 16, "depth": 2},
    }
    conv = CONVERGED[model][seed]
    metrics = {
        "system": "toda",
        "D": 8,
        "model": model,
        "seed": seed,
        "params": 0 if model == "oracle" else 100,
        "capacity_ratio": 0.0 if model == "oracle" else 1.0,
        "dataset": {"lyapunov_exponent": 0.1, "dt_obs": 0.5},
        "train": {
            "steps_trained": 0 if model == "oracle" else 1000,
            "selected_step": 0 if model == "oracle" else 800,
            "converged": conv,
            "convergence": {"improvement": None if conv is None else (0.01 if conv else 0.3)},
            "curriculum": {"mean_horizon": 2.6},
        },
        "eval": {
            "horizon": 300,
            "last100_mse": 1.0 + seed,
            "bounded": True,
            "steps_to_mse_1": 10.0,
            "one_step_mse": 1e-4,
            "vpt_lyapunov": {"0.3": VPT[model][seed], "0.5": 1.0},
            "conservation": {"H": 1e-3},
        },
    }
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "status.json").write_text(json.dumps({"status": "done"}))
    (d / "metrics.json").write_text(json.dumps(metrics))
    if model != "oracle":
        log = [
            {"step": s, "horizon": 1, "val_vpt_steps": 10.0 * s / 1000, "val_one_step_mse": 1e-3}
            for s in (0, 500, 1000)
        ]
        log.insert(1, {"step": 0, "loss": 1.0})
        (d / "train_log.jsonl").write_text("\n".join(json.dumps(r) for r in log) + "\n")


@pytest.fixture
def sweep(tmp_path):
    for model in VPT:
        for seed in (1, 2, 3):  # oracle seeds 4-6: only where a test adds them
            write_job(tmp_path, model, seed)
    return tmp_path


def test_convergence_counts_oracle_fraction_and_flags(sweep):
    df = collect(sweep)
    assert set(df["horizon_schedule"]) == {"geometric 1→4 (ramp 0.5)", "not trained"}  # the oracle trains nothing
    frac = df.set_index(["model", "seed"])["vpt_fraction_of_oracle"]
    assert frac[("symp", 1)] == pytest.approx(0.8) and frac[("gru", 3)] == pytest.approx(0.12)
    tabs = tables(df)
    for name, t in tabs.items():
        if name != "capacity" and len(t):
            assert any("schedule" in c for c in t.columns), name  # the training protocol stays visible everywhere
    conv = tabs["convergence"].set_index("model")
    assert (conv.loc["symp", "converged"], conv.loc["symp", "not_converged"]) == (2, 1)
    assert (conv.loc["gru", "converged"], conv.loc["oracle", "not_judged"]) == (3, 3)
    ora = tabs["vpt_oracle"].set_index("model")
    assert ora.loc["symp", "fraction_median"] == pytest.approx(0.6) and ora.loc["oracle", "fraction_median"] == 1.0
    ratio = tabs["ratio_gru_symp"].iloc[0]  # GRU and symp pair up across their own recipes, both shown
    assert ratio["unconverged_pairs"] == 1 and ratio["n_pairs"] == 3 and ratio["num_schedule"] == ratio["den_schedule"]
    assert "[WARNING: gru: untuned 3/3; symp: untuned 3/3; unconverged 1/3]" in headline(df)
    assert "VPT/oracle gru 0.16, oracle 1.00, symp 0.60" in headline(df)


def test_cli_summary_counts_unconverged_runs_and_draws_the_curves(sweep):
    r = subprocess.run(
        [sys.executable, "-m", "sympscale.analyze", str(sweep)], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-2000:]
    summary = (sweep / "summary.md").read_text()
    assert "Convergence: 5 of 6 trained runs converged; 1 did not." in summary
    assert "toda D=8 symp seed=3 (geometric 1→4 (ramp 0.5))" in summary
    for name in ("convergence_toda", "vpt_fraction_of_oracle_vs_D"):
        assert (sweep / "figures" / f"{name}.png").stat().st_size > 10_000
    curves = (sweep / "validation_curves.csv").read_text().splitlines()
    assert len(curves) == 1 + 6 * 3  # 6 trained runs x 3 validations; the oracle has none


def test_an_oracle_of_other_system_settings_is_not_the_reference(sweep):
    """The oracle is matched on the dataset (its key covers every system setting), not only on (system, D)."""
    for d in sweep.iterdir():
        m = json.loads((d / "metrics.json").read_text())
        m["dataset"]["key"] = "toda-D8-s0-beta1"
        (d / "metrics.json").write_text(json.dumps(m))
    for seed in (4, 5, 6):  # another system setting: same system, D and data seed, another dataset
        write_job(sweep, "oracle", seed)
        m = json.loads((sweep / f"joracle{seed}" / "metrics.json").read_text())
        m["dataset"]["key"], m["eval"]["vpt_lyapunov"]["0.3"] = "toda-D8-s0-beta0", 100.0
        (sweep / f"joracle{seed}" / "metrics.json").write_text(json.dumps(m))
    frac = collect(sweep).set_index(["model", "seed"])["vpt_fraction_of_oracle"]
    assert frac[("symp", 1)] == pytest.approx(0.8) and frac[("oracle", 4)] == 1.0  # pooled, it would be 2 / 51.25
