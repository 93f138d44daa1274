"""One job, from plain values to a finished folder: data -> model -> fit -> evaluate -> metrics.json."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from sympscale import atomic, checkpoint, identity, models, provenance, rankfloor
from sympscale.assembly import Assembly, assemble, build_system, init_params, load_data
from sympscale.data import DataSpec
from sympscale.evaluation import (
    BoundedRule,
    SpectrumSpec,
    model_spectrum_bundle,
    one_step_mse_bundle,
    rollout_metrics_bundle,
)
from sympscale.jobdir import JobDir, previous
from sympscale.models import Capacity
from sympscale.progress import Progress
from sympscale.projection import make_projector
from sympscale.recipe import UNTUNED, effective_train, recipe_source
from sympscale.seedaxis import stack
from sympscale.selection import make_validator
from sympscale.training import Resume, TrainSpec, fit_bundle

SCHEMA_VERSION = 1
CHECKPOINT = "checkpoint.npz"


@dataclasses.dataclass(frozen=True)
class JobSpec:
    system: str
    system_params: dict
    D: int
    model: str
    model_options: dict
    seed: int
    data_seed: int
    bptt_window: int | None
    capacity: Capacity
    data: DataSpec
    cache_dir: str
    train: TrainSpec
    train_preset: str
    eval_horizon: int
    eval_start: int
    bounded: BoundedRule
    spectrum: SpectrumSpec
    projection: str = "none"  # used in training rollouts (and the plain evaluation stays unprojected)
    eval_projection: str = "multi"  # invariant set of the additional projected evaluation rollout
    leapfrog_steps: int = 0  # symp: train with leapfrog for this many steps, then the configured integrator
    recipe_source: str = UNTUNED  # which recipe layer set the training settings (sympscale/recipe.py)

    @classmethod
    def from_config(cls, cfg: Any) -> JobSpec:
        """Unpack a composed config (any mapping-like object) into plain values."""
        system = {
            k: list(v) if isinstance(v, Sequence) and not isinstance(v, str) else v for k, v in cfg.system.items()
        }
        model = dict(cfg.model)
        projection = model.pop("projection", "none")
        leapfrog_steps = int(model.pop("leapfrog_steps", 0))
        tr = effective_train(dict(cfg.train), cfg.model.name)
        source = recipe_source(dict(cfg.train), cfg.model.name)
        preset = tr.pop("preset")
        data = dict(cfg.data)
        cache_dir = data.pop("cache_dir")
        return cls(
            system=system.pop("name"),
            system_params=system,
            D=int(cfg.D),
            model=model.pop("name"),
            model_options=model,
            seed=int(cfg.seed),
            data_seed=int(cfg.data_seed),
            bptt_window=cfg.bptt_window.window,
            capacity=Capacity(**dict(cfg.capacity)),
            data=DataSpec(**data),
            cache_dir=str(cache_dir),
            train=TrainSpec(window=cfg.bptt_window.window, **tr),
            train_preset=preset,
            eval_horizon=int(cfg.eval.horizon),
            eval_start=int(cfg.eval.start),
            bounded=BoundedRule(
                float(cfg.eval.bounded_level), float(cfg.eval.bounded_floor), int(cfg.eval.bounded_pairs)
            ),
            spectrum=SpectrumSpec(
                int(cfg.eval.spectrum_trajectories), int(cfg.eval.spectrum_intervals), int(cfg.eval.spectrum_transient)
            ),
            projection=projection,
            leapfrog_steps=leapfrog_steps,
            eval_projection=str(cfg.eval.get("projection", "multi")),
            recipe_source=source,
        )


def environment() -> dict:
    dev = jax.devices()[0]
    return {
        "platform": dev.platform,
        "device": getattr(dev, "device_kind", str(dev)),
        "n_devices": jax.device_count(),
        "jax": jax.__version__,
        "x64": bool(jax.config.jax_enable_x64),
        "python": platform.python_version(),
        "host": platform.node(),
    }


def execute(spec: JobSpec, out_dir: Path, *, resolved: dict | None = None, echo=print) -> dict:
    """Run the job and write its folder: a bundle of one (`execute_bundle`). On an exception the status file records
    the cause, then it re-raises."""
    (result,) = execute_bundle([spec], [out_dir], resolved=None if resolved is None else [resolved], echo=echo)
    if isinstance(result, BaseException):
        raise result
    return result


def _open(out_dir: Path, record: dict, echo) -> JobDir:
    """Claim the job's folder for this computation, write its config and mark it running (what an earlier run left
    damaged is kept aside and said: `jobdir.previous`)."""
    for line in previous(out_dir):
        echo(line)
    moved = identity.claim(out_dir, record, record.get("if_changed", "stop"))
    if moved is not None:
        echo(f"moved the earlier run in {out_dir} to {moved[0]} ({moved[1]})")
    job = JobDir(out_dir)
    job.write_config(record)
    job.set_status("running")
    return job


def _failed(job: JobDir, e: BaseException) -> None:
    job.set_status("failed", error=f"{type(e).__name__}: {e}", log=str(job.path / JobDir.LOG))


def _finish(job: JobDir, metrics: dict) -> None:
    job.write_metrics(metrics)
    job.set_status("done", outcome=metrics["status"])
    (job.path / CHECKPOINT).unlink(missing_ok=True)  # recorded: the checkpoint is no longer its only copy


def spec_record(spec: JobSpec) -> dict:
    """A spec as a config-shaped record (the cache folder under `data`, as `identity` expects it)."""
    record = dataclasses.asdict(spec)
    record["data"]["cache_dir"] = record.pop("cache_dir")
    return record


UNTRAINED = {
    "steps": 0,
    "steps_trained": 0,
    "selected_step": 0,
    "converged": None,
    "failed_to_learn": None,
    "convergence": {"reason": "no parameters: nothing to train"},
    "diverged": False,
    "divergence": None,
    "final_loss": None,
    "wall_s": 0.0,
    "memory": None,
    "memory_auto": None,
}


def _assemble(spec: JobSpec, echo) -> Assembly:
    system = build_system(spec)
    return assemble(spec, system=system, data=load_data(spec, system, log=echo))


def _save_params(job: JobDir, params) -> None:
    leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(params)]
    atomic.write(job.path / JobDir.PARAMS, lambda f: np.savez(f, *leaves))  # the checkpoint stays until recorded


def _evaluate(spec: JobSpec, run: Assembly, params, echo) -> list[dict]:
    """Each seed's held-out rollout metrics (plain and projected), one-step error and ground-truth horizon, for
    stacked parameters (a seed bundle), computed as one program."""
    data, system = run.data, run.system
    gt_obs = data.meta["ground_truth"]["horizon_obs"]
    end = spec.eval_start + spec.eval_horizon  # the last observation a rollout is scored against
    if end > gt_obs:
        echo(
            f"WARNING: eval.start + eval.horizon = {end} observations exceeds the valid ground-truth horizon of this "
            f"dataset ({gt_obs}: two reference integrations part beyond it). Trajectory-wise errors after "
            f"observation {gt_obs} compare with an unreliable truth; boundedness and invariants remain meaningful."
        )
    test = data.test[:, spec.eval_start :]  # every rollout starts after the transient
    t_eval = time.perf_counter()
    evs = rollout_metrics_bundle(
        run.model,
        params,
        system,
        test,
        data.mean,
        data.std,
        horizon=spec.eval_horizon,
        bounded=spec.bounded,
        projector=make_projector(system, spec.eval_projection),
        lyapunov=data.meta["lyapunov"]["lambda1"],
        dt_obs=system.dt_obs,
    )
    one_step = one_step_mse_bundle(run.model, params, data.test, data.std)
    lam = data.meta["lyapunov"]["lambda1"]
    spectra = model_spectrum_bundle(run.model, params, test, spec.spectrum, system.dt_obs, lam)
    wall = time.perf_counter() - t_eval
    return [
        {
            **ev,
            "one_step_mse": one,
            "model_spectrum": spectrum,
            "ground_truth_horizon_obs": gt_obs,
            "exceeds_ground_truth": end > gt_obs,
            "start": spec.eval_start,
        }
        | {"wall_s": wall}
        for ev, one, spectrum in zip(evs, one_step, spectra, strict=True)
    ]


def _record(spec: JobSpec, run: Assembly, train_summary: dict) -> dict:
    """metrics.json but the evaluation: what ran, on which data, with which code, and how training went."""
    meta, info = run.data.meta, run.info
    return {
        "schema_version": SCHEMA_VERSION,
        "system": spec.system,
        "D": spec.D,
        "model": spec.model,
        "seed": spec.seed,
        "data_seed": spec.data_seed,
        "bptt_window": "full" if spec.bptt_window is None else spec.bptt_window,
        "projection": spec.projection,
        "train_preset": spec.train_preset,
        "params": info["params"],
        "symp_params": info["symp_params"],
        "capacity_ratio": info["capacity_ratio"],
        "model_sizes": info["sizes"],
        "status": "diverged" if train_summary["diverged"] else "done",
        "dataset": {
            "key": run.data.key,
            "dt_obs": run.system.dt_obs,
            "reference_invariant_drift": meta["reference_invariant_drift"],
            "lyapunov_exponent": meta["lyapunov"]["lambda1"],
            "ground_truth_horizon_obs": meta["ground_truth"]["horizon_obs"],
            "initial_conditions": meta["initial_conditions"],
        },
        "train": train_summary,
        "code": provenance.record(),
        "env": environment(),
    }


def _validator(run: Assembly, echo):
    if not run.train.val_every:
        return None
    validate = make_validator(
        run.model, run.data.val, run.data.std, horizon=run.train.val_horizon, starts=run.train.val_starts
    )
    echo(f"validation every {run.train.val_every} steps: {validate.n_windows} windows of <= {validate.horizon} steps")
    return validate


def _progress(run: Assembly, initial: int) -> Progress:
    lyap_per_step = run.data.meta["lyapunov"]["lambda1"] * run.system.dt_obs
    return Progress(run.train.steps, lyap_per_step=lyap_per_step, initial=initial)


def _logger(job: JobDir, progress: Progress | None):
    def log(rec: dict) -> None:
        job.log({**rec, "time": time.time()})  # epoch seconds: lets a launcher measure its start-up overhead
        if progress is not None:
            progress.update(rec)

    return log


def _saver(job: JobDir, run: Assembly, computation: dict, tag: str):
    def save(step, state, meta):
        record = {"computation": computation, "code": provenance.record(), "data": run.data.key}
        checkpoint.save(job.path / CHECKPOINT, step, state, tag=tag, meta={**meta, **record})

    return save


def _verdict(summary: dict) -> str:
    if summary["diverged"]:
        return f"DIVERGED ({summary['divergence']}): counted as a failure (VPT 0, not bounded)"
    if summary.get("failed_to_learn"):
        return summary["convergence"]["reason"].replace("failed to learn", "FAILED TO LEARN", 1)
    return "converged" if summary["converged"] else f"NOT converged ({summary['convergence']['reason']})"


@dataclasses.dataclass(frozen=True)
class _Member:
    """One seed of a bundle: its place in the caller's list, its spec, its folder and its computation."""

    index: int
    spec: JobSpec
    job: JobDir
    computation: dict


