"""Hydra sweeper `sympscale`: the basic sweeper plus seed-range expansion and whole-grid validation.

- Range syntax (`seed: 1-10`, `1-3,7`) in YAML-defined sweeps (`hydra.sweeper.params`) and in the command line
  is expanded into Hydra's comma lists (the entrypoint also expands the raw command line before Hydra parses
  it, since a typed `seed: int` would otherwise fail at composition).
- Every job of the grid is composed and checked (D valid for the system, BPTT window within the horizon, ...)
  before the first one is launched, so a bad grid point fails the sweep before any compute and writes nothing.
"""

import logging
from dataclasses import dataclass
from typing import Any, Dict, Optional  # noqa: UP035 (Hydra reads these annotations at runtime)

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser

log = logging.getLogger(__name__)


@dataclass
class SympScaleSweeperConf:
    _target_: str = "hydra_plugins.sympscale_sweeper.sympscale_sweeper.SympScaleSweeper"
    max_batch_size: Optional[int] = None  # noqa: UP045
    params: Optional[Dict[str, str]] = None  # noqa: UP006, UP045


ConfigStore.instance().store(group="hydra/sweeper", name="sympscale", node=SympScaleSweeperConf, provider="sympscale")


class SympScaleSweeper(BasicSweeper):
    def __init__(self, max_batch_size: int | None, params: dict[str, str] | None = None) -> None:
        from sympscale.seeds import rewrite_arg

        params = {k: rewrite_arg(k.lstrip("+"), str(v)) for k, v in (params or {}).items()}
        super().__init__(max_batch_size=max_batch_size, params=params)

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self._hydra_context = hydra_context

    def sweep(self, arguments: list[str]) -> Any:
        from sympscale.seeds import rewrite_args

        arguments = rewrite_args(list(arguments))
        self._validate_grid(arguments)
        return super().sweep(arguments)

    def _validate_grid(self, arguments: list[str]) -> None:
        from sympscale.validation import config_errors

        parser = OverridesParser.create(config_loader=self._hydra_context.config_loader)
        params = [f"{k}={v}" for k, v in (self.params or {}).items()]
        overrides = parser.parse_overrides(params + arguments)
        grid = [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]
        problems: list[str] = []
        for job in grid:
            cfg = self._hydra_context.config_loader.load_sweep_config(self.config, list(job))
            problems += [f"  [{' '.join(job)}] {e}" for e in config_errors(cfg)]
        if problems:
            raise ValueError(
                f"{len(problems)} problem(s) in the sweep grid of {len(grid)} jobs; nothing was run:\n"
                + "\n".join(problems)
            )
        log.info(f"SympScale sweep: {len(grid)} jobs validated")
