"""IQM and percentile bootstrap against hand-computed answers."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from prototypes.data.stats import IQM_MIN_RUNS, bootstrap_ci, iqm, mean, summarize


def test_iqm_known_answers():
    # R = 4: floor(4/4) = 1 dropped at each end -> mean(2, 3) = 2.5
    assert_allclose(iqm([4.0, 1.0, 3.0, 2.0]), 2.5)
    # R = 5: one dropped at each end -> mean(2, 3, 4) = 3 (the outlier 100 is gone; mean is 22)
    assert_allclose(iqm([1.0, 2.0, 3.0, 4.0, 100.0]), 3.0)
    assert_allclose(mean([1.0, 2.0, 3.0, 4.0, 100.0]), 22.0)
    # R = 8: two dropped at each end -> mean(3, 4, 5, 6) = 4.5
    assert_allclose(iqm([5, 1, 8, 2, 7, 3, 6, 4]), 4.5)
    # R = 3: floor(3/4) = 0, nothing trimmed -> the mean, 2
    assert_allclose(iqm([1.0, 2.0, 3.0]), 2.0)


def test_iqm_reduces_runs_axis_of_curves():
    # columns: [1,2,3,4] -> 2.5 and [10,0,30,20] -> sorted 0,10,20,30 -> 15
    curves = np.array([[1.0, 10.0], [2.0, 0.0], [3.0, 30.0], [4.0, 20.0]])
    assert_allclose(iqm(curves), [2.5, 15.0])
    assert_allclose(iqm(curves.T, axis=1), [2.5, 15.0])
    with pytest.raises(ValueError, match="zero runs"):
        iqm(np.zeros((0, 3)))


def test_bootstrap_of_constant_runs_is_a_point():
    low, high = bootstrap_ci([3.0, 3.0, 3.0], np.random.default_rng(0))
    assert_allclose([low, high], [3.0, 3.0])


def test_bootstrap_two_runs_known_distribution():
    # Resampling two runs {0, 1} gives a mean of 0 (prob 1/4), 0.5 (1/2) or 1 (1/4).
    # 95% interval: quantiles 0.025 and 0.975 fall in the 0 and 1 atoms -> (0, 1).
    # 40% interval: quantiles 0.3 and 0.7 both fall in the 0.5 atom (0.25 < 0.3, 0.7 < 0.75).
    x = [0.0, 1.0]
    low, high = bootstrap_ci(x, np.random.default_rng(1), resamples=4000)
    assert_allclose([low, high], [0.0, 1.0])
    low, high = bootstrap_ci(x, np.random.default_rng(1), resamples=4000, confidence=0.4)
    assert_allclose([low, high], [0.5, 0.5])


def test_bootstrap_of_curves_equals_per_column_calls():
    curves = np.random.default_rng(2).normal(size=(5, 3))
    low, high = bootstrap_ci(curves, np.random.default_rng(7), iqm, resamples=300)
    for j in range(3):
        lo_j, hi_j = bootstrap_ci(curves[:, j], np.random.default_rng(7), iqm, resamples=300)
        assert_allclose([low[j], high[j]], [lo_j, hi_j], rtol=0, atol=1e-12)
    assert np.all(low <= iqm(curves)) and np.all(iqm(curves) <= high)


def test_same_seed_same_interval_different_seed_different():
    x = np.arange(10.0)
    a = bootstrap_ci(x, np.random.default_rng(3), resamples=200)
    b = bootstrap_ci(x, np.random.default_rng(3), resamples=200)
    c = bootstrap_ci(x, np.random.default_rng(4), resamples=200)
    assert_allclose(a, b, rtol=0, atol=0)
    assert not np.allclose(a, c)


def test_summarize_switches_to_iqm_at_four_runs():
    three = summarize([1.0, 2.0, 30.0], np.random.default_rng(0), resamples=100)
    assert three.statistic == "mean" and three.runs == 3
    assert_allclose(three.center, 11.0)
    four = summarize([1.0, 2.0, 3.0, 30.0], np.random.default_rng(0), resamples=100)
    assert IQM_MIN_RUNS == 4 and four.statistic == "iqm"
    assert_allclose(four.center, 2.5)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [({"confidence": 1.0}, "confidence must be in (0, 1)"), ({"resamples": 0}, "resamples")],
)
def test_bad_arguments(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        bootstrap_ci([1.0, 2.0], np.random.default_rng(0), **kwargs)
