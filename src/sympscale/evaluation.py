"""Rollout evaluation: error growth, boundedness (calibrated on the truth), the time to normalised MSE 1, valid
prediction time and conservation of the true invariants.

A rollout that blows up is a result, not a crash: non-finite values are kept and reported (a non-finite
conservation residual is reported as +inf).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree
from scipy.stats import norm as normal
from scipy.stats import t as student_t

from sympscale.diagnostics import lyapunov_spectrum
from sympscale.registry import METRICS
from sympscale.seedaxis import n_seeds, over_seeds, stack, unstack
from sympscale.training import rollout

VPT_THRESHOLDS = (0.3, 0.5)
AMPLITUDES = ("state", "increment")  # the bounded rule's statistics (`amplitudes`)
AMPLITUDE_1_3 = 2 * math.log(1.3)  # |log| of the mean-square ratio of an amplitude error of 1.3x: 0.525


def climatology_mse(states: np.ndarray, mean: np.ndarray, std: np.ndarray, *, seed: int = 0) -> float:
    """Normalised MSE between independent states of the data (≈ 2 for a z-scored attractor)."""
    flat = (np.asarray(states).reshape(-1, states.shape[-1]) - mean) / std
    rng = np.random.default_rng(seed)
    a, b = rng.permutation(len(flat)), rng.permutation(len(flat))
    return float(np.mean((flat[a] - flat[b]) ** 2))


def _one_step_errors(model, traj: np.ndarray, std: np.ndarray):
    """errors(params) -> (n,) normalised MSE of one model step from every true state of each trajectory."""
    inv_std, xs = jnp.asarray(1.0 / np.asarray(std)), jnp.asarray(traj)

    def errors(params):
        def one(x):
            pred = model.observe(model.step(params, model.encode(params, x[:-1])))
            return jnp.mean(((pred - x[1:]) * inv_std) ** 2)

        return lax.map(one, xs)  # one trajectory at a time

    return errors


def _finite_mean(err: np.ndarray) -> float:
    return float(np.mean(err)) if np.isfinite(err).all() else float("inf")


def one_step_mse(model, params, traj: np.ndarray, std: np.ndarray) -> float:
    """Normalised MSE of one model step from every true state of `traj` (n, T, D) to the next (one trajectory
    at a time); +inf when any prediction is not finite."""
    return one_step_mse_bundle(model, stack([params]), traj, std)[0]


def one_step_mse_bundle(model, params, traj: np.ndarray, std: np.ndarray) -> list[float]:
    """`one_step_mse` of each seed of stacked parameters (a seed bundle), as one program."""
    err = np.asarray(jax.jit(over_seeds(_one_step_errors(model, traj, std)))(params))
    return [_finite_mean(e) for e in err]


@dataclasses.dataclass(frozen=True, eq=False)
class Rollout:
    """One scored free-running rollout from the first state of every test trajectory: what each metric reads."""

    mse: np.ndarray  # (n, T) normalised squared error per step (non-finite where the rollout blew up)
    residuals: dict[str, np.ndarray]  # invariant -> (n, T + 1) relative conservation residual
    own: np.ndarray | None  # (n, T + 1) residual of the model's own energy, when it has one
    test: np.ndarray  # (n, n_obs, D) the test trajectories
    mean: np.ndarray
    std: np.ndarray
    tail: np.ndarray  # (n, last + 1, D) the rollout's last `last` + 1 states (the bounded rule's window)
    horizon: int
    last: int  # the scoring window of the last-`last` MSE and the bounded rule
    bounded: BoundedRule
    lyapunov: float | None  # λ₁ per time unit (None or NaN: no VPT)
    dt_obs: float
    energy: str | None = None  # the system's energy invariant (`System.energy`): H, E or the Jacobi constant C
    observable: tuple[str, Callable] | None = None  # (name, `System.measure_observable`) where the system has one
    companions: np.ndarray | None = None  # (k, n, last + 1, D) independent truths' scoring windows (`companions`)

    @property
    def last_mse(self) -> np.ndarray:
        """Per trajectory: the mean normalised MSE over the last `last` steps."""
        return self.mse[:, -self.last :].mean(axis=1)

    @property
    def first_over_one(self) -> np.ndarray:
        """Per trajectory: the first step whose MSE exceeds 1 (or is non-finite); the horizon if none does."""
        over = ~(self.mse <= 1.0)
        return np.where(over.any(axis=1), over.argmax(axis=1) + 1, self.horizon)


@dataclasses.dataclass(frozen=True)
class BoundedRule:
    """Bounded: every rollout finite, and over the last window each trajectory's mean-square normalised state and
    one-step increment within the band the truth keeps against itself (README "Metrics").

    The truth's band: the RMS σ of the |log ratio| between the scoring windows of two independent truths (the
    truth and `companions`: the reference from perturbed starts, decorrelated where the system is chaotic), m
    disjoint pairs of them over the test trajectories. The threshold t·σ, t the Student-t quantile (m − 1 degrees of
    freedom) at which all 2n comparisons of n trajectories pass with probability `level` if the rollout were an
    independent truth; never below `floor`. (A truth's own earlier windows are no substitute: FPUT's amplitudes stay
    correlated over ~1,000 steps, so their spread understates an independent truth's by ~25 %.)"""

    level: float = 0.995  # nominal: an independent AR(1) truth passes 98.8-99.7 % (0.99 gave 98.7-99.1 %)
    floor: float = 0.2
    pairs: int = 100  # independent pairs of truths the band is estimated from (`companions`): fewer widen the band

    def threshold(self, band: float, windows: int, n_traj: int) -> float:
        tail = (1.0 - self.level ** (1.0 / (len(AMPLITUDES) * n_traj))) / 2.0
        return max(float(student_t.ppf(1.0 - tail, df=max(windows - 1, 1))) * band, self.floor)


DEFAULT_BOUNDED = BoundedRule()


@dataclasses.dataclass(frozen=True)
class MetricOptions:
    """Metrics read their settings from the `Rollout` (eval.horizon, eval.bounded_level, eval.bounded_floor)."""


def metric(fn: Callable[[Rollout], dict]) -> Callable[[Rollout], dict]:
    """Register `fn(rollout) -> {key: value}` as an evaluation metric (its name: the function's)."""
    METRICS.register(fn.__name__, options=MetricOptions, make=fn, doc=(fn.__doc__ or "").strip())
    return fn


@metric
def error(r: Rollout) -> dict:
    """Last-window MSE and the steps to normalised MSE 1 (the first step with MSE > 1, median over trajectories)."""
    last_mse = np.where(np.isfinite(r.last_mse), r.last_mse, np.inf)  # a rollout that blew up: infinite error
    return {
        "last100_mse": float(np.mean(last_mse)),
        "last100_mse_per_traj": [float(v) for v in last_mse],
        "n_finite": int(np.isfinite(r.mse).all(axis=1).sum()),
        "steps_to_mse_1": float(np.median(r.first_over_one)),
        "steps_to_mse_1_per_traj": [int(v) for v in r.first_over_one],
    }


def amplitudes(window: np.ndarray, mean: np.ndarray, std: np.ndarray) -> dict[str, np.ndarray]:
    """Per trajectory of `window` (n, last + 1, D): the mean square of the normalised state over its last `last`
    states, and of its `last` one-step increments (a rollout collapsed onto a point has none)."""
    z = (np.asarray(window) - mean) / std
    with np.errstate(over="ignore", invalid="ignore"):
        return {
            "state": np.mean(z[:, 1:] ** 2, axis=(1, 2)),
            "increment": np.mean(np.diff(z, axis=1) ** 2, axis=(1, 2)),
        }


def calibration_starts(n_obs: int, horizon: int, last: int) -> list[int]:
    """First indices of the truth's windows (last + 1 states) that tile the test trajectories around the scoring
    window test[:, horizon - last : horizon + 1] (the trajectories start after the transient: eval.start)."""
    ref = horizon - last
    return [a for a in range(ref % last, n_obs - last, last) if a != ref]


def log_ratios(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """|log(a / b)| of each amplitude (inf where a is 0, infinite or not a number)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return {k: np.nan_to_num(np.abs(np.log(a[k] / b[k])), nan=np.inf) for k in AMPLITUDES}


COMPANION_PERTURBATION = 1e-8  # relative perturbation of a companion's first state


def companions(system, test: np.ndarray, horizon: int, last: int, pairs: int = 100, seed: int = 0) -> np.ndarray:
    """Independent truths of the test trajectories: each first state perturbed by a relative
    COMPANION_PERTURBATION, k = 2 ceil(pairs / n) − 1 times (with the truth, k + 1 windows per trajectory: at least
    `pairs` disjoint pairs in all; `BoundedRule.pairs`), and carried by the system's reference map for `horizon`
    intervals; their scoring windows (k, n, last + 1, D). Chaotic systems decorrelate them long before the window;
    a regular one keeps them on the truth (its band is then the floor)."""
    n, _, D = test.shape
    k = 2 * -(-pairs // n) - 1
    rng = np.random.default_rng(seed)
    x0 = test[None, :, 0] * (1.0 + COMPANION_PERTURBATION * rng.standard_normal((k, n, D)))
    windows = _scoring_window(system, jnp.asarray(x0.reshape(k * n, D)), horizon, last)
    return np.asarray(windows).reshape(k, n, last + 1, D)


@functools.partial(jax.jit, static_argnums=(0, 2, 3))  # one compile per (system, horizon, window) in a process
def _scoring_window(system, x0, horizon: int, last: int):
    x = lax.fori_loop(0, horizon - last, lambda i, x: system.interval(x), x0)
    return system.trajectories(x, last + 1)


def truth_band(r: Rollout) -> tuple[dict, int, dict]:
    """({statistic: the RMS |log ratio| between two independent truths' scoring windows}, the number of such
    pairs, the truth's scoring window amplitudes). Per test trajectory its windows (the truth's, then its
    companions') are taken in disjoint pairs, so no two pairs share a window: the samples are independent, as the
    Student-t threshold assumes (pairs against the truth's one window would share its noise)."""
    ref = amplitudes(r.test[:, r.horizon - r.last : r.horizon + 1], r.mean, r.std)
    if r.companions is None or len(r.companions) < 1:
        return dict.fromkeys(AMPLITUDES, math.nan), 0, ref
    amps = [ref, *(amplitudes(c, r.mean, r.std) for c in r.companions)]
    ratios = [log_ratios(amps[j], amps[j + 1]) for j in range(0, len(amps) - 1, 2)]
    stacked = {k: np.concatenate([x[k] for x in ratios]) for k in AMPLITUDES}
    ok = np.all([np.isfinite(v) for v in stacked.values()], axis=0)
    band = {k: float(np.sqrt(np.mean(v[ok] ** 2))) if ok.any() else math.nan for k, v in stacked.items()}
    return band, int(ok.sum()), ref


def amplitude_error_passes(band: dict, threshold: dict, n_traj: int) -> float:
    """The chance that a rollout off by 1.3x in amplitude on every trajectory (both statistics moved by
    AMPLITUDE_1_3) still passes all n, its per-trajectory scatter the band's (Gaussian): the rule detects it when
    this is below 1 %. One threshold below 0.525 is not needed: n trajectories each near it rarely all pass."""
    p = 1.0
    for k in AMPLITUDES:
        sigma, t = band[k], threshold[k]
        if not sigma > 0:
            p *= float(t >= AMPLITUDE_1_3)
            continue
        p *= float(normal.cdf((t - AMPLITUDE_1_3) / sigma) - normal.cdf((-t - AMPLITUDE_1_3) / sigma))
    return p**n_traj


def companion_spread(r: Rollout) -> dict:
    """How far the companions got from the truth by the scoring window: their median normalised MSE to it, and
    whether that exceeds 1 (decorrelated; otherwise the band is the perturbation's residue and the floor governs)."""
    if r.companions is None or not len(r.companions):
        return {"bounded_companion_mse": None, "bounded_companions_decorrelated": None}
    truth = r.test[None, :, r.horizon - r.last + 1 : r.horizon + 1]
    with np.errstate(over="ignore", invalid="ignore"):
        mse = float(np.median(np.mean(((r.companions[:, :, 1:] - truth) / r.std) ** 2, axis=(2, 3))))
    return {"bounded_companion_mse": mse, "bounded_companions_decorrelated": bool(mse > 1.0)}


@metric
def boundedness(r: Rollout) -> dict:
    """Bounded (README "Metrics"): every rollout finite and, for every test trajectory, the mean-square state and
    increment over the last window within the truth's own band (`BoundedRule`); None when the test trajectories
    have no independent truths to calibrate on."""
    band, windows, truth = truth_band(r)
    stat = log_ratios(amplitudes(r.tail, r.mean, r.std), truth)
    if not windows:  # nothing to calibrate on: not judged
        threshold, inside = dict.fromkeys(AMPLITUDES), [None] * len(r.test)
    else:
        threshold = {k: r.bounded.threshold(band[k], windows, len(r.test)) for k in AMPLITUDES}
        ok = np.all([stat[k] <= threshold[k] for k in AMPLITUDES], axis=0) & np.isfinite(r.mse).all(axis=1)
        inside = [bool(v) for v in ok]
    return {
        "bounded": all(inside) if windows else None,
        "bounded_per_traj": inside,
        "bounded_statistic": {k: float(stat[k].max()) for k in AMPLITUDES},
        "bounded_threshold": threshold,
        "bounded_truth_band": band,
        "bounded_calibration_windows": windows,
        **companion_spread(r),
        "bounded_detects_amplitude_1_3": bool(windows) and amplitude_error_passes(band, threshold, len(r.test)) < 0.01,
        "bounded_rule": (
            f"every rollout finite and, per test trajectory, |log| of the mean-square normalised state and increment "
            f"over the last {r.last} steps relative to the truth's within the band of independent truths (perturbed "
            f"starts; passed by one with probability {r.bounded.level}), and never tighter than {r.bounded.floor}"
        ),
        "climatology_mse": climatology_mse(r.test, r.mean, r.std),
    }


def marginal_w1(a: np.ndarray, b: np.ndarray) -> float:
    """The 1-Wasserstein distance between the marginal distributions of two equal-size samples (N, D), averaged
    over the D coordinates (inf when a sample is not finite)."""
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return float("inf")
    return float(np.mean(np.abs(np.sort(a, axis=0) - np.sort(b, axis=0))))


@metric
def invariant_measure(r: Rollout) -> dict:
    """Long-term statistics against a truth-vs-truth band: the marginal W1 distance (normalised units, pooled
    over test trajectories) between the rollout's last window and the truth's, beside the same distance between
    the truth's scoring window and its other windows (`calibration_starts`); `measure_ratio` = distance / the
    band's largest (<= 1: as close as the truth to itself)."""
    z = lambda x: ((np.asarray(x) - r.mean) / r.std).reshape(-1, r.test.shape[-1])  # noqa: E731
    truth = z(r.test[:, r.horizon - r.last + 1 : r.horizon + 1])
    starts = calibration_starts(r.test.shape[1], r.horizon, r.last)
    band = [marginal_w1(z(r.test[:, a + 1 : a + r.last + 1]), truth) for a in starts]
    with np.errstate(invalid="ignore", over="ignore"):
        dist = marginal_w1(z(r.tail[:, 1:]), truth)
    top = max(band, default=math.nan)
    return {
        "measure_distance": dist,
        "measure_truth_band": {"median": float(np.median(band)) if band else math.nan, "max": top},
        "measure_ratio": dist / top if top > 0 else math.nan,
        "measure_rule": f"1-Wasserstein distance of the coordinates' marginals over the last {r.last} steps",
    }


CONSERVED = 1e-6  # a truth band below this: the statistic is an invariant of the truth (kept to integrator error)
OBSERVABLE_SAMPLES = 21  # states of a window whose observable is averaged (Toda's is an eigenproblem per state)


def window_average(observable: Callable, window: np.ndarray) -> np.ndarray:
    """Per trajectory, the observable's time average over a window (n, T, D) -> (n, K), from
    OBSERVABLE_SAMPLES evenly spaced states (inf when any state of the window is not finite)."""
    window = np.asarray(window)
    if not np.isfinite(window).all():
        return np.full((window.shape[0], 1), np.inf)
    states = window[:, np.unique(np.linspace(0, window.shape[1] - 1, OBSERVABLE_SAMPLES).round().astype(int))]
    return np.asarray(observable(jnp.asarray(states))).mean(axis=1)


def relative_l1(a: np.ndarray, b: np.ndarray) -> float:
    """Median over trajectories of Σ_k |a_k − b_k| / Σ_k |b_k| (inf where a is not finite)."""
    if not np.isfinite(a).all():
        return float("inf")
    return float(np.median(np.sum(np.abs(a - b), axis=-1) / np.sum(np.abs(b), axis=-1)))


@metric
def system_measure(r: Rollout) -> dict:
    """The system's own long-term statistic (`System.measure_observable`: FPUT's energy per normal mode, Toda's Lax
    spectrum) against a truth-vs-truth band. Its time average over the rollout's last window, averaged over the test
    trajectories (one sample of the invariant measure), against the truth's: the relative L1 distance; the band is
    the same distance between the truth's scoring window and its other windows (`calibration_starts`), and
    `observable_ratio` = distance / the band's largest (<= 1: as close as the truth to itself). Where the truth
    keeps the statistic to integrator precision (Toda's spectrum: `observable_conserved`), each trajectory keeps its
    own: the distance is then the median over trajectories, the model's spectral drift, and the ratio None."""
    if r.observable is None:
        return {"observable": None}
    name, fn = r.observable
    truth = window_average(fn, r.test[:, r.horizon - r.last + 1 : r.horizon + 1])
    others = [
        window_average(fn, r.test[:, a + 1 : a + r.last + 1])
        for a in calibration_starts(r.test.shape[1], r.horizon, r.last)
    ]
    pooled = lambda a: a.mean(axis=0, keepdims=True)  # noqa: E731
    band = [relative_l1(pooled(o), pooled(truth)) for o in others]
    top = max(band, default=math.nan)
    conserved = bool(band) and top < CONSERVED
    model = window_average(fn, r.tail[:, 1:])
    dist = relative_l1(model, truth) if conserved else relative_l1(pooled(model), pooled(truth))
    return {
        "observable": name,
        "observable_distance": dist,
        "observable_truth_band": {"median": float(np.median(band)) if band else math.nan, "max": top},
        "observable_ratio": None if conserved or not top > 0 else dist / top,
        "observable_conserved": conserved,
    }


DRIFT_POINTS = 51  # samples of the median energy-drift curve kept in metrics.json (its figure)


def energy_drift(residual: np.ndarray, dt_obs: float) -> dict:
    """The energy's drift as the study reports it: the median over trajectories of |ΔH|/|H| at each step (a
    non-finite residual counts as infinite), its least-squares slope per time unit, its final value, and the
    curve at DRIFT_POINTS times."""
    med = np.median(np.where(np.isnan(residual), np.inf, residual), axis=0)
    t = np.arange(med.size) * dt_obs
    slope = float(np.polyfit(t, med, 1)[0]) if np.isfinite(med).all() and med.size > 1 else float("inf")
    keep = np.unique(np.linspace(0, med.size - 1, DRIFT_POINTS).round().astype(int))
    return {
        "median_final": float(med[-1]),
        "slope_per_time": slope,
        "time": [float(v) for v in t[keep]],
        "median": [float(v) for v in med[keep]],
    }


@metric
def conservation(r: Rollout) -> dict:
    """The largest relative residual of each true invariant (and of the energy, under one name for every system),
    of the model's own learned energy, and the energy's median drift over time with its slope."""
    conservation = {k: _max_or_inf(v) for k, v in r.residuals.items()}
    return {
        "energy_drift": energy_drift(r.residuals[r.energy], r.dt_obs) if r.energy in r.residuals else None,
        "conservation": conservation,
        "energy_invariant": r.energy,
        "energy_residual": conservation.get(r.energy) if r.energy else None,
        # drift of the model's own learned energy H_θ (symplectic models conserve it up to O(h⁴) oscillation)
        "model_energy_residual": None if r.own is None else _max_or_inf(r.own),
    }


@metric
def valid_prediction_time(r: Rollout) -> dict:
    """VPT_ε = λ₁ · first t with NRMSE(t) > ε (SCIENCE §8), ε = 0.3 and 0.5, median over trajectories."""
    if r.lyapunov is None or not np.isfinite(r.lyapunov):
        return {}
    nrmse = np.sqrt(np.where(np.isfinite(r.mse), r.mse, np.inf))
    vpt, vpt_steps = {}, {}
    for eps in VPT_THRESHOLDS:
        over = nrmse > eps
        steps = np.where(over.any(axis=1), over.argmax(axis=1), r.horizon)  # steps before the first crossing
        vpt_steps[f"{eps}"] = float(np.median(steps))
        vpt[f"{eps}"] = vpt_steps[f"{eps}"] * r.dt_obs * r.lyapunov
    return {
        "vpt_lyapunov": vpt,
        "vpt_steps": vpt_steps,
        "lyapunov_times_to_mse_1": float(np.median(r.first_over_one) * r.dt_obs * r.lyapunov),
        "lyapunov_exponent": float(r.lyapunov),
        "horizon_lyapunov": float(r.horizon * r.dt_obs * r.lyapunov),
    }


@dataclasses.dataclass(frozen=True)
class SpectrumSpec:
    """The learned model's own Lyapunov spectrum (eval.spectrum_*): from the first state of `trajectories` test
    trajectories, `intervals` model steps of which the first `transient` align the tangent vectors; 0 intervals:
    not computed."""

    trajectories: int = 2
    intervals: int = 1000
    transient: int = 200


def model_spectrum_bundle(model, params, test: np.ndarray, spec: SpectrumSpec, dt_obs: float, system_lambda) -> list:
    """Per seed of stacked parameters: the leading D Lyapunov exponents of the model's own map (its carry: the
    state, or the GRU's state and hidden vector), per time unit, with λ₁ against the system's, the spectrum's
    sum (phase-space volume: 0 for a volume-preserving map) and, for a carry that is the state, the largest
    |λ_i + λ_{D+1-i}|: a symplectic map gives ± pairs (0 up to the finite-time estimate). None when off."""
    if spec.intervals <= 0:
        return [None] * n_seeds(params)
    D, x0 = test.shape[-1], jnp.asarray(test[: spec.trajectories, 0])

    def exponents(p):
        def one(x):
            flat, unravel = ravel_pytree(model.encode(p, x[None]))
            step = lambda u: ravel_pytree(model.step(p, unravel(u)))[0]  # noqa: E731
            return lyapunov_spectrum(step, flat, spec.intervals, transient=spec.transient, k=D)

        return lax.map(one, x0)

    carry = jax.eval_shape(lambda p: ravel_pytree(model.encode(p, x0[:1]))[0], unstack(params, 0)).shape[0]
    per = np.asarray(jax.jit(over_seeds(exponents))(params)) / dt_obs  # (seeds, trajectories, D)
    return [_spectrum_record(s, carry == D, system_lambda, spec) for s in per]


def _spectrum_record(per: np.ndarray, state_carry: bool, system_lambda, spec: SpectrumSpec) -> dict:
    """One seed's spectrum record from its per-trajectory exponents (n, D), per time unit."""
    mean = per.mean(axis=0)
    finite = bool(np.isfinite(per).all())
    lam1 = float(mean[0]) if np.isfinite(per[:, 0]).all() else float("inf")  # a blown-up orbit: inf
    return {
        "lambda1": lam1,
        "system_lambda1": system_lambda,
        "lambda1_ratio": lam1 / system_lambda if system_lambda and np.isfinite(system_lambda) else None,
        "spectrum": [float(v) for v in mean],
        # the whole spectrum of a map of the state: its phase-space volume change (a GRU's carry is larger than D)
        "sum": (float(mean.sum()) if finite else float("inf")) if state_carry else None,
        "pair_error": float(np.abs(mean + mean[::-1]).max()) if finite and state_carry else None,
        "trajectories": int(per.shape[0]),
        "intervals": spec.intervals,
        "transient": spec.transient,
    }


def rollout_metrics(model, params, system, test: np.ndarray, mean: np.ndarray, std: np.ndarray, **kw) -> dict:
    """`rollout_metrics_bundle` of one seed's parameters."""
    return rollout_metrics_bundle(model, stack([params]), system, test, mean, std, **kw)[0]


def rollout_metrics_bundle(
    model,
    params,
    system,
    test: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    *,
    horizon: int,
    bounded: BoundedRule = DEFAULT_BOUNDED,
    last: int = 100,
    projector=None,
    lyapunov: float | None = None,
    dt_obs: float = 1.0,
) -> list[dict]:
    """Roll out from the first state of each test trajectory for `horizon` steps and score it with every
    registered metric (`sympscale.registry.METRICS`), for each seed of stacked parameters (a seed bundle, one
    program; a single run is a bundle of one).

    `lyapunov` (λ₁ of the dataset, per time unit) adds the valid prediction time in Lyapunov times (a rollout
    that never crosses counts as the full horizon).

    With a `projector`, a second rollout projects every step onto the invariants; its conservation residuals
    (`conservation_projected`), last-100 MSE and Newton statistics are reported beside the plain ones.
    """
    scored = _rollouts(model, system, test, std, horizon, last, projector)
    out = jax.tree_util.tree_map(np.asarray, jax.jit(over_seeds(scored))(params))
    others = companions(system, test, horizon, last, bounded.pairs)  # the bounded rule's truths, once per bundle
    settings = (test, mean, std, system, horizon, last, bounded, lyapunov, dt_obs, projector, others)
    return [_metrics(unstack(out, i), *settings) for i in range(n_seeds(out))]


def _rollouts(model, system, test: np.ndarray, std: np.ndarray, horizon: int, last: int, projector):
    """scored(params) -> {"plain": (mse, residuals, own)[, "projected": ((mse, residuals, own), iterations, ok)]}:
    the device part of the evaluation, a pure function of the parameters."""
    n_traj, n_obs, _ = test.shape
    if horizon + 1 > n_obs:
        raise ValueError(f"eval horizon {horizon} needs {horizon + 1} observations, test data has {n_obs}")
    if horizon < last:
        raise ValueError(f"eval horizon {horizon} is shorter than the {last}-step scoring window")
    score = _scorer(model, system, test, std, horizon, last)
    x0 = jnp.asarray(test[:, 0])

    def scored(params):
        out = {"plain": score(params, rollout(model, params, x0, horizon, memory="none"))}
        if projector is not None:
            pred, iters, ok = rollout(model, params, x0, horizon, memory="none", projector=projector, with_stats=True)
            out["projected"] = (score(params, pred), iters, ok)
        return out

    return scored


def _metrics(out: dict, test, mean, std, system, horizon, last, bounded, lyapunov, dt_obs, projector, others) -> dict:
    """Every registered metric of one seed's scored rollouts (numpy), and the projected rollout's."""
    mse, resid, own, tail = out["plain"]
    energy = getattr(system, "energy", None)
    observable = (system.observable, system.measure_observable) if getattr(system, "observable", None) else None
    r = Rollout(
        mse, resid, own, test, mean, std, tail, horizon, last, bounded, lyapunov, dt_obs, energy, observable, others
    )
    metrics = {"horizon": horizon, "n_trajectories": test.shape[0]}
    for entry in METRICS.values():
        metrics.update(entry.make(r))
    if projector is not None:
        metrics.update(_projected(*out["projected"], last, projector))
    return metrics


def _scorer(model, system, test: np.ndarray, std: np.ndarray, horizon: int, last: int):
    """score(params, pred (T, n, D)) -> (normalised MSE (n, T), invariant residuals, the model's own energy
    residual or None, the last `last` + 1 states (n, last + 1, D))."""
    truth = jnp.asarray(test[:, 1 : horizon + 1])
    x0 = jnp.asarray(test[:, 0])

    def score(params, pred):
        pred = jnp.swapaxes(pred, 0, 1)  # (n, T, D)
        mse = jnp.mean(((pred - truth) / std) ** 2, axis=-1)  # (n, T)
        states = jnp.concatenate([x0[:, None], pred], axis=1)
        inv, scales = system.invariants(states), system.invariant_scales(x0)
        resid = {k: jnp.abs(v - v[:, :1]) / jnp.maximum(jnp.abs(v[:, :1]), scales[k][:, None]) for k, v in inv.items()}
        own = None
        if hasattr(model, "hamiltonian"):  # a model with its own energy: how well does it keep it?
            e = model.hamiltonian(params, states)
            own = jnp.abs(e - e[:, :1]) / jnp.maximum(jnp.abs(e[:, :1]), model.energy_scale)
        return mse, resid, own, states[:, -(last + 1) :]

    return score


def _projected(scored, iters: np.ndarray, ok: np.ndarray, last: int, projector) -> dict:
    """The projected rollout's conservation, last-window MSE and Newton iteration statistics."""
    mse_p, resid_p, _, _ = scored
    return {
        "conservation_projected": {k: _max_or_inf(v) for k, v in resid_p.items()},
        "last100_mse_projected": float(np.mean(mse_p[:, -last:])),
        "projection": {
            "invariants": list(projector.names),
            "tol": projector.tol,
            "max_iter": projector.max_iter,
            "mean_iterations": float(iters.mean()),
            "max_iterations": int(iters.max()),
            "frac_steps_within_5": float(np.mean(iters <= 5)),
            # steps that took k Newton iterations, k = 0 … max_iter (0: already on the level set)
            "iterations_histogram": np.bincount(iters.ravel(), minlength=projector.max_iter + 1).tolist(),
            "n_not_converged": int((~ok).sum()),
            "n_steps": int(ok.size),
        },
    }


def _max_or_inf(v: np.ndarray) -> float:
    return float(np.max(v)) if np.isfinite(v).all() else float("inf")
