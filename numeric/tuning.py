"""Learning-rate tuning on a validation split: the split and the widening grid search.

:func:`validation_split` carves a validation part out of the *training* images (never
the test split): a fixed permutation of the training rows, the first ``fraction`` of it
for validation, the rest for fitting.  Every method then trains on the same fit part,
tuning runs are scored on the validation part, and reported runs on the test split.

:func:`next_rates` and :func:`choose` are the widening grid search, one round at a
time (so that the runs of a round can go to a process pool): start from a geometric
grid; the chosen value is the best score (ties: the middle of the tied values, so a flat
response picks an interior value); while it lies at an end of the values tried, add the
next value beyond that end (the grid's ratio), at most ``max_extend`` times per side.
:func:`widen` runs the rounds with a score function (what the tests drive).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np

__all__ = [
    "MAX_EXTEND",
    "Split",
    "Tuned",
    "choose",
    "geometric_grid",
    "next_rates",
    "settle",
    "validation_split",
    "widen",
]

#: Widenings allowed per side of a grid.
MAX_EXTEND = 4


class Split(NamedTuple):
    """Row indices into the training split (each sorted, disjoint, together all rows)."""

    fit: np.ndarray
    validation: np.ndarray


def validation_split(n: int, fraction: float = 0.125, seed: int = 0) -> Split:
    """The training rows ``0 .. n - 1`` cut into a fit part and a validation part.

    Parameters
    ----------
    n : int
        Rows of the training split.
    fraction : float
        Share of the rows held out for validation (at least one row each side).
    seed : int
        Seed of the permutation; fixed, so that every method sees the same parts.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    if n < 2:
        raise ValueError(f"need at least 2 training rows to split, got {n}")
    k = min(max(1, round(fraction * n)), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return Split(np.sort(perm[k:]), np.sort(perm[:k]))


def geometric_grid(centre: float, half_decades: int = 1) -> tuple[float, ...]:
    """``centre * 10 ** (k / 2)`` for ``k = -half_decades .. half_decades``."""
    return tuple(float(centre * 10 ** (k / 2)) for k in range(-half_decades, half_decades + 1))


def _ratio(values: Sequence[float]) -> float:
    v = sorted(values)
    return v[1] / v[0] if len(v) > 1 else 10**0.5


def _key(x: float) -> float:
    return float(f"{x:.6g}")


def choose(scores: Mapping[float, float]) -> float:
    """The rate with the best score (NaN: worst); among tied best, the middle one
    (the lower middle for an even count)."""
    if not scores:
        raise ValueError("no scores to choose from")
    rates = sorted(scores)
    vals = [-math.inf if not math.isfinite(scores[r]) else scores[r] for r in rates]
    best = max(vals)
    tied = [r for r, v in zip(rates, vals, strict=True) if v == best]
    return tied[(len(tied) - 1) // 2]


def next_rates(
    scores: Mapping[float, float], grid: Sequence[float], max_extend: int = MAX_EXTEND
) -> list[float]:
    """The rates still to try: the grid's untried ones, else one beyond the end where the
    chosen rate lies, or below the grid when every rate tried failed (NaN: diverged);
    none when the chosen rate is interior or the widening is used up."""
    todo = [g for g in grid if _key(g) not in {_key(s) for s in scores}]
    if todo:
        return todo
    rates = sorted(scores)
    ratio = _ratio(grid)
    best = choose(scores)
    low_ext = sum(r < min(grid) * (1 - 1e-9) for r in rates)
    high_ext = sum(r > max(grid) * (1 + 1e-9) for r in rates)
    failed = all(not math.isfinite(scores[r]) for r in rates)
    if (best == rates[0] or failed) and low_ext < max_extend:  # every rate failed: go lower
        return [_key(rates[0] / ratio)]
    if failed:
        return []
    if best == rates[-1] and high_ext < max_extend:
        return [_key(rates[-1] * ratio)]
    return []


class Tuned(NamedTuple):
    """Outcome of a tuning.

    Attributes
    ----------
    chosen : float
    scores : dict
        Every rate tried and its score.
    interior : bool
        The chosen rate has a tried rate on each side and a finite score.
    """

    chosen: float
    scores: dict[float, float]
    interior: bool

    @property
    def grid(self) -> list[float]:
        return sorted(self.scores)

    def text(self) -> str:
        """``"lr 0.001 (chosen from 0.0001, 0.000316, 0.001, 0.00316, 0.01)"``."""
        grid = ", ".join(f"{r:.3g}" for r in self.grid)
        edge = "" if self.interior else "; at the edge of the widened grid"
        return f"lr {self.chosen:.3g} (chosen from {grid}{edge})"


def settle(scores: Mapping[float, float]) -> Tuned:
    """The :class:`Tuned` of a finished search."""
    chosen = choose(scores)
    rates = sorted(scores)
    interior = rates[0] < chosen < rates[-1] and math.isfinite(scores[chosen])
    return Tuned(chosen, dict(scores), interior)


def widen(
    score: Callable[[float], float], grid: Sequence[float], max_extend: int = MAX_EXTEND
) -> Tuned:
    """Score the grid, widen it until the best rate is interior (or ``max_extend``
    widenings per side are used), and return the outcome."""
    scores: dict[float, float] = {}
    while todo := next_rates(scores, grid, max_extend):
        for r in todo:
            scores[r] = float(score(r))
    return settle(scores)
