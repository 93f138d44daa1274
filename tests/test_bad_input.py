"""The bad-input corpus: every case is refused before any compute, as the user runs the command.

Each case asserts exit status 2, exactly one line on stderr naming the key (or value) at fault, no traceback,
nothing written (no sweep or run folder, no outputs/, no dataset). Single-run cases run through the entry point
in-process (and must not reach Hydra's job); multirun cases, and a few single-run ones, run in a fresh
interpreter as the user types them, in under 15 s.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import hydra
import pytest

LONG = "p" * 300
CASES = [
    # config groups: unknown options, internal schemas, numeric choices
    (["system=nbody3"], "system='nbody3'"),
    (["system=base_fput"], "system='base_fput'"),
    (["model=nope"], "model='nope'"),
    (["model=base_symp"], "model='base_symp'"),
    (["train=nope"], "train='nope'"),
    (["experiment=nope"], "experiment='nope'"),
    (["bptt_window=-4"], "bptt_window='-4'"),
    (["bptt_window=7"], "bptt_window='7'"),
    (["hydra/launcher=nope"], "hydra/launcher='nope'"),
    # D: impossible for the system, wrong type, too large for the machine
    (["D=15"], "D=15"),
    (["D=abc"], "D=abc"),
    (["D=-8"], "D=-8"),
    (["D=0"], "D=0"),
    (["system=cr3bp", "D=8"], "D=8"),
    (["system=nbody", "D=10"], "D=10"),
    (["system=ks", "D=3"], "D=3"),
    (["D=1048576"], "D=1048576"),
    (["-m", "D=8,15,16"], "D=15"),
    (["D=8,16"], "D=8,16"),
    # seeds and ranges
    (["seed=-1"], "seed=-1"),
    (["seed=1.5"], "seed='1.5'"),
    (["-m", "seed=a-b"], "a-b"),
    (["-m", "seed=10-1"], "10-1"),
    (["-m", "seed=1-1000000000"], "1-1000000000"),
    (["-m", "seed=range(0,100000000)"], "100,000,000 jobs"),
    (["-m", "data_seed=-3"], "data_seed=-3"),
    # keys that do not exist
    (["trian.steps=3"], "trian.steps"),
    (["+foo=1"], "+foo=1"),
    (["+train.setps=3"], "train.setps"),
    (["++foo=1"], "++foo=1"),
    (["~D"], "'D'"),
    (["D=8", "D=16"], "D is given twice"),
    (["model=gru", "+train.recipes.gru.steps=3"], "train.recipes.gru.steps"),
    # training values
    (["train.steps=0"], "train.steps=0"),
    (["train.steps=abc"], "train.steps=abc"),
    (["train.batch_size=0"], "train.batch_size=0"),
    (["train.lr=-1"], "train.lr=-1"),
    (["train.lr=0"], "train.lr=0"),
    (["train.lr=nan"], "train.lr=nan"),
    (["train.lr=inf"], "train.lr=inf"),
    (["-m", "train.lr=1e-3,-1"], "train.lr=-1"),
    (["train.warmup=-10"], "train.warmup=-10"),
    (["train.min_lr_ratio=2"], "train.min_lr_ratio=2"),
    (["train.clip=0"], "train.clip=0"),
    (["train.clip=nan"], "train.clip=nan"),
    (["train.horizon=0"], "train.horizon=0"),
    (["train.horizon=100000"], "train.horizon=100000"),
    (["train.curriculum=linear"], "train.curriculum='linear'"),
    (["train.horizon_start=0"], "train.horizon_start=0"),
    (["train.ramp_fraction=1.5"], "train.ramp_fraction=1.5"),
    (["train.decay_fraction=-0.1"], "train.decay_fraction=-0.1"),
    (["train.val_every=-1"], "train.val_every=-1"),
    (["train.val_starts=0"], "train.val_starts=0"),
    (["train.val_horizon=0"], "train.val_horizon=0"),
    (["train.plateau_tol=0"], "train.plateau_tol=0"),
    (["train.patience=-1"], "train.patience=-1"),
    (["train.memory=magic"], "train.memory='magic'"),
    (["train.log_every=0"], "train.log_every=0"),
    (["train.checkpoint_every=0"], "train.checkpoint_every=0"),
    (["train.grad_cosine_every=-1"], "train.grad_cosine_every=-1"),
    (["-m", "bptt_window=4,32", "train=smoke"], "bptt_window=32"),
    # model options
    (["model.substeps=0"], "model.substeps=0"),
    (["model=oracle", "model.substeps=1000000000"], "model.substeps=1000000000"),
    (["model.method=euler"], "model.method='euler'"),
    (["model.activation=relu9"], "model.activation='relu9'"),
    (["model.kinetic=nope"], "model.kinetic='nope'"),
    (["model.projection=nope"], "model.projection='nope'"),
    (["model.leapfrog_steps=-1"], "model.leapfrog_steps=-1"),
    (["capacity.width=0"], "capacity.width=0"),
    (["capacity.depth=0"], "capacity.depth=0"),
    (["capacity.budget=0"], "capacity.budget=0"),
    (["capacity.budget=nan"], "capacity.budget=nan"),
    (["D=64", "model=gru", "capacity.cover=false"], "capacity.width=107"),  # an error floor
    (["train.recipe=best"], "train.recipe='best'"),
    (["train.lr_factor=0"], "train.lr_factor=0"),
    (["train.ramp_fraction=0.9"], "train.ramp_fraction=0.9"),  # a stage inside the convergence window
    # evaluation
    (["eval.projection=nope"], "eval.projection='nope'"),
    (["eval.horizon=10"], "eval.horizon=10"),
    (["-m", "eval.horizon=1000", "data.n_obs=160"], "eval.horizon=1000"),
    (["eval.bounded_level=1.5"], "eval.bounded_level=1.5"),
    (["eval.start=200"], "eval.start=200"),  # 200 + 1000 steps need 1,201 observations of 1,200
    (["eval.start=-1"], "eval.start=-1"),
    (["eval.bounded_level=nan"], "eval.bounded_level=nan"),
    (["eval.bounded_floor=-1"], "eval.bounded_floor=-1"),
    # data
    (["data.n_trajectories=1"], "data.n_trajectories=1"),
    (["data.n_trajectories=0"], "data.n_trajectories=0"),
    (["data.extra_test=-1"], "data.extra_test=-1"),
    (["data.train_fraction=1.5"], "data.train_fraction=1.5"),
    (["data.val_fraction=-0.1"], "data.val_fraction=-0.1"),
    (["data.train_fraction=0.9", "data.val_fraction=0.2"], "data.train_fraction=0.9"),
    (["data.lyapunov_trajectories=0"], "data.lyapunov_trajectories=0"),
    (["data.cache_dir=/etc/hostname/cache"], "data.cache_dir"),
    # physical parameters
    (["system.beta=nan"], "system.beta=nan"),
    (["system.beta=-1"], "system.beta=-1"),
    (["system.dt_obs=0"], "system.dt_obs=0"),
    (["system.energy_density=-1"], "system.energy_density=-1"),
    (["system=cr3bp", "D=4", "system.mu=0.9"], "system.mu=0.9"),
    (["system=nbody", "D=12", "system.softening=inf"], "system.softening=inf"),
    # where results go
    (["name=../../x"], "name='../../x'"),
    (["-m", "name=../../x"], "name='../../x'"),
    (["-m", "name=/tmp/elsewhere"], "name='/tmp/elsewhere'"),
    (["-m", f"train.preset={LONG}"], "job folder name"),
    (["if_changed=maybe"], "if_changed='maybe'"),
    (["--config-dir=/nonexistent/conf"], "--config-dir"),
    # the launcher: no setting may make it wait forever
    (["-m", "hydra.launcher.jobs_per_device=0"], "hydra.launcher.jobs_per_device=0"),
    (["-m", "hydra.launcher.cpu_workers=-1"], "hydra.launcher.cpu_workers=-1"),
    (["-m", "hydra.launcher.platform=tpu"], "hydra.launcher.platform='tpu'"),
    (["-m", "hydra.launcher.shard=4/2"], "4/2"),
    (["-m", "hydra.launcher.max_retries=-1"], "hydra.launcher.max_retries=-1"),
    (["-m", "hydra.launcher.max_retries=1000000000000"], "hydra.launcher.max_retries=1000000000000"),
    (["-m", "hydra.launcher.progress_every=0"], "hydra.launcher.progress_every=0"),
    (["-m", "hydra.launcher.bundle=0"], "hydra.launcher.bundle=0"),
    (["-m", "hydra.launcher.bundle=many"], "hydra.launcher.bundle='many'"),
]


# A single run's refusals come from the entry point's checks before Hydra starts: they run in-process (the same
# code path, a fraction of a second each). A multirun's come from the sweeper, which checks the whole grid inside
# Hydra: they run in a fresh interpreter, as the user types them, with a few single-run cases of each kind too
# (exit status, stderr, no traceback, time to refuse).
SINGLE_RUN = [(a, f) for a, f in CASES if a[0] != "-m"]
AS_THE_USER_RUNS_THEM = [
    ["system=nbody3"],
    ["D=15"],
    ["trian.steps=3"],
    ["model=oracle", "model.substeps=1000000000"],
    ["data.cache_dir=/etc/hostname/cache"],
    ["--config-dir=/nonexistent/conf"],
]
FRESH_INTERPRETER = [(a, f) for a, f in CASES if a[0] == "-m" or a in AS_THE_USER_RUNS_THEM]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def test_the_corpus_is_large_and_distinct():
    assert len(CASES) >= 60
    assert len({" ".join(a) for a, _ in CASES}) == len(CASES)
    assert len(FRESH_INTERPRETER) == len(CASES) - len(SINGLE_RUN) + len(AS_THE_USER_RUNS_THEM)


def _assert_refused(returncode, stdout, stderr, fragment, tmp_path, cache):
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert returncode == 2, stdout[-1500:] + stderr[-1500:]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("sympscale: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in stdout + stderr
    assert not (tmp_path / "sweep").exists() and not (tmp_path / "run").exists()
    assert not (tmp_path / "outputs").exists()
    assert not list(Path(cache).iterdir())  # no dataset generated


def _must_not_start(**_):
    raise AssertionError("a single run's bad input reached Hydra's job: it must be refused before")


def _argv(args, tmp_path):
    return [*args, f"hydra.sweep.dir={tmp_path / 'sweep'}", f"hydra.run.dir={tmp_path / 'run'}"]


@pytest.mark.parametrize("args, fragment", SINGLE_RUN, ids=[" ".join(a)[:60] for a, _ in SINGLE_RUN])
def test_refused_before_compute_with_one_line(tmp_path, cache, args, fragment, monkeypatch, capfd):
    from sympscale import train

    train.register()  # as importing sympscale.train does (each test starts from a clean Hydra state)
    monkeypatch.setenv("SYMPSCALE_CACHE_DIR", str(cache))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["sympscale.train", *_argv(args, tmp_path)])
    monkeypatch.setattr(hydra, "main", _must_not_start)
    with pytest.raises(SystemExit) as exit_:
        train.main()
    out, err = capfd.readouterr()
    _assert_refused(exit_.value.code, out, err, fragment, tmp_path, cache)


@pytest.mark.parametrize("args, fragment", FRESH_INTERPRETER, ids=[" ".join(a)[:60] for a, _ in FRESH_INTERPRETER])
def test_refused_in_a_fresh_interpreter(tmp_path, cache, args, fragment):
    env = {**os.environ, "SYMPSCALE_CACHE_DIR": str(cache), "JAX_PLATFORMS": "cpu"}
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "sympscale.train", *_argv(args, tmp_path)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    seconds = time.perf_counter() - t0
    _assert_refused(r.returncode, r.stdout, r.stderr, fragment, tmp_path, cache)
    assert seconds < 15, f"{seconds:.1f} s to refuse"
