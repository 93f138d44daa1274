"""Seed bundles: the seeds of one configuration trained as one program (a single run is a bundle of one) equal
their members run alone: a property of the one training, evaluation and job path."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sympscale.models import Capacity, build
from sympscale.projection import make_projector
from sympscale.seedaxis import n_seeds, over_seeds, stack, unstack
from sympscale.selection import make_validator
from sympscale.training import Resume, TrainSpec, _updater, fit, fit_bundle, healthy, make_optimizer

SEEDS = (11, 12, 13)


@pytest.fixture(scope="module")
def data():
    s = make_system_fput()
    traj = np.asarray(jax.jit(s.trajectories, static_argnums=1)(s.sample_initial(jax.random.key(0), 6), 60))
    mean, std = traj.mean(axis=(0, 1)), traj.std(axis=(0, 1))
    return s, traj[:4], traj[4:], mean, std


def make_system_fput():
    from sympscale.systems import make_system

    return make_system("fput", 8)


def model_of(name, data):
    s, _, _, mean, std = data
    width = 32 if name == "freeform" else 16  # (free-form widths cannot match the smaller capacity at D = 8)
    return build(name, D=s.D, dt=s.dt_obs, mean=mean, std=std, capacity=Capacity(width=width, depth=2), system=s)[0]


def rel(a, b) -> float:
    """max |a - b| / max |b| over the leaves of two pytrees."""
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    scale = max(float(jnp.max(jnp.abs(y))) for y in lb)
    return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(la, lb, strict=True)) / scale


def test_over_seeds_maps_a_per_seed_function_and_runs_a_bundle_of_one_as_the_function_itself():
    def f(p, x):
        return {"y": jnp.tanh(p["w"] @ x) * p["b"], "n": jnp.sum(x * x)}

    keys = jax.random.split(jax.random.key(0), 3)
    ps = [{"w": jax.random.normal(k, (5, 5)), "b": jnp.float64(i + 1.0)} for i, k in enumerate(keys)]
    xs = [jax.random.normal(jax.random.fold_in(k, 1), (5,)) for k in keys]
    bundled = jax.jit(over_seeds(f))(stack(ps), stack(xs))
    assert n_seeds(bundled) == 3 and n_seeds({}) == 1
    for i, (p, x) in enumerate(zip(ps, xs, strict=True)):
        assert rel(unstack(bundled, i), f(p, x)) <= 1e-15
        alone = jax.jit(over_seeds(f))(stack([p]), stack([x]))  # a bundle of one: the function itself, bit for bit
        assert jax.tree_util.tree_all(jax.tree_util.tree_map(jnp.array_equal, unstack(alone, 0), jax.jit(f)(p, x)))


def test_a_seed_that_went_non_finite_once_stays_frozen(data):
    """The bundle's health carries a fault: a later finite step neither revives the seed nor hides when it failed."""
    _, train, _, _, std = data
    model = model_of("gru", data)
    spec = TrainSpec(horizon=6, batch_size=4, warmup=0)
    opt = make_optimizer(spec)
    params = [model.init(jax.random.key(k)) for k in SEEDS]
    poisoned = [params[0], jax.tree_util.tree_map(lambda a: a * jnp.nan, params[1]), params[2]]
    step = _updater(model, std, spec, opt, jnp.asarray(train), None)
    keys, opt_state = jnp.stack([jax.random.key(k) for k in SEEDS]), stack([opt.init(p) for p in params])
    _, _, _, _, health = step(stack(poisoned), opt_state, keys, jnp.asarray(3), 6, healthy(3))
    assert health[0].tolist() == [True, False, True] and health[1].tolist() == [-1, 3, -1]
    new, _, _, _, health = step(stack(params), opt_state, keys, jnp.asarray(4), 6, health)  # finite again
    assert health[0].tolist() == [True, False, True] and health[1].tolist() == [-1, 3, -1]
    assert rel(unstack(new, 1), params[1]) == 0.0 and rel(unstack(new, 0), params[0]) > 0


def _spec(**kw):
    return TrainSpec(steps=20, batch_size=6, horizon=4, warmup=3, log_every=5, val_every=5, val_horizon=20, **kw)


def _singles(model, data, spec, params, validate, seeds=SEEDS, **kw):
    _, train, _, _, std = data
    out = []
    for p, k in zip(params, seeds, strict=True):
        logs = []
        result = fit(model, p, train, std, spec, key=jax.random.key(k), log=logs.append, validate=validate, **kw)
        out.append((*result, logs))
    return out


def _bundle(model, data, spec, params, validate, seeds=SEEDS, **kw):
    _, train, _, _, std = data
    logs = [[] for _ in seeds]
    keys = [jax.random.key(k) for k in seeds]
    results = fit_bundle(
        model, params, train, std, spec, keys=keys, logs=[x.append for x in logs], validate=validate, **kw
    )
    return [(*r, log) for r, log in zip(results, logs, strict=True)]


def _same_run(bundled, single, tol=1e-9):
    (pb, sb, lb), (ps, ss, ls) = bundled, single
    assert rel(pb, ps) <= tol
    for key in ("steps_trained", "selected_step", "converged", "stopped_early", "diverged", "resumed_from_step"):
        assert sb[key] == ss[key], key
    assert [r["step"] for r in lb] == [r["step"] for r in ls]
    for rb, rs in zip(lb, ls, strict=True):
        for key in ("loss", "grad_norm", "val_vpt_steps", "val_one_step_mse", "val_rollout_mse"):
            if key in rs:
                assert rb[key] == pytest.approx(rs[key], rel=1e-9, abs=1e-300), (rs["step"], key)


