"""Hydra launcher `local_devices`: one fresh process per job, each seeing exactly one device.

    python -m sympscale.train -m system=toda,fput D=64,256 model=symp,gru seed=1-10

Options (hydra.launcher.*): platform (auto|cuda|rocm|cpu), devices, cpu_workers, jobs_per_device, fail_fast,
max_retries, resume, rerun_stale, dry_run, progress_every, compilation_cache (auto: private to the user), shard, bundle (seeds per process:
jobs that differ only in `seed` run as one process when the task's module defines `LAUNCHER_BUNDLE_TASK`,
`sympscale.launcher.bundles`). The work is done by
`sympscale.launcher` (options, lock, devices, scheduler, wire, child, records); this class turns Hydra's job
list into processes and back.

It knows nothing of the application beyond the optional `LAUNCHER_HOOK` of the task function's module
(`sympscale.launcher.hook`: job cost, job key, code version, the app's account of a job's end); without one
every job costs the same, its key is a digest of its resolved task config and of the task function's name and
source, and its code is the task function's file.

Each job's process gets its composed config (YAML) and the task function's import path as JSON on its stdin
and returns a JSON result (`sympscale.launcher.wire`): nothing in the sweep folder is executed or unpickled.
One launcher at a time owns a sweep folder (`.launcher/lock`).
"""

import copy
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence  # noqa: UP035 (Hydra reads these annotations at runtime)

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from hydra.plugins.launcher import Launcher
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

log = logging.getLogger(__name__)


@dataclass
class LocalDevicesConf:
    _target_: str = "hydra_plugins.sympscale_launcher.local_devices.LocalDevicesLauncher"
    platform: str = "auto"  # auto: NVIDIA, then ROCm, then CPU worker slots
    devices: Optional[List[str]] = None  # noqa: UP006, UP045  explicit device ids; default: parent mask or detection
    cpu_workers: Optional[int] = None  # noqa: UP045  CPU slots when no GPU (default: cores // 2)
    jobs_per_device: int = 1
    fail_fast: bool = False
    max_retries: int = 0
    resume: bool = True  # skip jobs whose folder says they finished
    rerun_stale: bool = False  # rerun finished jobs that other code computed (listed either way)
    dry_run: bool = False  # list the grid and the device plan, run nothing
    progress_every: float = 30.0  # seconds between progress lines
    # auto: a folder private to this user (sympscale/launcher/compile_cache.py); a path: that folder; null: none
    compilation_cache: Optional[str] = "auto"  # noqa: UP045
    shard: Optional[str] = None  # noqa: UP045  null | "i/n" | "slurm": run only this node's share of the grid
    bundle: Any = "auto"  # seeds per process: auto | n | 1 (jobs differing only in `seed` as one vmapped program;
    # auto: as many as keep every slot busy, where the task's module can run bundles, else one job per process)


ConfigStore.instance().store(group="hydra/launcher", name="local_devices", node=LocalDevicesConf, provider="sympscale")


def _job_dir(cfg: DictConfig) -> Path:
    HydraConfig.instance().set_config(cfg)
    return Path(str(OmegaConf.select(cfg, "hydra.sweep.dir"))) / str(OmegaConf.select(cfg, "hydra.sweep.subdir"))


def _task_config(cfg: DictConfig) -> DictConfig:
    """The job's config without the hydra node (what the task function receives)."""
    task_cfg = copy.deepcopy(cfg)
    with read_write(task_cfg), open_dict(task_cfg):
        task_cfg.pop("hydra", None)
    return task_cfg


def _plain_task_config(cfg: DictConfig) -> dict:
    """The task config as plain data for the hook, resolved (unresolved, with a warning, when it cannot be)."""
    task_cfg = _task_config(cfg)
    try:
        return OmegaConf.to_container(task_cfg, resolve=True)
    except OmegaConfBaseException as e:  # a resolver that fails, a missing value
        log.warning(f"job #{cfg.hydra.job.num}: its config cannot be resolved ({e}); its key uses it unresolved")
        return OmegaConf.to_container(task_cfg, resolve=False)


