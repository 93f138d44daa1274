"""Storage faults (issue 28), end to end: a full filesystem (a real tmpfs when the tests run as root), damaged
records found by a rerun, a 'running' status whose process is gone, a second user of the group resuming a run.

The write path's own faults (injected ENOSPC, EDQUOT, EROFS; the umask) are in test_atomic.py, damaged
checkpoints in test_training.py and test_bundle.py.
"""

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from sympscale import atomic, launcher_hook
from sympscale.jobdir import JobDir, orphaned, previous
from sympscale.launcher import records
from test_assembly import TINY, interrupt_after_first_checkpoint, run_once
from test_launcher_faults import summary, toy_env
from test_training import DAMAGE

APP = Path(__file__).parent / "apps" / "launcher_toy.py"
DAMAGES = {k: DAMAGE[k] for k in ("half", "flipped", "empty")}


def _dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True).stdout)


@contextlib.contextmanager
def tmpfs(size: str):
    """A fresh tmpfs of `size` (root only: the tests then exercise a real full filesystem)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root); test_atomic.py injects ENOSPC instead")
    where = Path(tempfile.mkdtemp(prefix="sympscale-tmpfs-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if mounted.returncode:
        where.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
        where.rmdir()


# ------------------------------------------------------------------------------------------ a full filesystem
def test_a_run_whose_dataset_cache_is_full_says_no_space_left_with_the_path_and_leaves_nothing(tmp_path):
    with tmpfs("16k") as full:
        cmd = [sys.executable, "-m", "sympscale.train", "train=smoke", "system=toda", "D=8"]
        r = subprocess.run(
            [*cmd, f"data.cache_dir={full}", f"hydra.run.dir={tmp_path / 'run'}"],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "JAX_PLATFORMS": "cpu"},
        )
        left = [p.name for p in full.iterdir() if not p.name.endswith(".lock")]
    said = [line for line in r.stderr.splitlines() if line.startswith("sympscale: ")]
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert len(said) == 1 and said[0].startswith(f"sympscale: no space left on device writing {full}/toda-D8"), said
    assert "GiB free" in said[0] and "rerun the same command" in said[0]
    assert left == []  # no half-published entry, no temp folder


def _toy_sweep(sweep: Path, *args, env=None):
    cmd = [sys.executable, str(APP), "-m", "hydra.launcher.platform=cpu", "hydra.launcher.cpu_workers=1"]
    return subprocess.run(
        [*cmd, "hydra.launcher.progress_every=600", *args, f"hydra.sweep.dir={sweep}"],
        env=toy_env(**(env or {})),
        cwd=sweep.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_sweep_that_fills_its_disk_says_so_line_by_line_and_a_rerun_after_freeing_space_finishes_it(tmp_path):
    """Job 0 finishes, then fills the filesystem: the launcher cannot write its records or its summary, says so
    in one line each, finishes the sweep as far as it can and exits 1 without a traceback. Once space is freed,
    the same command finishes every job; the job whose launcher record was lost runs again (said, not hidden)."""
    with tmpfs("1m") as disk:
        sweep = disk / "sweep"
        sweep.mkdir()
        r = _toy_sweep(sweep, "seed=1,2", env={"TOY_FAULTS": "1:fill"})
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
        lines = [x for x in r.stderr.splitlines() if "no space left on device writing" in x]
        assert any(f"{sweep}/0/launcher.json" in x for x in lines), r.stderr[-3000:]
        assert any(f"{sweep}/launcher_summary.json" in x for x in lines), r.stderr[-3000:]
        assert "launcher record(s) could not be written" in r.stderr and "free space" in r.stderr
        assert not [p for p in sweep.rglob(".*.tmp")]  # no temp file survives
        (sweep / "filler").unlink()
        r = _toy_sweep(sweep, "seed=1,2")
        assert r.returncode == 0, r.stderr[-3000:]
        assert [j["status"] for j in summary(disk).values()] == ["done", "done"]
        assert json.loads((sweep / "0" / "status.json").read_text())["status"] == "done"


# ------------------------------------------------------------------------------------------ damaged records
@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_metrics_or_status_file_is_kept_aside_when_a_rerun_finds_it(tmp_path, damage):
    job = JobDir(tmp_path / "job")
    job.write_metrics({"eval": 1})
    job.set_status("done")
    for name in (JobDir.METRICS, JobDir.STATUS):
        (job.path / name).write_bytes(DAMAGES[damage]((job.path / name).read_bytes()))
    before = {n: (job.path / n).read_bytes() for n in (JobDir.METRICS, JobDir.STATUS)}
    said = previous(job.path)
    assert len(said) == 2 and all("cannot be used" in x and "kept as" in x for x in said), said
    for name, data in before.items():
        (kept,) = job.path.glob(f"{Path(name).stem}.damaged-*.json")
        assert kept.read_bytes() == data and not (job.path / name).exists()
    assert previous(job.path) == []  # said once


def test_a_job_opening_a_finished_folder_with_damaged_files_keeps_them_and_runs(tmp_path):
    """What `job.execute` does first with its folder (`job._open`): the damaged files said and kept, the job's
    own config and a 'running' status written."""
    from sympscale.job import _open

    done = _finished(tmp_path)
    done.write_config({"seed": 1})
    (tmp_path / "metrics.json").write_bytes(DAMAGE["flipped"]((tmp_path / "metrics.json").read_bytes()))
    (tmp_path / "status.json").write_bytes((tmp_path / "status.json").read_bytes()[:20])
    said = []
    _open(tmp_path, {"seed": 1}, said.append)
    warnings = [x for x in said if "cannot be used" in x]
    assert len(warnings) == 2 and all(str(tmp_path) in x for x in warnings), said
    assert len(list(tmp_path.glob("metrics.damaged-*.json"))) == len(list(tmp_path.glob("status.damaged-*.json"))) == 1
    assert json.loads((tmp_path / "status.json").read_text())["status"] == "running"


def _finished(folder: Path) -> JobDir:
    job = JobDir(folder)
    job.write_metrics({"status": "done", "eval": {}})
    atomic.write(folder / JobDir.PARAMS, lambda f: np.savez(f, np.arange(3000.0), np.ones((40, 40))))
    job.set_status("done", outcome="done")
    return job


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_finished_jobs_damaged_result_makes_the_launcher_run_it_again_and_keeps_the_file(tmp_path, damage):
    """What the launcher asks of a job found done on resume (`launcher_hook.result`): its metrics.json and
    params.npz read whole; a damaged one is kept aside and the job runs again; a damaged status.json alone is
    restored from metrics.json (the result stands)."""
    for name in (JobDir.METRICS, JobDir.PARAMS):
        folder = _finished(tmp_path / name).path
        data = DAMAGES[damage]((folder / name).read_bytes())
        (folder / name).write_bytes(data)
        status, cause = launcher_hook.result(folder, "done", None)
        (kept,) = folder.glob(f"{Path(name).stem}.damaged-*{Path(name).suffix}")
        assert status == "failed" and "cannot be used" in cause and kept.name in cause, cause
        assert kept.read_bytes() == data and not (folder / name).exists()
    folder = _finished(tmp_path / "status").path
    (folder / JobDir.STATUS).write_bytes(DAMAGES[damage]((folder / JobDir.STATUS).read_bytes()))
    assert launcher_hook.result(folder, "done", None) == ("done", None)
    restored = json.loads((folder / JobDir.STATUS).read_text())
    assert restored["status"] == "done" and restored["restored_from"] == "metrics.json"
    assert len(list(folder.glob("status.damaged-*.json"))) == 1
    assert launcher_hook.result(_finished(tmp_path / "whole").path, "done", None) == ("done", None)


@pytest.mark.parametrize("damage", ["half", "flipped"])
def test_a_damaged_launcher_record_is_kept_aside_and_the_job_counts_as_new(tmp_path, damage, caplog):
    (tmp_path / records.RECORD).write_text(json.dumps({"status": "done", "key": "k"}))
    data = DAMAGES[damage]((tmp_path / records.RECORD).read_bytes())
    (tmp_path / records.RECORD).write_bytes(data)
    assert records.read(tmp_path, keep=False) is None and (tmp_path / records.RECORD).exists()  # a dry run
    assert records.read(tmp_path) is None
    (kept,) = tmp_path.glob("launcher.damaged-*.json")
    assert kept.read_bytes() == data and "kept as" in caplog.text and str(tmp_path) in caplog.text


def test_a_rerun_through_the_launcher_runs_again_the_jobs_whose_records_are_damaged(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    assert _toy_sweep(sweep, "seed=1,2,3").returncode == 0
    (sweep / "0" / "launcher.json").write_bytes((sweep / "0" / "launcher.json").read_bytes()[:30])
    (sweep / "1" / "metrics.json").write_bytes(DAMAGE["flipped"]((sweep / "1" / "metrics.json").read_bytes()))
    dry = _toy_sweep(sweep, "seed=1,2,3", "hydra.launcher.dry_run=true")
    assert dry.returncode == 0 and not list(sweep.rglob("*.damaged-*")), dry.stderr[-2000:]  # writes nothing
    r = _toy_sweep(sweep, "seed=1,2,3")
    assert r.returncode == 0, r.stderr[-3000:]
    assert [j["status"] for j in summary(tmp_path).values()] == ["done", "done", "skipped"]
    assert len(list(sweep.glob("0/launcher.damaged-*.json"))) == len(list(sweep.glob("1/metrics.damaged-*.json"))) == 1
    seeds = sorted(line.split()[0] for line in (sweep / "starts.log").read_text().splitlines())
    assert seeds == ["1", "1", "2", "2", "3"]


# ------------------------------------------------------------------------------------------ a process that is gone
def test_a_running_status_whose_process_is_gone_is_an_interruption(tmp_path):
    from sympscale.analysis.collect import read_job

    job = JobDir(tmp_path / "job")
    job.write_config({"system": {"name": "toda"}, "model": {"name": "gru"}, "D": 8, "seed": 1})
    job.set_status("running")
    rec = json.loads((job.path / "status.json").read_text())
    assert rec["host"] == atomic.host() and orphaned(rec) is None  # this process: still running
    assert orphaned({**rec, "host": "another-node", "pid": _dead_pid()}) is None  # not ours to judge
    rec["pid"] = _dead_pid()
    (job.path / "status.json").write_text(json.dumps(rec))
    assert orphaned(rec) == f"its process {rec['pid']} on {rec['host']} is gone"
    row, reason, _ = read_job(job.path, tmp_path)
    assert row["status"] == "interrupted" and "is gone" in reason and "rerun the same command" in reason, reason
    (said,) = previous(job.path)
    assert "was interrupted" in said and "resumes" in said


# ------------------------------------------------------------------------------------------ a shared folder
GROUP, FIRST, SECOND = 47111, 47112, 47113  # a group and two of its members (ids no account uses)


@contextlib.contextmanager
def acting_as(uid: int):
    """This process's effective user `uid` in group GROUP with umask 002, as a colleague on a shared node."""
    old = os.umask(0o002)
    os.setegid(GROUP)
    os.seteuid(uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)
        os.umask(old)