def bundle_key(spec: JobSpec) -> JobSpec:
    """What the seeds of one bundle share: the spec with its seed blanked."""
    return dataclasses.replace(spec, seed=0)


def execute_bundles(
    specs: list[JobSpec], out_dirs: list[Path], *, resolved: list[dict] | None = None, echo=print
) -> list[dict | Exception]:
    """`execute_bundle` of each group of jobs that differ only in `seed`, in turn: a value that follows the seed
    in the config itself (`data_seed: ${seed}`, where the launcher sees no override) splits a launcher's bundle.
    One group is one bundle (its exception propagates); of several, a group that fails gives each of its seeds
    the exception and the others still run."""
    keys, groups = [], []  # a spec holds dicts: grouped by equality, not by hash
    for i, spec in enumerate(specs):
        key = bundle_key(spec)
        if key not in keys:
            keys.append(key)
            groups.append([])
        groups[keys.index(key)].append(i)
    records = resolved if resolved is not None else [spec_record(s) for s in specs]
    results: list = [None] * len(specs)
    for idx in groups:
        pick = lambda xs, idx=idx: [xs[i] for i in idx]  # noqa: E731
        try:
            out = execute_bundle(pick(specs), pick(out_dirs), resolved=pick(records), echo=echo)
        except Exception as e:
            if len(groups) == 1:
                raise
            out = [e] * len(idx)
        for i, r in zip(idx, out, strict=True):
            results[i] = r
    return results


