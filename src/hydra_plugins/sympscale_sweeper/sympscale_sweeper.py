"""Hydra sweeper `sympscale`: the basic sweeper plus seed-range expansion and whole-grid validation.

- Range syntax (`seed: 1-10`, `1-3,7`) in YAML-defined sweeps (`hydra.sweeper.params`) and in the command line
  is expanded into Hydra's comma lists (the entrypoint also expands the raw command line before Hydra parses
  it, since a typed `seed: int` would otherwise fail at composition).
- Every job of the grid is composed and checked (D valid for the system, BPTT window within the horizon, the
  job folder free of a different finished run, ...) before the first one is launched: a bad grid point prints
  one line per problem and exits with status 2 before any compute, writing nothing.
- The configs validation composed are handed to the launcher (`ComposedOnce`): composing a job costs ~0.1 s,
  and a grid of 80 would otherwise be composed twice before the first job starts.
"""

import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence  # noqa: UP035 (Hydra reads these annotations at runtime)

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore

log = logging.getLogger(__name__)


@dataclass
class SympScaleSweeperConf:
    _target_: str = "hydra_plugins.sympscale_sweeper.sympscale_sweeper.SympScaleSweeper"
    max_batch_size: Optional[int] = None  # noqa: UP045
    params: Optional[Dict[str, str]] = None  # noqa: UP006, UP045


ConfigStore.instance().store(group="hydra/sweeper", name="sympscale", node=SympScaleSweeperConf, provider="sympscale")


class ComposedOnce:
    """The config loader, with the sweep configs validation composed kept for the launcher to take: each is handed
    over once (the launcher may modify it; a second request composes afresh), up to `LIMIT` of them (a config is
    ~0.2 MiB), with the master's resolver cache as Hydra's own `load_sweep_config` gives it (`${now:...}` in the
    sweep folder resolves as in the master, not as at validation). Pickled (a Slurm launcher ships it to its tasks)
    without what it keeps. Everything else is the loader's own."""

    LIMIT = 1000

    def __init__(self, loader: Any) -> None:
        self._loader = loader
        self._kept: Dict[Any, Any] = {}  # noqa: UP006  (overrides -> (master config, composed config))

    def load_sweep_config(self, master_config: Any, sweep_overrides: List[str]) -> Any:  # noqa: UP006
        master, kept = self._kept.pop(tuple(sweep_overrides), (None, None))
        if kept is None or master is not master_config:
            return self._loader.load_sweep_config(master_config, sweep_overrides)
        from omegaconf import OmegaConf

        OmegaConf.set_readonly(kept.hydra, False)  # as composed: validation's HydraConfig.set_config froze it
        OmegaConf.copy_cache(from_config=master_config, to_config=kept)  # as Hydra's load_sweep_config does
        return kept

    def compose_and_keep(self, master_config: Any, sweep_overrides: List[str]) -> Any:  # noqa: UP006
        """A sweep config for validation (not to be modified), kept for the launcher while there is room."""
        cfg = self._loader.load_sweep_config(master_config, list(sweep_overrides))
        if len(self._kept) < self.LIMIT:
            self._kept[tuple(sweep_overrides)] = (master_config, cfg)
        return cfg

    def forget(self) -> None:
        """Drop what the launcher did not take (another share's jobs)."""
        self._kept.clear()

    def __getstate__(self) -> dict:
        return {"_loader": self._loader, "_kept": {}}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def __getattr__(self, name: str) -> Any:  # only what the instance lacks; never its own state (unpickling)
        if name.startswith("__") or name in ("_loader", "_kept"):
            raise AttributeError(name)
        return getattr(self._loader, name)