def _leapfrog(data):
    s, _, _, mean, std = data
    return build(
        "symp", D=s.D, dt=s.dt_obs, mean=mean, std=std, capacity=Capacity(width=16, depth=2), system=s,
        options={"method": "leapfrog"},
    )[0]  # fmt: skip


@pytest.mark.parametrize("name, seeds", [("symp", SEEDS[:2]), ("gru", SEEDS)])
def test_twenty_steps_of_a_bundle_equal_its_seeds_run_alone(name, seeds, data):
    """Every per-seed part of the one path at once for symp: projected training rollouts, blocked memory, a truncated
    window with the gradient-cosine probe, leapfrog first steps (`leapfrog_steps`), validation and selection (two
    seeds: each run alone compiles that program anew, ~20 s)."""
    s, _, val, _, std = data
    model = model_of(name, data)
    spec, kw = _spec(), {}
    if name == "symp":
        spec = dataclasses.replace(spec, memory="blocked", window=2, grad_cosine_every=5)
        kw = {"projector": make_projector(s, "multi"), "start_with": (_leapfrog(data), 7)}
    validate = make_validator(model, val, std, horizon=spec.val_horizon, starts=2)
    params = [model.init(jax.random.key(k)) for k in seeds]
    bundle, singles = (
        _bundle(model, data, spec, params, validate, seeds=seeds, **kw),
        _singles(model, data, spec, params, validate, seeds=seeds, **kw),
    )
    for b, one in zip(bundle, singles, strict=True):
        _same_run(b, one)
        cos = [[r["grad_cosine_full"] for r in log if "grad_cosine_full" in r] for log in (b[2], one[2])]
        assert len(cos[0]) == (4 if name == "symp" else 0) and cos[0] == pytest.approx(cos[1], rel=1e-9)


def test_a_non_finite_seed_is_frozen_and_the_others_finish_as_alone(data):
    s, _, val, _, std = data
    model = model_of("symp", data)
    spec = _spec()
    validate = make_validator(model, val, std, horizon=spec.val_horizon, starts=2)
    params = [model.init(jax.random.key(k)) for k in SEEDS]
    poisoned = jax.tree_util.tree_map(lambda a: a * 1e300, params[1])  # the loss overflows at the first step
    bundle = _bundle(model, data, spec, [params[0], poisoned, params[2]], validate)
    singles = _singles(model, data, spec, [params[0], params[2]], validate, seeds=SEEDS[::2])
    _same_run(bundle[0], singles[0])
    _same_run(bundle[2], singles[1])
    frozen, summary, logs = bundle[1]
    assert summary["diverged"] and "non-finite" in summary["divergence"] and summary["steps_trained"] == 0
    assert logs[-1]["diverged"] == summary["divergence"]
    assert rel(frozen, poisoned) == 0.0  # never updated: its last finite parameters are kept


def test_patience_and_explosion_stop_seeds_as_they_would_alone(data):
    """Per-seed stopping: validation patience (each seed stops at its own step) and an exploding loss."""
    s, _, val, _, std = data
    model = model_of("gru", data)
    validate = make_validator(model, val, std, horizon=20, starts=2)
    params = [model.init(jax.random.key(k)) for k in SEEDS]
    spec = dataclasses.replace(_spec(), steps=40, val_every=2, patience=1)
    for b, one in zip(
        _bundle(model, data, spec, params, validate), _singles(model, data, spec, params, validate), strict=True
    ):
        _same_run(b, one)
    wild = TrainSpec(steps=60, batch_size=6, horizon=4, warmup=0, lr=1e9, log_every=5, clip=1e12)
    for b, one in zip(_bundle(model, data, wild, params, None), _singles(model, data, wild, params, None), strict=True):
        assert b[1]["diverged"] == one[1]["diverged"]
        assert b[1]["steps_trained"] == one[1]["steps_trained"]


def test_an_interrupted_bundle_resumes_exactly(data):
    s, train, val, _, std = data
    model = model_of("symp", data)
    spec = dataclasses.replace(_spec(), checkpoint_every=10)
    validate = make_validator(model, val, std, horizon=spec.val_horizon, starts=2)
    params = [model.init(jax.random.key(k)) for k in SEEDS]
    saved = [{} for _ in SEEDS]
    whole = _bundle(
        model,
        data,
        spec,
        params,
        validate,
        checkpoints=[lambda step, state, meta, d=d: d.setdefault(step, (state, list(meta["history"]))) for d in saved],
    )  # a copy: the history goes on growing, as a file would not
    resumes = [Resume(10, d[10][0][1], d[10][0][2], d[10][1]) for d in saved]
    resumed = _bundle(model, data, spec, [d[10][0][0] for d in saved], validate, resumes=resumes)
    for (p, s_, _), (q, t, _) in zip(resumed, whole, strict=True):
        assert rel(p, q) == 0.0 and s_["selected_step"] == t["selected_step"] and s_["resumed_from_step"] == 10
    mixed = resumes[:2] + [None]
    with pytest.raises(ValueError, match="resume at one step"):
        _bundle(model, data, spec, params, validate, resumes=mixed)


# ----- a bundle job: every seed's folder as a single job writes it -------------------------------------------

