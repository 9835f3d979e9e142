"""Eq 37 settled into step lengths and flags, element-wise, in the arrays' namespace.

Every CR rule (:mod:`numeric.rules`) turns its curvature quantities into lengths through
:func:`step_lengths` (one length per entry of ``d^T grad F``) and :func:`settle`; the flags
of a multi-length step are combined by :func:`combine_flags`.  Backend-generic: NumPy
arrays, JAX arrays, under ``jax.jit``.

Flags (:data:`FLAGS`, indices in the arrays): ``""`` a regular step; ``"nondescent"``
``d^T grad F >= 0`` (length ``fallback`` or 0); ``"zero"`` ``||d|| = 0`` (length 0);
``"nonfinite"`` an input or Eq 37's root is not finite (length ``fallback``);
``"rejected"`` adaptive CR's trial step failed (length 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from numeric import curvature as cv
from numeric.kernels._runtime import namespace
from numeric.kernels.cubic_regularization import cr_step_length
from numeric.stepping import FLAGS

__all__ = [
    "NONDESCENT",
    "combine_flags",
    "least_squares_scale",
    "scale",
    "settle",
    "step_lengths",
]

#: Policies for a direction that is not a descent direction: the fallback length, or 0.
NONDESCENT = ("base", "skip")


def step_lengths(gtg, ghg, sigma, norm3, fallback, nondescent: str = "base"):
    """Eq 37 (C8) with the flags of :mod:`numeric.cr`, element-wise; ``sigma`` may be an
    array (adaptive CR).

    Parameters
    ----------
    gtg, ghg, norm3 : arrays of one shape (or scalars)
        ``d^T grad F`` (Eq 38), ``d^T H d`` (Eq 39), ``||d||^3`` (Eq 40, or its metric form).
    sigma : scalar or array
    fallback : the length of flagged steps.
    nondescent : {"base", "skip"}

    Returns
    -------
    alpha, flags : arrays shaped like ``gtg``
        Finite lengths ``>= 0``; indices into :data:`FLAGS`.
    """
    xp = namespace(gtg, ghg, norm3, sigma)
    if xp is np:
        gtg = np.asarray(gtg, dtype=np.float64)
        ghg = np.asarray(ghg, dtype=np.float64)
        norm3 = np.asarray(norm3, dtype=np.float64)
    c = sigma * norm3
    finite = xp.isfinite(gtg) & xp.isfinite(ghg) & xp.isfinite(norm3)
    zero = finite & ((norm3 <= 0.0) | (c == 0.0))
    nondesc = finite & ~zero & (gtg >= 0.0)
    a = cr_step_length(ghg, gtg, sigma, norm3)
    return settle(xp, a, finite, zero, nondesc, fallback, nondescent)


def settle(xp, a, finite, zero, nondesc, fallback, nondescent: str):
    """``(alpha, flags)`` from Eq 37's roots ``a`` and the masks of the inputs: a regular
    entry keeps a finite positive root, a non-finite one (input or root) takes
    ``fallback``, a non-descent one ``fallback`` or 0 (``nondescent``), a zero direction
    0.  ``zero`` and ``nondesc`` hold only where ``finite`` does."""
    regular = finite & ~zero & ~nondesc
    bad = regular & ~(xp.isfinite(a) & (a > 0.0))
    ok = regular & ~bad
    alpha = xp.where(ok, a, 0.0)
    alpha = xp.where(~finite | bad, fallback, alpha)
    alpha = xp.where(nondesc, fallback if nondescent == "base" else 0.0, alpha)
    flags = xp.where(nondesc, FLAGS.index("nondescent"), 0)
    flags = xp.where(zero, FLAGS.index("zero"), flags)
    flags = xp.where(~finite | bad, FLAGS.index("nonfinite"), flags)
    return alpha, flags


def combine_flags(flags: Sequence):
    """One flag index for a step of many lengths: ``"nonfinite"`` if any length is, else
    ``"nondescent"`` if any falls back, else ``"zero"`` if all are zero, else ``""``."""
    xp = namespace(*flags)
    flat = xp.concatenate([xp.reshape(xp.asarray(f), (-1,)) for f in flags])
    out = xp.where(xp.all(flat == FLAGS.index("zero")), FLAGS.index("zero"), 0)
    out = xp.where(xp.any(flat == FLAGS.index("nondescent")), FLAGS.index("nondescent"), out)
    return xp.where(xp.any(flat == FLAGS.index("nonfinite")), FLAGS.index("nonfinite"), out)


def least_squares_scale(update: Sequence, direction: Sequence):
    """The scalar ``s`` with ``s d`` closest to the update: ``<update, d> / ||d||^2``."""
    sq = cv.sq_norm(direction)
    xp = namespace(sq)
    proj = cv.dot(update, direction)
    if xp is np and not isinstance(sq, np.ndarray):
        return proj / sq if sq > 0 else 0.0
    return xp.where(sq > 0, proj / xp.where(sq > 0, sq, 1.0), 0.0)


def scale(alphas: Sequence, direction: Sequence) -> list:
    """``alpha_i * d_i`` per array, the length cast to the array's dtype first (so a
    float64 length never promotes a float32 direction)."""
    out = []
    for a, d in zip(alphas, direction, strict=True):
        xp = namespace(d)
        out.append(xp.asarray(a, dtype=d.dtype) * d)
    return out