def execute_bundle(
    specs: list[JobSpec], out_dirs: list[Path], *, resolved: list[dict] | None = None, echo=print
) -> list[dict | Exception]:
    """Run jobs that differ only in `seed` as one bundle: one assembly and dataset, their training and evaluation
    as one program (`seedaxis.over_seeds`); every seed's folder is written as a single job writes its own.

    Returns each seed's metrics, or the exception that failed that seed alone (its folder could not be claimed, or
    the part of a bundle too big for its device that held it failed to train). An exception of the bundle itself
    marks every seed failed, then propagates.
    """
    if any(bundle_key(s) != bundle_key(specs[0]) for s in specs) or len({s.seed for s in specs}) < len(specs):
        raise ValueError("a bundle holds jobs that differ in their seed only, each seed once")
    records = resolved if resolved is not None else [spec_record(s) for s in specs]
    results: list = [None] * len(specs)
    members = []
    for i, (spec, out, record) in enumerate(zip(specs, out_dirs, records, strict=True)):
        try:
            members.append(_Member(i, spec, _open(Path(out), record, echo), identity.computation(record)))
        except Exception as e:  # noqa: BLE001  (this seed's folder cannot take it: it fails alone)
            results[i] = e
    if not members:
        return results
    try:
        metrics = _execute_bundle(members, echo)
    except BaseException as e:
        for m in members:
            _failed(m.job, e)
        raise
    for m, met in zip(members, metrics, strict=True):
        if isinstance(met, Exception):  # its part of the bundle failed: this seed alone
            _failed(m.job, met)
        else:
            _finish(m.job, met)
        results[m.index] = met
    return results


