"""Seed bundles in the `local_devices` launcher: grouping, one process per bundle, each member its own record.

The fault tests run `tests/apps/launcher_toy.py` with TOY_BUNDLE=1 (its module then defines a bundle task that
runs the members one after another in one process); the end-to-end tests run SympScale's own training.
"""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from sympscale.launcher.bundles import bundle_size, make_bundles, seed_free
from test_launcher_faults import launcher_record, status_file, summary, toy, toy_popen, wait_for

BUNDLED = {"TOY_BUNDLE": "1"}


# ------------------------------------------------------------------------------------------ grouping (pure)
def _jobs(spec: list[tuple[str, int]]):
    return [
        SimpleNamespace(idx=i, overrides=[f"model={m}", f"seed={s}", "data_seed=3"], status="queued")
        for i, (m, s) in enumerate(spec)
    ]


def test_only_the_seed_tells_the_members_of_a_bundle_apart():
    assert seed_free(["seed=1", "model=gru", "data_seed=2"]) == seed_free(["data_seed=2", "model=gru", "+seed=7"])
    assert seed_free(["seed=1", "data_seed=2"]) != seed_free(["seed=1", "data_seed=3"])  # data_seed is not the seed
    follows = [["seed=1", "data_seed=${seed}"], ["seed=2", r"data_seed=$\{seed\}"]]  # Hydra escapes it in a sweep
    assert seed_free(follows[0]) != seed_free(follows[1])
    assert (
        len(make_bundles([SimpleNamespace(idx=i, overrides=o, status="queued") for i, o in enumerate(follows)], 4)) == 2
    )
    jobs = _jobs([(m, s) for m in ("symp", "gru") for s in range(1, 11)])
    jobs[3].status = "skipped"  # finished earlier: never bundled again
    bundles = make_bundles(jobs, 4)
    assert [len(b) for b in bundles] == [3, 3, 3, 4, 3, 3]  # 9 and 10 seeds in near-equal bundles of <= 4
    assert all(len({seed_free(j.overrides) for j in b}) == 1 for b in bundles)
    assert sorted(j.idx for b in bundles for j in b) == [i for i in range(20) if i != 3]
    assert [len(b) for b in make_bundles(jobs, 1)] == [1] * 19


def test_auto_keeps_every_slot_busy_up_to_its_cap():
    assert bundle_size("auto", 80, 8) == 10  # the user's grid on an 8-GPU node: one bundle per device
    assert bundle_size("auto", 6, 8) == 1  # fewer jobs than slots: one each
    assert bundle_size("auto", 400, 8) == 16  # the cap
    assert bundle_size(3, 400, 8) == 3


# ------------------------------------------------------------------------------------------ the toy app
def starts(tmp_path) -> list[tuple[int, int]]:
    return [tuple(map(int, line.split())) for line in (tmp_path / "sweep" / "starts.log").read_text().splitlines()]


def test_a_bundle_is_one_process_and_every_member_keeps_its_own_folder_and_record(tmp_path):
    out = toy(tmp_path, "seed=1,2,3,4,5,6", "hydra.launcher.bundle=auto", env=BUNDLED)
    assert out.returncode == 0, out.stderr
    pids = {}
    for seed, pid in starts(tmp_path):
        pids.setdefault(pid, []).append(seed)
    assert sorted(pids.values()) == [[1, 2, 3], [4, 5, 6]]  # 6 seeds, 2 slots: 2 processes of 3
    jobs = summary(tmp_path)
    assert sorted(jobs) == list(range(6)) and all(j["status"] == "done" for j in jobs.values())
    for n in range(6):
        assert status_file(tmp_path, n)["status"] == "done"
        assert launcher_record(tmp_path, n)["value"] == {"seed": n + 1}
    assert "runs in bundle #" in (tmp_path / "sweep" / "1" / "launcher.log").read_text()
    again = toy(tmp_path, "seed=1,2,3,4,5,6", "hydra.launcher.bundle=auto", env=BUNDLED)
    assert again.returncode == 0 and len(starts(tmp_path)) == 6  # a rerun skips the finished seeds


def test_one_process_per_job_without_a_bundle_task_or_with_bundle_1(tmp_path):
    out = toy(tmp_path, "seed=1,2,3,4", "hydra.launcher.bundle=auto")  # the app defines no bundle task
    assert out.returncode == 0, out.stderr
    assert len({pid for _, pid in starts(tmp_path)}) == 4
    refused = toy(tmp_path, "seed=1,2", "hydra.launcher.bundle=2")
    assert refused.returncode != 0 and "hydra.launcher.bundle=2 is invalid for this task" in refused.stderr
    assert "LAUNCHER_BUNDLE_TASK" in refused.stderr


