"""The softmax output with categorical cross-entropy (Eqs 14-15) and its p-derivatives.

The paper leaves ``df/dp`` and ``d2f/dp2`` unevaluated (Section 2); this module
evaluates them for any label rows ``y`` (one-hot, or non-negative rows with sum
``s``), in the namespace of the logits (NumPy or JAX)::

    f       = -sum_l y_l ln yhat_l                      (Eq 15, yhat = softmax(p), Eq 14)
    df/dp   = s yhat - y
    d2f/dp2 = s (diag(yhat) - yhat yhat^T)  = R^T R    (C15)

Saturation.  When one logit leads the others by many units, ``yhat`` rounds to 1 at the
top class and ``1 - yhat`` computed as a difference loses every digit (in float32 from
a gap of about 17).  Here ``1 - yhat_l`` is the sum of the *other* probabilities
(:func:`softmax_parts`): at the top class it is summed from the small entries, elsewhere
it is ``1 - yhat_l >= 1/2``, exact.  It enters ``ln yhat`` (through ``log1p``), ``df/dp``
at the top class (``(s - y_m) - s (1 - yhat_m)``), the diagonal of ``d2f/dp2``
(``s yhat_l (1 - yhat_l)``) and the factor ``R``.

Shapes: ``p``, ``y`` (batch, classes); ``f`` (batch,); ``dfdp`` (batch, classes);
``d2fdp2`` and ``R`` (batch, classes, classes).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from numeric.kernels._runtime import eye_like, namespace

__all__ = [
    "SoftmaxParts",
    "hessian_factor",
    "loss_change",
    "softmax_cross_entropy",
    "softmax_parts",
]


class SoftmaxParts(NamedTuple):
    """``log yhat``, ``yhat``, ``1 - yhat`` (accurate), and the top class's one-hot mask."""

    logyhat: Any
    yhat: Any
    complement: Any
    top: Any


def softmax_parts(p) -> SoftmaxParts:
    """Softmax of the logits with an accurate complement ``1 - yhat`` (module docstring)."""
    xp = namespace(p)
    classes = p.shape[1]
    top = xp.astype(xp.argmax(p, axis=1)[:, None] == xp.arange(classes)[None, :], p.dtype)
    shifted = p - xp.max(p, axis=1, keepdims=True)
    e = xp.exp(shifted)
    rest = xp.sum(e * (1 - top), axis=1, keepdims=True)  # sum over all but the top class
    log_total = xp.log1p(rest)  # ln(sum e) = ln(1 + rest): the top entry is exp(0) = 1
    logyhat = shifted - log_total
    yhat = xp.exp(logyhat)
    complement = top * (rest / (1 + rest)) + (1 - top) * (1 - yhat)
    return SoftmaxParts(logyhat, yhat, complement, top)


def softmax_cross_entropy(p, y, second: bool = True):
    """Eqs 14-15 and the derivatives the paper leaves unevaluated.

    Parameters
    ----------
    p : array, shape (batch, classes)
        Logits (Eq 13).
    y : array, shape (batch, classes)
        Label rows (one-hot, or any non-negative rows).
    second : bool
        Also return ``d2f/dp2``.

    Returns
    -------
    f : array, shape (batch,)
    dfdp : array, shape (batch, classes)
        ``s * softmax(p) - y`` with ``s = sum(y)`` per row.
    d2fdp2 : array, shape (batch, classes, classes) or None
        ``s * (diag(softmax(p)) - softmax(p) softmax(p)^T)``.
    """
    xp = namespace(p)
    parts = softmax_parts(p)
    yhat, comp, top = parts.yhat, parts.complement, parts.top
    f = -xp.sum(y * parts.logyhat, axis=1)
    s = xp.sum(y, axis=1, keepdims=True)
    # s yhat - y, with the top class as (s - y_m) - s (1 - yhat_m)
    dfdp = (1 - top) * (s * yhat - y) + top * ((s - y) - s * comp)
    if not second:
        return f, dfdp, None
    eye_c = eye_like(p, 1)[None]
    off = -yhat[:, :, None] * yhat[:, None, :]
    d2fdp2 = s[:, :, None] * (eye_c * (yhat * comp)[:, :, None] + (1 - eye_c) * off)
    return f, dfdp, d2fdp2


def hessian_factor(p, d2fdp2):
    """Factor ``R`` of the softmax Hessian, ``d2f/dp2 = R^T R`` (C15).

    ``R[e, l] = sqrt(s yhat_e) (delta_el - yhat_l)`` per sample, from the logits, with
    ``delta_ll - yhat_l`` as the accurate complement; the label sum ``s`` is read off the
    diagonal of ``d2fdp2`` (``s yhat_l (1 - yhat_l)``) at the class where that product is
    largest.  Applying ``R`` to a Jacobian before squaring (C16-C23) turns the
    Gauss-Newton terms' difference of large similar products into centred differences
    ``A_e - yhat . A``: accurate in float32 when the logits of a sample are nearly equal.

    Returns
    -------
    array, shape (batch, classes, classes)
    """
    xp = namespace(p)
    parts = softmax_parts(p)
    yhat, comp = parts.yhat, parts.complement
    spread = yhat * comp
    pick = xp.argmax(spread, axis=1)[:, None]
    picked = xp.take_along_axis(spread, pick, axis=1)[:, 0]
    diag = xp.take_along_axis(
        xp.reshape(d2fdp2, (d2fdp2.shape[0], -1)), pick * (p.shape[1] + 1), axis=1
    )[:, 0]
    s = xp.where(picked > 0, diag / xp.where(picked > 0, picked, 1), 0)
    root = xp.sqrt(xp.maximum(s, 0)[:, None] * yhat)
    eye_c = eye_like(p, 1)[None]
    centred = eye_c * comp[:, None, :] + (1 - eye_c) * (-yhat[:, None, :])
    return root[:, :, None] * centred


def loss_change(p, p_new, y):
    """``f(p_new) - f(p)`` per sample from the change of the logits (V4).

    ``s log(sum_i yhat_i exp(dp_i)) - y . dp`` with ``yhat = softmax(p)``,
    ``dp = p_new - p`` and ``s = sum(y)``.  For small changes (``|dp_i| <= 1``) it is
    evaluated as ``s log1p(sum_i yhat_i expm1(dp_i))``, which keeps the relative accuracy
    of ``dp`` where the difference of two losses near ``ln(classes)`` loses the digits a
    small step changes (the actual decrease of adaptive CR on a plateau); otherwise as
    the log-sum-exp of ``log yhat_i + dp_i`` shifted by its largest term, which neither
    overflows nor underflows to ``log 0`` when a large step moves the logits far.

    Parameters
    ----------
    p, p_new : array, shape (batch, classes)
    y : array, shape (batch, classes)

    Returns
    -------
    array, shape (batch,)
    """
    xp = namespace(p)
    parts = softmax_parts(p)
    dp = p_new - p
    small = xp.max(xp.abs(dp), axis=1) <= 1.0
    # small changes: log1p(sum yhat expm1(dp)) >= log1p(e^-1 - 1) > -inf
    dps = xp.where(small[:, None], dp, 0.0)
    lse_small = xp.log1p(xp.sum(parts.yhat * xp.expm1(dps), axis=1))
    # large changes: log-sum-exp of log yhat + dp, shifted by its largest term
    a = parts.logyhat + dp
    top = xp.max(a, axis=1, keepdims=True)
    lse_large = top[:, 0] + xp.log(xp.sum(xp.exp(a - top), axis=1))
    lse = xp.where(small, lse_small, lse_large)
    return xp.sum(y, axis=1) * lse - xp.sum(y * dp, axis=1)