TINY = [
    "system=toda",
    "D=8",
    "train=smoke",
    "train.steps=40",
    "train.batch_size=4",
    "train.horizon=4",
    "train.horizon_start=2",
    "train.val_every=20",
    "train.val_horizon=20",
    "train.checkpoint_every=20",
    "train.log_every=10",
    "data.n_trajectories=10",
    "data.n_obs=160",
    "eval.horizon=100",
    "capacity.width=8",
    "capacity.depth=2",
]
JOB_SEEDS = (1, 2, 3)


def _job_inputs(tmp_path, seeds=JOB_SEEDS, extra=()):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from sympscale.job import JobSpec
    from sympscale.train import config_dir, register

    register()  # the schemas, as importing the entry point registers them (another test may have reset Hydra)
    specs, records = [], []
    for seed in seeds:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = compose(
                config_name="config", overrides=[*TINY, *extra, f"seed={seed}", f"data.cache_dir={tmp_path / 'cache'}"]
            )
        specs.append(JobSpec.from_config(cfg))
        records.append(OmegaConf.to_container(cfg, resolve=True))
    return specs, records


@pytest.fixture(scope="module")
def single_jobs(tmp_path_factory):
    """(folder, metrics of each seed run alone), computed once for the tests that compare bundles with them."""
    import copy

    from hydra.core.singleton import Singleton

    from sympscale import job

    root = tmp_path_factory.mktemp("single_jobs")
    state = copy.deepcopy(Singleton.get_state())  # composing sets Hydra's version base: later tests must not see it
    try:
        specs, records = _job_inputs(root)
    finally:
        Singleton.set_state(state)
    metrics = [
        job.execute(s, root / "single" / str(s.seed), resolved=r, echo=lambda m: None)
        for s, r in zip(specs, records, strict=True)
    ]
    return root / "single", metrics


def _bundle_job(tmp_path, extra=(), echo=lambda m: None):
    from sympscale import job

    specs, records = _job_inputs(tmp_path, extra=extra)
    dirs = [tmp_path / "bundle" / str(s.seed) for s in specs]
    return job.execute_bundle(specs, dirs, resolved=records, echo=echo)


def _params_file(path):
    with np.load(path) as z:
        return [z[k] for k in sorted(z.files, key=lambda k: int(k.split("_")[1]))]


# A bundle of three is a vmapped program, a bundle of one the per-seed program itself: two XLA programs. At the
# tests' LLVM -O0 (conftest.py) they round differently in the last bit, and the jobs' 40 Adam steps amplify that to
# ~5e-9 in the parameters (measured; at XLA's default level, the users', they agree to 1e-16); the 100-step chaotic
# test rollouts amplify it further.
PARAMS_RTOL = 1e-7


def _same_job(bundled: dict, single: dict, tol=PARAMS_RTOL, rollout_tol=1e-5):
    """Training and one-step error to `tol`, the chaotic test rollouts' scores to `rollout_tol`."""
    assert bundled["status"] == single["status"] and bundled["seed"] == single["seed"]
    for key in ("steps_trained", "selected_step", "converged", "diverged", "final_loss"):
        b, s = bundled["train"][key], single["train"][key]
        assert b == pytest.approx(s, rel=tol) if isinstance(s, float) else b == s, key
    assert bundled["eval"]["one_step_mse"] == pytest.approx(single["eval"]["one_step_mse"], rel=tol)
    for key in ("last100_mse", "steps_to_mse_1", "energy_residual"):
        assert bundled["eval"][key] == pytest.approx(single["eval"][key], rel=rollout_tol), key
    assert bundled["eval"]["bounded"] == single["eval"]["bounded"]  # judged on the same companions (seed 0)
    assert set(bundled) == set(single) and set(bundled["eval"]) == set(single["eval"])


def test_a_bundle_job_writes_every_seed_folder_as_a_single_job_does(tmp_path, single_jobs, monkeypatch):
    import json

    from sympscale import job

    single_dir, singles = single_jobs
    said, steps = [], []

    def fit_bundle(*args, **kw):  # the run's own step (`Assembly.bundle_step`: compiled once), not one of its own
        steps.append(kw.get("step"))
        return fitting(*args, **kw)

    fitting = job.fit_bundle
    monkeypatch.setattr(job, "fit_bundle", fit_bundle)
    bundled = _bundle_job(tmp_path, echo=said.append)
    assert len(steps) == 1 and steps[0] is not None and hasattr(steps[0], "lower")
    assert any("a bundle of 3 seeds [1, 2, 3]" in line for line in said), said
    for seed, b, s in zip(JOB_SEEDS, bundled, singles, strict=True):
        _same_job(b, s)
        assert (
            b["train"]["bundle"] == {"seeds": list(JOB_SEEDS), "size": 3, "trained_with": 3}
            and s["train"]["bundle"] is None
        )
        one, many = single_dir / str(seed), tmp_path / "bundle" / str(seed)
        assert sorted(p.name for p in one.iterdir()) == sorted(p.name for p in many.iterdir())
        cache = str(tmp_path / "cache"), str(single_dir.parent / "cache")
        configs = [json.loads((d / "config.json").read_text()) for d in (many, one)]
        assert configs[0]["data"].pop("cache_dir") == cache[0] and configs[1]["data"].pop("cache_dir") == cache[1]
        assert configs[0] == configs[1]
        assert json.loads((many / "status.json").read_text())["status"] == "done"
        for x, y in zip(_params_file(many / "params.npz"), _params_file(one / "params.npz"), strict=True):
            assert np.max(np.abs(x - y)) <= PARAMS_RTOL * np.max(np.abs(y))  # relative to the array's scale
        logs = [[json.loads(line) for line in (d / "train_log.jsonl").read_text().splitlines()] for d in (many, one)]
        assert [r["step"] for r in logs[0]] == [r["step"] for r in logs[1]]


