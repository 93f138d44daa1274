"""`local_devices` with fake devices: placement, masks, failure isolation, resume, signals, dry run, shards."""

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sympscale.launcher.devices import child_env, plan_devices
from sympscale.launcher.sharding import parse_shard, shard_positions

APP = Path(__file__).parent / "apps" / "fake_study.py"
USER_GRID = ["system=toda,fput", "D=64,256", "model=symp,gru", "seed=1-10"]
QUIET = ["hydra.launcher.progress_every=600"]


def sweep(tmp_path, args, *, env=None, check=True, timeout=600):
    # An unusable JAX platform in the parent: if the launcher's process initialised JAX, it would crash.
    # Children get a working JAX_PLATFORMS from the launcher.
    e = {**os.environ, "JAX_PLATFORMS": "no_such_platform", **(env or {})}
    r = subprocess.run(
        [sys.executable, str(APP), "-m", *args, *QUIET, f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        env=e,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def records(tmp_path):
    return [json.loads(p.read_text()) for p in (tmp_path / "sweep").glob("*/fake.json")]


def assert_one_job_per_device_at_a_time(recs, var):
    by_dev: dict[str, list] = {}
    for r in recs:
        by_dev.setdefault(r[var], []).append((r["start"], r["end"]))
    for dev, spans in by_dev.items():
        spans.sort()
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            assert start >= end, f"two jobs overlapped on device {dev}"
    return by_dev


@pytest.mark.slow
def test_users_grid_on_8_fake_nvidia_gpus(tmp_path):
    devs = "[0,1,2,3,4,5,6,7]"
    sweep(
        tmp_path,
        [*USER_GRID, "hydra.launcher.platform=cuda", f"hydra.launcher.devices={devs}"],
        env={"FAKE_SLEEP": "0.3"},
    )
    recs = records(tmp_path)
    assert len(recs) == 80
    assert sorted({r["seed"] for r in recs}) == list(range(1, 11))
    by_dev = assert_one_job_per_device_at_a_time(recs, "CUDA_VISIBLE_DEVICES")
    assert set(by_dev) == {str(i) for i in range(8)}  # every device was used
    assert all(r["JAX_PLATFORMS"] == "cuda" and r["ROCR_VISIBLE_DEVICES"] is None for r in recs)
    assert not any(r["jax_imported"] for r in recs)  # a job process that needs no JAX never loads it


@pytest.mark.slow
def test_rocm_variables_and_parent_mask(tmp_path):
    # ROCm: ROCR_VISIBLE_DEVICES=k with HIP_VISIBLE_DEVICES=0; the parent's mask 2,5 defines the devices
    sweep(
        tmp_path,
        ["system=toda", "D=16", "seed=1-6", "hydra.launcher.platform=rocm"],
        env={"ROCR_VISIBLE_DEVICES": "2,5"},
    )
    recs = records(tmp_path)
    assert len(recs) == 6
    by_dev = assert_one_job_per_device_at_a_time(recs, "ROCR_VISIBLE_DEVICES")
    assert set(by_dev) == {"2", "5"}
    assert all(r["HIP_VISIBLE_DEVICES"] == "0" and r["CUDA_VISIBLE_DEVICES"] is None for r in recs)


@pytest.mark.slow
def test_parent_cuda_mask_is_honoured(tmp_path):
    sweep(
        tmp_path,
        ["system=fput", "D=16", "seed=1-4", "hydra.launcher.platform=cuda"],
        env={"CUDA_VISIBLE_DEVICES": "2,3"},
    )
    recs = records(tmp_path)
    assert len(recs) == 4 and set(assert_one_job_per_device_at_a_time(recs, "CUDA_VISIBLE_DEVICES")) == {"2", "3"}


@pytest.mark.slow
def test_faults_are_isolated_reported_and_rerun(tmp_path):
    args = ["system=fput", "D=16", "seed=1-6", "hydra.launcher.platform=cpu", "hydra.launcher.cpu_workers=2"]
    env = {"FAKE_FAULTS": "raise:3,exit:4,nan:5"}
    r = sweep(tmp_path, args, env=env, check=False)
    assert r.returncode != 0
    summary = json.loads((tmp_path / "sweep" / "launcher_summary.json").read_text())
    status = {tuple(j["overrides"]): j for j in summary["jobs"]}
    by_seed = {int(next(o for o in k if o.startswith("seed=")).split("=")[1]): v for k, v in status.items()}
    assert {s for s, j in by_seed.items() if j["status"] == "done"} == {1, 2, 5, 6}
    assert "injected failure" in by_seed[3]["cause"] and "ValueError" in by_seed[3]["cause"]
    assert "exited with code 3" in by_seed[4]["cause"]
    diverged = json.loads((Path(by_seed[5]["job_dir"]) / "fake.json").read_text())["diverged"]
    assert "non-finite training loss" in diverged  # training stopped and flagged: finished, not a crash
    for s in (3, 4):
        assert Path(by_seed[s]["log"]).exists()
        assert f"seed={s}" in r.stdout and "FAILED" in r.stdout
    # the rerun runs exactly the two failed jobs (faults cleared)
    r2 = sweep(tmp_path, args)
    rerun = json.loads((tmp_path / "sweep" / "launcher_summary.json").read_text())["jobs"]
    ran = sorted(
        int(next(o for o in j["overrides"] if o.startswith("seed=")).split("=")[1])
        for j in rerun
        if j["status"] == "done"
    )
    assert ran == [3, 4], r2.stdout[-2000:]
    assert all(j["status"] in ("done", "skipped") for j in rerun)


@pytest.mark.slow
def test_growing_the_grid_runs_only_new_jobs(tmp_path):
    base = ["system=fput", "D=16", "hydra.launcher.platform=cpu", "hydra.launcher.cpu_workers=2"]
    sweep(tmp_path, [*base, "seed=1-2"])
    sweep(tmp_path, [*base, "seed=1-3"])
    jobs = json.loads((tmp_path / "sweep" / "launcher_summary.json").read_text())["jobs"]
    assert sorted(j["status"] for j in jobs) == ["done", "skipped", "skipped"]
    for d in (tmp_path / "sweep").glob("*/completions"):
        assert d.read_text() == "1\n"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_sigterm_stops_every_child_and_rerun_finishes(tmp_path):
    args = [
        "system=fput",
        "D=16",
        "seed=1-4",
        "hydra.launcher.platform=cpu",
        "hydra.launcher.cpu_workers=2",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        *QUIET,
    ]
    env = {**os.environ, "FAKE_SLEEP": "20"}
    parent = subprocess.Popen(
        [sys.executable, str(APP), "-m", *args],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 120
    while len(list((tmp_path / "sweep").glob("*/started.json"))) < 2 and time.time() < deadline:
        time.sleep(0.2)
    pids = [json.loads(p.read_text())["pid"] for p in (tmp_path / "sweep").glob("*/started.json")]
    assert len(pids) == 2 and all(_alive(p) for p in pids)
    parent.send_signal(signal.SIGTERM)
    out, _ = parent.communicate(timeout=60)
    assert parent.returncode != 0
    time.sleep(0.5)
    assert not any(_alive(p) for p in pids), "a child outlived its launcher"
    # the rerun finishes the sweep; no job completes twice
    r = subprocess.run(
        [sys.executable, str(APP), "-m", *args],
        env={**env, "FAKE_SLEEP": "0.1"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-2000:]
    done = list((tmp_path / "sweep").glob("*/completions"))
    assert len(done) == 4 and all(p.read_text() == "1\n" for p in done)


def test_dry_run_lists_the_grid_and_runs_nothing(tmp_path):
    asked = tmp_path / "estimate.json"  # the app's estimate records what it was asked (measuring: test_bundle.py)
    args = [*USER_GRID, "hydra.launcher.dry_run=true", "hydra.launcher.platform=cpu"]
    r = sweep(tmp_path, args, env={"FAKE_ESTIMATE": str(asked)})
    assert "dry run: 80 jobs, 80 would run" in r.stdout
    assert json.loads(asked.read_text())["requests"] == 8  # one per configuration, asked once
    assert not list((tmp_path / "sweep").glob("*/fake.json"))


def test_device_planning_without_jax():
    assert plan_devices("cuda", env={"CUDA_VISIBLE_DEVICES": "4,6"}).devices == ("4", "6")
    assert plan_devices("rocm", env={"ROCR_VISIBLE_DEVICES": "1"}).devices == ("1",)
    assert plan_devices("cpu", cpu_workers=3).devices == ("cpu0", "cpu1", "cpu2")
    assert plan_devices("auto", env={"CUDA_VISIBLE_DEVICES": "0,1"}).platform == "cuda"
    with pytest.raises(ValueError, match="platform"):
        plan_devices("tpu")
    plan = plan_devices("rocm", devices=["3"])
    env = child_env(plan, "3", jobs_per_device=2, base={"CUDA_VISIBLE_DEVICES": "0"})
    assert env["ROCR_VISIBLE_DEVICES"] == "3" and env["HIP_VISIBLE_DEVICES"] == "0"
    assert "CUDA_VISIBLE_DEVICES" not in env and float(env["XLA_PYTHON_CLIENT_MEM_FRACTION"]) == pytest.approx(0.45)
    # Importing the package imports JAX (it turns on float64), but planning must not start a backend, which would
    # take the parent's GPUs: with a platform that does not exist, starting one raises.
    code = "from sympscale.launcher import devices; print(devices.plan_devices('cpu').platform, devices.plan_devices('auto', env={}).platform)"
    env = {**os.environ, "JAX_PLATFORMS": "no-such-platform"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and out.stdout.split()[0] == "cpu", out.stderr


def test_shards_partition_the_grid():
    assert parse_shard(None) is None
    assert parse_shard("1/4") == (1, 4)
    array = {"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "3"}
    assert parse_shard("slurm", {**array, "SLURM_ARRAY_TASK_COUNT": "4"}) == (2, 4)
    with pytest.raises(ValueError, match="SLURM_ARRAY_TASK_ID"):
        parse_shard("slurm", {})
    one_based = {"SLURM_ARRAY_TASK_ID": "8", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "8"}
    assert parse_shard("slurm", {**one_based, "SLURM_ARRAY_TASK_COUNT": "8"}) == (7, 8)  # --array=1-8
    # a task resubmitted alone (--array=3), a sparse array (--array=3,5 or 1,3) cannot say how many shares there are
    for task, first, last, count in (
        ("3", "3", "3", "1"),
        ("5", "3", "5", "2"),
        ("7", "5", "7", "3"),
        ("3", "1", "3", "2"),
    ):
        env = {"SLURM_ARRAY_TASK_ID": task, "SLURM_ARRAY_TASK_MIN": first, "SLURM_ARRAY_TASK_MAX": last}
        with pytest.raises(ValueError, match="valid: such an array, or shard=<i>/<n> with this task's share i"):
            parse_shard("slurm", {**env, "SLURM_ARRAY_TASK_COUNT": count})
    with pytest.raises(ValueError):
        parse_shard("4/4")
    grid = [(system, D, model) for system in ("toda", "fput") for D in (64, 256) for model in ("symp", "gru")]
    seed_fastest = [config for config in grid for _ in range(10)]  # Hydra's order for the README's command
    config_fastest = [grid[i % 8] for i in range(80)]  # `seed=1-10` first: shares follow configurations anyway
    assert shard_positions(seed_fastest, None) == set(range(80))
    for keys, n in itertools.product((seed_fastest, config_fastest), (3, 5, 7, 8, 16)):
        shards = [shard_positions(keys, (k, n)) for k in range(n)]
        assert sorted(sum((sorted(s) for s in shards), [])) == list(range(80))
        nodes_per_config = [sum(any(keys[j] == c for j in s) for s in shards) for c in grid]
        if n <= len(grid):  # whole configurations, every node some, near-equal (one configuration apart at most)
            assert max(nodes_per_config) == 1 and min(map(len, shards)) >= 10, (n, list(map(len, shards)))
            assert max(map(len, shards)) - min(map(len, shards)) <= 10
        else:  # more nodes than configurations: near-equal parts, each configuration on two nodes
            assert all(len(s) == 5 for s in shards) and max(nodes_per_config) == 2
    assert [len(shard_positions(seed_fastest, (k, 3))) for k in range(3)] == [30, 20, 30]
    lopsided = ["a", "b", "c", *["d"] * 9]  # whole configurations would leave a node nothing: near-equal parts
    assert [len(shard_positions(lopsided, (k, 3))) for k in range(3)] == [4, 4, 4]
    for keys, n in ((seed_fastest, 3), (grid[:3] * 10, 2)):  # jobs one per process (`bundle=1`): near-equal in jobs
        shards = [shard_positions(keys, (k, n), whole=False) for k in range(n)]
        assert sorted(sum((sorted(s) for s in shards), [])) == list(range(len(keys)))
        assert max(map(len, shards)) - min(map(len, shards)) <= 1, list(map(len, shards))


@pytest.mark.slow
def test_children_die_with_a_killed_launcher(tmp_path):
    """SIGKILL gives the launcher no chance to clean up: the kernel's parent-death signal stops its jobs."""
    args = [
        "system=fput",
        "D=16",
        "seed=1-2",
        "hydra.launcher.platform=cpu",
        "hydra.launcher.cpu_workers=2",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        *QUIET,
    ]
    parent = subprocess.Popen(
        [sys.executable, str(APP), "-m", *args],
        env={**os.environ, "FAKE_SLEEP": "30"},
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while len(list((tmp_path / "sweep").glob("*/started.json"))) < 2 and time.time() < deadline:
        time.sleep(0.2)
    pids = [json.loads(p.read_text())["pid"] for p in (tmp_path / "sweep").glob("*/started.json")]
    assert len(pids) == 2
    parent.kill()
    parent.wait()
    deadline = time.time() + 10
    while any(_alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(_alive(p) for p in pids)
