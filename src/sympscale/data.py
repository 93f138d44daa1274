"""Reference datasets: generated once per (system, D, data_seed, sizes), cached as float64 `.npy`.

The cache key is a hash of everything that defines the data. Generation happens under a file lock and is
published by an atomic directory rename, so eight jobs asking for the same dataset at once produce exactly
one valid copy and never read a half-written one. Data are fixed across model seeds.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import filelock
import jax
import jax.numpy as jnp
import numpy as np

from sympscale import atomic
from sympscale.diagnostics import ground_truth_horizon, lyapunov_exponent
from sympscale.systems import System

MAX_ROUNDS = 8  # initial-condition filter: vectorised redraw rounds before giving up
CACHE_VERSION = 2  # bump when generation changes in a way the parameters do not capture


@dataclasses.dataclass(frozen=True)
class DataSpec:
    n_trajectories: int = 50
    n_obs: int = 1200
    train_fraction: float = 0.7
    val_fraction: float = 0.1
    lyapunov_trajectories: int = 4  # initial states of the λ₁ estimate
    lyapunov_intervals: int = 0  # length of the λ₁ run in observation intervals (0: n_obs)
    ground_truth_trajectories: int = 4  # trajectories re-integrated with the second reference
    extra_test: int = 0  # held-out trajectories drawn beyond the n_trajectories (their own random stream), all test

    @property
    def total(self) -> int:
        """Trajectories in the dataset: the split ones and the extra test ones."""
        return self.n_trajectories + self.extra_test

    def split_sizes(self) -> tuple[int, int, int]:
        n_train = int(round(self.train_fraction * self.n_trajectories))
        n_val = int(round(self.val_fraction * self.n_trajectories))
        n_test = self.n_trajectories - n_train - n_val
        if min(self.lyapunov_trajectories, self.ground_truth_trajectories) < 1 or self.lyapunov_intervals < 0:
            raise ValueError(
                f"data.lyapunov_trajectories={self.lyapunov_trajectories}, ground_truth_trajectories="
                f"{self.ground_truth_trajectories} must be >= 1 and lyapunov_intervals={self.lyapunov_intervals} >= 0"
            )
        if self.extra_test < 0:
            raise ValueError(f"data.extra_test={self.extra_test} must be >= 0 (extra held-out test trajectories)")
        if min(n_train, n_test) < 1 or n_val < 0:
            raise ValueError(
                f"data.train_fraction={self.train_fraction}, val_fraction={self.val_fraction} of data.n_trajectories="
                f"{self.n_trajectories} leave train={n_train}, val={n_val}, test={n_test}: need at least one train "
                f"and one test trajectory (train_fraction + val_fraction < 1)"
            )
        return n_train, n_val, n_test + self.extra_test


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    train: np.ndarray  # (n_train, n_obs, D) float64
    val: np.ndarray
    test: np.ndarray
    mean: np.ndarray  # (D,) per-coordinate z-score statistics of the training split
    std: np.ndarray
    key: str
    meta: dict


def dataset_key(system: System, spec: DataSpec, data_seed: int) -> str:
    """Stable hash of everything that defines a dataset."""
    desc = {
        "version": CACHE_VERSION,
        "system": system.name,
        "system_params": dataclasses.asdict(system),
        "n_trajectories": spec.n_trajectories,
        "n_obs": spec.n_obs,
        "lyapunov": [spec.lyapunov_trajectories, spec.lyapunov_intervals, spec.ground_truth_trajectories],
        "data_seed": data_seed,
    }
    if spec.extra_test:  # keys of datasets without extra test trajectories stay what they were
        desc["extra_test"] = spec.extra_test
    digest = hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:16]
    return f"{system.name}-D{system.D}-s{data_seed}-{digest}"


EXTRA_TEST_STREAM = 1_000_003  # folded into the data seed's key: the extra test trajectories' own draws


def generate(system: System, spec: DataSpec, data_seed: int) -> tuple[np.ndarray, dict]:
    """All trajectories (n, n_obs, D), vectorised over trajectories, plus a record of the reference's drift: the
    split's n_trajectories, then `spec.extra_test` more from their own random stream (the split's trajectories
    are the same with or without them).

    Systems with an initial-condition filter (close approaches, escapes) reject trajectories after the fact;
    replacements are drawn in further vectorised rounds and the rejections are counted in the record.
    """
    t0 = time.perf_counter()
    base = jax.random.key(data_seed)
    traj, n_drawn, rejected = _draw(system, spec.n_trajectories, spec.n_obs, base)
    if spec.extra_test:
        extra, drawn, more = _draw(system, spec.extra_test, spec.n_obs, jax.random.fold_in(base, EXTRA_TEST_STREAM))
        traj, n_drawn = np.concatenate([traj, extra]), n_drawn + drawn
        rejected = {k: rejected.get(k, 0) + more.get(k, 0) for k in {**rejected, **more}}
    wall = time.perf_counter() - t0
    return traj, {
        "generation_wall_s": wall,
        "reference": system.describe_reference(),
        "reference_invariant_drift": invariant_drift(system, traj),
        "initial_conditions": {"drawn": n_drawn, "kept": spec.total, "rejected": rejected},
        "finite": bool(np.isfinite(traj).all()),
        "diagnostics": system.diagnostics(traj),
    }


def _draw(system: System, n: int, n_obs: int, base) -> tuple[np.ndarray, int, dict[str, int]]:
    """n accepted trajectories from the random stream `base`: (trajectories, states drawn, rejections by reason)."""
    run = jax.jit(system.trajectories, static_argnums=1)
    kept: list[np.ndarray] = []
    rejected: dict[str, int] = {}
    n_drawn, need = 0, n
    for round_ in range(MAX_ROUNDS):
        key = base if round_ == 0 else jax.random.fold_in(base, round_)
        m = need if round_ == 0 else max(2 * need, 4)
        traj = np.asarray(jax.block_until_ready(run(system.sample_initial(key, m), n_obs)))
        n_drawn += m
        reasons = {k: np.asarray(v) for k, v in system.accept(traj).items()}
        bad = np.zeros(m, dtype=bool)
        for k, v in reasons.items():
            rejected[k] = rejected.get(k, 0) + int(v.sum())
            bad |= v
        kept.append(traj[~bad][:need])
        need -= len(kept[-1])
        if need == 0:
            return np.concatenate(kept), n_drawn, rejected
    raise RuntimeError(
        f"{system.name} D={system.D}: only {n - need} of {n} trajectories passed the initial-condition filter after "
        f"{n_drawn} draws (rejected: {rejected}); change the system parameters (e.g. a gentler initial-condition "
        f"family)"
    )


def invariant_drift(system: System, traj: np.ndarray, chunk_bytes: int = 2**28) -> dict[str, float]:
    """max over trajectories and time of |C(t) − C(0)| / max(|C(0)|, scale), in chunks of observations
    (an N-body invariant evaluation holds an N x N matrix per state)."""
    x0 = jnp.asarray(traj[:, 0])
    c0, scales = system.invariants(x0), system.invariant_scales(x0)
    floor = {k: np.maximum(np.abs(np.asarray(c0[k])), np.asarray(scales[k]))[:, None] for k in c0}
    per_obs = traj.shape[0] * traj.shape[-1] ** 2 * 8 // 16 + 1  # ~bytes of one observation's pair matrices
    step = max(1, min(traj.shape[1], chunk_bytes // per_obs))
    fn = jax.jit(system.invariants)
    drift = dict.fromkeys(c0, 0.0)
    for i in range(0, traj.shape[1], step):
        inv = fn(jnp.asarray(traj[:, i : i + step]))
        for k, v in inv.items():
            d = np.abs(np.asarray(v) - np.asarray(c0[k])[:, None]) / floor[k]
            drift[k] = max(drift[k], float(np.max(d)) if np.isfinite(d).all() else float("inf"))
    return drift


def characterise(system: System, spec: DataSpec, traj: np.ndarray, std: np.ndarray) -> dict:
    """λ₁ (tangent map over a long reference run) and the ground-truth horizon, with the settings used."""
    t0 = time.perf_counter()
    n_l = min(spec.lyapunov_trajectories, len(traj))
    n_int = spec.lyapunov_intervals or spec.n_obs
    lyap = lyapunov_exponent(system, jnp.asarray(traj[:n_l, 0]), n_int, transient=max(1, n_int // 10))
    t1 = time.perf_counter()
    gt = ground_truth_horizon(system, traj[: min(spec.ground_truth_trajectories, len(traj))], std)
    lyap["wall_s"], gt["wall_s"] = t1 - t0, time.perf_counter() - t1
    return {"lyapunov": lyap, "ground_truth": gt}


def timed_generation(system: System, spec: DataSpec, data_seed: int = 0) -> tuple[float, Dataset]:
    """Generate one dataset into a fresh temporary cache (nothing reused): (wall seconds, the dataset). What the
    generation benchmark and the bring-up's data section time."""
    import tempfile

    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        data = load_or_generate(system, spec, data_seed=data_seed, cache_dir=cache, log=lambda m: None)
        return time.perf_counter() - t0, data


