"""Hydra launcher `local_devices`: one fresh process per job, each seeing exactly one device.

    python -m sympscale.train -m system=toda,fput D=64,256 model=symp,gru seed=1-10

Options (hydra.launcher.*): platform (auto|cuda|rocm|cpu), devices, cpu_workers, jobs_per_device, fail_fast,
max_retries, resume, dry_run, progress_every, compilation_cache, shard. The work is done by
`sympscale.launcher` (devices, scheduler, child); this class turns Hydra's job list into processes and back.
"""

import hashlib
import inspect
import json
import logging
import os
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence  # noqa: UP035 (Hydra reads these annotations at runtime)

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from hydra.plugins.launcher import Launcher
from omegaconf import DictConfig, OmegaConf, open_dict

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
    dry_run: bool = False  # list the grid and the device plan, run nothing
    progress_every: float = 30.0  # seconds between progress lines
    compilation_cache: Optional[str] = "${hydra.sweep.dir}/.jax_cache"  # noqa: UP045  shared by all jobs
    shard: Optional[str] = None  # noqa: UP045  null | "i/n" | "slurm": run only this node's share of the grid


ConfigStore.instance().store(group="hydra/launcher", name="local_devices", node=LocalDevicesConf, provider="sympscale")


def _job_dir(cfg: DictConfig) -> Path:
    HydraConfig.instance().set_config(cfg)
    return Path(str(OmegaConf.select(cfg, "hydra.sweep.dir"))) / str(OmegaConf.select(cfg, "hydra.sweep.subdir"))


def _cost(cfg: DictConfig) -> float:
    """Relative cost of a job, for longest-first ordering (0 when the config does not say)."""
    try:
        t = cfg.train
        return float(t.steps) * float(t.horizon) * float(t.batch_size) * float(cfg.D) * float(cfg.capacity.width)
    except Exception:
        return 0.0


def _job_key(cfg: DictConfig, task_function: Any) -> str:
    """What a finished job must match to be skipped: its task config (unresolved) and the task's code."""
    task_cfg = OmegaConf.to_yaml(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=False)
    try:
        code = inspect.getsource(task_function)
    except (OSError, TypeError):
        code = ""
    name = f"{getattr(task_function, '__module__', '')}.{getattr(task_function, '__qualname__', '')}"
    return hashlib.sha256("\0".join([task_cfg, name, code]).encode()).hexdigest()[:20]


def _finished(job_dir: Path, key: str) -> bool:
    """Finished earlier with the same key, and (for SympScale jobs) its own status file says done."""
    status, marker = job_dir / "status.json", job_dir / "launcher.json"
    try:
        rec = json.loads(marker.read_text()) if marker.exists() else {}
        if rec.get("status") != "done" or rec.get("key") != key:
            return False
        return not status.exists() or json.loads(status.read_text()).get("status") == "done"
    except (OSError, ValueError):
        return False


def _resolvers() -> dict:
    import cloudpickle
    from omegaconf.basecontainer import BaseContainer

    out = {}
    for name, fn in BaseContainer._resolvers.items():
        try:
            cloudpickle.dumps(fn)
            out[name] = fn
        except Exception:
            pass
    return out


