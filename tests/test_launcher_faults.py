"""`local_devices` under faults: planted files, unwritable job folders, signals, two launchers, bad options, umask.

Most tests run `tests/apps/launcher_toy.py` (no training; job folders `<sweep>/<job number>`) in a subprocess.
"""

import json
import os
import pickle
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sympscale.jobdir import JobDir, write_json
from sympscale.launcher import wire
from sympscale.launcher.lock import SweepLock, SweepLocked
from sympscale.launcher.options import launcher_option_errors
from sympscale.launcher.scheduler import Scheduler

APP = Path(__file__).parent / "apps" / "launcher_toy.py"
CPU2 = ["hydra.launcher.platform=cpu", "hydra.launcher.cpu_workers=2", "hydra.launcher.progress_every=600"]
SLOW_MACHINE = 300  # seconds; a loaded 2-core runner starts a job process in ~10 s


def toy_cmd(tmp_path, *args):
    return [sys.executable, str(APP), "-m", *CPU2, *args, f"hydra.sweep.dir={tmp_path / 'sweep'}"]


def toy_env(**extra):
    # the launcher's own process must never initialise JAX: an unusable platform would make it crash
    return {**os.environ, "JAX_PLATFORMS": "no_such_platform", **extra}


def toy(tmp_path, *args, env=None, timeout=SLOW_MACHINE, preexec_fn=None):
    return subprocess.run(
        toy_cmd(tmp_path, *args),
        env=toy_env(**(env or {})),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec_fn,
    )


def toy_popen(tmp_path, *args, env=None):
    return subprocess.Popen(
        toy_cmd(tmp_path, *args),
        env=toy_env(**(env or {})),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def summary(tmp_path) -> dict[int, dict]:
    return {j["idx"]: j for j in json.loads((tmp_path / "sweep" / "launcher_summary.json").read_text())["jobs"]}


def wait_for(predicate, timeout=SLOW_MACHINE, what="condition"):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def started(tmp_path) -> dict[int, int]:
    """job number -> pid of the jobs that have started."""
    out = {}
    for p in (tmp_path / "sweep").glob("*/started.json"):
        try:
            out[int(p.parent.name)] = json.loads(p.read_text())["pid"]
        except (ValueError, OSError):
            pass
    return out


def status_file(tmp_path, n: int) -> dict:
    return json.loads((tmp_path / "sweep" / str(n) / "status.json").read_text())


def launcher_record(tmp_path, n: int) -> dict:
    return json.loads((tmp_path / "sweep" / str(n) / "launcher.json").read_text())


# ------------------------------------------------------------------------------------------ options (pure)
def test_option_errors_name_the_key_the_value_and_what_is_valid():
    good = dict(
        platform="auto",
        devices=None,
        cpu_workers=None,
        jobs_per_device=1,
        max_retries=0,
        progress_every=30.0,
        shard=None,
        resume=True,
        rerun_stale=False,
        fail_fast=False,
        dry_run=False,
        compilation_cache="x",
        bundle="auto",
    )
    assert launcher_option_errors(good) == []
    assert launcher_option_errors({**good, "devices": ["0", "1"], "cpu_workers": 3, "shard": "1/4", "bundle": 8}) == []
    cases = {
        "platform": ("tpu", "auto | cuda | rocm | cpu"),
        "devices": ([], "non-empty list"),
        "cpu_workers": (-1, ">= 1"),
        "jobs_per_device": (0, ">= 1"),
        "max_retries": (-1, "0..100"),
        "progress_every": (float("inf"), "finite"),
        "shard": ("4/4", "0 <= i < n"),
        "resume": ("yes", "true | false"),
        "rerun_stale": ("no", "true | false"),
        "fail_fast": (1, "true | false"),
        "dry_run": (None, "true | false"),
        "bundle": (0, "auto or an integer in 1..256"),
    }
    for key, (value, valid) in cases.items():
        errors = launcher_option_errors({**good, key: value})
        assert len(errors) == 1, (key, errors)
        assert errors[0].startswith(f"{key}="), errors
        assert repr(value).strip("'") in errors[0] and valid in errors[0], errors
    for bad in ("many", True, 1.5, 257, -2, None):
        assert len(launcher_option_errors({**good, "bundle": bad})) == 1, bad
    assert len(launcher_option_errors({**good, "jobs_per_device": 0, "cpu_workers": 0, "progress_every": 0})) == 3


def test_scheduler_refuses_zero_slots():
    with pytest.raises(ValueError, match="jobs_per_device"):
        Scheduler(["cpu0"], jobs_per_device=0)
    with pytest.raises(ValueError, match="no worker slots"):
        Scheduler([], jobs_per_device=1)


def test_the_launcher_itself_refuses_bad_options():
    """Defence in depth: even when called without the sweeper's check, launch() refuses before doing anything."""
    from hydra_plugins.sympscale_launcher.local_devices import LocalDevicesConf, LocalDevicesLauncher

    options = {k: v for k, v in vars(LocalDevicesConf()).items() if k != "_target_"}
    launcher = LocalDevicesLauncher(**{**options, "jobs_per_device": 0, "cpu_workers": -1})
    with pytest.raises(ValueError) as e:
        launcher.launch([["seed=1"]], initial_job_idx=0)
    assert "hydra.launcher.jobs_per_device=0 is invalid" in str(e.value)
    assert "hydra.launcher.cpu_workers=-1 is invalid" in str(e.value)


@pytest.mark.parametrize("bad", ["hydra.launcher.jobs_per_device=0", "hydra.launcher.cpu_workers=-1"])
def test_a_setting_that_would_wait_forever_is_refused(tmp_path, bad):
    r = toy(tmp_path, "seed=1,2", bad)  # today's bug: "queued 2 running 0" forever; the timeout fails it
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert bad.split("=")[0].removeprefix("hydra.launcher.") in out and "valid" in out, out[-2000:]
    assert not (tmp_path / "sweep" / "starts.log").exists()
    assert not list((tmp_path / "sweep").glob("*/launcher.log"))


# ------------------------------------------------------------------------------------------ nothing executable
class _Marker:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "a"))


