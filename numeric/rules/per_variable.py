"""Per-variable CR: one Eq 37 length per weight from the exact Hessian diagonal (V6,
Table 2 corrected; C21, C42-C44 for a network, one Hessian-vector product per parameter
for a pytree model)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from numeric import curvature as cv
from numeric.kernels._runtime import namespace
from numeric.kernels.cubic_regularization import cr_step_length
from numeric.rules.base import Outcome, Rule, StepStats
from numeric.rules.settle import combine_flags, least_squares_scale, scale, settle

__all__ = ["PerVariable", "per_variable_lengths"]


def per_variable_lengths(direction: Sequence, grads: Sequence, diag: Sequence, sigma,
                         fallback, nondescent: str = "base"):  # fmt: skip
    """One Eq 37 length per weight along ``d_i e_i`` (V6, Table 2 corrected).

    ``gtg_i = d_i dF/dtheta_i``, ``ghg_i = d_i^2 H_ii``, ``||g||^3 = |d_i|^3``.  By V6
    the step ``alpha_i d_i`` depends on ``d_i`` only through its sign: it is Table 2's
    unit step ``alpha(H_ii, sign(d_i) dF/dtheta_i, sigma)`` (C8 with ``||g|| = 1``)
    along ``sign(d_i)``, so ``alpha_i = alpha_unit / |d_i|``; computed that way, in the
    arrays' dtype.  Weights with ``d_i = 0`` get length 0 and flag ``"zero"``;
    ``sign(d_i) dF/dtheta_i >= 0`` is ``"nondescent"`` (length ``fallback`` or 0).

    Returns
    -------
    alphas : list of arrays shaped like ``direction``.
    flags : list of arrays of flag indices.
    dhd : ``sum_i d_i^2 H_ii``, the diagonal part of ``d^T H d``.
    """
    alphas, flags, dhd = [], [], 0.0
    for d, g, h in zip(direction, grads, diag, strict=True):
        xp = namespace(d)
        mag = xp.abs(d)
        slope = xp.where(d < 0, -g, g)  # sign(d_i) dF/dtheta_i
        finite = xp.isfinite(slope) & xp.isfinite(h) & xp.isfinite(mag)
        zero = finite & (mag == 0)
        nondesc = finite & ~zero & (slope >= 0)
        regular = finite & ~zero & ~nondesc
        unit = cr_step_length(h, xp.where(regular, slope, -1.0), sigma, xp.ones_like(mag))
        with np.errstate(divide="ignore", invalid="ignore"):
            a = unit / xp.where(mag == 0, 1.0, mag)
        alpha, flag = settle(xp, a, finite, zero, nondesc, fallback, nondescent)
        alphas.append(xp.astype(alpha, d.dtype) if xp is not np else alpha.astype(d.dtype))
        flags.append(flag)
        dhd = dhd + xp.sum(d * d * h)
    return alphas, flags, dhd


class PerVariable(Rule):
    """``alpha_i`` per weight by :func:`per_variable_lengths`; exact for ``A'' = 0``."""

    name = "per-variable"

    def check(self, layers):
        cv.check_hessian_diagonal(layers)

    def apply(self, curv, d, fallback, state, metric=None):
        grads = curv.grad()
        lengths, flags, dhd = per_variable_lengths(
            d, grads, curv.diagonal(), self.sigma, fallback, self.nondescent
        )
        update = scale(lengths, d)
        lr_eff = least_squares_scale(update, d)
        xp = namespace(*d)
        stats = StepStats(lr_eff, lr_eff, cv.dot(d, grads), dhd, xp.sqrt(cv.sq_norm(d)),
                          combine_flags(flags))  # fmt: skip
        return Outcome(update, lengths, stats, state)