def _execute_bundle(members: list[_Member], echo) -> list[dict | Exception]:
    t_start = time.perf_counter()
    spec = members[0].spec
    run = _assemble(spec, echo)
    inits = [init_params(run, m.spec.seed) for m in members]
    seeds = [m.spec.seed for m in members]
    who = f"seed={seeds[0]}" if len(seeds) == 1 else f"a bundle of {len(seeds)} seeds {seeds}"
    echo(
        f"{spec.model} on {spec.system} D={spec.D} {who}: {run.info['params']:,} parameters{'' if len(seeds) == 1 else ' each'} "
        f"(capacity ratio {run.info['capacity_ratio']:.5f}), {spec.train.steps} steps, "
        f"window={spec.bptt_window or 'full'}"
    )
    capacity = _capacity(spec, run, echo)
    if run.info["params"]:
        trained = _train(members, echo, run, inits)  # a seed whose part of the bundle failed: the exception
        done = [t for t in trained if not isinstance(t, Exception)]
        evs = iter(_evaluate(spec, run, stack([params for params, _ in done]), echo))
        evs = [t if isinstance(t, Exception) else next(evs) for t in trained]
    else:  # the oracle: nothing to learn, the same evaluation for every seed
        for m in members:
            m.job.start_log()
        trained = [(params, dict(UNTRAINED)) for params, _ in inits]
        (ev,) = _evaluate(spec, run, stack([trained[0][0]]), echo)
        evs = [copy.deepcopy(ev) for _ in members]
    out = []
    for m, t, ev in zip(members, trained, evs, strict=True):
        if isinstance(t, Exception):
            out.append(t)
            continue
        params, summary = t
        _save_params(m.job, params)
        # trained_with: the seeds its training program held (fewer than the bundle's when it trained in parts)
        together = summary.pop("trained_with", len(members))
        bundle = {"seeds": seeds, "size": len(seeds), "trained_with": together} if len(seeds) > 1 else None
        record = _record(m.spec, run, {**summary, "bundle": bundle, "recipe_source": m.spec.recipe_source})
        out.append({**record, "capacity": capacity, "eval": ev, "wall_s": time.perf_counter() - t_start})
    return out


