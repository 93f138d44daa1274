"""The primary endpoint's statistics: bootstrap coverage on a known distribution, the exact sign-flip test,
Holm on a known set, Clopper–Pearson's exact interval."""

import math

import numpy as np
import pytest

from sympscale.analysis.inference import bootstrap_mean_ci, clopper_pearson, holm, sign_flip_p


def test_the_bootstrap_interval_covers_a_known_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    hits = []
    for i in range(400):
        sample = rng.exponential(2.0, size=30)  # skewed, mean 2
        lo, hi = bootstrap_mean_ci(sample, resamples=2000, seed=i)
        hits.append(lo <= 2.0 <= hi)
    assert 0.90 <= np.mean(hits) <= 0.98  # percentile bootstrap at n = 30: slightly under 95 %
    assert all(math.isnan(v) for v in bootstrap_mean_ci([1.0]))  # one pair: no interval


def test_the_sign_flip_test_is_exact_for_small_sets():
    assert sign_flip_p([1.0] * 10) == pytest.approx(2 / 1024)  # the smallest p of 10 pairs, two-sided
    assert sign_flip_p([1.0, -1.0]) == 1.0
    assert sign_flip_p([3.0, 1.0, 2.0]) == pytest.approx(2 / 8)
    assert sign_flip_p([0.0, 0.0, 0.0]) == 1.0  # no difference at all
    assert math.isnan(sign_flip_p([]))
    rng = np.random.default_rng(1)
    nulls = [sign_flip_p(rng.normal(size=8)) for _ in range(400)]  # under the null, p is (nearly) uniform
    assert 0.02 <= np.mean(np.array(nulls) <= 0.05) <= 0.08
    big = sign_flip_p(rng.normal(1.0, 1.0, size=40))  # sampled patterns beyond EXACT_UP_TO
    assert 0 < big < 1e-3


def test_holm_on_a_known_set():
    # Holm (1979): sorted p 0.01, 0.02, 0.03, 0.04 of four tests -> 0.04, 0.06, 0.06, 0.06
    got = holm([0.03, 0.01, 0.04, 0.02])
    np.testing.assert_allclose(got, [0.06, 0.04, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, math.nan, 0.001]), [0.5, math.nan, 0.002])
    np.testing.assert_allclose(holm([0.9, 0.8]), [1.0, 1.0])  # capped at 1, never below an earlier step


def test_clopper_pearson():
    lo, hi = clopper_pearson(10, 10)
    assert lo == pytest.approx(0.6915, abs=1e-4) and hi == 1.0
    lo, hi = clopper_pearson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.3085, abs=1e-4)
    lo, hi = clopper_pearson(5, 10)
    assert lo == pytest.approx(0.1871, abs=1e-4) and hi == pytest.approx(0.8129, abs=1e-4)
    assert all(math.isnan(v) for v in clopper_pearson(0, 0))
