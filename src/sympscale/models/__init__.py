"""Models, each registered in `sympscale.registry.MODELS` by its own module. Every model has the same interface:

    init(key) -> params;  encode(params, x0) -> carry;  step(params, carry) -> carry;  observe(carry) -> x;
    replace_state(carry, x) -> carry   (used by hard projection)

`step` covers one observation interval; rollouts scan `step` outside the model. Models are capacity-matched
to the symplectic model of the same (D, width, depth): `build` gives every constructor the target count and
records how close each model came.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from sympscale.models.base import Capacity, Context, IncrementRank, ModelOptions
from sympscale.models.freeform import FreeformModel, solve_freeform_widths
from sympscale.models.gru import GRUModel, solve_gru_sizes
from sympscale.models.nn import param_count
from sympscale.models.oracle import OracleModel
from sympscale.models.symp import SympModel, default_kinetic
from sympscale.registry import MODELS, import_all

import_all(__name__, __path__)  # each model module registers itself


def target_params(D: int, capacity: Capacity, exact: np.ndarray | None = None) -> int:
    """Parameter count every model of a (system, D, capacity) is matched to: the default symp model's at the width
    the capacity rule gives (`effective_capacity`)."""
    return SympModel.count(D, effective_capacity(D, capacity, exact).width, capacity.depth, default_kinetic(exact))


def effective_capacity(D: int, capacity: Capacity, exact: np.ndarray | None = None) -> Capacity:
    """The capacity a cell runs at: `capacity.width`, widened to `cover_width` when `capacity.cover`, then scaled
    to `capacity.budget` times that budget (the width whose symp count is nearest)."""
    kinetic = default_kinetic(exact)
    width = capacity.width
    if capacity.cover:
        width = max(width, cover_width(D, capacity.depth, kinetic))
        while not _covers(D, capacity.depth, width, kinetic):  # coverage is not monotone in the width: go on up
            width += 1
    if capacity.budget != 1.0:
        width = _width_for(
            D, capacity.depth, kinetic, capacity.budget * SympModel.count(D, width, capacity.depth, kinetic)
        )
    return dataclasses.replace(capacity, width=width, cover=False, budget=1.0)


@functools.lru_cache(maxsize=256)
def cover_width(D: int, depth: int, kinetic: str = "quadratic") -> int:
    """The smallest potential width at whose symp budget every registered model with a rank bound spans the
    dimension it must cover (GRU: D, symp: N, free-form: D): the capacity rule with no architectural floor."""

    def covers(width: int) -> bool:
        if SympModel.count(D, width, depth, kinetic) > MAX_PARAMS:
            raise ValueError(f"D={D}: no width within {MAX_PARAMS:.0e} parameters lets every model cover D")
        return _covers(D, depth, width, kinetic)

    hi = 1
    while not covers(hi):
        hi *= 2
    lo = hi // 2  # does not cover (or 0)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if covers(mid) else (mid, hi)
    return hi


MAX_PARAMS = 10**9  # no model beyond this budget is sized (its width solvers would take minutes)


@functools.lru_cache(maxsize=1024)
def _covers(D: int, depth: int, width: int, kinetic: str) -> bool:
    """No model that can be matched at this budget is short (one that cannot is refused by its own check)."""
    return not any(r is not None and r.short for r in _ranks(D, depth, width, kinetic).values())


def _ranks(D: int, depth: int, width: int, kinetic: str) -> dict[str, IncrementRank | None]:
    """Each rank-bounded model's `IncrementRank` at this budget (None: no widths match it)."""
    target = SympModel.count(D, width, depth, kinetic)
    ctx = Context(D, 1.0, np.zeros(D), np.ones(D), Capacity(width, depth), target)
    out = {}
    for name, entry in MODELS.items():
        if entry.rank is not None:
            try:
                out[name] = entry.rank(entry.options(), ctx)
            except ValueError:
                out[name] = None
    return out


def _width_for(D: int, depth: int, kinetic: str, params: float) -> int:
    """The width whose symp parameter count is nearest `params` (the smaller on a tie)."""
    width = 1
    while SympModel.count(D, width + 1, depth, kinetic) <= params:
        width += 1
    above = SympModel.count(D, width + 1, depth, kinetic)
    return width + 1 if above - params < params - SympModel.count(D, width, depth, kinetic) else width


def increment_rank(name: str, opts: ModelOptions, ctx: Context) -> IncrementRank | None:
    """Model `name`'s `IncrementRank` in this context; None when it claims no bound (the oracle)."""
    entry = MODELS[name]
    return entry.rank(opts, ctx) if entry.rank is not None else None


def options_of(name: str, values: Mapping[str, Any] | None = None) -> ModelOptions:
    """The options dataclass of model `name` from plain values (a config's model node without `name`)."""
    return MODELS[name].options(**{k: v for k, v in dict(values or {}).items() if k != "name"})


def context(D: int, dt: float, mean, std, capacity: Capacity, exact=None, system=None) -> Context:
    """The context a model is built in; its capacity is the effective one (`effective_capacity`)."""
    capacity = effective_capacity(D, capacity, exact)
    target = target_params(D, capacity, exact)
    return Context(D, float(dt), np.asarray(mean), np.asarray(std), capacity, target, exact, system)


def construct(name: str, opts: ModelOptions, ctx: Context):
    """Build a model and return (model, info): its exact parameter count, the target and their ratio, its sizes."""
    model, sizes = MODELS[name].make(opts, ctx)
    count = param_count(jax.eval_shape(model.init, jax.random.key(0)))  # the real tree, without allocating it
    info = {"params": count, "symp_params": ctx.target, "capacity_ratio": count / ctx.target, "sizes": sizes}
    rank = increment_rank(name, opts, ctx)
    info["rank"] = None if rank is None else dataclasses.asdict(rank)
    info["width"] = ctx.capacity.width  # the potential width of the budget (after the capacity rule)
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
    "IncrementRank",
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
    "cover_width",
    "effective_capacity",
    "increment_rank",
    "options_of",
    "param_count",
    "solve_freeform_widths",
    "solve_gru_sizes",
    "target_params",
]