def capacity_record(spec: JobSpec, run: Assembly) -> dict:
    """The run's capacity record: the width the rule gave, the budget, the model's increment rank and its error
    floor on the training split (`rankfloor`; None when assembled without data)."""
    exact = run.system.exact_quadratic()
    unit = models.target_params(spec.D, dataclasses.replace(spec.capacity, budget=1.0), exact)
    rank = run.info["rank"]
    floor = 0.0
    if rank is not None and rank["rank"] < rank["dimension"]:
        floor = None
        if run.data is not None:
            increments = rankfloor.normalised_increments(run.data.train, run.data.std)
            floor = rankfloor.rank_floor_mse(increments, rank["rank"], rank["block"])
    return {
        "width": spec.capacity.width,
        "width_used": run.info["width"],
        "depth": spec.capacity.depth,
        "cover": spec.capacity.cover,
        "budget": spec.capacity.budget,
        "budget_ratio": run.info["symp_params"] / unit,
        "params": run.info["params"],
        "rank": None if rank is None else rank["rank"],
        "dimension": None if rank is None else rank["dimension"],
        "rank_block": None if rank is None else rank["block"],
        "rank_floor_mse": floor,
        "floor_max": rankfloor.FLOOR_MAX,
        "allow_floor": spec.capacity.allow_floor,
        "capacity_limited": floor is not None and floor > rankfloor.FLOOR_MAX,
    }


def _capacity(spec: JobSpec, run: Assembly, echo) -> dict:
    """`capacity_record`; a floor above FLOOR_MAX stops the job before training unless capacity.allow_floor."""
    record = capacity_record(spec, run)
    floor = record["rank_floor_mse"]
    if record["capacity_limited"] and not spec.capacity.allow_floor:
        raise rankfloor.CapacityFloor(
            f"capacity: model={spec.model} at D={spec.D} has increment rank {record['rank']} < {record['dimension']}: "
            f"its one-step MSE cannot go below {floor:.3g} on this data (> {rankfloor.FLOOR_MAX}); capacity.cover=true "
            f"removes the floor, capacity.allow_floor=true runs it labelled capacity-limited"
        )
    if record["capacity_limited"]:
        echo(
            f"WARNING: capacity-limited: rank {record['rank']} < {record['dimension']}, one-step MSE floor {floor:.3g}"
        )
    return record


@dataclasses.dataclass
class _Training:
    """What the parts of one bundle's training share: its seeds, their initial values, run tags and where each
    seed resumes (updated when a part is retried)."""

    members: list[_Member]
    inits: list
    tags: list[str]
    resumed: list
    validate: Any
    echo: Any

    def resume(self, run: Assembly, idx) -> None:
        """Each seed of `idx` from its checkpoint when it belongs to this run (after a failed attempt, the one that
        attempt left), else from its initial values."""
        for i in idx:
            m = self.members[i]
            path = m.job.path / CHECKPOINT
            self.resumed[i] = _resume(path, run, self.inits[i][0], self.tags[i], m.computation, m.job, self.echo)

    def retried(self, ladder: list[Assembly], part: Assembly, idx: list[int], error: BaseException) -> list:
        """The parts to train instead of `part`, which ran out of memory training the seeds `idx` (`_smaller`), each
        seed resuming from the checkpoint the failed attempt left; [] where nothing smaller is left."""
        smaller = _smaller(ladder, part, idx)
        if not smaller:
            return []
        what = " and ".join(f"{len(sub)} with memory={r.train.memory}" for r, sub in smaller)
        cause = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        self.echo(
            f"seeds {[self.members[i].spec.seed for i in idx]}: out of memory at run time with "
            f"memory={part.train.memory}, {len(idx)} together ({cause}): retrying as {what}"
        )
        self.resume(part, idx)
        return [(r, start, sub2) for r, sub in smaller for start, sub2 in self.by_start(sub).items()]

    def by_start(self, idx) -> dict[int, list[int]]:
        """The seeds of `idx` grouped by the step they resume at (a part trains from one step)."""
        groups: dict[int, list[int]] = {}
        for i in idx:
            resume = self.resumed[i][1]
            groups.setdefault(resume.step if resume else 0, []).append(i)
        return dict(sorted(groups.items()))

    def fit(self, run: Assembly, start: int, idx: list[int]) -> list:
        """Train the seeds `idx` together (one part of the bundle): [(params, summary)] in their order."""
        members, progress = self.members, _progress(run, start)
        with progress:
            return fit_bundle(
                run.model,
                [self.resumed[i][0] for i in idx],
                run.data.train,
                run.data.std,
                run.train,
                keys=[self.inits[i][1] for i in idx],
                logs=[_logger(members[i].job, progress if i == idx[0] else None) for i in idx],
                resumes=[self.resumed[i][1] for i in idx],
                checkpoints=[_saver(members[i].job, run, members[i].computation, self.tags[i]) for i in idx],
                projector=run.projector,
                start_with=run.start_with,
                validate=self.validate,
                step=run.bundle_step,
            )


