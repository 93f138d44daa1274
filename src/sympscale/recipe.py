"""Per-model training recipes: a preset's shared budget, plus each model's tuned departures from it.

A comparison is fair between models that are each trained well within the same budget: the same data, steps,
batch and capacity. How a model is best trained within it (its learning rate, its horizon curriculum) may
differ, and differs with D: the GRU recipe tuned at FPUT D = 16 learnt nothing at D = 8 or 64. The layers, each
over the one before (`effective_train`):

1. the preset's `train.*` (the budget every model shares, and the defaults);
2. the preset's `train.recipes.<model>` (its untuned departures, argued in the preset's header);
3. a tuned recipe for this (preset, system, D, model): a file `<recipes>/<preset>/<system>_D<D>_<model>.yaml`
   written by `python -m sympscale.tune` from an `experiment=tune` sweep (`train.tuned`, filled in at
   composition: `tuned_recipe`);
4. the tuning grid's factors `train.lr_factor` and `train.horizon_factor` (1 outside a tuning sweep).

`train.recipe` chooses: `auto` (all layers: a tuned recipe where one exists), `preset` (layers 1, 2 and 4: what a
tuning sweep centres on) or `none` (layers 1 and 4). Every run records which layer set its settings
(`recipe_source`), and the analysis marks untuned cells.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# what a recipe may change; the budget (steps, batch_size) and the bookkeeping are shared by every model
RECIPE_TYPES = {
    "lr": float,
    "warmup": int,
    "min_lr_ratio": float,
    "decay_fraction": float,
    "clip": float,
    "horizon": int,
    "curriculum": str,
    "horizon_start": int,
    "ramp_fraction": float,
}
RECIPE_KEYS = tuple(RECIPE_TYPES)
RECIPE_CHOICES = ("auto", "preset", "none")
# keys of the app's train node that choose settings rather than being ones
LAYER_KEYS = ("recipes", "recipe", "tuned", "lr_factor", "horizon_factor")
UNTUNED = "untuned default"
_NAME = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9_.+-]{0,99}")


def effective_train(train: Mapping[str, Any], model: str) -> dict[str, Any]:
    """The train settings `model` runs with: the layers of the module docstring applied (the layer keys removed)."""
    out = {k: v for k, v in train.items() if k not in LAYER_KEYS}
    choice = train.get("recipe", "auto")
    if choice != "none":
        out.update(dict((train.get("recipes") or {}).get(model) or {}))
    tuned = train.get("tuned") or {}
    if choice == "auto" and tuned.get("values"):
        out.update(dict(tuned["values"]))
    lr_f, h_f = (train.get(k, 1.0) for k in ("lr_factor", "horizon_factor"))
    if _number(out.get("lr")) and _number(lr_f) and lr_f != 1.0:  # a bad value is refused by `recipe_errors`
        out["lr"] = out["lr"] * lr_f
    if _number(out.get("horizon")) and _number(h_f) and h_f != 1.0:
        out["horizon"] = max(1, int(round(out["horizon"] * h_f)))
    return out


def _number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def recipe_source(train: Mapping[str, Any], model: str) -> str:
    """Which layer set the run's recipe: the tuned file and its sweep, the preset's, or none."""
    choice = train.get("recipe", "auto")
    tuned = train.get("tuned") or {}
    factors = [f"{k} {train[k]}" for k in ("lr_factor", "horizon_factor") if _number(train.get(k)) and train[k] != 1.0]
    grid = f"; tuning grid point ({', '.join(factors)})" if factors else ""
    if choice == "auto" and tuned.get("values"):
        return f"tuned: {tuned.get('source', 'a tuned recipe file')}{grid}"
    if choice != "none" and (train.get("recipes") or {}).get(model):
        return f"{UNTUNED} (the preset's train.recipes.{model}){grid}"
    return f"{UNTUNED} (the preset's train settings){grid}"


def is_tuned(source: str | None) -> bool:
    return isinstance(source, str) and source.startswith("tuned:")


def recipe_path(root: str | Path, preset: str, system: str, D: int, model: str) -> Path:
    return Path(root) / str(preset) / f"{system}_D{int(D)}_{model}.yaml"


def tuned_recipe(root: str | Path, preset: str, system: str, D: int, model: str) -> dict[str, Any]:
    """The tuned recipe file of a cell as {values, source, edge, ...}, or {} when the cell has none."""
    import yaml

    if not all(_NAME.fullmatch(str(v)) for v in (preset, system, model)):
        return {}  # not a plain name (an odd preset): no file can be this cell's
    path = recipe_path(root, preset, system, D, model)
    try:
        if not path.is_file():
            return {}
    except OSError:  # a name the filesystem refuses (too long)
        return {}
    rec = yaml.safe_load(path.read_text())
    if not isinstance(rec, dict) or not isinstance(rec.get("values"), dict):
        raise ValueError(f"{path}: a recipe file holds a mapping with `values` (lr, horizon, ...)")
    return rec


def cell_recipe(preset: str, system: str, D: int, model: str) -> dict[str, Any]:
    """The OmegaConf resolver behind `train.tuned`: the cell's recipe file under the app's conf/recipes/, {} if none.
    Module-level and JAX-free: a job's process that unpickles it imports only this module."""
    from sympscale import confdir

    rec = tuned_recipe(Path(confdir.config_dir()) / "recipes", preset, system, D, model)
    return {k: rec[k] for k in ("values", "source", "edge") if k in rec}  # the grid stays in the file


def recipe_errors(train: Mapping[str, Any], models: tuple[str, ...]) -> list[str]:
    """Recipes for unknown models, or that change the shared budget, each named with what is valid."""
    errors = []
    if train.get("recipe", "auto") not in RECIPE_CHOICES:
        errors.append(f"train.recipe={train.get('recipe')!r} is unknown; valid: {', '.join(RECIPE_CHOICES)}")
    for key in ("lr_factor", "horizon_factor"):
        value = train.get(key, 1.0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e3:
            errors.append(f"train.{key}={value!r} must be a number in (0, 1000)")
    tuned = dict((train.get("tuned") or {}).get("values") or {})
    layers = [(f"train.recipes.{m}", m, r) for m, r in (train.get("recipes") or {}).items()]
    for where, model, recipe in [*layers, ("train.tuned.values", None, tuned)]:
        if model is not None and model not in models:
            errors.append(f"{where}: unknown model; valid: {', '.join(models)}")
            continue
        if not isinstance(recipe, Mapping):
            errors.append(f"{where}={recipe!r} must be a mapping such as {{lr: 0.003, horizon: 32}}")
            continue
        for key, value in recipe.items():
            want = RECIPE_TYPES.get(key)
            if want is None:
                errors.append(
                    f"{where}.{key}: a recipe may set only {', '.join(RECIPE_KEYS)} "
                    f"(steps and batch_size are the budget every model shares)"
                )
            elif isinstance(value, bool) or not isinstance(value, (int, float) if want is float else want):
                errors.append(f"{where}.{key}={value!r} must be a {want.__name__}")
    return errors
