"""float64 correctness of the study's operations on the device, against the same JAX computation on the CPU.

Each operation is a pure function and its inputs (built on the host from a fixed seed). It is compiled and run
once with its inputs on the device under test and once on the CPU backend; the check compares every output
leaf by its relative error max|device − cpu| / max|cpu| against the operation's stated tolerance, and insists
that the device returned float64 (a silent float32 fallback fails, whatever its error).

The tolerances: 1e-13 for float64 arithmetic (a 10,001-term sum may be reduced in another order), 1e-12 for
single linear-algebra or FFT calls (a few ulps of float64 times the condition of the
operation); 1e-9 for short chaotic rollouts and gradients through them, where the round-off of a different
but correct kernel grows with the flow's Lyapunov exponent over the steps taken.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

F64 = jnp.float64


@dataclasses.dataclass(frozen=True)
class Operation:
    name: str
    what: str  # one line: which of the study's computations this stands for
    tol: float
    build: Callable[[bool], tuple[Callable, tuple]]  # quick -> (fn, args)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _arithmetic(quick: bool):
    x = np.linspace(0.0, 1.0, 10_001)

    def fn(x):
        eps = jnp.finfo(F64).eps
        return jnp.stack([(1.0 + eps) - 1.0, jnp.sum(jnp.sin(x) * jnp.exp(-x)), jnp.prod(1.0 + x[:64] * 1e-3)])

    return fn, (x,)


def _fft(quick: bool):
    n = 256 if quick else 1024
    u = _rng(1).normal(size=(16, n))

    def fn(u):
        v = jnp.fft.rfft(u, axis=-1)
        return jnp.real(v), jnp.imag(v), jnp.fft.irfft(v * 1j, n=n, axis=-1)

    return fn, (u,)


def _ks_etdrk4(quick: bool):
    from sympscale.systems import make_system

    s = make_system("ks", 64 if quick else 256)
    x0 = np.asarray(s.sample_initial(jax.random.key(0), 4))
    return (lambda x0: s.trajectories(x0, 20)), (x0,)


def _symp_gradient(quick: bool):
    """value and gradient of the symp training loss through a scanned, per-step rematerialised rollout."""
    from sympscale import models
    from sympscale.training import TrainSpec, make_loss

    D, width, B, T = (16, 16, 8, 20) if quick else (64, 64, 32, 100)
    cap = models.Capacity(width=width, depth=3)
    model, _ = models.build("symp", D=D, dt=0.1, mean=np.zeros(D), std=np.ones(D), capacity=cap)
    loss = make_loss(model, np.ones(D), TrainSpec(horizon=T, batch_size=B, memory="remat"))
    rng = _rng(2)
    params = jax.tree.map(np.asarray, model.init(jax.random.key(0)))
    x0, targets = rng.normal(size=(B, D)) * 0.5, rng.normal(size=(T, B, D)) * 0.5
    return jax.value_and_grad(loss), (params, x0, targets)


def _cholesky(quick: bool):
    n = 64 if quick else 512
    m = _rng(3).normal(size=(n, n))
    return jnp.linalg.cholesky, (m @ m.T / n + np.eye(n),)


def _toda_eigvalsh(quick: bool):
    from sympscale.systems import make_system

    s = make_system("toda", 64 if quick else 256)
    x = np.asarray(s.sample_initial(jax.random.key(0), 4))
    return (lambda x: jnp.linalg.eigvalsh(s.lax_matrix(x))), (x,)


def _cr3bp_flow(quick: bool):
    from sympscale.systems import make_system

    s = make_system("cr3bp", 4)
    x0 = np.asarray(s.sample_initial(jax.random.key(0), 8))
    return (lambda x0: s.trajectories(x0, 20)), (x0,)


def _expm(quick: bool):
    from sympscale.integrators import quadratic_flow

    n = 16 if quick else 64
    m = _rng(4).normal(size=(n, n)) / np.sqrt(n)
    return (lambda S: quadratic_flow(S, 0.1)), ((m + m.T) / 2,)


def _projection(quick: bool):
    from sympscale.projection import make_projector
    from sympscale.systems import make_system

    s = make_system("fput", 16 if quick else 64)
    proj = make_projector(s, "multi")
    x0 = np.asarray(s.sample_initial(jax.random.key(0), 8))
    y = x0 + 1e-4 * _rng(5).normal(size=x0.shape)

    def fn(x0, y):
        c0, sc = proj.targets(x0)
        return proj(y, c0, sc)

    return fn, (x0, y)


OPERATIONS = (
    Operation("float64 arithmetic", "x64 on the device: eps, a long reduction, a product", 1e-13, _arithmetic),
    Operation("fft", "rfft/irfft (KS's spectral operators)", 1e-12, _fft),
    Operation(
        "ks etdrk4", "20 ETDRK4 observation steps of Kuramoto–Sivashinsky (FFT inside lax.scan)", 1e-9, _ks_etdrk4
    ),
    Operation(
        "symp gradient",
        "symp loss and gradient through a scanned, per-step rematerialised rollout (Yoshida-4)",
        1e-9,
        _symp_gradient,
    ),
    Operation("cholesky", "Cholesky of an SPD matrix (the learned mass matrix)", 1e-12, _cholesky),
    Operation("toda eigvalsh", "eigvalsh of Toda Lax matrices (the invariants)", 1e-12, _toda_eigvalsh),
    Operation(
        "cr3bp exact flow", "20 observation steps of CR3BP: matrix-exponential exact flow in a scan", 1e-9, _cr3bp_flow
    ),
    Operation("expm", "exp(t J S): the exact flow of a quadratic Hamiltonian", 1e-12, _expm),
    Operation("projection", "Newton projection onto FPUT's invariants (while_loop, jacrev)", 1e-9, _projection),
)
NAMES = tuple(op.name for op in OPERATIONS)


def run_on(fn: Callable, args: tuple, device) -> list[np.ndarray]:
    """Compile and run fn(*args) with its inputs on `device`; the output leaves as host arrays."""
    placed = jax.device_put(args, device)
    out = jax.block_until_ready(jax.jit(fn)(*placed))
    return [np.asarray(leaf) for leaf in jax.tree.leaves(out)]


def _as_real(a: np.ndarray) -> np.ndarray:
    """A complex array as its (real, imaginary) pairs: complex128 -> float64, complex64 -> float32."""
    return a.view(a.real.dtype) if np.iscomplexobj(a) else a


def compare(device_out: list[np.ndarray], cpu_out: list[np.ndarray]) -> dict:
    """Relative error of the device's outputs against the CPU's, and whether its floating outputs are float64
    (complex128 counts as float64 pairs).

    Integer and boolean outputs (Newton iteration counts, convergence flags) must be equal, else the error is
    inf; no floating output at all is not float64; a NaN is an error of inf unless the CPU has the same NaN."""
    dtypes = sorted({str(a.dtype) for a in device_out})
    device_out, cpu_out = [_as_real(a) for a in device_out], [_as_real(b) for b in cpu_out]
    floating = [a for a in device_out if np.issubdtype(a.dtype, np.floating)]
    float64 = bool(floating) and all(a.dtype == np.float64 for a in floating)
    worst = 0.0
    for a, b in zip(device_out, cpu_out, strict=True):
        worst = max(worst, _rel_error(a, b) if np.issubdtype(a.dtype, np.floating) else _exact(a, b))
    return {"rel_error": worst, "dtypes": dtypes, "float64": float64}


def _rel_error(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    same_nan = np.isnan(a) & np.isnan(b)
    diff = np.where(same_nan, 0.0, np.abs(a - b))
    scale = max(float(np.max(np.abs(np.where(same_nan, 0.0, b)), initial=0.0)), np.finfo(np.float64).tiny)
    err = float(np.max(diff, initial=0.0)) / scale
    return err if np.isfinite(err) else np.inf


def _exact(a: np.ndarray, b: np.ndarray) -> float:
    return 0.0 if a.shape == b.shape and np.array_equal(a, b) else np.inf


def check(op: Operation, device, cpu, *, quick: bool) -> dict:
    """One operation on `device` and on `cpu`: {ok, rel_error, tol, float64, seconds...}."""
    fn, args = op.build(quick)
    t0 = time.perf_counter()
    on_device = run_on(fn, args, device)
    t1 = time.perf_counter()
    on_cpu = run_on(fn, args, cpu)
    result = compare(on_device, on_cpu)
    ok = result["float64"] and result["rel_error"] <= op.tol
    return {**result, "ok": bool(ok), "tol": op.tol, "device_s": t1 - t0, "cpu_s": time.perf_counter() - t1}
