"""Confidence intervals over seeds and the verdicts they decide.

:func:`bootstrap_mean` is the percentile bootstrap of the mean (Efron and Tibshirani,
1993, ch. 13): resample the per-seed values with replacement, take the mean of each
resample, and report the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of those
means.  It is written out here (a few lines of NumPy) rather than taken from
``scipy.stats.bootstrap`` because SciPy is not a dependency of the training layer and
the resamples must be reproducible from one integer seed.

:func:`compare` decides a verdict from two intervals: ``"better"`` or ``"worse"`` when
they are disjoint, ``"tie"`` when they overlap.  No fixed margin is involved.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = ["LEVEL", "RESAMPLES", "Interval", "bootstrap_mean", "compare"]

#: Confidence level of every interval in the reports.
LEVEL = 0.95
#: Bootstrap resamples per interval.
RESAMPLES = 10_000


class Interval(NamedTuple):
    """A mean over seeds with its bootstrap confidence interval.

    Attributes
    ----------
    mean, low, high : float
        NaN when there is no finite value.
    n : int
        Number of finite values it is computed from.
    """

    mean: float
    low: float
    high: float
    n: int

    def text(self, digits: int = 3, scale: float = 1.0) -> str:
        """``"0.912 [0.905, 0.918]"`` (``"–"`` without values)."""
        if self.n == 0 or not math.isfinite(self.mean):
            return "–"
        m, lo, hi = (scale * v for v in (self.mean, self.low, self.high))
        return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def bootstrap_mean(
    values: Sequence[float], level: float = LEVEL, resamples: int = RESAMPLES, seed: int = 0
) -> Interval:
    """The mean of ``values`` and its percentile-bootstrap ``level`` interval.

    Non-finite values are dropped.  One value gives the degenerate interval
    ``[v, v]``; none gives NaNs.  The result depends only on the values, ``level``,
    ``resamples`` and ``seed``.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    v = np.asarray([float(x) for x in values], dtype=np.float64)
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(v.mean())
    if n == 1:
        return Interval(mean, mean, mean, 1)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return Interval(mean, float(min(low, mean)), float(max(high, mean)), n)


def compare(a: Interval, b: Interval) -> str:
    """``"better"`` (a above b), ``"worse"`` or ``"tie"`` (the intervals overlap);
    ``"n/a"`` when either has no values."""
    if a.n == 0 or b.n == 0:
        return "n/a"
    if a.low > b.high:
        return "better"
    if a.high < b.low:
        return "worse"
    return "tie"
