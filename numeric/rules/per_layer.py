"""Per-layer CR: one Eq 37 length per block of the Hessian's block diagonal (C45-C46).

A network's blocks are its layers with parameters
(:func:`numeric.curvature.block_curvature`); a pytree model's are its leaves (one
Hessian-vector product each, :class:`numeric.autodiff.AutodiffCurvature`).
"""

from __future__ import annotations

from numeric.kernels._runtime import namespace
from numeric.rules.base import Outcome, Rule, StepStats
from numeric.rules.settle import combine_flags, least_squares_scale, scale, step_lengths

__all__ = ["PerLayer"]


class PerLayer(Rule):
    """``alpha_k`` by Eq 37 from block ``k``'s ``d_k^T grad_k F``, ``d_k^T H_kk d_k`` and
    ``||d_k||^3``; the step is ``alpha_k d_k`` per block."""

    name = "per-layer"

    def apply(self, curv, d, fallback, state, metric=None):
        (gtg, ghg, sq), owner = curv.blocks(d)
        xp = namespace(gtg)
        a_k, f_k = step_lengths(gtg, ghg, self.sigma, sq**1.5, fallback, self.nondescent)
        lengths = [a_k[b] for b in owner]
        update = scale(lengths, d)
        lr_eff = least_squares_scale(update, d)
        stats = StepStats(lr_eff, lr_eff, xp.sum(gtg), xp.sum(ghg), xp.sqrt(xp.sum(sq)),
                          combine_flags([f_k]))  # fmt: skip
        return Outcome(update, lengths, stats, state)