def test_a_seed_that_goes_non_finite_fails_alone_in_its_bundle(tmp_path, monkeypatch, single_jobs):
    from sympscale import job

    _, singles = single_jobs
    real = job.init_params

    def poison_seed_2(run, seed):
        params, key = real(run, seed)
        return (jax.tree_util.tree_map(lambda a: a * 1e300, params) if seed == 2 else params), key

    monkeypatch.setattr(job, "init_params", poison_seed_2)
    bundled = _bundle_job(tmp_path)
    _same_job(bundled[0], singles[0])
    _same_job(bundled[2], singles[2])
    assert bundled[1]["status"] == "diverged" and "non-finite" in bundled[1]["train"]["divergence"]
    assert bundled[1]["train"]["steps_trained"] == 0


class _Stop(Exception):
    pass


def _stop_after_saves(monkeypatch, n: int, error: Exception | type = _Stop):
    """Raise `error` once `n` checkpoints have been written (the bundle killed mid-training)."""
    from sympscale import job

    real, saved = job.checkpoint.save, []

    def save(path, step, state, *, tag, meta=None):
        real(path, step, state, tag=tag, meta=meta)
        saved.append(path)
        if len(saved) == n:
            raise error

    monkeypatch.setattr(job.checkpoint, "save", save)


def test_an_interrupted_bundle_job_resumes_and_finishes_every_seed_once(tmp_path, monkeypatch, single_jobs):
    """Killed after two of three seeds checkpointed: the two resume at step 20, the third starts afresh (seeds that
    resume at different steps train as sub-bundles), and every seed ends as it would alone."""
    import json

    saves = 2
    single_dir, singles = single_jobs
    _stop_after_saves(monkeypatch, saves)
    with pytest.raises(_Stop):
        _bundle_job(tmp_path)
    for seed in JOB_SEEDS:
        status = json.loads((tmp_path / "bundle" / str(seed) / "status.json").read_text())
        assert status["status"] == "failed" and "_Stop" in status["error"]
    monkeypatch.undo()
    said = []
    bundled = _bundle_job(tmp_path, echo=said.append)
    assert sum("resuming from the checkpoint at step 20" in line for line in said) == saves
    for seed, b, s in zip(JOB_SEEDS, bundled, singles, strict=True):
        _same_job(b, s)
        log = [json.loads(x) for x in (tmp_path / "bundle" / str(seed) / "train_log.jsonl").read_text().splitlines()]
        steps = [r["step"] for r in log if "loss" in r]
        assert steps == sorted(set(steps)), "each training step logged once"
        for x, y in zip(
            _params_file(tmp_path / "bundle" / str(seed) / "params.npz"),
            _params_file(single_dir / str(seed) / "params.npz"),
            strict=True,
        ):
            assert np.max(np.abs(x - y)) <= PARAMS_RTOL * np.max(np.abs(y))  # relative to the array's scale


def test_a_bundle_out_of_memory_at_run_time_is_retried_leaner_then_in_halves_from_its_checkpoints(
    tmp_path, monkeypatch, single_jobs
):
    """XLA's prediction said the bundle fits, but the device runs out of memory after two seeds checkpointed (another
    process took memory, say): the bundle is retried in the same process with the leaner strategy, each seed resuming
    from its checkpoint (two at step 20, one afresh: two parts); the part of two runs out again and is retried as
    halves. Every seed ends as it would alone, its log as the single job's (before: every seed failed, and failed
    again on a rerun, which made the same plan)."""
    import json

    from sympscale import job, profiling

    single_dir, singles = single_jobs
    specs, _ = _job_inputs(tmp_path, seeds=(1,))
    own = specs[0].train.memory
    leaner = next(m for m in reversed(profiling.STRATEGY_ORDER) if m != own)
    monkeypatch.setattr(profiling, "STRATEGY_ORDER", (own, leaner))
    oom = "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 1.21GiB"
    _stop_after_saves(monkeypatch, 2, RuntimeError(oom))
    real, calls = job._Training.fit, []

    def fit(state, run, start, idx):  # the leaner part of two runs out before its first step
        calls.append((run.train.memory, start, list(idx)))
        if calls[-1] == (leaner, 20, [0, 1]):
            raise RuntimeError(oom)
        return real(state, run, start, idx)

    monkeypatch.setattr(job._Training, "fit", fit)
    said = []
    bundled = _bundle_job(tmp_path, echo=said.append)
    assert calls == [(own, 0, [0, 1, 2]), (leaner, 0, [2]), (leaner, 20, [0, 1]), (leaner, 20, [0]), (leaner, 20, [1])]
    retried = [x for x in said if "out of memory at run time" in x]
    assert f"retrying as 3 with memory={leaner}" in retried[0] and "1.21GiB" in retried[0], said
    assert f"retrying as 1 with memory={leaner} and 1 with memory={leaner}" in retried[1], said
    assert sum("resuming from the checkpoint at step 20" in line for line in said) == 4, said
    assert [b["train"]["bundle"]["trained_with"] for b in bundled] == [1, 1, 1]
    assert [b["train"]["memory"] for b in bundled] == [leaner] * 3
    for seed, b, s in zip(JOB_SEEDS, bundled, singles, strict=True):
        _same_job(b, s)
        logs = [folder / str(seed) / "train_log.jsonl" for folder in (tmp_path / "bundle", single_dir)]
        mine, alone = (
            [(r["step"], sorted(set(r) - {"time"})) for r in map(json.loads, f.read_text().splitlines())] for f in logs
        )
        assert mine == alone, "each record logged once, as alone"


