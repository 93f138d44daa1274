"""Model registry. Every model has the same world-model interface:

    init(key) -> params;  encode(params, x0) -> carry;  step(params, carry) -> carry;  observe(carry) -> x;
    replace_state(carry, x) -> carry   (used by hard projection)

`step` covers one observation interval; rollouts scan `step` outside the model. Models are capacity-matched
to the symplectic model of the same (D, width, depth).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sympscale.models.freeform import FreeformModel, solve_freeform_widths
from sympscale.models.gru import GRUModel, solve_gru_sizes
from sympscale.models.nn import param_count
from sympscale.models.oracle import OracleModel
from sympscale.models.symp import SympModel

MODELS = ("symp", "gru", "rk4", "freeform", "oracle")


@dataclasses.dataclass(frozen=True)
class Capacity:
    width: int = 64  # hidden width of the symplectic model's potential MLP: the study's capacity knob
    depth: int = 3


def default_kinetic(exact: np.ndarray | None) -> str:
    """The symp model's kinetic term for a system: none when its known quadratic part carries ½|p|²."""
    return "quadratic" if exact is None else "none"


def target_params(D: int, capacity: Capacity, exact: np.ndarray | None = None) -> int:
    """Parameter count every model of a (system, D, capacity) is matched to: the default symp model's."""
    return SympModel.count(D, capacity.width, capacity.depth, default_kinetic(exact))


def build(
    name: str,
    *,
    D: int,
    dt: float,
    mean: np.ndarray,
    std: np.ndarray,
    capacity: Capacity,
    options: dict | None = None,
    exact: np.ndarray | None = None,
    system=None,
):
    """Build a model and return (model, info) where info records exact sizes and the capacity ratio.

    `exact` is the system's known quadratic part (`System.exact_quadratic()`), used by symp and rk4 unless
    options["exact_part"] is False; the capacity target is always the system's default symp model.
    `system` (the System itself) is needed by the oracle only, which steps its true dynamics (no parameters).
    """
    options = dict(options or {})
    target = target_params(D, capacity, exact)
    N = D // 2
    if name in ("symp", "rk4"):
        if name == "rk4":
            options["method"] = "rk4"
        known = exact if options.pop("exact_part", True) else None  # False: ablate the known part (learn it all)
        if options.get("kinetic", "auto") == "auto":
            options["kinetic"] = default_kinetic(known)
        model = SympModel(
            D=D,
            width=capacity.width,
            depth=capacity.depth,
            dt=dt,
            exact=known,
            q_mean=np.asarray(mean[:N]),
            q_std=np.asarray(std[:N]),
            p_mean=np.asarray(mean[N:]),
            p_std=np.asarray(std[N:]),
            energy_scale=float(0.5 * np.sum(std[N:] ** 2 + mean[N:] ** 2)),
            **options,
        )
        count = SympModel.count(D, capacity.width, capacity.depth, model.kinetic)
        sizes = {"width": capacity.width, "depth": capacity.depth, "kinetic": model.kinetic}
    elif name == "gru":
        H, E, K = solve_gru_sizes(D, target)
        model = GRUModel(
            D=D, hidden=H, embed=E, decoder_hidden=K, mean=np.asarray(mean), std=np.asarray(std), **options
        )
        count, sizes = GRUModel.count(D, H, E, K), {"hidden": H, "embed": E, "decoder_hidden": K}
    elif name == "freeform":
        w, w2 = solve_freeform_widths(D, target, capacity.depth)
        model = FreeformModel(
            D=D,
            width=w,
            last_width=w2,
            depth=capacity.depth,
            dt=dt,
            mean=np.asarray(mean),
            std=np.asarray(std),
            **options,
        )
        count, sizes = FreeformModel.count(D, w, w2, capacity.depth), {"width": w, "last_width": w2}
    elif name == "oracle":
        if system is None:
            raise ValueError("model oracle needs the system whose true dynamics it steps")
        model = OracleModel(system=system, **options)
        count, sizes = 0, {"substeps": model.substeps, "method": model.method}
    else:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(MODELS)}")
    info = {"params": count, "symp_params": target, "capacity_ratio": count / target, "sizes": sizes}
    return model, info


__all__ = [
    "MODELS",
    "Capacity",
    "OracleModel",
    "FreeformModel",
    "GRUModel",
    "SympModel",
    "build",
    "default_kinetic",
    "param_count",
    "solve_freeform_widths",
    "solve_gru_sizes",
    "target_params",
]