class SympScaleSweeper(BasicSweeper):
    def __init__(self, max_batch_size: int | None, params: dict[str, str] | None = None) -> None:
        from sympscale.seeds import RangeSyntaxError, rewrite_arg

        try:
            params = {k: rewrite_arg(k.lstrip("+"), str(v)) for k, v in (params or {}).items()}
        except RangeSyntaxError as e:
            self._refuse([f"hydra.sweeper.params: {e}"])
        super().__init__(max_batch_size=max_batch_size, params=params)

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        from hydra.types import HydraContext

        memo = ComposedOnce(hydra_context.config_loader)
        context = HydraContext(config_loader=memo, callbacks=hydra_context.callbacks)
        super().setup(hydra_context=context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:  # noqa: UP006
        from hydra.core.override_parser.overrides_parser import OverridesParser

        from sympscale.seeds import rewrite_args

        arguments = rewrite_args(list(arguments))
        # validate the whole grid before Hydra writes anything (multirun.yaml) or launches a job
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        params = [f"{k}={v}" for k, v in (self.params or {}).items()]
        parsed = parser.parse_overrides(params + arguments)
        self._check_size(parsed)
        grid = [job for b in BasicSweeper.split_arguments(parsed, None) for job in b]
        self._check(grid)
        self._check_owner()
        self._keep_previous_record()
        try:
            return super().sweep(arguments)
        finally:
            self.hydra_context.config_loader.forget()

    def _check_size(self, parsed: Sequence[Any]) -> None:
        """The grid's size from its sweeps' lengths, before anything expands them (`seed=range(0,10**9)`)."""
        import math

        from hydra.core.override_parser.types import ChoiceSweep, RangeSweep

        from sympscale.preflight import MAX_JOBS

        size = 1
        for ov in parsed:
            value = ov.value() if ov.is_sweep_override() else None
            if isinstance(value, RangeSweep):
                size *= max(0, math.ceil((value.stop - value.start) / value.step)) if value.step else 0
            elif isinstance(value, ChoiceSweep):
                size *= len(value.list)
        if size > MAX_JOBS:
            self._refuse([f"the sweep grid has {size:,} jobs; at most {MAX_JOBS:,} in one command (split it)"])

    def _check_owner(self) -> None:
        """Another launcher owning this sweep folder (or this share of it) refuses the sweep before it writes."""
        from pathlib import Path

        from omegaconf import OmegaConf

        launcher = OmegaConf.select(self.config, "hydra.launcher")
        if launcher is None or "local_devices" not in str(launcher.get("_target_", "")) or launcher.get("dry_run"):
            return
        from sympscale.launcher.lock import SweepLocked, own, release
        from sympscale.launcher.sharding import parse_shard

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        try:
            release(own(sweep_dir, parse_shard(launcher.shard)))
        except SweepLocked as e:
            self._refuse([str(e)])
        except OSError as e:
            self._refuse([f"hydra.sweep.dir: cannot take the sweep folder's lock in {sweep_dir}: {e.strerror or e}"])

    def _keep_previous_record(self) -> None:
        """Hydra rewrites <sweep>/multirun.yaml on every launch: an earlier launch's record moves aside, not lost."""
        import os
        import time
        from pathlib import Path

        record = Path(str(self.config.hydra.sweep.dir)) / "multirun.yaml"
        if record.exists():
            stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(record.stat().st_mtime))
            os.replace(record, record.with_name(f"multirun.{stamp}.yaml"))

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        """Already done for the whole grid in sweep(); composing every job again would only cost time."""

    def _check(self, grid: Sequence[Sequence[str]]) -> None:
        """Every problem of every job, each once, as one line; exit status 2 before anything is written."""
        import sys

        from sympscale.preflight import MAX_JOBS, job_errors

        if len(grid) > MAX_JOBS:
            self._refuse([f"the sweep grid has {len(grid):,} jobs; at most {MAX_JOBS:,} in one command (split it)"])
        problems: List[str] = []  # noqa: UP006
        for job in grid:
            try:
                cfg = self.hydra_context.config_loader.compose_and_keep(self.config, list(job))
            except Exception as e:
                from sympscale.preflight import composition_error

                problems.append(composition_error(e, list(job)))
                continue
            problems += job_errors(cfg, "hydra.sweep.dir", "hydra.sweep.subdir")
        if problems:
            self._refuse(list(dict.fromkeys(problems)))
        log.info(f"SympScale sweep: {len(grid)} jobs validated")
        sys.stderr.flush()

    @staticmethod
    def _refuse(problems: List[str]) -> None:  # noqa: UP006
        import sys

        for line in problems:
            print(f"sympscale: {line}", file=sys.stderr)
        raise SystemExit(2)
