"""Observed orders by fitted slope on Kepler (a periodic orbit returns exactly to its start); RK4 drifts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sympscale.integrators import METHODS, ORDERS, composition_step, kick_drift_coefficients, rk4_step, split_step
from sympscale.systems import make_system

E = 0.5  # eccentricity; semi-major axis 1, period 2π


def kepler_grad_V(q):
    return q / jnp.sum(q * q, axis=-1, keepdims=True) ** 1.5


def kepler_start():
    return jnp.array([1.0 - E, 0.0]), jnp.array([0.0, np.sqrt((1 + E) / (1 - E))])


def kepler_return_error(method: str, n: int) -> float:
    q0, p0 = kepler_start()
    h = 2 * np.pi / n

    @jax.jit
    def run(q, p):
        return jax.lax.fori_loop(
            0, n, lambda _i, s: composition_step(lambda p_: p_, kepler_grad_V, *s, h, method=method), (q, p)
        )

    q, p = run(q0, p0)
    return float(jnp.linalg.norm(jnp.concatenate([q - q0, p - p0])))


def fitted_order(errs, ns) -> float:
    return float(-np.polyfit(np.log(ns), np.log(errs), 1)[0])


@pytest.mark.parametrize(
    "method, ns",
    [
        ("leapfrog", [400, 800, 1600, 3200]),
        ("yoshida4", [200, 400, 800, 1600]),
        ("yoshida6", [200, 400, 800]),
        ("yoshida8", [200, 283, 400]),
    ],
)
def test_composition_order(method, ns):
    errs = [kepler_return_error(method, n) for n in ns]
    assert max(errs) < 1e-1 and min(errs) > 1e-14, errs  # asymptotic regime, above round-off
    assert fitted_order(errs, ns) == pytest.approx(ORDERS[method], abs=0.25), errs


def test_rk4_order():
    q0, p0 = kepler_start()
    y0 = jnp.concatenate([q0, p0])

    def f(y):
        return jnp.concatenate([y[2:], -kepler_grad_V(y[:2])])

    ns = [400, 800, 1600]
    errs = []
    for n in ns:
        y = jax.jit(_rk4_loop, static_argnums=(0, 2))(f, y0, n)
        errs.append(float(jnp.linalg.norm(y - y0)))
    assert fitted_order(errs, ns) == pytest.approx(4.0, abs=0.25), errs


def _rk4_loop(f, y, n):
    h = 2 * np.pi / n
    return jax.lax.fori_loop(0, n, lambda _i, y: rk4_step(f, y, h), y)


def test_weights_are_consistent():
    for name, w in METHODS.items():
        assert np.sum(w) == pytest.approx(1.0, abs=1e-14), name
        assert np.allclose(w, w[::-1]), f"{name} is not symmetric"
        kick, drift = kick_drift_coefficients(w)
        assert np.sum(kick) == pytest.approx(1.0, abs=1e-14) and len(kick) == len(drift) + 1


@pytest.mark.parametrize("method", list(METHODS))
def test_consecutive_steps_merge_their_boundary_kicks(method):
    """n steps in one call equal n single steps (to rounding) and cost n·s + 1 force evaluations, not n·(s + 1)."""
    n, h, stages = 4, 0.05, len(METHODS[method])
    calls = []

    def kick(q, t):
        calls.append(t)
        return -t * kepler_grad_V(q)

    def drift(q, p, t):
        return q + t * p, p

    q0, p0 = kepler_start()
    q1, p1 = split_step(kick, drift, q0, p0, h, method=method, steps=n)
    assert len(calls) == n * stages + 1
    calls.clear()
    q2, p2 = q0, p0
    for _ in range(n):
        q2, p2 = split_step(kick, drift, q2, p2, h, method=method)
    assert len(calls) == n * (stages + 1)
    err = float(jnp.max(jnp.abs(jnp.concatenate([q1 - q2, p1 - p2]))))
    assert err < 1e-13, (method, err)
    with pytest.raises(ValueError, match="steps=0"):
        split_step(kick, drift, q0, p0, h, method=method, steps=0)


def test_reversibility():
    """Symmetric methods: stepping forward then with -h returns to the start."""
    q0, p0 = kepler_start()
    for method in METHODS:
        q, p = composition_step(lambda p_: p_, kepler_grad_V, q0, p0, 0.05, method=method)
        q, p = composition_step(lambda p_: p_, kepler_grad_V, q, p, -0.05, method=method)
        assert float(jnp.max(jnp.abs(jnp.concatenate([q - q0, p - p0])))) < 1e-14, method


def test_fput_energy_bounded_yoshida4_vs_rk4_drift():
    """β-FPUT, h = 0.05: Yoshida-4 energy error stays small and trendless; RK4's grows secularly."""
    sys_ = make_system("fput", 32)
    x0 = sys_.sample_initial(jax.random.key(3), 4)
    h, n_chunks, chunk = 0.05, 20, 500

    def yosh(x):
        q, p = sys_.split(x)
        q, p = composition_step(lambda p_: p_, sys_.grad_V, q, p, h, method="yoshida4")
        return jnp.concatenate([q, p], axis=-1)

    def rk(x):
        return rk4_step(sys_.vector_field, x, h)

    def energy_errors(step):
        def chunk_fn(x, _):
            x = jax.lax.fori_loop(0, chunk, lambda _i, y: step(y), x)
            return x, jnp.max(jnp.abs(sys_.hamiltonian(x) - sys_.hamiltonian(x0)) / sys_.hamiltonian(x0))

        return np.asarray(jax.jit(lambda x: jax.lax.scan(chunk_fn, x, None, length=n_chunks)[1])(x0))

    e_y, e_r = energy_errors(yosh), energy_errors(rk)
    assert e_y.max() < 1e-4
    # no secular trend: the second half is not larger than the first
    assert e_y[n_chunks // 2 :].max() < 3 * e_y[: n_chunks // 2].max()
    # RK4 drifts: error grows along the run and ends far above Yoshida-4's
    assert e_r[-1] > 5 * e_r[1] and e_r[-1] > 10 * e_y.max()
