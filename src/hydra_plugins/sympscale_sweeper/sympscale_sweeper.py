"""Hydra sweeper `sympscale`: the basic sweeper plus seed-range expansion and whole-grid validation.

- Range syntax (`seed: 1-10`, `1-3,7`) in YAML-defined sweeps (`hydra.sweeper.params`) and in the command line
  is expanded into Hydra's comma lists (the entrypoint also expands the raw command line before Hydra parses
  it, since a typed `seed: int` would otherwise fail at composition).
- Every job of the grid is composed and checked (D valid for the system, BPTT window within the horizon, ...)
  before the first one is launched, so a bad grid point fails the sweep before any compute and writes nothing.
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


class SympScaleSweeper(BasicSweeper):
    def __init__(self, max_batch_size: int | None, params: dict[str, str] | None = None) -> None:
        from sympscale.seeds import rewrite_arg

        params = {k: rewrite_arg(k.lstrip("+"), str(v)) for k, v in (params or {}).items()}
        super().__init__(max_batch_size=max_batch_size, params=params)

    def sweep(self, arguments: List[str]) -> Any:  # noqa: UP006
        from hydra.core.override_parser.overrides_parser import OverridesParser

        from sympscale.seeds import rewrite_args

        arguments = rewrite_args(list(arguments))
        # validate the whole grid before Hydra writes anything (multirun.yaml) or launches a job
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        params = [f"{k}={v}" for k, v in (self.params or {}).items()]
        grid = [
            job for b in BasicSweeper.split_arguments(parser.parse_overrides(params + arguments), None) for job in b
        ]
        self._check(grid)
        return super().sweep(arguments)

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        """Already done for the whole grid in sweep(); composing every job again would only cost time."""

    def _check(self, grid: Sequence[Sequence[str]]) -> None:
        from sympscale.validation import config_errors

        problems: List[str] = []  # noqa: UP006
        for job in grid:
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(job))
            problems += [f"  [{' '.join(job)}] {e}" for e in config_errors(cfg)]
        if problems:
            raise ValueError(
                f"{len(problems)} problem(s) in the sweep grid of {len(grid)} jobs; nothing was run:\n"
                + "\n".join(problems)
            )
        log.info(f"SympScale sweep: {len(grid)} jobs validated")