def load_or_generate(
    system: System,
    spec: DataSpec,
    *,
    data_seed: int,
    cache_dir: str | os.PathLike,
    log: Callable[[str], None] = print,
) -> Dataset:
    """Return the dataset for (system, spec, data_seed), generating and caching it if needed."""
    n_train, n_val, _ = spec.split_sizes()
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    key = dataset_key(system, spec, data_seed)
    final = cache / key
    if cache_problem(final):
        with filelock.FileLock(str(cache / f"{key}.lock")):
            problem = cache_problem(final)  # another job may have finished or repaired it while we waited
            atomic.remove_stale_temps(cache)  # half-written entries of a generator killed mid-write
            if problem and final.exists():
                log(f"WARNING: dataset cache entry {final} is unusable ({problem}); regenerating it")
                shutil.rmtree(final)
            if problem:
                log(f"generating dataset {key} ({spec.total} x {spec.n_obs} x {system.D}) ...")
                _write(final, system, spec, data_seed, n_train, key)
    meta = json.loads((final / "meta.json").read_text())
    traj = np.load(final / "trajectories.npy", mmap_mode="r")
    stats = np.load(final / "stats.npz")
    log(f"dataset {key}: generated in {meta['generation_wall_s']:.1f} s, cached at {final}")
    lyap, gt, ic = meta["lyapunov"], meta["ground_truth"], meta["initial_conditions"]
    if sum(ic["rejected"].values()):
        log(f"dataset {key}: initial-condition filter kept {ic['kept']} of {ic['drawn']} draws ({ic['rejected']})")
    log(
        f"dataset {key}: lambda1 = {lyap['lambda1']:.4g} +- {lyap['lambda1_std']:.2g} per time unit; ground truth "
        f"valid for {gt['horizon_obs']} observations (t = {gt['horizon_time']:g}; two references agree to NRMSE "
        f"< {gt['threshold_nrmse']})"
    )
    return Dataset(
        train=traj[:n_train],
        val=traj[n_train : n_train + n_val],
        test=traj[n_train + n_val :],
        mean=stats["mean"],
        std=stats["std"],
        key=key,
        meta=meta,
    )


