"""The user's commands, run as the user runs them: in a subprocess, on CPU, at toy size."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REQUIRED = {
    "schema_version",
    "system",
    "D",
    "model",
    "seed",
    "bptt_window",
    "params",
    "capacity_ratio",
    "status",
    "train",
    "eval",
    "env",
}
REQUIRED_EVAL = {
    "horizon",
    "n_trajectories",
    "last100_mse",
    "last100_mse_per_traj",
    "bounded",
    "steps_to_mse_1",
    "conservation",
}
# smaller than train=smoke: seconds per job (one curriculum stage: one training program to compile, not two)
TINY = [
    "train=smoke",
    "train.steps=10",
    "train.horizon_start=8",
    "train.log_every=5",
    "data.n_trajectories=6",
    "data.n_obs=160",
    "eval.horizon=100",
    "capacity.width=16",
    "capacity.depth=2",
]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = dict(os.environ)
    e["SYMPSCALE_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    e["JAX_PLATFORMS"] = "cpu"
    return e


def train(args, env, cwd):
    return subprocess.run(
        [sys.executable, "-m", "sympscale.train", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600
    )


def job_dirs(sweep: Path):
    return sorted(p.parent for p in sweep.glob("*/metrics.json"))


@pytest.mark.slow
def test_multirun_2x2_writes_metrics(tmp_path, env):
    sweep = tmp_path / "sweep"
    r = train(
        ["-m", "system=toda,fput", "model=symp,gru", "D=8", "seed=1-1", *TINY, f"hydra.sweep.dir={sweep}"],
        env,
        tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    dirs = job_dirs(sweep)
    assert len(dirs) == 4
    seen = set()
    for d in dirs:
        m = json.loads((d / "metrics.json").read_text())
        assert REQUIRED <= set(m) and REQUIRED_EVAL <= set(m["eval"]), sorted(m)
        assert isinstance(m["seed"], int) and m["seed"] == 1 and m["status"] == "done"
        assert abs(m["capacity_ratio"] - 1) <= 1e-3 and m["env"]["x64"] is True
        assert json.loads((d / "status.json").read_text())["status"] == "done"
        cfg = json.loads((d / "config.json").read_text())
        assert cfg["system"]["name"] == m["system"] and cfg["D"] == 8
        assert (d / "train_log.jsonl").read_text().count("\n") >= 2
        seen.add((m["system"], m["model"]))
        # the folder is keyed by the job's overrides, not by job number or time; reporting cadence is left out
        job = ["D=8", f"model={m['model']}", "seed=1", f"system={m['system']}", *TINY]
        assert d.name == ",".join(sorted(o for o in job if not o.startswith("train.log_every")))
    assert seen == {("toda", "symp"), ("toda", "gru"), ("fput", "symp"), ("fput", "gru")}


@pytest.mark.slow
def test_yaml_defined_seed_range_sweeps_integers(tmp_path, env):
    exp = tmp_path / "extra" / "experiment"
    exp.mkdir(parents=True)
    (exp / "yaml_seeds.yaml").write_text("# @package _global_\nhydra:\n  sweeper:\n    params:\n      seed: 2-3\n")
    sweep = tmp_path / "sweep"
    # also a truncated window with the gradient-cosine probe on: the whole logging path runs
    extra = ["bptt_window=4", "train.horizon=8", "train.grad_cosine_every=5"]
    r = train(
        [
            "-m",
            "--config-dir",
            str(tmp_path / "extra"),
            "experiment=yaml_seeds",
            "D=8",
            *TINY,
            *extra,
            f"hydra.sweep.dir={sweep}",
        ],
        env,
        tmp_path,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    seeds = sorted(json.loads((d / "metrics.json").read_text())["seed"] for d in job_dirs(sweep))
    assert seeds == [2, 3]
    for d in job_dirs(sweep):
        recs = [json.loads(line) for line in (d / "train_log.jsonl").read_text().splitlines()]
        assert sum("grad_cosine_full" in rec for rec in recs) == 2  # steps 0 and 5 of 10
        assert json.loads((d / "metrics.json").read_text())["bptt_window"] == 4


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["system=nbody3"], "nbody3"),
        (["D=15"], "D=15"),
        (["-m", "seed=10-1"], "10-1"),
        (["-m", "seed=a-b"], "a-b"),
        (["trian.steps=3"], "trian"),
        (["-m", "D=8,15", "system=fput"], "D=15"),
        (["system=cr3bp", "D=8"], "D=4 only"),
        (["system=nbody", "D=10"], "D = 4N"),
        (["-m", "bptt_window=4,32", "train=smoke"], "bptt_window=32"),
        (["model=gru", "+train.recipes.gru.steps=3"], "train.recipes.gru.steps"),
        (["train.curriculum=linear"], "train.curriculum='linear'"),
        (["train.val_every=-1"], "train.val_every=-1"),
    ],
)
def test_bad_input_fails_before_compute(tmp_path, env, args, fragment):
    sweep, run = tmp_path / "sweep", tmp_path / "run"
    cache_before = sorted(Path(env["SYMPSCALE_CACHE_DIR"]).iterdir())
    r = train([*args, *TINY[1:], f"hydra.sweep.dir={sweep}", f"hydra.run.dir={run}"], env, tmp_path)
    assert r.returncode != 0
    assert fragment in r.stderr + r.stdout, r.stderr[-2000:]
    assert not list(sweep.glob("*/metrics.json")) and not (run / "metrics.json").exists()
    assert sorted(Path(env["SYMPSCALE_CACHE_DIR"]).iterdir()) == cache_before  # no data generated


@pytest.mark.slow
def test_model_zoo_sweep_reports_projected_residuals(tmp_path, env):
    sweep = tmp_path / "sweep"
    tiny = [a for a in TINY if not a.startswith("capacity.width")] + ["capacity.width=20"]  # freeform needs 20
    args = ["-m", "system=fput", "D=8", "model=symp,gru,rk4,freeform,oracle", "seed=1", *tiny]
    r = train([*args, f"hydra.sweep.dir={sweep}"], env, tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    metrics = [json.loads((d / "metrics.json").read_text()) for d in job_dirs(sweep)]
    assert sorted(m["model"] for m in metrics) == ["freeform", "gru", "oracle", "rk4", "symp"]
    for m in metrics:
        tr = m["train"]
        if m["model"] == "oracle":  # the ceiling: no parameters, nothing trained, evaluated like every model
            assert m["params"] == 0 and tr["steps_trained"] == 0 and tr["converged"] is None
            assert m["eval"]["one_step_mse"] < 1e-4
            continue
        assert tr["converged"] in (True, False) and 0 <= tr["selected_step"] <= tr["steps_trained"]
        assert tr["validation"]["curve"]["step"][0] == 0 and m["eval"]["one_step_mse"] > 0
        ev = m["eval"]
        assert set(ev["conservation_projected"]) == set(ev["conservation"]) == {"H", "P"}
        assert (
            ev["projection"]["invariants"] == ["H", "P"] and ev["projection"]["n_steps"] == 100 * ev["n_trajectories"]
        )
        assert abs(m["capacity_ratio"] - 1) <= 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("system, D", [("fput", 16), ("toda", 16), ("nbody", 16), ("cr3bp", 4), ("ks", 64)])
def test_every_system_runs_end_to_end(tmp_path, env, system, D):
    """`python -m sympscale.train system=<s> D=<d> model=symp train=smoke`, exactly as the README shows it."""
    run = tmp_path / "run"
    r = train([f"system={system}", f"D={D}", "model=symp", "train=smoke", f"hydra.run.dir={run}"], env, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((run / "metrics.json").read_text())
    assert m["system"] == system and m["D"] == D and m["status"] == "done"
    ds, ev = m["dataset"], m["eval"]
    assert np.isfinite(ds["lyapunov_exponent"]) and ds["ground_truth_horizon_obs"] >= 1
    assert set(ev["vpt_lyapunov"]) == {"0.3", "0.5"} and ev["horizon_lyapunov"] > 0
    assert ev["exceeds_ground_truth"] == (ev["horizon"] > ds["ground_truth_horizon_obs"])
    if ev["exceeds_ground_truth"]:
        assert "exceeds the valid ground-truth horizon" in r.stdout + r.stderr
