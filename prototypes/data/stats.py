"""Aggregating results across seeds: interquartile mean and percentile-bootstrap intervals.

Why these: with the handful of seeds an RL sweep can afford, the mean is at the mercy of one bad
seed and the median throws most runs away; the interquartile mean (IQM, the mean of the middle
50 % of runs, Agarwal et al. 2021, "Deep RL at the edge of the statistical precipice") sits
between the two. A percentile bootstrap over runs gives a confidence interval without assuming
normality. `summarize` picks the IQM once there are >= 4 runs (below that the IQM trims nothing
or leaves one or two runs) and the plain mean otherwise.

All functions work along axis 0 (runs) and keep the trailing axes (e.g. training steps T), so a
whole learning curve [R, T] is aggregated in one call. NumPy only, host-side; randomness comes
from an explicit `np.random.Generator`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["IQM_MIN_RUNS", "Summary", "iqm", "mean", "bootstrap_ci", "summarize"]

IQM_MIN_RUNS = 4  # summarize() reports the IQM from this many runs on, the mean below it

Statistic = Callable[[np.ndarray], np.ndarray]  # [..., R, *rest] -> [..., *rest] along axis -1-k


def mean(x: ArrayLike, axis: int = 0) -> np.ndarray:
    """The mean along `axis` (the runs)."""
    return np.mean(np.asarray(x, np.float64), axis=axis)


def iqm(x: ArrayLike, axis: int = 0) -> np.ndarray:
    """Interquartile mean along `axis`: drop floor(R / 4) runs at each end, average the rest.

    This is `scipy.stats.trim_mean(x, 0.25)` (the definition rliable uses): for R = 4 it is the
    mean of the middle two, for R = 5 of the middle three, for R < 4 the plain mean.

    Args:
        x: [..., R, ...] values; R runs along `axis`.

    Returns:
        x with `axis` reduced.
    """
    x = np.sort(np.asarray(x, np.float64), axis=axis)
    n = x.shape[axis]
    if n == 0:
        raise ValueError("iqm of zero runs")
    cut = n // 4
    kept = np.take(x, np.arange(cut, n - cut), axis=axis)
    return np.mean(kept, axis=axis)


def bootstrap_ci(
    x: ArrayLike,
    rng: np.random.Generator,
    statistic: Statistic = mean,
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile-bootstrap confidence interval of `statistic` over runs (axis 0).

    Draws `resamples` sets of R runs with replacement, evaluates the statistic on each, and
    returns the (1 - confidence) / 2 and (1 + confidence) / 2 quantiles of those values.

    Args:
        x: [R, ...] one row per run (e.g. [R] final returns or [R, T] learning curves).
        rng: NumPy generator (consumed).
        statistic: reduces axis 1 of a [resamples, R, ...] array (`mean`, `iqm` or similar
            with an `axis` argument).
        resamples: bootstrap sample count.
        confidence: interval coverage in (0, 1).

    Returns:
        (low, high), each shaped like x[0].
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    x = np.asarray(x, np.float64)
    n = x.shape[0]
    if n == 0:
        raise ValueError("bootstrap of zero runs")
    idx = rng.integers(0, n, size=(resamples, n))
    stats = statistic(x[idx], axis=1)  # [resamples, ...]
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(stats, [tail, 1.0 - tail], axis=0)
    return low, high


@dataclass(frozen=True)
class Summary:
    """Across-run aggregate: `center` is the IQM (>= IQM_MIN_RUNS runs) or the mean, with its
    bootstrap interval [low, high]; `statistic` names which ('iqm' or 'mean'); `runs` is R."""

    center: np.ndarray
    low: np.ndarray
    high: np.ndarray
    statistic: str
    runs: int


def summarize(
    x: ArrayLike,
    rng: np.random.Generator,
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
) -> Summary:
    """IQM (or mean, for fewer than `IQM_MIN_RUNS` runs) of x [R, ...] and its bootstrap CI."""
    x = np.asarray(x, np.float64)
    use_iqm = x.shape[0] >= IQM_MIN_RUNS
    stat = iqm if use_iqm else mean
    low, high = bootstrap_ci(x, rng, stat, resamples=resamples, confidence=confidence)
    return Summary(
        center=stat(x, axis=0),
        low=low,
        high=high,
        statistic="iqm" if use_iqm else "mean",
        runs=int(x.shape[0]),
    )
