"""numeric.stats: the bootstrap interval of a mean against cases known in closed form,
its determinism, and the interval verdicts."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from numeric.stats import Interval, bootstrap_mean, compare


def _exact_bootstrap_quantiles(values, level):
    """Quantiles of the exact bootstrap distribution of the mean: all n^n resamples."""
    n = len(values)
    means = np.sort([np.mean(c) for c in itertools.product(values, repeat=n)])
    return np.quantile(means, [(1 - level) / 2, (1 + level) / 2])


def test_two_values_give_their_range():
    # resample means 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4: the 95 % interval is [0, 1]
    iv = bootstrap_mean([0.0, 1.0], resamples=20_000, seed=1)
    assert iv.mean == 0.5 and iv.n == 2
    assert (iv.low, iv.high) == (0.0, 1.0)


def test_matches_the_exact_bootstrap_distribution():
    values = [0.1, 0.35, 0.4, 0.9, 1.3]
    lo, hi = _exact_bootstrap_quantiles(values, 0.9)
    iv = bootstrap_mean(values, level=0.9, resamples=200_000, seed=3)
    assert iv.mean == pytest.approx(np.mean(values), rel=1e-15)
    assert iv.low == pytest.approx(lo, abs=0.01)
    assert iv.high == pytest.approx(hi, abs=0.01)


def test_large_samples_approach_the_normal_interval():
    rng = np.random.default_rng(0)
    values = rng.normal(2.0, 1.0, size=400)
    iv = bootstrap_mean(values, seed=0)
    half = 1.96 * values.std(ddof=0) / math.sqrt(values.size)
    assert iv.low == pytest.approx(values.mean() - half, abs=0.01)
    assert iv.high == pytest.approx(values.mean() + half, abs=0.01)


def test_deterministic_with_a_seed_and_different_across_seeds():
    values = np.random.default_rng(0).uniform(size=30)
    assert bootstrap_mean(values, seed=7) == bootstrap_mean(values, seed=7)
    # the seed is the only randomness: another seed, other resamples (few, so they show)
    assert bootstrap_mean(values, resamples=50, seed=7) != bootstrap_mean(
        values, resamples=50, seed=8
    )


def test_degenerate_and_non_finite_inputs():
    assert bootstrap_mean([0.3]) == Interval(0.3, 0.3, 0.3, 1)
    empty = bootstrap_mean([])
    assert empty.n == 0 and math.isnan(empty.mean) and empty.text() == "–"
    assert bootstrap_mean([0.2, math.nan, 0.4], seed=0).n == 2
    with pytest.raises(ValueError, match="level"):
        bootstrap_mean([1.0, 2.0], level=1.0)
    assert Interval(0.5, 0.4, 0.6, 3).text(2) == "0.50 [0.40, 0.60]"


def test_verdicts_are_decided_by_overlap():
    a = Interval(0.9, 0.88, 0.92, 5)
    assert compare(a, Interval(0.8, 0.7, 0.87, 5)) == "better"
    assert compare(Interval(0.8, 0.7, 0.87, 5), a) == "worse"
    assert compare(a, Interval(0.86, 0.80, 0.88, 5)) == "tie"  # touching counts as overlap
    assert compare(a, Interval(math.nan, math.nan, math.nan, 0)) == "n/a"