class LocalDevicesLauncher(Launcher):
    def __init__(self, **options: Any) -> None:
        self.options = options
        self.config: Optional[DictConfig] = None  # noqa: UP045
        self.hydra_context: Any = None
        self.task_function: Any = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import cloudpickle

        from sympscale.jobdir import write_json
        from sympscale.launcher.devices import child_env, plan_devices
        from sympscale.launcher.scheduler import Job, Scheduler, summary_table
        from sympscale.launcher.sharding import in_shard, parse_shard

        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        opt = self.options
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        work = sweep_dir / ".launcher"
        work.mkdir(exist_ok=True)
        plan = plan_devices(opt["platform"], opt["devices"], opt["cpu_workers"])
        shard = parse_shard(opt["shard"])

        jobs, configs, keys = [], {}, {}
        for i, overrides in enumerate(job_overrides):
            idx = initial_job_idx + i
            if not in_shard(idx, shard):
                continue
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(cfg):
                cfg.hydra.job.id = f"{cfg.hydra.job.name}_{idx}"
                cfg.hydra.job.num = idx
            job = Job(idx=idx, overrides=list(filter_overrides(overrides)), job_dir=_job_dir(cfg), cost=_cost(cfg))
            job.log_path, job.result_path = job.job_dir / "launcher.log", work / f"{idx}.result"
            keys[idx] = _job_key(cfg, self.task_function)
            if opt["resume"] and _finished(job.job_dir, keys[idx]):
                job.status, job.cause = "skipped", "finished in an earlier run"
            jobs.append(job)
            configs[idx] = cfg
        n_run = sum(j.status == "queued" for j in jobs)
        log.info(
            f"local_devices: {len(jobs)} jobs ({n_run} to run, {len(jobs) - n_run} already finished)"
            f"{f' [shard {shard[0]}/{shard[1]}]' if shard else ''} on {plan.platform} devices "
            f"{', '.join(plan.devices)} ({plan.source}), {opt['jobs_per_device']} per device; sweep dir {sweep_dir}"
        )
        if opt["dry_run"]:
            print(summary_table(jobs))
            print(f"dry run: {len(jobs)} jobs, {n_run} would run; nothing was started")
            return []

        cwd = os.getcwd()
        for job in jobs:
            if job.status != "queued":
                continue
            with open(work / f"{job.idx}.payload", "wb") as f:
                pickle.dump(list(sys.path), f)
                cloudpickle.dump(
                    {
                        "singletons": Singleton.get_state(),
                        "resolvers": _resolvers(),
                        "config": configs[job.idx],
                        "hydra_context": self.hydra_context,
                        "task_function": self.task_function,
                        "cwd": cwd,
                    },
                    f,
                )
        extra_env = {"PYTHONUNBUFFERED": "1"}
        if opt["compilation_cache"]:
            extra_env["JAX_COMPILATION_CACHE_DIR"] = str(opt["compilation_cache"])
            extra_env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"

        def command(job: Job) -> List[str]:  # noqa: UP006
            return [
                sys.executable,
                "-m",
                "sympscale.launcher.child",
                str(work / f"{job.idx}.payload"),
                str(job.result_path),
            ]

        def env_for(device: str) -> dict:
            return {**child_env(plan, device, jobs_per_device=opt["jobs_per_device"]), **extra_env}

        def on_finish(job: Job, code: int) -> None:
            ret = None
            if job.result_path.exists():
                with open(job.result_path, "rb") as f:
                    ret = pickle.load(f)
            if ret is not None and ret.status == JobStatus.COMPLETED:
                job.status, job.result, job.cause = "done", ret, None
            else:
                job.status, job.result = "failed", ret
                job.cause = str(ret._return_value) if ret is not None else None
            job.job_dir.mkdir(parents=True, exist_ok=True)
            record = {k: getattr(job, k) for k in ("status", "cause", "device", "attempts", "overrides")}
            record.update(key=keys[job.idx], started=job.started, seconds=job.duration, exit_code=code)
            write_json(job.job_dir / "launcher.json", record)

        scheduler = Scheduler(
            list(plan.devices),
            jobs_per_device=opt["jobs_per_device"],
            max_retries=opt["max_retries"],
            fail_fast=opt["fail_fast"],
            progress_every=opt["progress_every"],
            echo=lambda m: print(m, flush=True),
        )
        try:
            scheduler.run(jobs, command, env_for, on_finish)
        finally:
            self._write_summary(sweep_dir, jobs, plan)
        print(summary_table(jobs), flush=True)
        return [self._job_return(job, configs[job.idx]) for job in jobs]

    @staticmethod
    def _write_summary(sweep_dir: Path, jobs: list, plan: Any) -> None:
        rows = [
            {
                "idx": j.idx,
                "overrides": j.overrides,
                "status": j.status,
                "device": j.device,
                "seconds": j.duration,
                "attempts": j.attempts,
                "cause": j.cause,
                "job_dir": str(j.job_dir),
                "log": str(j.log_path),
            }
            for j in sorted(jobs, key=lambda j: j.idx)
        ]
        from sympscale.jobdir import write_json

        write_json(
            sweep_dir / "launcher_summary.json",
            {"platform": plan.platform, "devices": list(plan.devices), "jobs": rows},
        )

    def _job_return(self, job: Any, cfg: DictConfig) -> JobReturn:
        if job.status == "done":
            return job.result
        from sympscale.launcher.child import JobFailure

        ret = JobReturn(
            overrides=job.overrides,
            cfg=OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]) if isinstance(cfg, DictConfig) else cfg,
            hydra_cfg=cfg,
            working_dir=str(job.job_dir),
            task_name=cfg.hydra.job.name,
            status=JobStatus.COMPLETED if job.status == "skipped" else JobStatus.FAILED,
        )
        if job.status == "skipped":
            metrics = job.job_dir / "metrics.json"
            ret._return_value = json.loads(metrics.read_text()) if metrics.exists() else None
        else:
            ret._return_value = JobFailure(
                f"job #{job.idx} ({job.label}) {job.status}: {job.cause}; log: {job.log_path}"
            )
        return ret