def test_after_running_out_of_memory_a_part_tries_a_leaner_strategy_then_halves():
    """`_smaller`: the same seeds with the next leaner strategy, else halves with that one (never back to a hungrier
    one); nothing for one seed with the leanest (it fails). Only an allocation failure is retried."""
    from types import SimpleNamespace

    from sympscale import job

    none, remat, blocked = (SimpleNamespace(train=SimpleNamespace(memory=m)) for m in ("none", "remat", "blocked"))
    ladder = [none, remat, blocked]
    assert job._smaller(ladder, none, [0, 1, 2]) == [(remat, [0, 1, 2])]
    assert job._smaller(ladder, remat, [0, 1, 2]) == [(blocked, [0, 1, 2])]
    assert job._smaller(ladder, blocked, [0, 1, 2]) == [(blocked, [0, 1]), (blocked, [2])]  # never hungrier
    assert job._smaller(ladder, none, [4]) == [(remat, [4])]
    assert job._smaller(ladder, blocked, [4]) == []
    assert job._smaller([remat, blocked], blocked, [0, 1]) == [(blocked, [0]), (blocked, [1])]
    assert job._smaller([none], SimpleNamespace(train=SimpleNamespace(memory="other")), [0]) == []
    assert job._out_of_memory(RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 2.0GiB"))
    assert job._out_of_memory(MemoryError()) and not job._out_of_memory(ValueError("NaN in the loss"))
    other = ValueError("NaN in the loss")
    assert job._after_failure(None, ladder, none, [0], other) == ([], other)  # not retried: fails as it is

    class Unreadable:  # the retry cannot read the seeds' checkpoints back (the disk filled trimming a log, say)
        def retried(self, *args):
            raise OSError(28, "No space left on device")

    retry, cause = job._after_failure(Unreadable(), ladder, none, [0, 1], MemoryError())
    assert retry == [] and isinstance(cause, OSError)  # its seeds fail with that; the other parts' stand


def test_a_part_that_fails_fails_its_own_seeds_and_the_other_parts_train():
    """`_train_parts` with a stub training state: a part that fails for a reason other than memory fails its seeds,
    the parts after it still train; a part out of memory whose checkpoints cannot be read back fails its seeds with
    that error; a bundle in one part that fails so raises it, chained to the out-of-memory error."""
    from types import SimpleNamespace

    from sympscale import job

    none = SimpleNamespace(train=SimpleNamespace(memory="none"))
    summary = {"selected_step": 0, "diverged": False, "converged": True}

    class State:
        def __init__(self, seeds, failures):
            self.members = [SimpleNamespace(spec=SimpleNamespace(seed=s)) for s in seeds]
            self.failures, self.echo, self.trained = failures, lambda line: None, []

        def fit(self, run, start, idx):
            if tuple(idx) in self.failures:
                raise self.failures[tuple(idx)]
            self.trained += idx
            return [(f"params {i}", dict(summary)) for i in idx]

        def retried(self, *args):
            raise OSError(28, "No space left on device")

    nan, oom = ValueError("NaN in the loss"), RuntimeError("RESOURCE_EXHAUSTED: out of memory")
    state = State([1, 2, 3], {(0,): nan, (1,): oom})
    results = job._train_parts(state, [none], [(none, 0, [0]), (none, 0, [1]), (none, 0, [2])], None)
    assert results[0] is nan and isinstance(results[1], OSError) and state.trained == [2]
    assert results[2][0] == "params 2" and results[2][1]["trained_with"] == 1 and results[2][1]["memory"] == "none"
    with pytest.raises(OSError) as raised:
        job._train_parts(State([1, 2], {(0, 1): oom}), [none], [(none, 0, [0, 1])], None)
    assert raised.value.__cause__ is oom
    with pytest.raises(ValueError) as raised:  # every part failed: the first seed's error
        job._train_parts(State([1, 2], {(0,): nan, (1,): oom}), [none], [(none, 0, [0]), (none, 0, [1])], None)
    assert raised.value is nan


def test_a_bundle_that_fails_while_recording_keeps_every_seeds_checkpoint(tmp_path, monkeypatch, single_jobs):
    """The disk fills while the third seed's parameters are written: every seed is failed, but the seeds whose
    results were written first keep their checkpoints (deleted only once a seed's metrics and status are), so the
    rerun after freeing space resumes all three where training ended instead of training them again."""
    from sympscale import atomic, job

    real, written = job._save_params, []

    def save_params(folder, params):
        if len(written) == 2:
            raise atomic.StorageFull(28, "no space left on device writing params.npz")
        real(folder, params)
        written.append(folder)

    monkeypatch.setattr(job, "_save_params", save_params)
    with pytest.raises(atomic.StorageFull):
        _bundle_job(tmp_path)
    assert all((tmp_path / "bundle" / str(seed) / "checkpoint.npz").is_file() for seed in JOB_SEEDS)
    monkeypatch.undo()
    said = []
    bundled = _bundle_job(tmp_path, echo=said.append)
    assert sum("resuming from the checkpoint at step 40" in line for line in said) == len(JOB_SEEDS), said
    single_dir, singles = single_jobs
    for seed, b, s in zip(JOB_SEEDS, bundled, singles, strict=True):
        assert b["train"]["final_loss"] is None  # no step ran in this process (the rest is as alone)
        _same_job({**b, "train": {**b["train"], "final_loss": s["train"]["final_loss"]}}, s)
        folder = tmp_path / "bundle" / str(seed)
        mine, alone = _params_file(folder / "params.npz"), _params_file(single_dir / str(seed) / "params.npz")
        for x, y in zip(mine, alone, strict=True):
            assert np.max(np.abs(x - y)) <= PARAMS_RTOL * np.max(np.abs(y))
        assert not (folder / "checkpoint.npz").exists()  # recorded, then removed


def test_a_bundle_refuses_jobs_that_differ_in_more_than_the_seed(tmp_path):
    from sympscale import job

    specs, records = _job_inputs(tmp_path, seeds=(1, 2))
    other = dataclasses.replace(specs[1], D=16)
    with pytest.raises(ValueError, match="differ in their seed only"):
        job.execute_bundle([specs[0], other], [tmp_path / "a", tmp_path / "b"], resolved=records)
    with pytest.raises(ValueError, match="each seed once"):
        job.execute_bundle([specs[0], specs[0]], [tmp_path / "a", tmp_path / "b"], resolved=records)


def test_a_bundle_too_large_for_the_device_trains_in_parts_with_the_same_results(tmp_path, monkeypatch, single_jobs):
    """Each part as its seeds alone; a part that fails fails its own seeds only."""
    import json

    from sympscale import job, profiling

    assert profiling.bundle_sizes(10) == [10, 5, 3, 2, 1] and profiling.bundle_sizes(1) == [1]
    _, singles = single_jobs
    specs, _ = _job_inputs(tmp_path)
    run = job._assemble(specs[0], lambda m: None)
    p1, p2, p3 = (profiling.predicted_bundle_peak(run, n) for n in (1, 2, 3))
    assert p1 < p2 < p3  # the bundled program's predicted peak grows with its seeds
    monkeypatch.setattr(job, "_memory_limits_bundles", lambda: True)  # as on a GPU
    monkeypatch.setattr(profiling, "device_budget", lambda: (int((p2 + p3) / 2 / profiling.HEADROOM), "a test budget"))
    monkeypatch.setattr(profiling, "STRATEGY_ORDER", (run.train.memory,))  # no leaner strategy to try: it halves
    said = []
    bundled = _bundle_job(tmp_path, echo=said.append)
    assert any("does not fit a test budget" in line and "trains 2 at a time" in line for line in said), said
    assert [b["train"]["bundle"]["trained_with"] for b in bundled] == [2, 2, 1]
    for b, s in zip(bundled, singles, strict=True):
        _same_job(b, s)
    # the second part fails (out of memory at run time, say): its seed alone, the first part's are recorded
    real, parts = job._Training.fit, []

    def failing(state, run, start, idx):  # one seed, with no leaner strategy to retry it with
        parts.append(idx)
        if len(parts) == 2:
            raise RuntimeError("RESOURCE_EXHAUSTED: out of memory while trying to allocate")
        return real(state, run, start, idx)

    monkeypatch.setattr(job._Training, "fit", failing)
    again = _bundle_job(tmp_path / "oom", echo=said.append)
    assert isinstance(again[2], RuntimeError) and any("their part of the bundle failed" in x for x in said)
    for b, s in zip(again[:2], singles[:2], strict=True):
        _same_job(b, s)
    status = json.loads((tmp_path / "oom" / "bundle" / "3" / "status.json").read_text())
    assert status["status"] == "failed" and "RESOURCE_EXHAUSTED" in status["error"]


def test_a_bundle_too_large_first_tries_a_leaner_memory_strategy_then_halves(tmp_path, monkeypatch):
    """On a GPU (`_fitting`): the most seeds that fit, each size with the run's strategy, then leaner ones (the same
    gradients): whole with remat or blocked before halving, halves with remat before quarters with the run's own;
    not even one seed predicted to fit: one at a time with the leanest, said in a warning. Each program's peak is
    compiled once (XLA's predictions stubbed)."""
    from sympscale import job, profiling

    specs, _ = _job_inputs(tmp_path, seeds=(1,))
    run = job._assemble(specs[0], lambda m: None).with_train(dataclasses.replace(specs[0].train, memory="none"))
    per_seed = {"none": 10, "remat": 4, "blocked": 3}  # a bundle of n: n x this many bytes
    asked = []

    def peak(r, n):
        asked.append((r.train.memory, n))
        return n * per_seed[r.train.memory]

    monkeypatch.setattr(job, "_memory_limits_bundles", lambda: True)
    monkeypatch.setattr(profiling, "predicted_bundle_peak", peak)
    said = []
    wanted = {
        45: ("none", 4),
        20: ("remat", 4),
        13: ("blocked", 4),
        9: ("remat", 2),
        5: ("remat", 1),
        2: ("blocked", 1),
    }
    for budget, want in wanted.items():
        monkeypatch.setattr(profiling, "device_budget", lambda b=budget: (b / profiling.HEADROOM, "a test device"))
        asked.clear()
        fitted, size = job._fitting(run, 4, said.append)
        assert (fitted.train.memory, size) == want, (budget, said[-1:])
        assert len(asked) == len(set(asked))  # each program compiled once
    assert said[0].endswith("trains whole with memory=remat (the same gradients, more recomputation)"), said[0]
    assert said[2].endswith("trains 2 at a time with memory=remat (the same gradients, more recomputation)"), said[2]
    assert said[-1].startswith("WARNING: not even one seed is predicted to fit a test device")
    assert asked == [("none", 4), ("remat", 4), ("blocked", 4)]  # 2 and 1 seeds: half or less of 4's, too much
    asked.clear()
    monkeypatch.setattr(profiling, "device_budget", lambda: (45 / profiling.HEADROOM, "a test device"))
    assert job._fitting(run, 1, said.append) == (run, 1) and asked == [("none", 1)]  # one seed is checked too


def test_the_estimate_measures_the_bundled_step_of_each_config_in_one_process(tmp_path, monkeypatch):
    """Each request measured in turn (one failing does not stop the others), each measurement kept privately and
    reused by a later dry run on the same device with the same code, which says when it was measured."""
    from sympscale import estimate, estimate_cache

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home-cache"))
    _, records = _job_inputs(tmp_path, seeds=(1,))
    broken = {**records[0], "model": {**records[0]["model"], "name": "no-such-model"}}
    requests = [{"config": records[0], "seeds": 1}, {"config": broken, "seeds": 1}, {"config": records[0], "seeds": 3}]
    answers = dict(estimate.estimate_all(requests))
    one, failed, three = (answers[i] for i in range(3))
    assert failed["seconds"] is None and failed["basis"].startswith("unavailable: "), failed  # the others go on
    kept = tmp_path / "home-cache" / "sympscale" / "estimates"
    assert len(list(kept.glob("*.json"))) == 2 and kept.stat().st_mode & 0o777 == 0o700  # not the failure
    monkeypatch.setattr(estimate, "estimate", lambda cfg, n, prepared=None: pytest.fail("measured again"))
    again = dict(estimate.estimate_all([requests[2], requests[0]]))
    assert [again[0]["seconds"], again[1]["seconds"]] == [three["seconds"], one["seconds"]]
    assert all(again[i]["basis"].startswith(x["basis"] + " (measured 20") for i, x in enumerate((three, one)))
    (next(kept.glob("*.json"))).write_text("{")  # damaged: measured again, not an error
    with pytest.raises(pytest.fail.Exception, match="measured again"):
        list(estimate.estimate_all(requests[::2]))
    monkeypatch.setattr(estimate_cache, "machine", lambda: {"code": "another source"})  # other code, device, settings
    with pytest.raises(pytest.fail.Exception, match="measured again"):
        list(estimate.estimate_all(requests[2:]))
    for rec in (one, three):
        assert rec["seconds"] > 0 and rec["step_s"] > 0 and "measured training step" in rec["basis"]
    assert "3 seed(s)" in three["basis"]
    assert 0 < one["horizon_scale"] <= 1  # the curriculum's mean horizon over the final one
    assert one["seconds"] == pytest.approx(40 * one["step_s"] * one["horizon_scale"])  # train.steps=40


def test_on_an_accelerator_the_estimate_compiles_every_step_ahead_at_once(tmp_path, monkeypatch):
    """A GPU compile of a paper step takes tens of seconds on one host core: the steps to measure are compiled
    together in threads first, and each is then timed with the program and plan made for it."""
    from sympscale import estimate

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home-cache"))
    _, records = _job_inputs(tmp_path, seeds=(1,))
    broken = {**records[0], "model": {**records[0]["model"], "name": "no-such-model"}}
    requests = [{"config": records[0], "seeds": 1}, {"config": broken, "seeds": 1}, {"config": records[0], "seeds": 2}]
    given, planned = [], []
    measured, plan = estimate.measured_step, estimate._plan

    def spy(*args, **kw):
        given.append(args[6] if len(args) > 6 else kw.get("compiled"))
        return measured(*args, **kw)

    monkeypatch.setattr(estimate, "measured_step", spy)
    monkeypatch.setattr(estimate, "_plan", lambda cfg, n: planned.append(n) or plan(cfg, n))
    answers = dict(estimate.estimate_all(requests, ahead=True))
    one, failed, two = (answers[i] for i in range(3))
    assert one["seconds"] > 0 and two["seconds"] > 0 and failed["basis"].startswith("unavailable: UnknownName")
    assert len(given) == 2 and all(g is not None and hasattr(g, "cost_analysis") for g in given)
    assert sorted(planned) == [1, 1, 1, 2]  # each planned once (the broken one twice: again to say why)


def test_a_bundle_of_a_model_with_nothing_to_train_gives_every_seed_the_evaluation(tmp_path):
    from sympscale import job

    specs, records = _job_inputs(tmp_path, seeds=(1, 2), extra=["model=oracle"])
    bundled = job.execute_bundle(specs, [tmp_path / "1", tmp_path / "2"], resolved=records, echo=lambda m: None)
    alone = job.execute(specs[0], tmp_path / "alone", resolved=records[0], echo=lambda m: None)
    for b in bundled:
        assert b["status"] == "done" and b["train"]["steps_trained"] == 0
        assert b["eval"]["one_step_mse"] == alone["eval"]["one_step_mse"]


def test_a_bundle_whose_seeds_differ_in_more_than_the_seed_runs_as_one_bundle_per_group(tmp_path, monkeypatch):
    """`data_seed: ${seed}` set in a config file (no override the launcher can see): the launcher bundles the
    seeds, and each group that shares everything but the seed trains as its own bundle, in one process."""
    import copy
    import dataclasses

    from hydra.core.singleton import Singleton

    from sympscale import job

    state = copy.deepcopy(Singleton.get_state())
    try:
        specs, records = _job_inputs(tmp_path, seeds=(1, 2, 3))
    finally:
        Singleton.set_state(state)
    specs = [dataclasses.replace(s, data_seed=d) for s, d in zip(specs, (7, 8, 7), strict=True)]
    calls = []

    def fake(group, dirs, *, resolved, echo):
        calls.append([s.seed for s in group])
        if group[0].data_seed == 8:
            raise RuntimeError("this group fails alone")
        return [f"ran {s.seed}" for s in group]

    monkeypatch.setattr(job, "execute_bundle", fake)
    out = job.execute_bundles(specs, [tmp_path / str(i) for i in range(3)], resolved=records)
    assert calls == [[1, 3], [2]] and out[0] == "ran 1" and out[2] == "ran 3"
    assert isinstance(out[1], RuntimeError)


def test_the_closing_line_leads_with_vpt_and_its_fraction_of_an_oracle_beside_it_on_the_same_data(
    tmp_path, single_jobs
):
    import copy

    from sympscale import job

    _, singles = single_jobs
    specs, records = _job_inputs(tmp_path, seeds=(1,), extra=["model=oracle"])
    (oracle,) = job.execute_bundle(specs, [tmp_path / "oracle"], resolved=records, echo=lambda m: None)
    run = singles[0]  # the same data (system, settings, D, data seed), eval start and horizon
    assert "vpt_lyapunov" in run["eval"] and oracle["eval"]["vpt_lyapunov"]["0.3"] > 0
    ref = job.reference_run(tmp_path / "symp", run)  # a folder beside the oracle's
    assert ref is not None and ref["model"] == "oracle"
    line = job.headline(run, ref)
    fraction = run["eval"]["vpt_lyapunov"]["0.3"] / oracle["eval"]["vpt_lyapunov"]["0.3"]
    assert line.startswith("VPT(0.3) ") and f"; {fraction:.2f}x the oracle's" in line.split(" | ")[0]
    assert "oracle" not in job.headline(run)  # none ran beside it: VPT alone
    for path, value in ((("eval", "horizon"), 7), (("dataset", "key"), "another"), (("eval", "start"), 3)):
        other = copy.deepcopy(run)
        other[path[0]][path[1]] = value
        assert job.reference_run(tmp_path / "symp", other) is None, path
    assert job.reference_run(tmp_path / "oracle", oracle) is None  # an oracle is not its own reference


def test_a_damaged_checkpoint_costs_its_seed_its_progress_and_no_more(tmp_path, monkeypatch, single_jobs):
    """Issue 28's reproduction: one seed's checkpoint.npz cut to half its size. That seed starts at step 0 with one
    line naming its file (kept as checkpoint.damaged-*.npz); the other two resume; all three end as alone."""
    import os

    single_dir, singles = single_jobs
    _stop_after_saves(monkeypatch, len(JOB_SEEDS))
    with pytest.raises(_Stop):
        _bundle_job(tmp_path)
    monkeypatch.undo()
    damaged = tmp_path / "bundle" / "2" / "checkpoint.npz"
    os.truncate(damaged, damaged.stat().st_size // 2)
    said = []
    bundled = _bundle_job(tmp_path, echo=said.append)
    warnings = [line for line in said if "cannot be used" in line]
    assert len(warnings) == 1 and str(damaged.parent) in warnings[0] and "cannot be read" in warnings[0], said
    assert sum("resuming from the checkpoint at step 20" in line for line in said) == len(JOB_SEEDS) - 1
    kept = list(damaged.parent.glob("checkpoint.damaged-*.npz"))
    assert len(kept) == 1 and kept[0].name in warnings[0]
    for b, s in zip(bundled, singles, strict=True):
        _same_job(b, s)


def test_training_runs_the_bundled_program_the_memory_prediction_compiled(tmp_path, caplog):
    """On a GPU `_fitting` compiles the bundled step from shapes to predict its peak; `fit_bundle` then trains with
    the same program (`Assembly.bundle_step`), not a second compile of it, and its first step's state has the types
    of every later one (a weakly typed NaN once compiled each horizon twice). A fresh step compiles once."""
    import dataclasses
    import logging

    import jax

    from sympscale import job, profiling
    from sympscale.assembly import init_params
    from sympscale.training import fit_bundle

    specs, _ = _job_inputs(tmp_path, seeds=(1,))
    run = job._assemble(specs[0], lambda m: None)
    run = run.with_train(dataclasses.replace(run.train, memory="none", curriculum="constant", steps=2, val_every=0))
    inits = [init_params(run, s) for s in (1, 2)]

    def bundled_compiles(step) -> int:
        caplog.clear()
        fit_bundle(
            run.model, [p for p, _ in inits], run.data.train, run.data.std, run.train,
            keys=[k for _, k in inits], logs=[lambda r: None] * 2, projector=run.projector, step=step,
        )  # fmt: skip
        return sum("XLA compilation of jit(bundled)" in r.getMessage() for r in caplog.records)

    with jax.log_compiles(True), caplog.at_level(logging.WARNING):
        assert profiling.predicted_bundle_peak(run, 2) is not None
        assert bundled_compiles(run.bundle_step) == 0
        assert bundled_compiles(None) == 1
