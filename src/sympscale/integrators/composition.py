"""Symmetric composition of Strang splittings, for H = A + V(q) with an exactly solvable flow of A.

The classic case is separable H(q, p) = T(p) + V(q) (Störmer–Verlet: A = T, its flow a drift). Each method is a
table of leapfrog weights w (Yoshida 1990, Phys Lett A 150:262). One kernel turns the table into kick/drift
coefficients with first-same-as-last merging, so a method with s stages costs s + 1 force evaluations per step,
and n consecutive steps n·s + 1.
`split_step` takes the A-flow as a function, so any part whose flow is known exactly (for example a quadratic
Hamiltonian, `quadratic_flow`) composes with a learned V(q) into an explicit symplectic method of the same order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from sympscale.registry import INTEGRATORS

Array = jnp.ndarray


def _symmetric(outer_to_inner: list[float]) -> np.ndarray:
    """Full weight sequence (w_m, ..., w_1, w_0, w_1, ..., w_m) with w_0 = 1 - 2 Σ w_i."""
    w = np.asarray(outer_to_inner, dtype=np.float64)  # (w_m, ..., w_1)
    w0 = 1.0 - 2.0 * w.sum()
    return np.concatenate([w, [w0], w[::-1]])


_CBRT2 = 2.0 ** (1.0 / 3.0)


@dataclasses.dataclass(frozen=True)
class Composition:
    """A symmetric composition method: its leapfrog weights and its order of accuracy."""

    weights: tuple[float, ...]
    order: int


def _register(name: str, weights: np.ndarray, order: int) -> None:
    INTEGRATORS.register(name, options=Composition, make=lambda: Composition(tuple(map(float, weights)), order))


class _Weights(Mapping):
    """name -> leapfrog weights of every registered composition method."""

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in INTEGRATORS:
            raise KeyError(name)
        return np.asarray(INTEGRATORS[name].make().weights, dtype=np.float64)

    def __iter__(self):
        return iter(INTEGRATORS)

    def __len__(self) -> int:
        return len(INTEGRATORS)


class _Orders(_Weights):
    """name -> order of accuracy of every registered composition method."""

    def __getitem__(self, name: str) -> int:
        if name not in INTEGRATORS:
            raise KeyError(name)
        return INTEGRATORS[name].make().order


# Leapfrog weights per method. Yoshida 6 "solution A" and 8 "solution D" (SCIENCE §6).
_register("leapfrog", np.array([1.0]), 2)
_register("yoshida4", _symmetric([1.0 / (2.0 - _CBRT2)]), 4)
_register("yoshida6", _symmetric([0.78451361047755726382, 0.23557321335935813368, -1.17767998417887100695]), 6)
_register(
    "yoshida8",
    _symmetric(
        [
            0.914844246229740,
            0.253693336566229,
            -1.44485223686048,
            -0.158240635368243,
            1.93813913762276,
            -1.96061023297549,
            0.102799849391985,
        ]
    ),
    8,
)
# views of the registry (a method registered later appears in them too)
METHODS: Mapping[str, np.ndarray] = _Weights()
ORDERS: Mapping[str, int] = _Orders()


def kick_drift_coefficients(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge consecutive half-kicks of the leapfrog stages.

    Returns (kick, drift) with len(kick) = len(drift) + 1: the step is
    p += kick[0] h F(q); then for each i: q += drift[i] h ∇T(p); p += kick[i+1] h F(q).
    """
    w = np.asarray(weights, dtype=np.float64)
    kick = np.concatenate([[w[0] / 2], (w[:-1] + w[1:]) / 2, [w[-1] / 2]])
    return kick, w.copy()


def split_step(
    kick: Callable[[Array, float | Array], Array],
    flow_A: Callable[[Array, Array, float | Array], tuple[Array, Array]],
    q: Array,
    p: Array,
    h: float | Array,
    *,
    method: str = "yoshida4",
    steps: int = 1,
) -> tuple[Array, Array]:
    """`steps` steps of size h of the named composition of kick(h/2) ∘ A(h) ∘ kick(h/2).

    kick(q, t) is the momentum change of V's flow over time t (−t ∇V(q)); flow_A(q, p, t) is A's exact flow.
    Both flows are symplectic, so the step is; the composition is symmetric whenever flow_A is.
    Consecutive steps merge their boundary kicks too (first same as last): `steps` steps of an s-stage method
    evaluate the force steps·s + 1 times, not steps·(s + 1).
    """
    if method not in METHODS:
        raise ValueError(f"unknown integrator {method!r}; valid: {sorted(METHODS)}")
    if steps < 1:
        raise ValueError(f"steps={steps} must be >= 1")
    kick_c, drift_c = kick_drift_coefficients(np.tile(METHODS[method], steps))
    p = p + kick(q, kick_c[0] * h)
    for d, k in zip(drift_c, kick_c[1:], strict=True):
        q, p = flow_A(q, p, d * h)
        p = p + kick(q, k * h)
    return q, p


def quadratic_flow(S: Array, t: float | Array) -> Array:
    """exp(t J S): the exact flow map of H_A(x) = ½ xᵀ S x, x = (q, p), ẋ = J ∇H_A (J = [[0, I], [−I, 0]])."""
    n = S.shape[-1] // 2
    JS = jnp.concatenate([S[n:], -S[:n]], axis=0)  # J S without forming J
    return jax.scipy.linalg.expm(t * JS)


def composition_step(
    grad_T: Callable[[Array], Array],
    grad_V: Callable[[Array], Array],
    q: Array,
    p: Array,
    h: float | Array,
    *,
    method: str = "yoshida4",
) -> tuple[Array, Array]:
    """One step of size h of the named composition method for separable H (kick-drift-kick form)."""
    return split_step(lambda q, t: -t * grad_V(q), lambda q, p, t: (q + t * grad_T(p), p), q, p, h, method=method)
