"""The paper's rule, Eq 37 along the base direction (Section 3.1), and scale-invariant CR,
Eq 37 with the cubic term in the base optimizer's own metric (V1, V2)."""

from __future__ import annotations

from numeric.kernels._runtime import namespace
from numeric.rules.base import Outcome, Rule, StepStats
from numeric.rules.metric import metric_sq_norm
from numeric.rules.settle import scale, step_lengths

__all__ = ["Paper", "ScaleInvariant"]


class Paper(Rule):
    """One length ``alpha`` by Eq 37 (C8) from the batch-mean ``d^T grad F``, ``d^T H d``
    and ``||d||^3``; the step is ``alpha d``."""

    name = "paper"

    def _norm_sq(self, d: list, sq, metric):
        return sq

    def apply(self, curv, d, fallback, state, metric=None):
        gtg, ghg, sq = curv.along(d)
        norm_sq = self._norm_sq(d, sq, metric)
        alpha, flag = step_lengths(gtg, ghg, self.sigma, norm_sq**1.5, fallback, self.nondescent)
        lengths = [alpha] * len(d)
        stats = StepStats(alpha, alpha, gtg, ghg, namespace(sq).sqrt(sq), flag)
        return Outcome(scale(lengths, d), lengths, stats, state)


class ScaleInvariant(Paper):
    """Eq 37 with ``||d||_M^2 = sum_i M_i d_i^2`` in the cubic term (V1, V2): ``M`` is the
    inverse of the base optimizer's diagonal preconditioner
    (:meth:`numeric.optimizers.Optimizer.metric`; the identity for SGD, where this is the
    paper's rule), so ``alpha d`` does not change when ``d`` is rescaled coordinate-wise
    as a metric transforms."""

    name = "scale-invariant"
    reads_metric = True

    def _norm_sq(self, d, sq, metric):
        return sq if metric is None else metric_sq_norm(d, metric)
