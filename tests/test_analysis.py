"""Analysis on a synthetic sweep with known numbers: statistics equal hand-computed values; bad runs excluded."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sympscale.analysis import collect, mean_ci, median_iqr
from sympscale.analysis.report import tables

SYMP = {1: 1.0, 2: 2.0, 3: 3.0, 4: 4.0}
GRU = {1: 10.0, 2: 40.0, 3: 90.0, 4: 160.0}  # ratios 10, 20, 30, 40
HORIZON = {1: 10.0, 2: 12.0, 3: 14.0, 4: 16.0}


def write_job(
    root: Path,
    model: str,
    seed: int,
    *,
    status="done",
    last100=None,
    bounded=True,
    horizon=5.0,
    metrics=True,
    D=16,
    vpt=None,
):
    d = root / f"job-{model}-{seed}-{D}"  # the folder name means nothing to the analysis
    d.mkdir(parents=True)
    cfg = {
        "system": {"name": "fput"},
        "D": D,
        "model": {"name": model},
        "seed": seed,
        "data_seed": 0,
        "bptt_window": {"name": "full", "window": None},
        "train": {"preset": "smoke", "steps": 10},
        "capacity": {"width": 32, "depth": 3},
        "_hydra": {"overrides": [f"model={model}", f"seed={seed}"], "choices": {}},
    }
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "status.json").write_text(json.dumps({"status": status, **({"error": "boom"} if status == "failed" else {})}))
    if metrics and status == "done":
        m = {
            "schema_version": 1,
            "system": "fput",
            "D": D,
            "model": model,
            "seed": seed,
            "params": 100,
            "capacity_ratio": 1.0,
            "status": "done",
            "train": {"final_loss": 0.1, "wall_s": 1.0},
            "eval": {
                "last100_mse": last100,
                "bounded": bounded,
                "steps_to_mse_1": horizon,
                "horizon": 300,
                "n_trajectories": 4,
                "conservation": {"H": 1e-3 * seed, "P": math.inf if model == "gru" else 0.1},
                **({} if vpt is None else {"vpt_lyapunov": {"0.3": vpt, "0.5": 1.5 * vpt}}),
            },
            "env": {"platform": "cpu", "device": "cpu", "jax": "x", "x64": True},
        }
        (d / "metrics.json").write_text(json.dumps(m))


@pytest.fixture
def sweep(tmp_path):
    for s in range(1, 5):
        write_job(tmp_path, "symp", s, last100=SYMP[s], horizon=HORIZON[s])
        write_job(tmp_path, "gru", s, last100=GRU[s], bounded=s in (1, 4), horizon=3.0)
    write_job(tmp_path, "gru", 5, status="failed")  # failed
    write_job(tmp_path, "symp", 5, metrics=False)  # says done, metrics.json missing
    write_job(tmp_path, "symp", 6, status="running")  # still running
    return tmp_path


def test_statistics_match_hand_computed_values(sweep):
    df = collect(sweep)
    assert len(df) == 11 and int(df["ok"].sum()) == 8
    assert set(df.loc[~df["ok"], "problem"]) == {
        "failed: boom",
        "finished without metrics.json",
        "running (no metrics.json)",
    }
    tabs = tables(df)
    ratio = tabs["ratio_gru_symp"].iloc[0]
    assert (ratio["n_pairs"], ratio["median"], ratio["q25"], ratio["q75"]) == (4, 25.0, 17.5, 32.5)
    b = tabs["bounded"].set_index("model")
    assert b.loc["gru", "fraction"] == 0.5 and b.loc["symp", "fraction"] == 1.0 and b.loc["gru", "n"] == 4
    ci = tabs["mean_ci"].set_index("model").loc["symp"]
    sd = math.sqrt(20 / 3)
    assert ci["steps_to_mse_1_mean"] == pytest.approx(13.0)
    assert ci["steps_to_mse_1_ci95"] == pytest.approx(3.182446305284263 * sd / 2, rel=1e-12)
    cons = tabs["conservation"].set_index(["model", "invariant"])
    assert cons.loc[("symp", "H"), "median"] == pytest.approx(2.5e-3) and cons.loc[("symp", "H"), "max"] == 4e-3
    assert math.isinf(cons.loc[("gru", "P"), "max"])


def test_helpers():
    assert median_iqr([1, 2, 3, 4]) == (2.5, 1.75, 3.25)
    mean, half = mean_ci([5.0])
    assert mean == 5.0 and math.isnan(half)
    assert all(math.isnan(v) for v in median_iqr([]))


def test_cli_writes_results_tables_figures_and_summary(sweep):
    r = subprocess.run(
        [sys.executable, "-m", "sympscale.analyze", str(sweep)], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-2000:]
    df = pd.read_parquet(sweep / "results.parquet")
    assert len(df) == 11 and (sweep / "results.csv").exists()
    summary = (sweep / "summary.md").read_text()
    assert "11 job folders: 8 finished and used" in summary
    assert "`job-gru-5-16`: failed: boom" in summary and "`job-symp-5-16`: finished without metrics.json" in summary
    assert "GRU/Symp last-100 MSE ratio median 25x (IQR 17.5–32.5x, 4 seeds)" in summary
    for name in ("reliability_vs_D_fput", "steps_to_mse_1_vs_D"):
        assert (sweep / "figures" / f"{name}.png").stat().st_size > 10_000
        assert (sweep / "figures" / f"{name}.pdf").exists()
    assert (sweep / "tables" / "ratio_gru_symp.tex").read_text().startswith(r"\begin{tabular}")


def test_cli_refuses_an_empty_folder(tmp_path):
    r = subprocess.run([sys.executable, "-m", "sympscale.analyze", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "no job folders" in r.stderr


def test_model_variants_are_their_own_methods():
    from sympscale.analysis.collect import model_label

    assert model_label({"name": "symp", "kinetic": "auto", "spectral_norm": False, "projection": "none"}) == "symp"
    assert model_label({"name": "symp", "projection": "multi"}) == "symp+multi"
    assert model_label({"name": "gru", "projection": "none"}) == "gru"
    assert (
        model_label(
            {"name": "symp", "kinetic": "mlp", "spectral_norm": True, "exact_part": True, "projection": "single"}
        )
        == "symp(kinetic=mlp, spectral_norm=True)+single"
    )
    assert (
        model_label({"name": "symp", "exact_part": False, "method": "leapfrog"})
        == "symp(exact_part=False, method=leapfrog)"
    )
