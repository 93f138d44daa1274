"""Training entrypoint: `python -m sympscale.train [-m] key=value ...`.

The Hydra config stops here: `run_job` unpacks it into plain library calls
(data -> model -> training -> evaluation) and writes the job folder.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from sympscale import config as config_schema
from sympscale import launcher_hook as LAUNCHER_HOOK  # noqa: F401, N812  (read by the local_devices launcher)
from sympscale.atomic import StorageFull
from sympscale.confdir import config_dir
from sympscale.identity import FolderConflict
from sympscale.rankfloor import CapacityFloor
from sympscale.recipe import RECIPE_KEYS, cell_recipe, effective_train, recipe_source
from sympscale.seeds import RangeSyntaxError, rewrite_args
from sympscale.validation import config_errors


def register() -> None:
    """What composing this app's config needs: its schemas in Hydra's config store and its resolver."""
    # job folder name: the job's sorted overrides (stable across reruns), quotes dropped, "/" made harmless (a
    # path value must not nest folders); "default" when there are none
    OmegaConf.register_new_resolver(
        "sympscale_job_key", lambda key: key.replace("'", "").replace("/", "_") or "default", replace=True
    )
    # the tuned recipe of a (preset, system, D, model), {} where there is none (sympscale/recipe.py)
    OmegaConf.register_new_resolver("sympscale_tuned_recipe", cell_recipe, replace=True)
    config_schema.register()


register()


class ConfigError(ValueError):
    """A job config that cannot run; raised before any compute."""


def run_job(cfg: DictConfig, out_dir: Path) -> dict:
    """Run one job described by a composed config; returns its metrics (also written to out_dir)."""
    from sympscale.job import execute

    spec, record = _job_spec(cfg)
    return execute(spec, out_dir, resolved=record)


def _job_spec(cfg: DictConfig) -> tuple:
    """(the job's spec, its resolved record); ConfigError before any compute when the config cannot run."""
    errors = config_errors(cfg)
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))
    from sympscale.job import JobSpec  # imports JAX: only once the config is known good

    for line in _shadowed(cfg):
        print(f"sympscale: WARNING: {line}", file=sys.stderr)
    return JobSpec.from_config(cfg), _resolved(cfg)


def _shadowed(cfg: DictConfig) -> list[str]:
    """Command-line train settings that a recipe layer replaces (sympscale/recipe.py), each said once."""
    try:
        given = [o.lstrip("+").split("=", 1)[0] for o in HydraConfig.get().overrides.task]
    except ValueError:  # outside a Hydra job (tests)
        return []
    train = dict(cfg.train)
    effective = effective_train(train, cfg.model.name)
    source = recipe_source(train, cfg.model.name)
    return [
        f"{key}={train[key[6:]]} is replaced by {effective[key[6:]]} ({source}); train.recipe=none trains with the "
        f"command line's value"
        for key in given
        if key.startswith("train.") and key[6:] in RECIPE_KEYS and effective.get(key[6:]) != train.get(key[6:])
    ]


def _resolved(cfg: DictConfig) -> dict:
    import sympscale.models  # noqa: F401  (the built-in models register themselves)
    from sympscale.registry import MODELS

    resolved = OmegaConf.to_container(cfg, resolve=True)
    resolved["_model_defaults"] = MODELS[cfg.model.name].defaults()  # the analysis's method labels read them
    try:
        hc = HydraConfig.get()
        resolved["_hydra"] = {"overrides": list(hc.overrides.task), "choices": dict(hc.runtime.choices)}
    except ValueError:  # called outside a Hydra job (tests)
        pass
    return resolved


def _task(cfg: DictConfig) -> dict:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        metrics = run_job(cfg, out_dir)
    except (ConfigError, FolderConflict, CapacityFloor) as e:
        print(f"sympscale: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except StorageFull as e:  # out of space, quota or a read-only filesystem: one line, what to do
        print(f"sympscale: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    except Exception:
        traceback.print_exc()
        raise
    from sympscale.job import headline, reference_run

    print(f"results: {out_dir}\n{headline(metrics, reference_run(out_dir, metrics))}")
    return metrics


class _Bundle:
    """Seed bundles for the local_devices launcher (`sympscale.launcher.bundles`): `prepare` runs inside each
    member's Hydra job (its folder and config), `run` trains the prepared members as one program."""

    @staticmethod
    def prepare(cfg: DictConfig) -> tuple:
        spec, record = _job_spec(cfg)
        return spec, Path(HydraConfig.get().runtime.output_dir), record

    @staticmethod
    def run(prepared: list[tuple]) -> list:
        from sympscale.job import execute_bundles, headline, reference_run

        specs, dirs, records = (list(x) for x in zip(*prepared, strict=True))
        results = execute_bundles(specs, dirs, resolved=records)
        for out_dir, result in zip(dirs, results, strict=True):
            if isinstance(result, BaseException):
                print(f"sympscale: {out_dir}: {type(result).__name__}: {result}", file=sys.stderr)
            else:
                print(f"results: {out_dir}\n{headline(result, reference_run(out_dir, result))}")
        return results


LAUNCHER_BUNDLE_TASK = _Bundle  # read by the local_devices launcher


def _refuse(errors: list[str]) -> None:
    """One line per problem, exit status 2: nothing was computed or written."""
    for line in dict.fromkeys(errors):
        print(f"sympscale: {line}", file=sys.stderr)
    raise SystemExit(2)


def main() -> None:
    try:
        sys.argv = [sys.argv[0], *rewrite_args(sys.argv[1:])]
    except RangeSyntaxError as e:
        _refuse([str(e)])
    from sympscale.preflight import command_errors

    try:
        errors = command_errors(sys.argv[1:], config_dir())
    except Exception as e:  # a config the checks themselves cannot read (e.g. `~D` removed a required key)
        errors = [f"the command line cannot be checked: {type(e).__name__}: {str(e).strip().splitlines()[0]}"]
    if errors:
        _refuse(errors)
    hydra.main(config_path=config_dir(), config_name="config", version_base="1.3")(_task)()


if __name__ == "__main__":
    main()
