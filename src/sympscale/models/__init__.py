"""Models, each registered in `sympscale.registry.MODELS` by its own module. Every model has the same interface:

    init(key) -> params;  encode(params, x0) -> carry;  step(params, carry) -> carry;  observe(carry) -> x;
    replace_state(carry, x) -> carry   (used by hard projection)

`step` covers one observation interval; rollouts scan `step` outside the model. Models are capacity-matched
to the symplectic model of the same (D, width, depth): `build` gives every constructor the target count and
records how close each model came.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from sympscale.models.base import Capacity, Context, ModelOptions
from sympscale.models.freeform import FreeformModel, solve_freeform_widths
from sympscale.models.gru import GRUModel, solve_gru_sizes
from sympscale.models.nn import param_count
from sympscale.models.oracle import OracleModel
from sympscale.models.symp import SympModel, default_kinetic
from sympscale.registry import MODELS, import_all

import_all(__name__, __path__)  # each model module registers itself


def target_params(D: int, capacity: Capacity, exact: np.ndarray | None = None) -> int:
    """Parameter count every model of a (system, D, capacity) is matched to: the default symp model's."""
    return SympModel.count(D, capacity.width, capacity.depth, default_kinetic(exact))


def options_of(name: str, values: Mapping[str, Any] | None = None) -> ModelOptions:
    """The options dataclass of model `name` from plain values (a config's model node without `name`)."""
    return MODELS[name].options(**{k: v for k, v in dict(values or {}).items() if k != "name"})


def context(D: int, dt: float, mean, std, capacity: Capacity, exact=None, system=None) -> Context:
    target = target_params(D, capacity, exact)
    return Context(D, float(dt), np.asarray(mean), np.asarray(std), capacity, target, exact, system)


def construct(name: str, opts: ModelOptions, ctx: Context):
    """Build a model and return (model, info): its exact parameter count, the target and their ratio, its sizes."""
    model, sizes = MODELS[name].make(opts, ctx)
    count = param_count(jax.eval_shape(model.init, jax.random.key(0)))  # the real tree, without allocating it
    info = {"params": count, "symp_params": ctx.target, "capacity_ratio": count / ctx.target, "sizes": sizes}
    return model, info


def build(name: str, *, D: int, dt: float, mean, std, capacity: Capacity, options=None, exact=None, system=None):
    """`construct` from plain values: (model, info) of model `name` with `options` (a mapping of its options)."""
    return construct(name, options_of(name, options), context(D, dt, mean, std, capacity, exact, system))


def check(name: str, opts: ModelOptions, ctx: Context) -> list[str]:
    """Problems with a model's options in this context, each naming the key (empty: it can be built)."""
    entry = MODELS[name]
    return entry.check(opts, ctx) if entry.check else []


__all__ = [
    "MODELS",
    "Capacity",
    "Context",
    "FreeformModel",
    "GRUModel",
    "ModelOptions",
    "OracleModel",
    "SympModel",
    "build",
    "check",
    "context",
    "default_kinetic",
    "construct",
    "options_of",
    "param_count",
    "solve_freeform_widths",
    "solve_gru_sizes",
    "target_params",
]
