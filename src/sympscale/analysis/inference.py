"""Intervals and tests for the study's endpoints (SCIENCE §13): a percentile bootstrap of a mean, an exact
sign-flip test of paired differences, Holm's step-down adjustment across cells, Clopper–Pearson for a fraction.

Every function is deterministic (fixed generator seeds), so a report is reproducible from its runs.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import stats as sps

RESAMPLES = 10_000  # bootstrap resamples
EXACT_UP_TO = 16  # pairs: the sign-flip test enumerates all 2^n sign patterns up to here, else samples
FLIP_SAMPLES = 100_000


def bootstrap_mean_ci(values, level: float = 0.95, resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of finite `values`; (NaN, NaN) for fewer than 2 values."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2 or not np.isfinite(v).all():
        return (math.nan, math.nan)
    idx = np.random.default_rng(seed).integers(0, v.size, size=(resamples, v.size))
    means = v[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def sign_flip_p(diffs, seed: int = 0) -> float:
    """Two-sided p of 'the paired differences are symmetric about 0' (the sign-flip permutation test of their
    mean): exact over all 2^n sign patterns for n <= EXACT_UP_TO, else FLIP_SAMPLES random patterns (plus the
    observed one). With 10 pairs the smallest p is 2/1024 ≈ 0.002. NaN for no pairs."""
    d = np.asarray(diffs, dtype=np.float64)
    if d.size == 0 or not np.isfinite(d).all():
        return math.nan
    observed = abs(d.mean())
    if d.size <= EXACT_UP_TO:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
        return float(np.mean(np.abs(signs @ d) / d.size >= observed - 1e-12 * max(observed, 1.0)))
    signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(FLIP_SAMPLES, d.size))
    extreme = np.sum(np.abs(signs @ d) / d.size >= observed - 1e-12 * max(observed, 1.0))
    return float((extreme + 1) / (FLIP_SAMPLES + 1))


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error across the given tests; NaN stays NaN)."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, math.nan)
    ok = np.flatnonzero(~np.isnan(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m, running = len(order), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval of a fraction k/n ((NaN, NaN) for n = 0): 10/10 -> (0.69, 1)."""
    if n <= 0:
        return (math.nan, math.nan)
    alpha = 1 - level
    lo = 0.0 if k == 0 else float(sps.beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(sps.beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi
