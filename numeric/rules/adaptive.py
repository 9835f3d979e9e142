"""Adaptive CR: Eq 37 with ``sigma`` adapted by the ARC rule (V3-V5; Cartis, Gould and
Toint; Kohler and Lucchi's sub-sampled CR).

One forward pass at the trial point ``theta + alpha d`` on the same batch gives the actual
decrease (V4, from the logits), the model predicts V3; ``rho = actual / predicted``.  The
step is taken when ``rho >= eta1`` (else flagged ``"rejected"``, weights unchanged), and
``sigma`` shrinks by ``gamma`` when ``rho > eta2`` and grows by ``gamma`` on a rejection
(V5, :class:`ARC`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from numeric.kernels import cr_variants as kv
from numeric.kernels._runtime import namespace
from numeric.rules.base import Outcome, Rule, StepStats, concrete
from numeric.rules.settle import scale, step_lengths
from numeric.stepping import FLAGS

__all__ = ["ARC", "Adaptive", "AdaptiveState", "adaptive_outcome"]


@dataclass(frozen=True)
class ARC:
    """Parameters of the adaptive rule (V5): thresholds ``eta1 <= eta2``, factor ``gamma``
    and the bounds of ``sigma``.

    ``sigma_min``, ``sigma_max`` default to ``sigma0 / 100`` and ``sigma0 * 1e6`` of the
    initial ``sigma0`` (:meth:`for_sigma`).  The floor matters on mini-batches: the ratio
    measures the decrease of the batch that chose the step, so a step that fits its batch
    well is "very successful" and, without a floor, ``sigma`` halves until the step is
    the Newton step along ``d`` of each batch (measured on the 12x128 MLP: ``sigma``
    reached any floor within 300 steps, and from the normal start the loss then rose).
    """

    eta1: float = 0.1
    eta2: float = 0.9
    gamma: float = 2.0
    sigma_min: float | None = None
    sigma_max: float | None = None

    def __post_init__(self) -> None:
        if not (0.0 < self.eta1 <= self.eta2 < 1.0):
            raise ValueError(f"need 0 < eta1 <= eta2 < 1, got {self.eta1}, {self.eta2}")
        if not self.gamma > 1.0:
            raise ValueError(f"gamma must be > 1, got {self.gamma}")
        lo = 0.0 if self.sigma_min is None else concrete(self.sigma_min)
        hi = math.inf if self.sigma_max is None else concrete(self.sigma_max)
        if lo is None or hi is None:  # traced (the initial sigma under jit): unchecked
            return
        if not (lo >= 0.0 and lo < hi) or (self.sigma_min is not None and lo <= 0.0):
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {self.sigma_min}, "
                             f"{self.sigma_max}")  # fmt: skip

    def for_sigma(self, sigma0: float) -> ARC:
        """The rule with its bounds resolved for the initial ``sigma0``."""
        lo = sigma0 / 100.0 if self.sigma_min is None else self.sigma_min
        hi = sigma0 * 1e6 if self.sigma_max is None else self.sigma_max
        lo = lo if concrete(lo) is None else float(lo)
        hi = hi if concrete(hi) is None else float(hi)
        return replace(self, sigma_min=lo, sigma_max=hi)


def adaptive_outcome(alpha, flag, gtg, c, actual, sigma, arc: ARC):
    """Accept or reject a trial step and update ``sigma`` (V3, V5).

    Parameters
    ----------
    alpha, flag : the step length of Eq 37 and its flag index.
    gtg : ``d^T grad F``; ``c``: ``sigma ||d||^3``.
    actual : ``F(theta) - F(theta + alpha d)`` on the batch (V4).
    sigma : the current cubic weight.

    Returns
    -------
    applied : the step length taken (``alpha``, or 0 when rejected).
    new_sigma : V5's update (unchanged for flagged steps, which are not tested).
    flag : the flag index, ``"rejected"`` for a rejected regular step.
    rho : ``actual / predicted`` (``-inf`` where the prediction is not positive).
    """
    xp = namespace(alpha, gtg, c, actual, sigma, flag)
    flag = xp.asarray(flag)
    predicted = kv.predicted_decrease(alpha=alpha, gtg=gtg, c=c)
    positive = predicted > 0.0
    rho = xp.where(positive, actual / xp.where(positive, predicted, 1.0), -xp.inf)
    rho = xp.where(xp.isnan(rho), -xp.inf, rho)
    regular = flag == 0
    accept = kv.arc_accept(rho=rho, eta_1=arc.eta1) | ~regular
    updated = kv.arc_sigma_update(
        rho=rho,
        sigma=sigma,
        eta_1=arc.eta1,
        eta_2=arc.eta2,
        gamma=arc.gamma,
        sigma_min=arc.sigma_min,
        sigma_max=arc.sigma_max,
    )
    new_sigma = xp.where(regular, updated, sigma)
    applied = xp.where(accept, alpha, 0.0)
    new_flag = xp.where(accept, flag, FLAGS.index("rejected"))
    return applied, new_sigma, new_flag, rho


class AdaptiveState(NamedTuple):
    """``sigma``: the cubic weight of the next step."""

    sigma: Any


class Adaptive(Rule):
    """Eq 37 with the current ``sigma``, a trial pass, ARC's accept/reject and update.

    ``arc``: :class:`ARC` (its bounds resolved for the initial ``sigma``).
    """

    name = "adaptive"

    def __init__(self, sigma: float, nondescent: str = "base", arc: ARC | None = None) -> None:
        super().__init__(sigma, nondescent)
        self.arc = (arc if arc is not None else ARC()).for_sigma(self.sigma)

    def init(self, params):
        return AdaptiveState(self.sigma)

    def apply(self, curv, d, fallback, state, metric=None):
        sigma = state.sigma
        gtg, ghg, sq = curv.along(d)
        norm3 = sq**1.5
        alpha, flag = step_lengths(gtg, ghg, sigma, norm3, fallback, self.nondescent)
        actual = curv.decrease(scale([alpha] * len(d), d))
        applied, new_sigma, flag, _ = adaptive_outcome(
            alpha, flag, gtg, sigma * norm3, actual, sigma, self.arc
        )
        lengths = [applied] * len(d)
        stats = StepStats(alpha, applied, gtg, ghg, namespace(sq).sqrt(sq), flag)
        rejected = flag == FLAGS.index("rejected")
        return Outcome(scale(lengths, d), lengths, stats, AdaptiveState(new_sigma), rejected)

    def __repr__(self) -> str:
        return f"Adaptive(sigma={self.sigma!r}, nondescent={self.nondescent!r}, arc={self.arc!r})"
