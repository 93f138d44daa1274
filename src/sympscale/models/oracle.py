"""The oracle: the system's true dynamics stepped by the learned models' own integrator, with no parameters.

It answers "how far can a perfect model of this family predict at this step size?": the true Hamiltonian (the
CR3BP's true V with the exact flow of its known part; ETDRK4 for KS) advanced by `substeps` steps of `method`
per observation interval, exactly as `symp` advances its learned H. Its error is the integrator's, O(h⁴) for
Yoshida-4. Its valid prediction time is a reference, not a ceiling: a learned H can out-predict it (it learns a
modified Hamiltonian whose discrete flow tracks the data better than the true H stepped at this step size; at
FPUT/Toda D = 16 learned models reached 1.06-3.2x its VPT).
It is evaluated by the same code as every model and trains nothing.
"""

from __future__ import annotations

import dataclasses

from sympscale.integrators import METHODS
from sympscale.models.base import Context, ModelOptions, choice_problem
from sympscale.models.nn import Array, StateCarry
from sympscale.registry import MODELS


@dataclasses.dataclass(frozen=True, eq=False)
class OracleModel(StateCarry):
    system: object  # a sympscale.systems.System with step_with
    substeps: int = 4  # integrator steps per observation interval, as symp
    method: str = "yoshida4"

    name = "oracle"

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r} is unknown; valid: {', '.join(METHODS)}")
        if self.substeps < 1:
            raise ValueError(f"substeps={self.substeps} must be >= 1")

    def init(self, key: Array) -> dict:
        return {}

    def step(self, params, x: Array) -> Array:
        h = self.system.dt_obs / self.substeps
        for _ in range(self.substeps):
            x = self.system.step_with(x, h, method=self.method)
        return x


@dataclasses.dataclass(frozen=True)
class OracleOptions(ModelOptions):
    """The reference: the system's true dynamics stepped by symp's own integrator at symp's own step."""

    substeps: int = 4  # the integrator of symp: the reference at symp's own step size
    method: str = "yoshida4"


def make(options: OracleOptions, ctx: Context) -> tuple[OracleModel, dict]:
    if ctx.system is None:
        raise ValueError("model oracle needs the system whose true dynamics it steps")
    model = OracleModel(system=ctx.system, substeps=options.substeps, method=options.method)
    return model, {"substeps": model.substeps, "method": model.method}


def check(options: OracleOptions, ctx: Context) -> list[str]:
    return choice_problem("method", options.method, tuple(METHODS))


MODELS.register("oracle", options=OracleOptions, make=make, check=check)