def _train(members: list[_Member], echo, run: Assembly, inits: list) -> list[tuple | Exception]:
    """Fit every seed of the bundle with validation-based selection, each resuming from its checkpoint when it
    matches; seeds whose checkpoints stopped at different steps train as sub-bundles, and a bundle too big for the
    device in parts (`_fitting`). A part that runs out of memory at run time is retried smaller (`_smaller`: leaner
    memory strategies, then halves), each seed resuming from its checkpoint; a part that fails otherwise, or with
    nothing smaller to try, fails its own seeds (the whole bundle's exception propagates)."""
    run, memory_choice = _resolve_memory(run, echo)
    tags = [_run_tag(m.computation, run.data.key) for m in members]
    state = _Training(members, inits, tags, [None] * len(members), None, echo)
    state.resume(run, range(len(members)))
    state.validate = _validator(run, echo)  # its line follows the resumes'
    ladder = _ladder(run)
    parts = [
        (sized, start, idx[i : i + size])
        for start, idx in state.by_start(range(len(members))).items()
        for sized, size in [_fitting(run, len(idx), echo, ladder)]
        for i in range(0, len(idx), size)
    ]
    return _train_parts(state, ladder, parts, memory_choice)


def _train_parts(state: _Training, ladder: list[Assembly], parts: list, memory_choice: dict | None) -> list:
    """Train each (run, start step, seeds) part in turn, retrying a part out of memory smaller: each seed's (params,
    summary), or the exception that failed its part."""
    members, echo = state.members, state.echo
    results: list = [None] * len(members)
    while parts:
        part, start, idx = parts.pop(0)
        try:
            fitted = state.fit(part, start, idx)
        except Exception as e:  # noqa: BLE001  (a part that fails, e.g. out of memory at run time, fails its seeds)
            retry, cause = _after_failure(state, ladder, part, idx, e)
            if retry:
                parts[:0] = retry
                continue
            if len(idx) == len(members) and cause is e:
                raise
            if len(idx) == len(members):
                raise cause from e
            seeds = [members[i].spec.seed for i in idx]
            echo(f"seeds {seeds}: their part of the bundle failed: {type(cause).__name__}: {cause}")
            for i in idx:
                results[i] = cause
            continue
        for i, (params, summary) in zip(idx, fitted, strict=True):
            whose = f"seed {members[i].spec.seed}: " if len(members) > 1 else ""
            echo(
                f"{whose}selected the parameters of step {summary['selected_step']} (best validation VPT); "
                f"{_verdict(summary)}"
            )
            results[i] = (
                params,
                {**summary, "memory": part.train.memory, "memory_auto": memory_choice, "trained_with": len(idx)},
            )
    if all(isinstance(r, Exception) for r in results):
        raise results[0]
    return results


def _after_failure(state: _Training, ladder: list[Assembly], part: Assembly, idx: list[int], error: Exception):
    """(the parts to train instead of the failed one, or []; what its seeds fail with): a part out of memory is
    retried smaller, unless reading its seeds' checkpoints back fails too (they fail with that)."""
    if not _out_of_memory(error):
        return [], error
    try:
        return state.retried(ladder, part, idx, error), error
    except Exception as e:  # noqa: BLE001  (e.g. the disk filled while a log was trimmed)
        return [], e


def _out_of_memory(e: BaseException) -> bool:
    """An allocation the device could not serve (XLA's RESOURCE_EXHAUSTED, or Python's MemoryError)."""
    return isinstance(e, MemoryError) or "RESOURCE_EXHAUSTED" in str(e)


def _ladder(run: Assembly) -> list[Assembly]:
    """The run, then the run with each leaner memory strategy (the same gradients, more recomputation); each built
    once, so its jitted step keeps what a prediction compiled."""
    from sympscale import profiling

    order, current = profiling.STRATEGY_ORDER, run.train.memory
    leaner = order[order.index(current) + 1 :] if current in order else ()
    return [run] + [run.with_train(dataclasses.replace(run.train, memory=m)) for m in leaner]