def test_the_wire_formats_are_json_only(tmp_path):
    marker = tmp_path / "unpickled"
    evil = pickle.dumps(_Marker(str(marker)))
    with pytest.raises(ValueError):
        wire.decode_result(evil)
    with pytest.raises(ValueError):
        wire.decode_job(evil)
    with pytest.raises(ValueError):
        wire.decode_result(b"")
    with pytest.raises(ValueError):
        wire.decode_result(json.dumps({"format": wire.RESULT_FORMAT, "status": "maybe"}).encode())
    assert not marker.exists()
    # a return value JSON cannot hold travels as its repr; NumPy values as numbers
    import numpy as np

    rec = wire.decode_result(wire.encode_result(completed=True, value={"a": np.int64(3), "b": np.ones(2)}))
    assert wire.value_of(rec) == {"a": 3, "b": [1.0, 1.0]}
    rec = wire.decode_result(wire.encode_result(completed=True, value=object()))
    assert wire.value_of(rec).startswith("<object object")


def test_task_functions_travel_by_name():
    import sympscale.train

    ref = wire.task_reference(sympscale.train._task)
    assert ref == {"module": "sympscale.train", "qualname": "_task", "file": None, "unwrap": False}
    assert wire.load_task(ref) is sympscale.train._task

    def closure(cfg):
        return cfg

    assert wire.task_reference(closure) is None  # shipped pickled, on the child's stdin pipe only
    assert wire.task_reference(lambda cfg: cfg) is None


