"""The per-sample averagings of Section 3.1 for the paper's rule along SGD's direction.

``"mean-alpha"`` (``E[alpha] E[g]``): one ``alpha_b`` per sample from the cubic model of
``f_b`` along that sample's own direction ``d_b = -grad f_b``; the step is
``mean_b(alpha_b) d``.  ``"alpha-g"`` (``E[alpha g]``): the same ``alpha_b``; the step is
``mean_b(alpha_b d_b)``, rank one per sample and layer; its ``lr_eff`` is the
least-squares scale along ``d``.  Defined for SGD only (the adaptive optimizers'
directions depend on accumulators the batch updates) and bias-free dense networks.
"""

from __future__ import annotations

from numeric import curvature as cv
from numeric.kernels._runtime import namespace
from numeric.rules.base import Outcome, Rule, StepStats
from numeric.rules.settle import scale, step_lengths

__all__ = ["PerSample"]


class PerSample(Rule):
    """Eq 37 per sample, averaged by ``averaging`` (``"mean-alpha"`` or ``"alpha-g"``)."""

    name = "paper"

    def __init__(self, sigma: float, nondescent: str = "base", averaging: str = "mean-alpha"):
        super().__init__(sigma, nondescent)
        self.averaging = averaging

    def apply(self, curv, d, fallback, state, metric=None):
        gtg_b, ghg_b, sq_b = curv.per_sample()
        xp = namespace(gtg_b)
        alpha_b, flags = step_lengths(gtg_b, ghg_b, self.sigma, sq_b**1.5, fallback,
                                      self.nondescent)  # fmt: skip
        alpha = xp.mean(alpha_b)
        lengths: list | None
        if self.averaging == "mean-alpha":
            lengths = [alpha] * len(d)
            update, lr_eff = scale(lengths, d), alpha
        else:
            lengths = None
            update = curv.per_sample_update(alpha_b)
            sq = cv.dot(d, d)
            safe = xp.where(sq > 0, sq, 1.0)
            lr_eff = xp.where(sq > 0, cv.dot(update, d) / safe, 0.0)
        worst = xp.max(flags) if flags.size else 0
        stats = StepStats(alpha, lr_eff, xp.mean(gtg_b), xp.mean(ghg_b),
                          xp.mean(xp.sqrt(sq_b)), worst)  # fmt: skip
        return Outcome(update, lengths, stats, state)

    def __repr__(self) -> str:
        return f"PerSample(sigma={self.sigma!r}, averaging={self.averaging!r})"