def _smaller(ladder: list[Assembly], part: Assembly, idx: list[int]) -> list[tuple[Assembly, list[int]]]:
    """What to try after `part` ran out of memory training the seeds `idx`: the same seeds with the next leaner
    strategy, else two halves with this one; [] for one seed with the leanest. Never back to a hungrier strategy
    (the prediction that chose it was low): each attempt is leaner or smaller, so retries end; with the three
    strategies, after at most 2 + (2 x seeds - 1) attempts, each a compile."""
    names = [r.train.memory for r in ladder]
    k = names.index(part.train.memory) if part.train.memory in names else len(ladder) - 1
    if k + 1 < len(ladder):
        return [(ladder[k + 1], idx)]
    half = (len(idx) + 1) // 2
    return [(part, idx[:half]), (part, idx[half:])] if len(idx) > 1 else []


def _memory_limits_bundles() -> bool:
    return jax.default_backend() != "cpu"


def _fitting(run: Assembly, seeds: int, echo, runs: list[Assembly] | None = None) -> tuple[Assembly, int]:
    """(the run, how many of `seeds` train together): on a GPU the most seeds whose bundled program's predicted peak
    fits its memory (with `profiling.HEADROOM`): the whole bundle, else halves, each size tried with the run's
    memory strategy, then the leaner ones (the same gradients, more recomputation: a bundle's throughput is worth
    it); where not even one seed fits, one at a time with the leanest (said in a warning: XLA's prediction may be
    high). On the CPU backend all of them (host memory is not what limits)."""
    if not _memory_limits_bundles():
        return run, seeds
    from sympscale import profiling

    budget, what = profiling.device_budget()
    if budget is None:
        return run, seeds
    runs, current = runs or _ladder(run), run.train.memory
    where, limit, peaks = f"{what} ({budget / 2**30:.1f} GiB)", profiling.HEADROOM * budget, {}
    for n in profiling.bundle_sizes(seeds):
        for r in runs:
            # a peak grows with the seeds from a part they do not share: n/m of a larger bundle's is a lower bound
            if any(k[0] is r and p is not None and p * n / k[1] > limit for k, p in peaks.items()):
                continue  # cannot fit: no compile spent on it
            peaks[(r, n)] = profiling.predicted_bundle_peak(r, n)
            if peaks[(r, n)] is None or peaks[(r, n)] <= limit:
                if (r, n) != (run, seeds):
                    who = f"a bundle of {seeds} seeds" if seeds > 1 else "one seed"
                    echo(f"{who} does not fit {where} with memory={current}: {_how(run, r, seeds, n)}")
                return r, n
    echo(
        f"WARNING: not even one seed is predicted to fit {where}: trains 1 at a time with memory={runs[-1].train.memory}"
    )
    return runs[-1], 1


def _how(run: Assembly, fitted: Assembly, seeds: int, n: int) -> str:
    how = f"trains {n} at a time" if n < seeds else "trains whole" if seeds > 1 else "trains"
    lean = f" with memory={fitted.train.memory} (the same gradients, more recomputation)" if fitted is not run else ""
    return how + lean


def _resolve_memory(run: Assembly, echo) -> tuple[Assembly, dict | None]:
    """train.memory=auto: the cheapest strategy whose compiled training program (this run's) fits the device."""
    if run.train.memory != "auto":
        return run, None
    from sympscale.profiling import choose_memory

    chosen, tried = choose_memory(run)
    choice = {"chosen": chosen, "predicted_peak_bytes": {p["memory"]: p["peak"] for p in tried}}
    echo(f"memory=auto chose {chosen!r} (predicted peaks: {choice['predicted_peak_bytes']})")
    return run.with_train(dataclasses.replace(run.train, memory=chosen)), choice


