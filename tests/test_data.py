"""Dataset cache: hash-keyed, float64, split by trajectory, train-split statistics, one copy under contention."""

import multiprocessing as mp

import numpy as np
import pytest

from sympscale.data import DataSpec, dataset_key, load_or_generate
from sympscale.systems import make_system

SPEC = DataSpec(n_trajectories=10, n_obs=40)


def test_split_statistics_and_dtype(tmp_path):
    s = make_system("toda", 8)
    ds = load_or_generate(s, SPEC, data_seed=3, cache_dir=tmp_path, log=lambda m: None)
    assert (ds.train.shape, ds.val.shape, ds.test.shape) == ((7, 40, 8), (1, 40, 8), (2, 40, 8))
    assert ds.train.dtype == np.float64 and ds.mean.dtype == np.float64
    np.testing.assert_allclose(ds.mean, ds.train.mean(axis=(0, 1)), rtol=1e-12)
    np.testing.assert_allclose(ds.std, ds.train.std(axis=(0, 1)), rtol=1e-12)
    # trajectories, not time windows, are split: no test trajectory appears in train
    assert not any(np.allclose(t[0], r[0]) for t in ds.test for r in ds.train)
    assert ds.meta["reference_invariant_drift"]["H"] < 1e-9


def test_extra_test_trajectories_are_their_own_draw_and_leave_the_split_as_it_was(tmp_path):
    import dataclasses

    s = make_system("toda", 8)
    plain = load_or_generate(s, SPEC, data_seed=3, cache_dir=tmp_path, log=lambda m: None)
    more = load_or_generate(s, dataclasses.replace(SPEC, extra_test=5), data_seed=3, cache_dir=tmp_path, log=print)
    assert more.key != plain.key and dataset_key(s, SPEC, 3) == plain.key  # no extra: the key it always had
    for a, b in ((more.train, plain.train), (more.val, plain.val), (more.mean, plain.mean), (more.std, plain.std)):
        np.testing.assert_array_equal(a, b)
    assert more.test.shape == (7, 40, 8)
    np.testing.assert_array_equal(more.test[:2], plain.test)
    extra = more.test[2:]
    assert not any(np.allclose(e[0], t[0]) for e in extra for t in (*plain.train, *plain.val, *plain.test))
    assert len({tuple(e[0]) for e in extra}) == 5 and more.meta["initial_conditions"]["kept"] == 15
    with pytest.raises(ValueError, match="data.extra_test=-1 must be >= 0"):
        DataSpec(extra_test=-1).split_sizes()


def test_key_changes_with_everything_that_defines_the_data():
    s = make_system("fput", 8)
    base = dataset_key(s, SPEC, 0)
    assert dataset_key(s, SPEC, 1) != base
    assert dataset_key(make_system("fput", 8, beta=0.5), SPEC, 0) != base
    assert dataset_key(make_system("fput", 10), SPEC, 0) != base
    assert dataset_key(s, DataSpec(n_trajectories=10, n_obs=41), 0) != base
    assert dataset_key(make_system("fput", 8), SPEC, 0) == base


def test_cache_hit_does_not_regenerate(tmp_path):
    s = make_system("fput", 8)
    msgs: list[str] = []
    a = load_or_generate(s, SPEC, data_seed=0, cache_dir=tmp_path, log=msgs.append)
    b = load_or_generate(s, SPEC, data_seed=0, cache_dir=tmp_path, log=msgs.append)
    assert sum("generating" in m for m in msgs) == 1
    np.testing.assert_array_equal(np.asarray(a.test), np.asarray(b.test))


def _worker(cache_dir, queue):
    import sympscale  # noqa: F401

    s = make_system("fput", 8)
    msgs: list[str] = []
    ds = load_or_generate(s, SPEC, data_seed=7, cache_dir=cache_dir, log=msgs.append)
    queue.put((sum("generating" in m for m in msgs), float(np.sum(ds.test))))


@pytest.mark.slow
def test_concurrent_jobs_produce_one_valid_copy(tmp_path):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(tmp_path), queue)) for _ in range(3)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sum(r[0] for r in results) == 1  # exactly one process generated
    assert len({r[1] for r in results}) == 1  # everyone read the same data
    entries = [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")]
    assert len(entries) == 1 and not entries[0].startswith(".")  # no half-written temp folder left


@pytest.mark.parametrize("damage", ["truncate", "flip", "meta", "missing"])
def test_a_damaged_cache_entry_is_detected_and_regenerated(tmp_path, damage):
    import json

    s = make_system("fput", 8)
    msgs: list[str] = []
    a = load_or_generate(s, SPEC, data_seed=0, cache_dir=tmp_path, log=msgs.append)
    entry, expected = tmp_path / a.key, np.array(a.test)  # a copy: damaging the file in place voids its mapping
    del a
    recorded = json.loads((entry / "meta.json").read_text())["files"]["trajectories.npy"]
    traj = entry / "trajectories.npy"
    assert recorded["bytes"] == traj.stat().st_size and len(recorded["sha256"]) == 64
    if damage == "truncate":
        traj.write_bytes(traj.read_bytes()[: traj.stat().st_size // 2])
    elif damage == "flip":  # same size, one byte changed: only the checksum can tell
        raw = bytearray(traj.read_bytes())
        raw[-8] ^= 0xFF
        traj.write_bytes(bytes(raw))
    elif damage == "meta":
        (entry / "meta.json").write_text('{"key": ')
    else:
        (entry / "stats.npz").unlink()
    msgs.clear()
    b = load_or_generate(s, SPEC, data_seed=0, cache_dir=tmp_path, log=msgs.append)
    warnings = [m for m in msgs if m.startswith("WARNING")]
    assert len(warnings) == 1 and str(entry) in warnings[0] and "regenerating" in warnings[0], msgs
    np.testing.assert_array_equal(expected, np.asarray(b.test))
    msgs.clear()
    load_or_generate(s, SPEC, data_seed=0, cache_dir=tmp_path, log=msgs.append)  # repaired: a plain hit
    assert not any("WARNING" in m or "generating" in m for m in msgs)
