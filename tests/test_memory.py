"""Memory strategies: same gradient, predicted memory scales as designed, auto picks what fits; the CLI."""

import json
import subprocess
import sys

import jax
import numpy as np
import pytest

from sympscale import profiling
from sympscale.assembly import Assembly
from sympscale.models import Capacity, build
from sympscale.systems import make_system
from sympscale.training import TrainSpec, fit, make_loss, sample_windows


@pytest.fixture(scope="module")
def data():
    s = make_system("toda", 8)
    traj = np.asarray(jax.jit(s.trajectories, static_argnums=1)(s.sample_initial(jax.random.key(0), 3), 60))
    return s, traj, traj.mean(axis=(0, 1)), traj.std(axis=(0, 1))


def model_of(name, data, width=16):
    s, _, mean, std = data
    return build(name, D=s.D, dt=s.dt_obs, mean=mean, std=std, capacity=Capacity(width=width, depth=2))[0]


def run_of(model, data, spec):
    """An assembled run without data (the profiler needs shapes only)."""
    return Assembly(data[0], None, model, {}, spec, projector=None, start_with=None)


@pytest.mark.parametrize("name", ["symp", "gru"])
@pytest.mark.parametrize("window", [None, 4])
def test_gradients_agree_across_strategies(name, window, data):
    s, traj, mean, std = data
    model = model_of(name, data)
    params = model.init(jax.random.key(1))
    x0, targets = sample_windows(jax.random.key(2), jax.numpy.asarray(traj), 4, 27)  # 27 = 4 blocks of 6 + 3
    grads = {
        m: jax.grad(make_loss(model, std, TrainSpec(horizon=27, window=window, memory=m)))(params, x0, targets)
        for m in ("none", "remat", "blocked")
    }
    ref = jax.tree_util.tree_leaves(grads["none"])
    scale = max(float(np.max(np.abs(x))) for x in ref)
    for m in ("remat", "blocked"):
        diff = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree_util.tree_leaves(grads[m]), ref, strict=True))
        assert diff / scale < 1e-12, (m, diff / scale)


def test_predicted_temp_memory_scaling(data):
    """Per-step remat: temp grows by one state per step (the carried state); none: by a whole step's residuals."""
    s, _, mean, std = data
    model = model_of("symp", data, width=32)
    state = 8 * s.D * 8  # batch 8, float64
    temp = {
        (m, T): profiling.predicted_memory(run_of(model, data, TrainSpec(batch_size=8, horizon=T)), m)["temp"]
        for m in ("none", "remat")
        for T in (100, 400)
    }
    slope = {m: (temp[(m, 400)] - temp[(m, 100)]) / 300 for m in ("none", "remat")}
    assert 0.9 * state <= slope["remat"] <= 1.5 * state, slope["remat"] / state
    assert slope["none"] >= 20 * slope["remat"], slope


def test_auto_picks_the_cheapest_strategy_that_fits(data, monkeypatch):
    run = run_of(model_of("symp", data), data, TrainSpec(batch_size=8, horizon=20))
    chosen, tried = profiling.choose_memory(run)
    assert chosen == "none" and len(tried) == 1  # plenty of host memory
    peaks = {m: profiling.predicted_memory(run, m)["peak"] for m in ("none", "remat")}
    budget = (peaks["remat"] + peaks["none"]) / 2  # fits remat, not none
    monkeypatch.setattr(profiling, "device_budget", lambda: (int(budget / 0.9), "test"))
    assert profiling.choose_memory(run)[0] == "remat"
    monkeypatch.setattr(profiling, "device_budget", lambda: (10, "test"))
    with pytest.raises(MemoryError, match="no memory strategy fits"):
        profiling.choose_memory(run)


def test_gradient_cosine_is_logged_for_truncated_windows(data):
    s, traj, mean, std = data
    model = model_of("gru", data)
    logs = []
    spec = TrainSpec(steps=11, batch_size=4, horizon=12, window=4, log_every=5, grad_cosine_every=5, warmup=1)
    fit(model, model.init(jax.random.key(0)), traj, std, spec, key=jax.random.key(1), log=logs.append)
    cos = [r["grad_cosine_full"] for r in logs if "grad_cosine_full" in r]
    assert len(cos) == 3 and all(-1.0 <= c <= 1.0 + 1e-12 for c in cos) and min(cos) < 1.0 - 1e-9
    logs.clear()
    fit(
        model,
        model.init(jax.random.key(0)),
        traj,
        std,
        TrainSpec(steps=6, batch_size=4, horizon=12, log_every=5, grad_cosine_every=5, warmup=1),
        key=jax.random.key(1),
        log=logs.append,
    )
    assert not any("grad_cosine_full" in r for r in logs)  # full BPTT: nothing to compare


@pytest.mark.slow
def test_memory_cli(tmp_path):
    out = tmp_path / "mem.json"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "sympscale.memory",
            "--run",
            "--json",
            str(out),
            "system=fput",
            "D=8",
            "train=smoke",
            "capacity.width=16",
            *["train.horizon=4", "train.horizon_start=2", "train.batch_size=8"],
            *["data.n_trajectories=6", "data.n_obs=160", "eval.horizon=100"],
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "CPU compiles overestimate GPU memory" in r.stdout
    rows = json.loads(out.read_text())["strategies"]
    assert [row["memory"] for row in rows] == ["none", "remat", "blocked"]
    assert all(row["peak"] > 0 and row["fits"] and row["step_s"] > 0 and row["measured_peak"] > 0 for row in rows)
    bad = subprocess.run([sys.executable, "-m", "sympscale.memory", "D=15"], capture_output=True, text=True)
    assert bad.returncode == 2 and "D=15" in bad.stderr
