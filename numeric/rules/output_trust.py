"""Output-trust CR: Eq 37 along ``d``, capped so the predicted change of the logits stays
within a fixed radius (V7, a derived form).

On the first plateau of the 12x128 MLP ``d^T H d`` is near zero, so Eq 37's root
``alpha ~ sqrt(-d^T grad F / (sigma ||d||^3))`` is about 100x SGD's step; the linearised
change of the logits, ``alpha J d``, then grows one activation direction of the last
hidden layer until the network answers the same for every input (effective rank 1).
This rule bounds that change in the space where the loss is measured:

    alpha = min(alpha_37, c / sqrt(mean_m ||J_m d||^2))                        (V7)

``J_m d = pdot_m`` is the output tangent of sample ``m`` that the tangent sweep for
``d^T H d`` (C4-C5) already forms, so the cap costs one reduction, no extra pass.  ``c``
(:attr:`OutputTrust.radius`, default 1) is in logit units, the root-mean-square change of
a sample's logits per step; it is not a learning rate: it does not scale with the
parameters or with ``d``.
"""

from __future__ import annotations

from numeric.kernels._runtime import namespace
from numeric.rules.base import Outcome, Rule, StepStats
from numeric.rules.settle import scale, step_lengths

__all__ = ["OutputTrust", "output_cap"]

#: the root-mean-square change of a sample's logits a step may predict (logit units)
RADIUS = 1.0


def output_cap(alpha, flag, pdot, radius: float = RADIUS):
    """V7: ``min(alpha, radius / sqrt(mean_m ||pdot_m||^2))`` for regular steps
    (``flag == 0``) with ``pdot != 0``; flagged steps (their fallback or 0) stay.

    ``pdot``: the output tangent ``J d``, shape (batch, classes)."""
    xp = namespace(alpha, pdot)
    ms = xp.mean(xp.sum(pdot * pdot, axis=-1))
    positive = ms > 0.0
    cap = radius / xp.sqrt(xp.where(positive, ms, 1.0))
    return xp.where(positive & (flag == 0), xp.minimum(alpha, cap), alpha)


class OutputTrust(Rule):
    """Eq 37's length, capped by V7 at ``radius / RMS_m ||J_m d||``; the step is
    ``alpha d``.  ``StepStats.alpha`` is Eq 37's length, ``lr_eff`` the applied one."""

    name = "output-trust"
    radius: float = RADIUS

    def apply(self, curv, d, fallback, state, metric=None):
        gtg, ghg, sq, pdot, _ = curv.outputs(d)
        alpha, flag = step_lengths(gtg, ghg, self.sigma, sq**1.5, fallback, self.nondescent)
        applied = output_cap(alpha, flag, pdot, self.radius)
        lengths = [applied] * len(d)
        stats = StepStats(alpha, applied, gtg, ghg, namespace(sq).sqrt(sq), flag)
        return Outcome(scale(lengths, d), lengths, stats, state)
