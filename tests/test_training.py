"""Training: remat never changes the gradient, truncation does, fit is deterministic and learns."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sympscale.models import Capacity, build
from sympscale.systems import make_system
from sympscale.training import TrainSpec, fit, make_loss, sample_windows


@pytest.fixture(scope="module")
def setup():
    s = make_system("fput", 8)
    traj = np.asarray(jax.jit(s.trajectories, static_argnums=1)(s.sample_initial(jax.random.key(0), 4), 80))
    mean, std = traj.mean(axis=(0, 1)), traj.std(axis=(0, 1))
    x0, targets = sample_windows(jax.random.key(1), jnp.asarray(traj), 6, 32)
    return s, traj, mean, std, x0, targets


def grads(name, setup, **spec):
    s, traj, mean, std, x0, targets = setup
    model, _ = build(name, D=s.D, dt=s.dt_obs, mean=mean, std=std, capacity=Capacity(width=16, depth=2))
    params = model.init(jax.random.key(2))
    loss = make_loss(model, std, TrainSpec(horizon=32, **spec))
    return jax.grad(loss)(params, x0, targets)


def max_rel_diff(a, b):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    scale = max(float(jnp.max(jnp.abs(x))) for x in lb)
    return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(la, lb, strict=True)) / scale


def _flip(data: bytes) -> bytes:
    """Every 97th byte of the second half inverted (the zip's central directory and some array bytes)."""
    out = bytearray(data)
    for k in range(len(out) // 2, len(out), 97):
        out[k] ^= 0xFF
    return bytes(out)


# ways a checkpoint is found damaged (issue 28): cut short, cut to a few bytes, bytes flipped, empty
DAMAGE = {
    "half": lambda b: b[: len(b) // 2],
    "300-bytes": lambda b: b[:300],
    "10-bytes": lambda b: b[:10],
    "flipped": _flip,
    "empty": lambda b: b"",
}


@pytest.mark.parametrize("name", ["symp", "gru"])
def test_remat_does_not_change_gradient(name, setup):
    for window in (None, 4):
        g_remat = grads(name, setup, memory="remat", window=window)
        g_plain = grads(name, setup, memory="none", window=window)
        assert max_rel_diff(g_remat, g_plain) < 1e-10


@pytest.mark.parametrize("name", ["symp", "gru"])
def test_truncated_window_changes_gradient(name, setup):
    g_full = grads(name, setup, window=None)
    g4 = grads(name, setup, window=4)
    g_big = grads(name, setup, window=32)  # window = horizon is full BPTT
    assert max_rel_diff(g4, g_full) > 1e-3
    assert max_rel_diff(g_big, g_full) < 1e-12


def test_fit_is_deterministic_and_reduces_loss(setup):
    s, traj, mean, std, *_ = setup
    model, _ = build("symp", D=s.D, dt=s.dt_obs, mean=mean, std=std, capacity=Capacity(width=16, depth=2))
    spec = TrainSpec(steps=150, batch_size=8, horizon=4, warmup=5, log_every=10)
    runs = []
    for _ in range(2):
        logs = []
        params, summary = fit(
            model, model.init(jax.random.key(3)), traj, std, spec, key=jax.random.key(4), log=logs.append
        )
        runs.append((params, summary, logs))
    (p1, s1, l1), (p2, s2, _) = runs
    assert s1["final_loss"] == s2["final_loss"]
    assert max_rel_diff(p1, p2) == 0.0
    assert l1[-1]["loss"] < 0.5 * l1[0]["loss"]


class _Interrupt(Exception):
    pass


def test_interrupted_fit_resumes_from_checkpoint_exactly(setup, tmp_path):
    from sympscale import checkpoint
    from sympscale.training import Resume, make_optimizer

    s, traj, mean, std, *_ = setup
    model, _ = build("gru", D=s.D, dt=s.dt_obs, mean=mean, std=std, capacity=Capacity(width=16, depth=2))
    spec = TrainSpec(steps=40, batch_size=8, horizon=4, warmup=5, log_every=10, checkpoint_every=15)
    init = model.init(jax.random.key(5))
    reference, _ = fit(model, init, traj, std, spec, key=jax.random.key(6))

    path = tmp_path / "ckpt.npz"

    def save_then_die(step, state, meta):
        checkpoint.save(path, step, state, tag="run", meta=meta)
        if step == 30:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        fit(model, init, traj, std, spec, key=jax.random.key(6), checkpoint=save_then_die)
    template = (init, make_optimizer(spec).init(init), init)
    with pytest.raises(checkpoint.Unusable, match="belongs to another run"):  # a different run never reuses it
        checkpoint.load(path, template, tag="another run")
    assert checkpoint.load(tmp_path / "absent.npz", template, tag="run") is None
    for name, damage in DAMAGE.items():  # any failure to parse: Unusable ("damaged"), never another exception
        bad = tmp_path / f"{name}.npz"
        bad.write_bytes(damage(path.read_bytes()))
        with pytest.raises(checkpoint.Unusable, match="cannot be read") as info:
            checkpoint.load(bad, template, tag="run")
        assert info.value.kind == "damaged", name
    to_f32 = lambda x: np.asarray(x, dtype=np.float32) if np.asarray(x).dtype == np.float64 else x  # noqa: E731
    as_float32 = jax.tree_util.tree_map(to_f32, template)
    checkpoint.save(tmp_path / "f32.npz", 30, as_float32, tag="run")
    with pytest.raises(checkpoint.Unusable, match="float32, not this model's dtypes"):
        checkpoint.load(tmp_path / "f32.npz", template, tag="run")
    step, (params, opt_state, _), _ = checkpoint.load(path, template, tag="run")
    assert step == 30
    resumed, summary = fit(model, params, traj, std, spec, key=jax.random.key(6), resume=Resume(step, opt_state))
    assert summary["resumed_from_step"] == 30
    assert max_rel_diff(resumed, reference) == 0.0


def test_divergence_rule():
    from sympscale.training import divergence

    assert divergence(0.5, 0.4, 10) is None
    assert divergence(900.0, 0.2, 10) is None  # below 1e3 x max(first, 1)
    assert "non-finite" in divergence(float("nan"), 0.4, 3)
    assert "exceeds" in divergence(2e40, 1.5, 300)


def test_a_non_finite_single_run_is_frozen_flagged_and_logged_like_any_step(setup):
    """A single run is a bundle of one: a NaN update is masked at its step, the run finishes diverged (not a crash),
    and its record prints as every training record does (a job's progress lines)."""
    from sympscale.progress import plain_line

    s, traj, mean, std, *_ = setup
    model, _ = build("gru", D=s.D, dt=s.dt_obs, mean=mean, std=std, capacity=Capacity(width=16, depth=2))
    poisoned = jax.tree_util.tree_map(lambda a: a * jnp.nan, model.init(jax.random.key(3)))
    spec = TrainSpec(steps=20, batch_size=8, horizon=4, warmup=0, log_every=5)
    lines = []
    params, summary = fit(
        model, poisoned, traj, std, spec, key=jax.random.key(4), log=lambda r: lines.append(plain_line(r, 0.1))
    )
    assert summary["diverged"] and summary["steps_trained"] == 0 and "frozen" in summary["divergence"]
    assert "rest of its bundle" not in summary["divergence"] and len(lines) == 1 and "step      0" in lines[0]


def test_an_exploding_loss_stops_training_and_is_flagged(setup):
    s, traj, mean, std, *_ = setup
    model, _ = build("gru", D=s.D, dt=s.dt_obs, mean=mean, std=std, capacity=Capacity(width=16, depth=2))
    spec = TrainSpec(steps=200, batch_size=8, horizon=4, warmup=0, lr=1e9, log_every=5, clip=1e12)
    logs = []
    _, summary = fit(model, model.init(jax.random.key(3)), traj, std, spec, key=jax.random.key(4), log=logs.append)
    assert summary["diverged"] and summary["steps_trained"] < spec.steps
    assert logs[-1]["diverged"] == summary["divergence"]
    calm = TrainSpec(steps=20, batch_size=8, horizon=4, warmup=5, log_every=5)
    _, ok = fit(model, model.init(jax.random.key(3)), traj, std, calm, key=jax.random.key(4))
    assert ok["diverged"] is False and ok["divergence"] is None


def test_a_resumed_run_logs_each_step_once(tmp_path):
    import json

    from sympscale.job import _trim_log

    log = tmp_path / "train_log.jsonl"
    recs = [{"step": 0, "val_vpt_steps": 1.0}]
    recs += [{"step": s, "loss": 1.0} for s in range(0, 40, 10)]  # steps 0..30 logged before the kill
    recs += [{"step": 20, "val_vpt_steps": 2.0}, {"step": 40, "val_vpt_steps": 3.0}]
    log.write_text("".join(json.dumps(r) + "\n" for r in recs) + '{"step": 4')  # last line cut by the kill
    _trim_log(log, 20)  # the checkpoint was written after 20 updates
    kept = [json.loads(line) for line in log.read_text().splitlines()]
    assert kept == [recs[0], recs[1], recs[2], recs[5]]


def test_a_run_resumed_from_its_final_checkpoint_trains_no_further(setup, tmp_path):
    """Stopped after its last checkpoint (while evaluating: a preempted Slurm job): the rerun finishes, not fails."""
    from sympscale import checkpoint
    from sympscale.training import Resume, make_optimizer

    s, traj, mean, std, *_ = setup
    model, _ = build("gru", D=s.D, dt=s.dt_obs, mean=mean, std=std, capacity=Capacity(width=16, depth=2))
    spec = TrainSpec(steps=20, batch_size=8, horizon=4, warmup=5, log_every=10, checkpoint_every=10)
    init = model.init(jax.random.key(5))
    path = tmp_path / "ckpt.npz"

    def save(step, state, meta):
        checkpoint.save(path, step, state, tag="run", meta=meta)

    reference, _ = fit(model, init, traj, std, spec, key=jax.random.key(6), checkpoint=save)
    template = (init, make_optimizer(spec).init(init), init)
    step, (params, opt_state, best), meta = checkpoint.load(path, template, tag="run")
    assert step == spec.steps
    resume = Resume(step, opt_state, best, meta.get("history", []))
    again, summary = fit(model, params, traj, std, spec, key=jax.random.key(6), resume=resume)
    assert summary["steps_trained"] == spec.steps and summary["resumed_from_step"] == spec.steps
    assert max_rel_diff(again, reference) == 0.0
