"""Free-form neural ODE: an unstructured MLP vector field dx/dt = σ ⊙ f_θ((x − μ)/σ), integrated with RK4.

No Hamiltonian structure at all: the ablation that separates "structure" from "integrator". The MLP is
[D, w₁ × (depth − 1), w₂, D]; the two widths are solved so that the parameter count matches the symplectic
model's within 0.1 %.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sympscale.integrators import rk4_step
from sympscale.models.base import Context, IncrementRank, ModelOptions, capacity_problem, choice_problem
from sympscale.models.nn import ACTIVATIONS, MLP, Array, StateCarry, mlp_param_count, mlp_params
from sympscale.registry import MODELS


@dataclasses.dataclass(frozen=True, eq=False)
class FreeformModel(StateCarry):
    D: int
    width: int
    last_width: int
    depth: int
    dt: float
    substeps: int = 4
    activation: str = "softplus"
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    time_scale: float = 1.0  # fields are O(σ / time_scale) at init

    name = "freeform"

    @staticmethod
    def sizes(D: int, width: int, last_width: int, depth: int) -> list[int]:
        return [D] + [width] * (depth - 1) + [last_width, D]

    @staticmethod
    def count(D: int, width: int, last_width: int, depth: int) -> int:
        return mlp_param_count(FreeformModel.sizes(D, width, last_width, depth))

    @property
    def mlp(self) -> MLP:
        """The vector field's network; a small last layer starts the field near zero."""
        features = self.sizes(self.D, self.width, self.last_width, self.depth)[1:]
        return MLP(features=tuple(features), activation=self.activation, last_scale=0.1)

    def init(self, key: Array) -> dict:
        return {"f": mlp_params(self.mlp, key, self.D)}

    def field(self, params, x: Array) -> Array:
        z = (x - self.mean) / self.std
        return self.std * self.mlp.apply({"params": params["f"]}, z) / self.time_scale

    def step(self, params, x: Array) -> Array:
        h = self.dt / self.substeps
        for _ in range(self.substeps):
            x = rk4_step(lambda y: self.field(params, y), x, h)
        return x


def solve_freeform_widths(D: int, target: int, depth: int, *, rtol: float = 1e-3) -> tuple[int, int]:
    """(width, last_width) with FreeformModel.count within rtol of target; balanced (w/4 <= w2 <= 4w) first, then a
    last layer of >= D units (the field's values span D directions: no error floor; else the most units)."""
    best, best_key = None, None
    w = 1
    while FreeformModel.count(D, w, 1, depth) <= target or w <= 2:
        rest = FreeformModel.count(D, w, 0, depth)  # everything but the last hidden layer's units
        per = w + 1 + D  # each unit of the last hidden layer adds w inputs, a bias and D outputs
        for w2 in {max(1, (target - rest) // per), max(1, (target - rest) // per + 1)}:
            err = abs(FreeformModel.count(D, w, w2, depth) - target) / target
            key = (err > rtol, not (w / 4 <= w2 <= 4 * w), max(0, D - w2), err)
            if best_key is None or key < best_key:
                best, best_key = (w, w2), key
        w += 1
        if depth == 1:  # [D, w2, D]: the first width does not exist, one pass decides
            break
    if best is None or best_key[0]:
        raise ValueError(f"no free-form widths match {target} parameters within {rtol:.1%} at D={D}")
    return best


@dataclasses.dataclass(frozen=True)
class FreeformOptions(ModelOptions):
    """Ablation: an unstructured MLP vector field integrated with RK4 (no Hamiltonian structure at all)."""

    substeps: int = 4  # RK4 steps per observation interval
    activation: str = "softplus"


def make(options: FreeformOptions, ctx: Context) -> tuple[FreeformModel, dict]:
    w, w2 = solve_freeform_widths(ctx.D, ctx.target, ctx.capacity.depth)
    model = FreeformModel(
        D=ctx.D,
        width=w,
        last_width=w2,
        depth=ctx.capacity.depth,
        dt=ctx.dt,
        substeps=options.substeps,
        activation=options.activation,
        mean=np.asarray(ctx.mean),
        std=np.asarray(ctx.std),
    )
    return model, {"width": w, "last_width": w2}


def check(options: FreeformOptions, ctx: Context) -> list[str]:
    errors = choice_problem("activation", options.activation, tuple(ACTIVATIONS))
    return errors + capacity_problem(ctx, solve_freeform_widths, ctx.D, ctx.target, ctx.capacity.depth)


def rank(options: FreeformOptions, ctx: Context) -> IncrementRank:
    """Every RK4 stage's field value lies in the span of the last layer's w2 columns, so does their sum."""
    _, w2 = solve_freeform_widths(ctx.D, ctx.target, ctx.capacity.depth)
    return IncrementRank(min(w2, ctx.D), ctx.D, "state")


MODELS.register("freeform", options=FreeformOptions, make=make, check=check, rank=rank)
