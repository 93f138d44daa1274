"""Nothing already written is lost: a folder holding a finished run of another computation stops the run
(or moves aside on request); reporting settings never create new folders or rerun finished jobs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_cli import TINY as CLI_TINY

TINY = [*CLI_TINY, "D=8"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return {**os.environ, "SYMPSCALE_CACHE_DIR": str(tmp_path_factory.mktemp("cache")), "JAX_PLATFORMS": "cpu"}


def train(args, env, cwd):
    return subprocess.run(
        [sys.executable, "-m", "sympscale.train", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600
    )


def metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


@pytest.mark.slow
def test_a_single_run_never_replaces_a_different_finished_run(tmp_path, env):
    run = tmp_path / "run"
    first = train([*TINY, f"hydra.run.dir={run}"], env, tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    before = (run / "metrics.json").read_bytes()

    changed = train([*TINY, "train.lr=2e-3", f"hydra.run.dir={run}"], env, tmp_path)
    assert changed.returncode == 2 and "train.lr" in changed.stderr and str(run) in changed.stderr
    assert len([x for x in changed.stderr.splitlines() if x.strip()]) == 1 and "Traceback" not in changed.stderr
    assert (run / "metrics.json").read_bytes() == before

    moved = train([*TINY, "train.lr=2e-3", "if_changed=move_aside", f"hydra.run.dir={run}"], env, tmp_path)
    assert moved.returncode == 0, moved.stderr[-2000:]
    (aside,) = run.glob("replaced-*")
    assert (aside / "metrics.json").read_bytes() == before
    assert json.loads((run / "config.json").read_text())["train"]["lr"] == 2e-3


@pytest.mark.slow
def test_an_edited_experiment_file_does_not_overwrite_the_sweep(tmp_path, env):
    sweep, exp = tmp_path / "sweep", tmp_path / "extra" / "experiment"
    exp.mkdir(parents=True)
    args = ["-m", "--config-dir", str(tmp_path / "extra"), "experiment=mine", *TINY, f"hydra.sweep.dir={sweep}"]
    (exp / "mine.yaml").write_text("# @package _global_\ntrain:\n  lr: 1e-3\n")
    assert train(args, env, tmp_path).returncode == 0
    (done,) = [p.parent for p in sweep.glob("*/metrics.json")]
    before = (done / "metrics.json").read_bytes()
    (exp / "mine.yaml").write_text("# @package _global_\ntrain:\n  lr: 3e-3\n")
    r = train(args, env, tmp_path)
    assert r.returncode == 2 and "train.lr: 0.001 -> 0.003" in r.stderr, r.stderr[-2000:]
    assert (done / "metrics.json").read_bytes() == before


@pytest.mark.slow
def test_reporting_settings_neither_split_nor_rerun_a_sweep(tmp_path, env):
    sweep = tmp_path / "sweep"
    tiny = [o for o in TINY if not o.startswith("train.log_every")]  # a key given twice is refused
    base = ["-m", *tiny, "seed=1", f"hydra.sweep.dir={sweep}"]
    assert train(base, env, tmp_path).returncode == 0
    (folder,) = [p.parent for p in sweep.glob("*/metrics.json")]
    before = (folder / "metrics.json").read_bytes()
    other_cache = tmp_path / "elsewhere"
    again = train(
        [*base, "train.log_every=2", "train.checkpoint_every=3", f"data.cache_dir={other_cache}"], env, tmp_path
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert [p.parent for p in sweep.glob("*/metrics.json")] == [folder]  # no new folder
    assert (folder / "metrics.json").read_bytes() == before  # not rerun
    assert "already finished" in again.stdout + again.stderr
    assert len(list(sweep.glob("multirun*.yaml"))) == 2  # the first launch's record moved aside, not replaced