def _resume(path: Path, run: Assembly, params, tag: str, computation: dict, job: JobDir, echo):
    """(parameters, Resume) of the checkpoint when it belongs to this run; otherwise (`params`, None) and a fresh
    log (an unusable checkpoint is reported with its reason and kept beside, never silently dropped)."""
    template = (params, run.optimiser().init(params), params)
    try:
        restored = checkpoint.load(path, template, tag=tag)
    except checkpoint.Unusable as e:
        kept = atomic.keep_aside(path, e.kind)
        why = e.reason({"computation": computation, "code": provenance.record(), "data": run.data.key})
        echo(
            f"WARNING: the checkpoint in {path.parent} cannot be used ({why}); training starts at step 0 (kept as {kept.name})"
        )
        restored = None
    if restored is None:
        job.start_log()
        return params, None
    step, (params, opt_state, best), meta = restored
    _trim_log(job.path / JobDir.LOG, step)
    echo(f"resuming from the checkpoint at step {step} ({path})")
    return params, Resume(step, opt_state, best, meta.get("history", []))


def _trim_log(path: Path, step: int) -> None:
    """A resumed run redoes the steps after its checkpoint: drop their records, so each step is logged once.
    Training records carry the update's index (kept below `step`), validations the updates done (kept up to it)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line cut short by the kill
        if rec.get("step", 0) < step or ("val_vpt_steps" in rec and rec["step"] == step):
            kept.append(line)
    atomic.write_text(path, "".join(f"{line}\n" for line in kept))


def _run_tag(computation: dict, data_key: str) -> str:
    """Identifies a run for checkpoint reuse: the same computation (`identity.digest`: log and checkpoint cadence
    and the cache location do not count) on the same data by the same code, or start afresh."""
    text = f"{identity.digest(computation)}:{data_key}:{provenance.source_digest()}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def reference_run(out_dir: Path, metrics: dict) -> dict | None:
    """The metrics of a finished oracle run in a folder beside `out_dir` on the same dataset (its key holds the
    system, every setting, D and the data seed), eval start and eval horizon: the reference of the closing line."""
    if metrics.get("model") == "oracle" or not isinstance(metrics.get("eval"), dict):
        return None
    want = (metrics["dataset"]["key"], metrics["eval"].get("start"), metrics["eval"].get("horizon"))
    for path in sorted(Path(out_dir).parent.glob("*/metrics.json")):
        try:
            m = json.loads(path.read_text())
            found = (m["dataset"]["key"], m["eval"].get("start"), m["eval"].get("horizon"))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # not a finished run's record
        if m.get("model") == "oracle" and m.get("status") == "done" and found == want:
            return m
    return None


def headline(metrics: dict, reference: dict | None = None) -> str:
    """The run's closing line: VPT first (Lyapunov times and steps, and its fraction of the oracle's on the same
    data where `reference` is one), then the one-step error, boundedness, the long-window error and invariants."""
    ev = metrics["eval"]
    cons = ", ".join(f"{k} {v:.2e}" for k, v in ev["conservation"].items())
    own = ev.get("model_energy_residual")
    own_s = "" if own is None or (isinstance(own, float) and math.isnan(own)) else f"; learned-H residual {own:.2e}"
    diverged = metrics["status"] == "diverged"
    flag = f"DIVERGED, counted as a failure ({metrics['train']['divergence']}) | " if diverged else ""
    vpt = (
        f"VPT(0.3) {ev['vpt_lyapunov']['0.3']:.3g} Lyapunov times ({ev['vpt_steps']['0.3']:.0f} steps"
        f"{_of_reference(ev, reference)})"
        if "vpt_lyapunov" in ev
        else "VPT: no Lyapunov exponent for this dataset"
    )
    bounded = "not judged" if ev["bounded"] is None else ev["bounded"]
    return (
        f"{flag}{vpt} | one-step MSE {ev['one_step_mse']:.3g} | bounded {bounded} ({ev['n_finite']}/"
        f"{ev['n_trajectories']} finite) | last-100 MSE {ev['last100_mse']:.4g} | steps to MSE 1: "
        f"{ev['steps_to_mse_1']:.0f} | invariant residuals: {cons}{own_s}"
    )


def _of_reference(ev: dict, reference: dict | None) -> str:
    try:
        ref = float(reference["eval"]["vpt_lyapunov"]["0.3"])  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        return ""
    if not ref > 0:
        return ""
    return f"; {ev['vpt_lyapunov']['0.3'] / ref:.2f}x the oracle's {ref:.3g} on the same data, a reference"
