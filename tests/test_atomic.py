"""One way to write a file (issue 28): temp in the same folder, fsync, rename; the temp removed on any failure;
the mode from the umask; out of space or quota, or a read-only filesystem: one line saying what, where and what
to do; a killed writer's temp removed by the next run of its folder."""

import errno
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from sympscale import atomic, checkpoint
from sympscale.jobdir import JobDir
from sympscale.launcher.jsonfile import write_json


def _no_temps(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EROFS])
def test_a_write_that_runs_out_of_space_says_so_in_one_line_and_leaves_no_temp(tmp_path, monkeypatch, code):
    target = tmp_path / "metrics.json"
    write_json(target, {"old": 1})  # what was there stays

    def full(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(atomic.StorageFull) as info:
        write_json(target, {"new": 2})
    line = str(info.value)
    assert "\n" not in line and str(target) in line and "free" in line, line
    assert line.startswith({errno.ENOSPC: "no space left", errno.EDQUOT: "disk quota", errno.EROFS: "read-only"}[code])
    assert json.loads(target.read_text()) == {"old": 1} and _no_temps(tmp_path)


def test_a_checkpoint_write_that_fails_leaves_no_temp_and_the_old_checkpoint_whole(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.npz"
    checkpoint.save(path, 5, {"a": np.ones(3)}, tag="t")

    def fail(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", fail)
    with pytest.raises(atomic.StorageFull, match="no space left on device writing .*checkpoint.npz"):
        checkpoint.save(path, 6, {"a": np.zeros(3)}, tag="t")
    assert _no_temps(tmp_path) and checkpoint.load(path, {"a": np.ones(3)}, tag="t")[0] == 5


def test_files_follow_the_umask_so_a_group_can_resume_a_shared_sweep(tmp_path):
    old = os.umask(0o002)
    try:
        write_json(tmp_path / "status.json", {"status": "running"})
        checkpoint.save(tmp_path / "checkpoint.npz", 1, {"a": np.ones(2)}, tag="t")
    finally:
        os.umask(old)
    for name in ("status.json", "checkpoint.npz"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o664, name


def test_a_killed_writers_temp_files_are_removed_when_the_folder_is_next_opened(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid, here = int(dead.stdout), atomic.host()  # a process that has exited
    assert atomic.temp_path(tmp_path / "x.json").name.startswith(f".x.json.{os.getpid()}@{here}.")
    stale = tmp_path / f".checkpoint.npz.{pid}@{here}.0123abcd.tmp"
    older = tmp_path / f".metrics.json.{pid}.0123abcd.tmp"  # earlier versions: no host, judged as this host's
    legacy = tmp_path / ".checkpoint.npz.k2j4h5g6.npz"  # what earlier versions left behind
    live = tmp_path / f".metrics.json.{os.getpid()}@{here}.0123abcd.tmp"  # a writer still at work
    elsewhere = tmp_path / f".status.json.{pid}@another-node.0123abcd.tmp"  # its pid means nothing here
    long_gone = tmp_path / f".params.npz.{pid}@another-node.4567abcd.tmp"
    for p in (stale, older, legacy, live, elsewhere, long_gone):
        p.write_bytes(b"half")
    day = time.time() - atomic.OTHER_HOST_STALE_S - 60
    os.utime(long_gone, (day, day))
    (tmp_path / ".hidden-note").write_text("not ours")
    JobDir(tmp_path)
    assert not any(p.exists() for p in (stale, older, legacy, long_gone))
    assert live.exists() and elsewhere.exists() and (tmp_path / ".hidden-note").exists()


def test_a_killed_generators_temp_folder_is_removed_by_the_next_dataset_load(tmp_path):
    from sympscale.data import DataSpec, load_or_generate
    from sympscale.systems import make_system

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    left = tmp_path / f".toda-D8-s0-x.{int(dead.stdout)}@{atomic.host()}.0123abcd"  # as `_write` names it
    left.mkdir()
    (left / "trajectories.npy").write_bytes(b"half")
    spec = DataSpec(n_trajectories=4, n_obs=20)
    load_or_generate(make_system("toda", 8), spec, data_seed=0, cache_dir=tmp_path, log=lambda m: None)
    assert not left.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_full_disk_while_the_dataset_is_cached_says_no_space_left_with_the_path(tmp_path, monkeypatch):
    from sympscale.data import DataSpec, load_or_generate
    from sympscale.systems import make_system

    real = np.save

    def short_write(path, arr, *a, **k):  # what numpy says when the disk fills under it
        real(path, arr[:1], *a, **k)
        raise OSError(f"{arr.nbytes} requested and {arr[:1].nbytes} written")

    monkeypatch.setattr(np, "save", short_write)
    with pytest.raises(atomic.StorageFull, match=r"^no space left on device writing .*toda-D8-s0-.* free\)"):
        load_or_generate(
            make_system("toda", 8),
            DataSpec(n_trajectories=4, n_obs=20),
            data_seed=0,
            cache_dir=tmp_path,
            log=lambda m: None,
        )
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []  # nothing half-published