def test_the_child_never_unpickles_its_stdin(tmp_path):
    marker = tmp_path / "unpickled"
    r = subprocess.run(
        [sys.executable, "-m", "sympscale.launcher.child"],
        input=pickle.dumps(_Marker(str(marker))),
        capture_output=True,
        timeout=SLOW_MACHINE,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert r.returncode != 0
    assert not marker.exists()
    rec = wire.decode_result(r.stdout.strip().splitlines()[-1])
    assert rec["status"] == "FAILED" and "could not set up the job" in rec["error"]


def test_planted_payload_and_result_files_are_never_executed(tmp_path):
    """A job (standing for anyone who can write the sweep folder) plants pickles named like the old launcher's
    payload and result files while the sweep runs; none may be loaded, by the launcher or by a later job."""
    marker = tmp_path / "unpickled"
    # one worker: job 0 plants the files before job 1 starts; job 0 then exits 0 without reporting a result
    r = toy(
        tmp_path,
        "seed=1,2,3",
        "hydra.launcher.cpu_workers=1",
        env={"TOY_PLANT": str(marker), "TOY_FAULTS": "1:exit0"},
    )
    assert not marker.exists(), "a planted pickle was loaded"
    jobs = summary(tmp_path)
    assert [jobs[n]["status"] for n in range(3)] == ["failed", "done", "done"], r.stdout[-3000:]
    assert "left no result" in jobs[0]["cause"]
    assert r.returncode != 0
    # the launcher writes nothing into .launcher/ but its lock: every other file there is a planted one, intact
    blob = (tmp_path / "sweep" / ".launcher" / "0.payload").read_bytes()
    others = [p for p in (tmp_path / "sweep" / ".launcher").iterdir() if p.name != "lock"]
    assert len(others) == 40 and all(p.read_bytes() == blob for p in others)


def test_the_launcher_and_the_children_of_a_task_without_jax_never_import_it(tmp_path):
    """The launcher (its process plans, queues and reports) and the app-agnostic child entry point import no JAX:
    only a task that uses it pays for it (~1 s per process)."""
    report = tmp_path / "parent_modules.json"
    r = toy(tmp_path, "seed=1,2", env={"TOY_PARENT_MODULES": str(report)})
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert json.loads(report.read_text()) == {"jax": False}
    children = [json.loads(p.read_text()) for p in sorted((tmp_path / "sweep").glob("*/started.json"))]
    assert len(children) == 2 and not any(c["jax"] for c in children)


@pytest.mark.parametrize("users", [None, "0", "1"])
def test_a_jobs_environment_carries_the_users_jax_enable_x64_not_sympscales(monkeypatch, users):
    """Importing sympscale sets JAX_ENABLE_X64=1 for its own JAX; the environment the launcher builds for a job
    passes on what the user had (a SympScale job turns float64 on again itself)."""
    import sympscale
    from sympscale.launcher.devices import child_env, plan_devices

    monkeypatch.setattr(sympscale, "_SET_HERE", True)
    monkeypatch.setattr(sympscale, "_USERS", users)
    plan = plan_devices("cpu", cpu_workers=1)
    env = child_env(plan, plan.devices[0], base={"PATH": "/bin", "JAX_ENABLE_X64": "1"})
    assert env.get("JAX_ENABLE_X64") == users and env["PATH"] == "/bin"


# ------------------------------------------------------------------------------------------ one job's folder
def test_a_job_that_cannot_write_its_folder_fails_alone(tmp_path):
    # root ignores permission bits, so block the folder in a way that fails for root too: a file in its place
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "1").write_text("not a folder\n")
    r = toy(tmp_path, "seed=1,2,3")
    assert r.returncode != 0
    jobs = summary(tmp_path)
    assert [jobs[n]["status"] for n in range(3)] == ["done", "failed", "done"], r.stdout[-3000:]
    cause = jobs[1]["cause"]
    assert "cannot write job folder" in cause and str(tmp_path / "sweep" / "1") in cause and "in the way" in cause
    assert "Traceback" not in r.stdout + r.stderr, (r.stdout + r.stderr)[-3000:]
    assert "cannot write job folder" in r.stderr + r.stdout
    assert (tmp_path / "sweep" / "1").read_text() == "not a folder\n"


# ------------------------------------------------------------------------------------------ signals
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_prints_the_summary_and_marks_running_jobs_interrupted(tmp_path, sig):
    parent = toy_popen(tmp_path, "seed=1,2,3,4", env={"TOY_SLEEP": "120"})
    try:
        wait_for(lambda: len(started(tmp_path)) == 2, what="two jobs to start")
        pids = started(tmp_path)
        parent.send_signal(sig)
        out, err = parent.communicate(timeout=120)
    finally:
        parent.kill()
    assert parent.returncode == 128 + sig, err[-3000:]
    assert "status" in out and "interrupted" in out and "cancelled" in out, out[-3000:]
    jobs = summary(tmp_path)
    for n in range(4):
        if n in pids:
            assert jobs[n]["status"] == "interrupted" and sig.name in jobs[n]["cause"], jobs[n]
            st = status_file(tmp_path, n)
            assert st["status"] == "interrupted" and sig.name in st["cause"], st
            assert launcher_record(tmp_path, n)["status"] == "interrupted"
        else:
            assert jobs[n]["status"] == "cancelled" and jobs[n]["attempts"] == 0, jobs[n]
    assert "running" not in {j["status"] for j in jobs.values()}


def test_a_child_killed_from_outside_fails_with_its_signal(tmp_path):
    parent = toy_popen(tmp_path, "seed=1,2,3", env={"TOY_FAULTS": "1:hang", "TOY_HANG": "120"})
    try:
        wait_for(lambda: 0 in started(tmp_path), what="job 0 to start")
        os.kill(started(tmp_path)[0], signal.SIGKILL)
        out, err = parent.communicate(timeout=SLOW_MACHINE)
    finally:
        parent.kill()
    assert parent.returncode != 0
    jobs = summary(tmp_path)
    assert jobs[0]["status"] == "failed" and jobs[0]["cause"] == "killed by SIGKILL", jobs[0]
    assert jobs[1]["status"] == jobs[2]["status"] == "done"
    st = status_file(tmp_path, 0)
    assert st["status"] == "failed" and st["cause"] == "killed by SIGKILL", st
    assert launcher_record(tmp_path, 0)["cause"] == "killed by SIGKILL"
    assert status_file(tmp_path, 1)["status"] == "done"


