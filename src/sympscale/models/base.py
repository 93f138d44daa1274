"""What every model's constructor receives: its options (a dataclass, also its config schema) and a `Context`.

A model module declares `<Name>Options(ModelOptions)` and `make(options, context) -> (model, sizes)` and registers
both in `sympscale.registry.MODELS`; `sympscale.models.build` adds the capacity bookkeeping every model shares.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Capacity:
    """The parameter budget every model of a cell is matched to: the symplectic model's at (D, width, depth).

    cover: widen the potential to the smallest width (>= `width`) at which every registered model's one-step
    change can span the dimension it must cover (`IncrementRank`), so no model has an architectural error floor.
    budget: a multiple of that budget (the capacity sweep's 1/4x and 4x): the width whose count is nearest.
    allow_floor: run a model whose rank falls short anyway; its results are labelled capacity-limited.
    """

    width: int = 64  # hidden width of the symplectic model's potential MLP: the study's capacity knob
    depth: int = 3
    cover: bool = False
    budget: float = 1.0
    allow_floor: bool = False


@dataclasses.dataclass(frozen=True)
class IncrementRank:
    """How many directions a model's one-step change x_{t+1} - x_t can span (it lies in an affine subspace of
    this rank), out of the `dimension` of the coordinates it confines (`block`: "state", all D; "momentum", the
    last D/2). A rank below the dimension is an error floor no training removes (`sympscale.rankfloor`)."""

    rank: int
    dimension: int
    block: str = "state"

    @property
    def short(self) -> bool:
        return self.rank < self.dimension


@dataclasses.dataclass(frozen=True)
class ModelOptions:
    """Options every model has."""

    projection: str = "none"  # none | single (energy) | multi (every declared invariant): Newton projection each step


@dataclasses.dataclass(frozen=True, eq=False)
class Context:
    """The run's sizes and the training split's normalisation: what a model is built for besides its options."""

    D: int
    dt: float  # the observation interval one model step covers
    mean: np.ndarray  # (D,) of the training split (zeros and ones when only shapes matter)
    std: np.ndarray
    capacity: Capacity
    target: int  # the parameter count to match: the default symp model's at this (system, D, capacity)
    exact: np.ndarray | None = None  # the system's known quadratic part (System.exact_quadratic())
    system: Any = None  # the System itself (the oracle steps its true dynamics)


def capacity_problem(ctx: Context, solve, *args) -> list[str]:
    """A width solver's refusal as a config error (a capacity too small to match at this D)."""
    try:
        solve(*args)
    except ValueError as e:
        return [f"capacity.width={ctx.capacity.width}, depth={ctx.capacity.depth}: {e}; use a larger width"]
    return []


def choice_problem(key: str, value: Any, valid) -> list[str]:
    """`model.<key>=<value> is unknown; valid: ...` when value is not one of `valid`."""
    return [] if value in valid else [f"model.{key}={value!r} is unknown; valid: {', '.join(valid)}"]