def test_a_second_user_of_the_group_resumes_an_interrupted_run(tmp_path, monkeypatch):
    """With umask 002, what one user's interrupted run wrote (folder, checkpoint, log, dataset cache) is another
    group member's to resume."""
    if os.geteuid() != 0:
        pytest.skip("switching users needs root (CI runs as root); test_atomic.py checks the mode bits")
    with acting_as(FIRST):
        code = (Path(np.__file__).parent, Path(atomic.__file__).parent)
        readable = all(os.access(p, os.R_OK | os.X_OK, effective_ids=True) for p in code)
    if not readable:  # .ci/run makes its environment readable; a private one cannot serve another user
        pytest.skip(f"this Python environment or checkout ({', '.join(map(str, code))}) is private to its user")
    overrides = [*TINY, "model=gru", "train.val_every=0"]
    shared = Path(tempfile.mkdtemp(prefix="sympscale-shared-"))
    try:
        os.chown(shared, 0, GROUP)
        shared.chmod(0o2775)  # a group's project folder
        stop = interrupt_after_first_checkpoint(monkeypatch)
        with acting_as(FIRST), pytest.raises(stop):
            run_once(overrides, shared)
        monkeypatch.undo()
        assert (shared / "job" / "checkpoint.npz").stat().st_uid == FIRST
        said = []
        with acting_as(SECOND):
            resumed = run_once(overrides, shared, said.append)
        assert any("resuming from the checkpoint at step 20" in x for x in said), said
        assert resumed["train"]["resumed_from_step"] == 20 and resumed["train"]["steps_trained"] == 40
        assert (shared / "job" / "params.npz").stat().st_uid == SECOND
        assert json.loads((shared / "job" / "status.json").read_text())["status"] == "done"
    finally:
        subprocess.run(["rm", "-rf", str(shared)], check=False)