def test_fail_fast_blames_the_job_that_failed_first(tmp_path):
    # job 0 is still running (and is cancelled) when job 1 fails: the error must name job 1
    r = toy(
        tmp_path,
        "seed=1,2",
        "hydra.launcher.fail_fast=true",
        env={"TOY_FAULTS": "1:hang,2:raise", "TOY_HANG": "120", "TOY_SLEEP": "0.5"},
    )
    assert r.returncode != 0
    jobs = summary(tmp_path)
    assert jobs[1]["status"] == "failed" and jobs[0]["status"] == "cancelled", jobs
    final = (r.stderr.strip() or r.stdout.strip()).splitlines()
    text = "\n".join(final[-5:])
    assert "job #1 (seed=2) failed first" in text and "injected failure for seed 2" in text, text
    assert "seed=1" not in text.split("failed first")[0]
    assert status_file(tmp_path, 0)["status"] == "interrupted"


# ------------------------------------------------------------------------------------------ one launcher per folder
def test_a_second_launcher_on_the_same_sweep_is_refused(tmp_path):
    a = toy_popen(tmp_path, "seed=1,2,3", env={"TOY_SLEEP": "8"})
    b = toy_popen(tmp_path, "seed=1,2,3", env={"TOY_SLEEP": "8"})
    (out_a, err_a), (out_b, err_b) = a.communicate(timeout=SLOW_MACHINE), b.communicate(timeout=SLOW_MACHINE)
    codes = sorted([a.returncode, b.returncode])
    assert codes == [0, 2], (codes, err_a[-2000:], err_b[-2000:])
    winner, loser_out, loser_err = (a, out_b, err_b) if a.returncode == 0 else (b, out_a, err_a)
    assert "in use by another launcher" in loser_err and f"PID {winner.pid}" in loser_err and "host" in loser_err
    assert "[launcher] start" not in loser_out
    seeds = [line.split()[0] for line in (tmp_path / "sweep" / "starts.log").read_text().splitlines()]
    assert sorted(seeds) == ["1", "2", "3"], seeds  # every job ran exactly once


def test_the_shards_of_a_node_array_share_a_sweep_side_by_side(tmp_path):
    """Each share of the grid has its own owner and its own summary: node-array tasks are not refused."""
    a = toy_popen(tmp_path, "seed=1,2,3,4", "hydra.launcher.shard=0/2", env={"TOY_SLEEP": "4"})
    b = toy_popen(tmp_path, "seed=1,2,3,4", "hydra.launcher.shard=1/2", env={"TOY_SLEEP": "4"})
    (_, err_a), (_, err_b) = a.communicate(timeout=SLOW_MACHINE), b.communicate(timeout=SLOW_MACHINE)
    assert (a.returncode, b.returncode) == (0, 0), (err_a[-2000:], err_b[-2000:])
    seeds = [line.split()[0] for line in (tmp_path / "sweep" / "starts.log").read_text().splitlines()]
    assert sorted(seeds) == ["1", "2", "3", "4"], seeds
    for i in (0, 1):
        rows = json.loads((tmp_path / "sweep" / f"launcher_summary.shard{i}of2.json").read_text())["jobs"]
        assert [r["status"] for r in rows] == ["done", "done"]


def test_a_launcher_of_the_whole_grid_and_the_shares_of_a_node_array_exclude_each_other(tmp_path):
    """Shares run side by side; a launcher of the whole grid started beside them (to finish the sweep from a login
    node) would run their jobs a second time: refused while any share runs, and a share while it runs."""
    from sympscale.launcher.lock import own

    sweep = tmp_path / "sweep"
    shares = own(sweep, (0, 2)) + own(sweep, (1, 2))
    with pytest.raises(SweepLocked, match="in use by the launchers of node-array shares of it"):
        own(sweep, None)
    with pytest.raises(SweepLocked, match=f"in use by another launcher \\(host .*PID {os.getpid()}"):
        own(sweep, (1, 2))  # the same share twice
    for lock in shares:
        lock.release()
    whole = own(sweep, None)
    with pytest.raises(SweepLocked, match=f"in use by another launcher \\(host .*PID {os.getpid()}"):
        own(sweep, (0, 2))
    whole[0].release()
    r = toy(tmp_path, "seed=1,2", "hydra.launcher.shard=1/2")  # and the launcher takes both locks end to end
    assert r.returncode == 0, r.stderr[-2000:]