def test_a_failing_member_fails_alone_and_only_it_is_retried(tmp_path):
    out = toy(
        tmp_path,
        "seed=1,2,3",
        "hydra.launcher.bundle=3",
        "hydra.launcher.max_retries=1",
        env={**BUNDLED, "TOY_FAULTS": "2:flaky,3:raise", "TOY_PREPARE_FAIL": "1"},
    )
    jobs = summary(tmp_path)
    assert jobs[0]["status"] == "failed" and "injected preparation failure for seed 1" in jobs[0]["cause"]
    assert jobs[1]["status"] == "done" and jobs[1]["attempts"] == 2  # flaky: done at its retry
    assert jobs[2]["status"] == "failed" and "injected failure for seed 3" in jobs[2]["cause"]
    assert sorted(s for s, _ in starts(tmp_path)) == [2, 2, 3, 3]  # the failed members ran again, alone
    assert status_file(tmp_path, 2)["status"] != "done" and status_file(tmp_path, 1)["status"] == "done"
    assert out.returncode != 0


def test_a_bundle_process_that_dies_fails_its_members_and_a_rerun_runs_only_them(tmp_path):
    toy(tmp_path, "seed=1,2,3,4", "hydra.launcher.bundle=2", env={**BUNDLED, "TOY_FAULTS": "3:exit0"})
    jobs = summary(tmp_path)
    assert [jobs[n]["status"] for n in range(4)] == ["done", "done", "failed", "failed"]
    assert "left no result" in jobs[2]["cause"] and "left no result" in jobs[3]["cause"]
    out = toy(tmp_path, "seed=1,2,3,4", "hydra.launcher.bundle=2", env=BUNDLED)
    assert out.returncode == 0, out.stderr
    assert [s for s, _ in starts(tmp_path)][-2:] == [3, 4]  # seeds 1 and 2 did not run again
    assert all(j["status"] in ("done", "skipped") for j in summary(tmp_path).values())


def test_sigterm_interrupts_a_running_bundle_and_cancels_the_queued_one(tmp_path):
    proc = toy_popen(
        tmp_path,
        "seed=1,2,3,4",
        "hydra.launcher.bundle=2",
        "hydra.launcher.cpu_workers=1",
        env={**BUNDLED, "TOY_FAULTS": "1:hang"},
    )
    wait_for(lambda: (tmp_path / "sweep" / "0" / "started.json").exists(), what="the first bundle to start")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    jobs = summary(tmp_path)
    assert [jobs[n]["status"] for n in range(4)] == ["interrupted", "interrupted", "cancelled", "cancelled"]
    assert status_file(tmp_path, 0)["status"] != "running"  # the app's record was repaired


def test_fail_fast_names_the_failed_member_and_cancels_the_queued_bundle(tmp_path):
    out = toy(
        tmp_path,
        "seed=1,2,3,4",
        "hydra.launcher.bundle=2",
        "hydra.launcher.cpu_workers=1",
        "hydra.launcher.fail_fast=true",
        env={**BUNDLED, "TOY_FAULTS": "2:raise"},
    )
    assert out.returncode != 0
    assert "job #1 (seed=2) failed first: ValueError: injected failure for seed 2" in out.stderr, out.stderr[-2000:]
    jobs = summary(tmp_path)
    assert [jobs[n]["status"] for n in range(4)] == ["done", "failed", "cancelled", "cancelled"]


def test_the_dry_run_lists_the_bundles(tmp_path):
    out = toy(tmp_path, "seed=1,2,3,4,5", "hydra.launcher.bundle=auto", "hydra.launcher.dry_run=true", env=BUNDLED)
    assert out.returncode == 0, out.stderr
    assert "bundles (hydra.launcher.bundle=auto): 2 processes for 5 jobs, 0 jobs alone" in out.stdout
    assert "#0,1,2" in out.stdout and "#3,4" in out.stdout and "seed=1,2,3" in out.stdout
    assert "dry run: 5 jobs, 5 would run" in out.stdout
    assert not (tmp_path / "sweep" / "starts.log").exists()


# ------------------------------------------------------------------------------------------ SympScale itself
TINY = [
    "system=toda",
    "D=8",
    "train=smoke",
    "train.steps=1200",  # long enough that a SIGTERM after the first checkpoints lands mid-training
    "train.batch_size=4",
    "train.horizon=4",
    "train.horizon_start=2",
    "train.val_every=100",
    "train.val_horizon=20",
    "train.checkpoint_every=100",
    "train.log_every=50",
    "data.n_trajectories=10",
    "data.n_obs=160",
    "eval.horizon=100",
    "capacity.width=8",
    "capacity.depth=2",
]