DATA_FILES = ("trajectories.npy", "stats.npz")


def cache_problem(final: Path) -> str | None:
    """Why the cache entry `final` cannot be used ("absent", a truncated or altered file), or None.
    Sizes and SHA-256 digests are recorded in meta.json at write time; entries written before that are
    checked by opening their arrays."""
    if not final.exists():
        return "absent"
    try:
        meta = json.loads((final / "meta.json").read_text())
    except (OSError, ValueError) as e:
        return f"meta.json cannot be read: {e}"
    files = meta.get("files") if isinstance(meta, dict) else None
    if not isinstance(files, dict):
        return _legacy_problem(final)
    for name in DATA_FILES:
        path, rec = final / name, files.get(name, {})
        if not path.exists():
            return f"{name} is missing"
        if path.stat().st_size != rec.get("bytes"):
            return f"{path} has {path.stat().st_size} bytes where {rec.get('bytes')} were written"
        if _sha256(path) != rec.get("sha256"):
            return f"{path} does not match the checksum recorded when it was written"
    return None


def _legacy_problem(final: Path) -> str | None:
    try:
        np.load(final / "trajectories.npy", mmap_mode="r")
        with np.load(final / "stats.npz") as z:
            z["mean"], z["std"]  # noqa: B018  (reading is the check)
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _write(final: Path, system, spec: DataSpec, data_seed: int, n_train: int, key: str) -> None:
    traj, record = generate(system, spec, data_seed)
    if not record["finite"]:
        raise FloatingPointError(f"reference trajectories for {key} are not finite; check the system parameters")
    train = traj[:n_train]
    mean = train.mean(axis=(0, 1))
    std = np.maximum(train.std(axis=(0, 1)), 1e-12)
    record.update(characterise(system, spec, traj, std))
    meta = {
        "key": key,
        "system": system.name,
        "system_params": dataclasses.asdict(system),
        "spec": dataclasses.asdict(spec),
        "data_seed": data_seed,
        "dtype": str(traj.dtype),
        **record,
    }
    tmp = atomic.temp_path(final, suffix="")
    try:
        tmp.mkdir()  # the kernel applies the umask (mkdtemp's private 0700 would keep a lab sharing a node out)
        np.save(tmp / "trajectories.npy", traj)
        np.savez(tmp / "stats.npz", mean=mean, std=std)
        meta["files"] = {n: {"bytes": (tmp / n).stat().st_size, "sha256": _sha256(tmp / n)} for n in DATA_FILES}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        os.replace(tmp, final)  # atomic publish: readers see all files or none
    except OSError as e:
        # numpy reports a short write as "N requested and M written", without an errno
        code = e.errno if e.errno in atomic.FULL else errno.ENOSPC if "requested and" in str(e) else None
        if code is None:
            raise
        raise atomic.StorageFull(code, atomic.full_message(final, code)) from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