def test_a_lock_left_by_a_dead_launcher_does_not_block(tmp_path):
    path = tmp_path / "sweep" / ".launcher" / "lock"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"host": "elsewhere", "pid": 999999999, "started_at": "long ago"}))
    lock = SweepLock(path).acquire()  # the file is only a note; the kernel's flock died with its holder
    try:
        assert json.loads(path.read_text())["pid"] == os.getpid()
        with pytest.raises(SweepLocked, match=f"PID {os.getpid()}"):
            SweepLock(path).acquire()
    finally:
        lock.release()
    SweepLock(path).acquire().release()
    r = toy(tmp_path, "seed=1")
    assert r.returncode == 0, r.stderr[-2000:]


# ------------------------------------------------------------------------------------------ files and resume
def test_files_follow_the_umask(tmp_path):
    old = os.umask(0o002)
    try:
        job = JobDir(tmp_path / "job")
        job.write_config({"a": 1})
        job.write_metrics({"m": 1.0})
        job.set_status("done")
        write_json(tmp_path / "x.json", {})
    finally:
        os.umask(old)
    for name in ("config.json", "metrics.json", "status.json"):
        assert stat.S_IMODE((tmp_path / "job" / name).stat().st_mode) == 0o664, name
    os.umask(0o077)
    try:
        write_json(tmp_path / "private.json", {})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "private.json").stat().st_mode) == 0o600
    # the launcher and its jobs write group-readable files under umask 002
    r = toy(tmp_path, "seed=1", preexec_fn=lambda: os.umask(0o002))
    assert r.returncode == 0, r.stderr[-2000:]
    sweep = tmp_path / "sweep"
    for p in (sweep / "launcher_summary.json", sweep / "0" / "launcher.json", sweep / "0" / "status.json"):
        assert stat.S_IMODE(p.stat().st_mode) & 0o040, p


def test_bookkeeping_settings_do_not_rerun_a_finished_job(tmp_path):
    r = toy(tmp_path, "seed=1,2", "data.cache_dir=/a", "train.log_every=5", "name=first")
    assert r.returncode == 0, r.stderr[-2000:]
    r = toy(tmp_path, "seed=1,2", "data.cache_dir=/b", "train.log_every=7", "name=second")
    assert r.returncode == 0, r.stderr[-2000:]
    assert [j["status"] for j in summary(tmp_path).values()] == ["skipped", "skipped"]
    r = toy(tmp_path, "seed=1,3")  # a different computation in folder 1: it runs again
    assert [j["status"] for j in summary(tmp_path).values()] == ["skipped", "done"]
    seeds = [line.split()[0] for line in (tmp_path / "sweep" / "starts.log").read_text().splitlines()]
    assert sorted(seeds) == ["1", "2", "3"]


def test_a_status_file_is_corrected_only_when_the_job_left_it_running(tmp_path):
    from sympscale.launcher_hook import result

    def job_with(status_written, launcher_status, cause):
        d = tmp_path / f"{status_written}-{launcher_status}"
        JobDir(d).set_status(status_written, error="its own words")
        verdict = result(d, launcher_status, cause)
        return json.loads((d / "status.json").read_text()), verdict

    st, verdict = job_with("running", "failed", "killed by SIGKILL")
    assert (
        st["status"] == "failed" and st["cause"] == "killed by SIGKILL" and verdict == ("failed", "killed by SIGKILL")
    )
    assert {"started", "updated", "pid"} <= set(st)  # JobDir.set_status's format, kept
    assert job_with("running", "interrupted", "launcher stopped by SIGTERM")[0]["status"] == "interrupted"
    assert job_with("running", "cancelled", "cancelled by fail_fast after #1 failed")[0]["status"] == "interrupted"
    kept, verdict = job_with("failed", "failed", "exited with code 1")
    assert kept["status"] == "failed" and kept["error"] == "its own words" and "cause" not in kept
    assert verdict == ("failed", "exited with code 1")
    assert job_with("done", "done", None) == (
        json.loads((tmp_path / "done-done" / "status.json").read_text()),
        ("done", None),
    )
    # a task that returned without finishing its own record is not counted as done
    st, verdict = job_with("running", "done", None)
    assert st["status"] == "failed" and "still says 'running'" in st["cause"] and verdict[0] == "failed"
    # nor one whose record says it failed; a job without a status file keeps the launcher's verdict
    assert job_with("failed", "done", None)[1][0] == "failed"
    assert result(tmp_path / "no-status", "done", None) == ("done", None)