def sympscale(tmp_path, name, *args, popen=False):
    cmd = [
        sys.executable,
        "-m",
        "sympscale.train",
        "-m",
        *TINY,
        f"hydra.sweep.dir={tmp_path / name}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "hydra.launcher.platform=cpu",
        "hydra.launcher.cpu_workers=1",
        "hydra.launcher.progress_every=600",
        *args,
    ]
    env = {**os.environ, "JAX_PLATFORMS": "no_such_platform"}  # the launcher's process never initialises JAX
    if popen:
        return subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)


def metrics(folder: Path) -> dict:
    return {
        json.loads((d / "config.json").read_text())["seed"]: json.loads((d / "metrics.json").read_text())
        for d in folder.iterdir()
        if (d / "metrics.json").exists()
    }


@pytest.mark.slow
def test_a_killed_bundle_resumes_every_seed_once_through_the_launcher(tmp_path):
    """SIGTERM mid-training, then the same command: every seed resumes from its checkpoint and finishes once. That a
    resumed bundle equals its seeds run alone is tests/test_bundle.py's (one job path, compared there once)."""
    proc = sympscale(tmp_path, "many", "seed=1,2,3", "hydra.launcher.bundle=auto", popen=True)
    many = tmp_path / "many"
    wait_for(lambda: len(list(many.glob("*/checkpoint.npz"))) == 3, what="the bundle's first checkpoints")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert {j["status"] for j in json.loads((many / "launcher_summary.json").read_text())["jobs"]} == {"interrupted"}
    again = sympscale(tmp_path, "many", "seed=1,2,3", "hydra.launcher.bundle=auto")
    assert again.returncode == 0, again.stderr[-3000:]
    logs = "".join(p.read_text() for p in many.glob("*/launcher.log"))  # the bundle's output: its first member's log
    assert logs.count("resuming from the checkpoint at step") == 3, logs[-3000:]
    bundled = metrics(many)
    assert sorted(bundled) == [1, 2, 3]
    for seed in (1, 2, 3):
        b = bundled[seed]
        assert b["status"] == "done" and b["train"]["bundle"] == {"seeds": [1, 2, 3], "size": 3, "trained_with": 3}
        assert b["train"]["resumed_from_step"] > 0 and b["train"]["steps_trained"] == b["train"]["steps"]
        log = [json.loads(x) for x in (next(many.glob(f"*seed={seed},*")) / "train_log.jsonl").read_text().splitlines()]
        steps = [r["step"] for r in log if "loss" in r]
        assert steps == sorted(set(steps)) and steps[0] == 0  # each step logged once across the kill and the resume


@pytest.mark.slow
def test_the_dry_run_of_a_study_lists_its_bundles_and_predicts_its_device_time(tmp_path):
    cmd = [
        sys.executable, "-m", "sympscale.train", "-m", *TINY, "model=symp,gru", "seed=1-3",
        f"hydra.sweep.dir={tmp_path / 'dry'}", f"data.cache_dir={tmp_path / 'cache'}",
        "hydra.launcher.platform=cpu", "hydra.launcher.cpu_workers=1", "hydra.launcher.dry_run=true",
    ]  # fmt: skip
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "home-cache")}  # measured here, not kept from before
    env["JAX_PLATFORMS"] = "no_such_platform"  # the launcher's own: the estimate is measured where a job would run
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "bundles (hydra.launcher.bundle=auto): 2 processes for 6 jobs, 0 jobs alone" in out.stdout
    line = next(x for x in out.stdout.splitlines() if x.startswith("predicted device time:"))
    assert "device-hours in 2 processes" in line and "measured training step (3 seed(s)" in line, line
    assert " on cpu:cpu, " in line, line
    assert "dry run: 6 jobs, 6 would run" in out.stdout
    # each job with its width, parameter count and rank (no floor: the dataset is not cached)
    jobs = [x for x in out.stdout.splitlines() if x.strip().split(" ")[0].isdigit() and ": width " in x]
    assert len(jobs) == 6 and all(
        re.search(r"width \d+, [\d,]+ parameters, rank (\d+) of \1 \(floor 0\)", x) for x in jobs
    )
    assert all("recipe: untuned default" in x for x in jobs), jobs
    assert not list(tmp_path.glob("dry/*/config.json")) and not (tmp_path / "cache").exists()  # nothing run