def _version_base() -> Optional[str]:  # noqa: UP045
    """The version base this process runs with, for the child to set: a Version in Hydra 1.3, a str in 1.4."""
    from hydra import version

    base = version.getbase()
    return None if base is None or type(base) is type(version._UNSPECIFIED_) else str(base)


class LocalDevicesLauncher(Launcher):
    def __init__(self, **options: Any) -> None:
        self.options = options
        self.config: Optional[DictConfig] = None  # noqa: UP045
        self.hydra_context: Any = None
        self.task_function: Any = None
        self.hook: Any = None  # sympscale.launcher.hook.Hook, found at launch
        self.code: dict = {}  # the code jobs run now (hook.code())

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from sympscale.launcher.lock import SweepLocked, own, release
        from sympscale.launcher.options import launcher_option_errors

        errors = launcher_option_errors(self.options) or self._bundle_errors()
        if errors:
            raise ValueError("invalid launcher options:\n  " + "\n  ".join(f"hydra.launcher.{e}" for e in errors))
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        if self.options["dry_run"]:  # runs and writes nothing: no need to own the folder
            return self._launch(sweep_dir, job_overrides, initial_job_idx)
        from sympscale.launcher.sharding import parse_shard

        # one owner per sweep folder, or per share of it: a node array's tasks run disjoint jobs side by side
        try:
            locks = own(sweep_dir, parse_shard(self.options["shard"]))
        except SweepLocked as e:
            print(f"sympscale: {e}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        except OSError as e:  # `.launcher` is a file, `lock` a folder, ...
            print(f"sympscale: cannot take the sweep folder's lock in {sweep_dir}: {e}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        try:
            return self._launch(sweep_dir, job_overrides, initial_job_idx)
        finally:
            release(locks)

    def _bundle_errors(self) -> list:
        """bundle=n > 1 needs a task whose module can run bundles (`auto` falls back to one job per process)."""
        setting = self.options.get("bundle", "auto")
        if setting in (1, "auto") or self._bundle_task() is not None:
            return []
        from sympscale.launcher.bundles import BUNDLE_ATTRIBUTE

        return [
            f"bundle={setting!r} is invalid for this task: its module defines no {BUNDLE_ATTRIBUTE} (or the task "
            f"cannot be imported by name); valid: 1 or auto"
        ]

    def _bundle_task(self) -> Optional[dict]:  # noqa: UP045
        """How the child imports the task module's bundle task, or None when there is none to import."""
        from sympscale.launcher import wire
        from sympscale.launcher.bundles import BUNDLE_ATTRIBUTE, find_bundle_task

        ref = wire.task_reference(self.task_function)
        if ref is None or find_bundle_task(self.task_function) is None:
            return None
        return {**ref, "qualname": BUNDLE_ATTRIBUTE, "unwrap": False}

    def _bundles(self) -> bool:
        """Whether jobs that differ only in `seed` run as bundles: `bundle` is not 1 and the task can run them."""
        return self.options.get("bundle", "auto") != 1 and self._bundle_task() is not None

    def _units(self, jobs: list, slots: int) -> list:
        """What the scheduler runs: bundles of the queued jobs that differ only in `seed` (one process each),
        single jobs, and the skipped jobs (listed, not run)."""
        from sympscale.launcher.bundles import bundle_size, make_bundles
        from sympscale.launcher.scheduler import bundle_unit

        queued = [j for j in jobs if j.status == "queued"]
        if not self._bundles():
            return jobs
        size = bundle_size(self.options.get("bundle", "auto"), len(queued), slots)
        units = [m[0] if len(m) == 1 else bundle_unit(m) for m in make_bundles(queued, size)]
        return units + [j for j in jobs if j.status != "queued"]

    def _dry_run(self, jobs: list, units: list, configs: dict, plan: Any) -> None:
        """Print what a sweep would run: the jobs, the app's line for each (`Hook.describe`, once per configuration
        up to the seed) and the processes with their predicted device time (`Hook.estimate`, once per
        configuration and bundle size, in the environment of a job on the first planned device). On an accelerator
        the two are asked at once (each may take a process of its own; the estimate times the accelerator); on CPU
        one after the other, so that neither slows the other's timed steps."""
        from concurrent.futures import ThreadPoolExecutor

        from sympscale.launcher.bundles import seed_free
        from sympscale.launcher.devices import child_env
        from sympscale.launcher.scheduler import bundle_table, summary_table

        print(summary_table(jobs), flush=True)
        queued = [j for j in jobs if j.status == "queued"]
        described: dict = {}  # seed-free overrides -> the first job with them
        for j in queued:
            described.setdefault(seed_free(j.overrides), j.idx)
        runs = {u.idx: u.members or [u] for u in units if u.status == "queued"}
        measured: dict = {}  # (seed-free overrides, seeds) -> the first member of the first such process
        for m in runs.values():
            measured.setdefault((seed_free(m[0].overrides), len(m)), m[0].idx)
        if measured:
            log.info(f"dry run: measuring the training step of {len(measured)} configuration(s) and bundle size(s)")
        requests = [(_plain_task_config(configs[i]), k[1]) for k, i in measured.items()]
        plain = [_plain_task_config(configs[i]) for i in described.values()]
        where = child_env(plan, plan.devices[0], jobs_per_device=self.options["jobs_per_device"])  # a job's device
        with ThreadPoolExecutor(1 if plan.platform == "cpu" else 2) as pool:
            lines = pool.submit(self.hook.describe, plain)
            recs = pool.submit(self.hook.estimate, requests, where) if requests else None
            lines, recs = lines.result(), recs.result() if recs else None
        if lines is not None and queued:
            said = dict(zip(described, lines, strict=True))
            print("jobs as they would run:")
            print("\n".join(f"{j.idx:>4}  {j.label}: {said[seed_free(j.overrides)]}" for j in queued))
        said = dict(zip(measured, recs, strict=True)) if recs is not None else {}
        estimates = {idx: said.get((seed_free(m[0].overrides), len(m))) for idx, m in runs.items()}
        print(
            bundle_table(
                units,
                self.options.get("bundle", "auto"),
                estimates,
                len(plan.devices) * self.options["jobs_per_device"],
            )
        )

    def _launch(self, sweep_dir: Path, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list:
        from sympscale.launcher import compile_cache, records
        from sympscale.launcher.child import JobFailure
        from sympscale.launcher.devices import plan_devices
        from sympscale.launcher.hook import find_hook
        from sympscale.launcher.scheduler import Scheduler, summary_table
        from sympscale.launcher.sharding import parse_shard

        opt = self.options
        plan = plan_devices(opt["platform"], opt["devices"], opt["cpu_workers"])
        shard = parse_shard(opt["shard"])
        self.hook = find_hook(self.task_function)
        self.code = self.hook.code()
        self._unwritten: list[str] = []  # records lost to a full disk: `_storing`
        self.cache_dir, cache_why = compile_cache.resolve(opt["compilation_cache"])
        jobs, configs, keys, values = self._compose(job_overrides, initial_job_idx, shard, sweep_dir)
        n_run = sum(j.status == "queued" for j in jobs)
        log.info(
            f"local_devices: {len(jobs)} jobs ({n_run} to run, {len(jobs) - n_run} already finished)"
            f"{f' [shard {shard[0]}/{shard[1]}]' if shard else ''} on {plan.platform} devices "
            f"{', '.join(plan.devices)} ({plan.source}), {opt['jobs_per_device']} per device; sweep dir {sweep_dir}"
        )
        units = self._units(jobs, len(plan.devices) * opt["jobs_per_device"])
        log.info(f"local_devices: compilation cache {self.cache_dir or 'none'} ({cache_why})")
        if opt["dry_run"]:
            self._dry_run(jobs, units, configs, plan)
            print(f"dry run: {len(jobs)} jobs, {n_run} would run; nothing was started")
            return []
        scheduler = Scheduler(
            list(plan.devices),
            jobs_per_device=opt["jobs_per_device"],
            max_retries=opt["max_retries"],
            fail_fast=opt["fail_fast"],
            progress_every=opt["progress_every"],
            echo=lambda m: print(m, flush=True),
        )
        command = [sys.executable, "-m", "sympscale.launcher.child"]
        try:
            scheduler.run(
                units,
                lambda job: command,
                self._env_maker(plan),
                lambda job: self._ended(job, keys[job.idx]),
                stdin_for=self._spec_maker(configs),
            )
        finally:  # also on SIGINT/SIGTERM (SystemExit) and on an error of the launcher itself
            try:
                self._storing(records.write_summary, sweep_dir, jobs, plan.platform, list(plan.devices), shard)
            finally:
                print(summary_table(jobs), flush=True)
        if self._unwritten:  # every job ran its course; what could not be recorded was said line by line
            print(
                f"local_devices: {len(self._unwritten)} launcher record(s) could not be written (the first: "
                f"{self._unwritten[0].split(' (')[0]}); free space, then rerun the same command",
                file=sys.stderr,
                flush=True,
            )
            raise SystemExit(1)
        first = scheduler.first_failure
        if opt["fail_fast"] and first is not None:
            where = f"; log: {first.log_path}" if first.log_path.is_file() else ""
            raise JobFailure(f"fail_fast: job #{first.idx} ({first.label}) failed first: {first.cause}{where}")
        return [self._job_return(job, configs[job.idx], values.get(job.idx)) for job in jobs]

    def _compose(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int, shard: Any, root: Path) -> tuple:
        """This node's jobs (queued, or skipped when they finished earlier), their configs, resume keys and the
        recorded return values of the skipped ones."""
        from sympscale.launcher import records
        from sympscale.launcher.bundles import seed_free
        from sympscale.launcher.scheduler import Job
        from sympscale.launcher.sharding import shard_positions

        hook, code = self.hook, self.code
        jobs, configs, keys, values, stale = [], {}, {}, {}, []
        configurations = [seed_free(list(filter_overrides(o))) for o in job_overrides]
        mine = shard_positions(configurations, shard, whole=self._bundles())
        for i, overrides in enumerate(job_overrides):
            idx = initial_job_idx + i
            if i not in mine:
                continue
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(cfg):
                cfg.hydra.job.id = f"{cfg.hydra.job.name}_{idx}"
                cfg.hydra.job.num = idx
            job_dir = _job_dir(cfg)
            task_cfg = _plain_task_config(cfg)
            job = Job(idx=idx, overrides=list(filter_overrides(overrides)), job_dir=job_dir, cost=hook.cost(task_cfg))
            job.log_path = job.job_dir / "launcher.log"
            keys[idx] = hook.job_key(task_cfg)
            jobs.append(job)
            configs[idx] = cfg
            if not self.options["resume"]:
                continue
            prior = records.read(job_dir, keep=not self.options["dry_run"])
            state, why = records.verdict(prior, (keys[idx], hook.legacy_key(keys[idx])), code)
            # the application's own record says it did not finish (or is damaged): it runs again; a dry run writes
            # nothing, so it asks only the launcher's records
            if state != "new" and not self.options["dry_run"] and hook.result(job_dir, "done", None)[0] != "done":
                continue
            if state == "stale":
                stale.append((job, why))
                if self.options["rerun_stale"]:
                    continue
            if state != "new":
                job.status = "skipped"
                job.cause = "finished in an earlier run" if state == "finished" else f"{records.STALE}: {why}"
                values[idx] = prior.get("value")
        if stale:
            log.warning(records.stale_line(stale, root, self.options["rerun_stale"]))
        return jobs, configs, keys, values

    def _ended(self, job: Any, key: str) -> None:
        """A job's process ended: the application's account of it (hook.result), then its launcher.json."""
        from sympscale.launcher import records

        def account() -> None:
            job.status, job.cause = self.hook.result(job.job_dir, job.status, job.cause)
            records.record_end(job, key, self.code)

        self._storing(account)

    def _storing(self, write, *args) -> None:
        """`write(*args)`; out of space, quota or on a read-only filesystem: one line, and the sweep goes on (its
        end then exits 1). A job whose records were not written is judged from its own files on the next run: a
        'running' status whose process is gone is an interruption (`sympscale.jobdir.orphaned`)."""
        from sympscale.atomic import StorageFull

        try:
            write(*args)
        except StorageFull as e:
            self._unwritten.append(str(e))
            print(f"local_devices: {e}", file=sys.stderr, flush=True)

    def _env_maker(self, plan: Any):
        """device -> the environment of a job on it (device mask, shared compilation cache)."""
        from sympscale.launcher.devices import child_env

        extra = {"PYTHONUNBUFFERED": "1"}
        if self.cache_dir is not None:
            extra["JAX_COMPILATION_CACHE_DIR"] = str(self.cache_dir)
            extra["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        per_device = self.options["jobs_per_device"]
        return lambda device: {**child_env(plan, device, jobs_per_device=per_device), **extra}

    def _spec_maker(self, configs: dict):
        """job -> its spec (wire.encode_job): the config as YAML, the task by name (pickled only if it must be)."""
        from omegaconf.basecontainer import BaseContainer

        from sympscale.launcher import wire

        cwd, version_base = os.getcwd(), _version_base()
        shipped: dict = {}
        resolvers: dict = {}

        def member(cfg: DictConfig) -> dict:
            """A job's config as YAML, its flags, and the resolvers it calls that the child may lack."""
            text = OmegaConf.to_yaml(cfg, resolve=False)
            for name in wire.referenced_resolvers(text):
                if name not in resolvers and name in BaseContainer._resolvers:
                    try:
                        resolvers[name] = wire.pickled(BaseContainer._resolvers[name], f"resolver {name!r}")
                    except TypeError as e:  # the child may register it by importing the task
                        log.debug(str(e))
                        resolvers[name] = None
            flags = {
                "struct": bool(OmegaConf.is_struct(cfg)),
                "readonly": bool(OmegaConf.is_readonly(cfg)),
                "hydra_readonly": bool(OmegaConf.is_readonly(cfg.hydra)),
            }
            cache = wire.resolver_cache(cfg)
            return {"config": text, "flags": flags, "cache": cache, "resolvers": wire.referenced_resolvers(text)}

        def spec(job: Any) -> bytes:
            if "task" not in shipped:
                try:
                    shipped["task"] = wire.ship_task(self.task_function)
                except TypeError as e:
                    shipped["task"] = e
            if isinstance(shipped["task"], Exception):
                raise shipped["task"]
            members = [member(configs[m.idx]) for m in job.members or [job]]
            used = {n for m in members for n in m["resolvers"]}
            return wire.encode_job(
                config_yaml=members[0]["config"],
                flags=members[0]["flags"],
                cache=members[0]["cache"],
                task_ref=shipped["task"][0],
                pickled_task=shipped["task"][1],
                pickled_resolvers={n: resolvers[n] for n in sorted(used) if resolvers.get(n)},
                cwd=cwd,
                version_base=version_base,
                members=members if job.members else None,
                bundle_task=self._bundle_task() if job.members else None,
            )

        return spec

    def _job_return(self, job: Any, cfg: DictConfig, recorded_value: Any) -> JobReturn:
        from sympscale.launcher.remote_error import failure
        from sympscale.launcher.wire import value_of

        result = job.result or {}
        hydra_cfg = OmegaConf.masked_copy(cfg, ["hydra"])
        with read_write(hydra_cfg.hydra.runtime), open_dict(hydra_cfg.hydra.runtime):
            hydra_cfg.hydra.runtime.output_dir = result.get("output_dir") or os.path.abspath(job.job_dir)
        ret = JobReturn(
            overrides=list(OmegaConf.to_container(cfg.hydra.overrides.task)),
            cfg=_task_config(cfg),
            hydra_cfg=hydra_cfg,
            working_dir=result.get("working_dir") or str(job.job_dir),
            task_name=result.get("task_name") or cfg.hydra.job.name,
            status=JobStatus.COMPLETED if job.status in ("done", "skipped") else JobStatus.FAILED,
        )
        if job.status == "done":
            ret._return_value = value_of(result)
        elif job.status == "skipped":
            ret._return_value = recorded_value
        else:
            ret._return_value = failure(job)
        return ret
