"""Per-model training recipes: a preset's shared budget, plus each model's tuned departures from it.

A comparison is fair between models that are each trained well within the same budget: the same data, steps,
batch and capacity. How a model is best trained within it (its learning rate, its horizon curriculum) may
differ: the GRU is ~50x cheaper per step than the symplectic model and keeps improving with longer free-running
horizons, which would cost the symplectic model minutes per run. A preset's `train.recipes.<model>` holds those
departures; every run records the settings it actually trained with.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def effective_train(train: Mapping[str, Any], model: str) -> dict[str, Any]:
    """The train settings `model` runs with: `train` with `train.recipes[model]` applied (recipes removed)."""
    out = {k: v for k, v in train.items() if k != "recipes"}
    out.update(dict((train.get("recipes") or {}).get(model) or {}))
    return out


def recipe_errors(train: Mapping[str, Any], models: tuple[str, ...]) -> list[str]:
    """Recipes for unknown models, or that change the shared budget, each named with what is valid."""
    errors = []
    for model, recipe in (train.get("recipes") or {}).items():
        if model not in models:
            errors.append(f"train.recipes.{model}: unknown model; valid: {', '.join(models)}")
            continue
        if not isinstance(recipe, Mapping):
            errors.append(f"train.recipes.{model}={recipe!r} must be a mapping such as {{lr: 0.003, horizon: 32}}")
            continue
        for key, value in recipe.items():
            want = RECIPE_TYPES.get(key)
            if want is None:
                errors.append(
                    f"train.recipes.{model}.{key}: a recipe may set only {', '.join(RECIPE_KEYS)} "
                    f"(steps and batch_size are the budget every model shares)"
                )
            elif isinstance(value, bool) or not isinstance(value, (int, float) if want is float else want):
                errors.append(f"train.recipes.{model}.{key}={value!r} must be a {want.__name__}")
    return errors
