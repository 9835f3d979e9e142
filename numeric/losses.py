"""The softmax output with categorical cross-entropy (Eqs 14-15) and its p-derivatives.

The paper leaves ``df/dp`` and ``d2f/dp2`` unevaluated (Section 2); this module
evaluates them for any label rows ``y`` (one-hot, or non-negative rows with sum
``s``), in the namespace of the logits (NumPy or JAX)::

    f       = -sum_l y_l ln yhat_l                      (Eq 15, yhat = softmax(p), Eq 14)
    df/dp   = s yhat - y
    d2f/dp2 = s (diag(yhat) - yhat yhat^T)  = R^T R    (C15)

Shapes: ``p``, ``y`` (batch, classes); ``f`` (batch,); ``dfdp`` (batch, classes);
``d2fdp2`` and ``R`` (batch, classes, classes).
"""

from __future__ import annotations

from numeric.kernels._runtime import eye_like, namespace

__all__ = ["hessian_factor", "loss_change", "softmax_cross_entropy"]


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
    shifted = p - xp.max(p, axis=1, keepdims=True)
    logyhat = shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))
    yhat = xp.exp(logyhat)
    f = -xp.sum(y * logyhat, axis=1)
    s = xp.sum(y, axis=1, keepdims=True)
    dfdp = s * yhat - y
    if not second:
        return f, dfdp, None
    eye_c = eye_like(p, 1)
    d2fdp2 = s[:, :, None] * (yhat[:, :, None] * eye_c[None] - yhat[:, :, None] * yhat[:, None, :])
    return f, dfdp, d2fdp2


def hessian_factor(p, d2fdp2):
    """Factor ``R`` of the softmax Hessian, ``d2f/dp2 = R^T R`` (C15).

    ``R[e, l] = sqrt(s yhat_e) (delta_el - yhat_l)`` per sample, from the logits;
    the label sum ``s`` is read off a diagonal entry of ``d2fdp2``
    (``s yhat_l (1 - yhat_l)``, at the largest ``yhat_l <= 1/2`` so that ``1 - yhat_l``
    is exact).  Applying ``R`` to a Jacobian before squaring (C16-C23) turns the
    Gauss-Newton terms' difference of large similar products into centred
    differences ``A_e - yhat . A``: accurate in float32 when the logits of a sample
    are nearly equal.

    Returns
    -------
    array, shape (batch, classes, classes)
    """
    xp = namespace(p)
    shifted = p - xp.max(p, axis=1, keepdims=True)
    yhat = xp.exp(shifted)
    yhat = yhat / xp.sum(yhat, axis=1, keepdims=True)
    pick = xp.argmax(xp.where(yhat <= 0.5, yhat, -1.0), axis=1)
    picked = xp.take_along_axis(yhat, pick[:, None], axis=1)[:, 0]
    diag = xp.take_along_axis(
        xp.reshape(d2fdp2, (d2fdp2.shape[0], -1)), (pick * (p.shape[1] + 1))[:, None], axis=1
    )[:, 0]
    spread = picked * (1 - picked)
    s = xp.where(spread > 0, diag / xp.where(spread > 0, spread, 1), 0)
    root = xp.sqrt(xp.maximum(s, 0)[:, None] * yhat)
    return root[:, :, None] * (eye_like(p, 1)[None] - yhat[:, None, :])


def loss_change(p, p_new, y):
    """``f(p_new) - f(p)`` per sample from the change of the logits (V4).

    ``s log(sum_i yhat_i exp(dp_i)) - y . dp`` with ``yhat = softmax(p)``,
    ``dp = p_new - p`` and ``s = sum(y)``, evaluated as ``s log1p(sum_i yhat_i
    expm1(dp_i))``: it keeps the relative accuracy of ``dp``, where the difference of
    two losses near ``ln(classes)`` loses the digits a small step changes (the actual
    decrease of adaptive CR on a plateau).  Exponents are shifted by ``max(dp)``
    when a change is large, so nothing overflows.

    Parameters
    ----------
    p, p_new : array, shape (batch, classes)
    y : array, shape (batch, classes)

    Returns
    -------
    array, shape (batch,)
    """
    xp = namespace(p)
    shifted = p - xp.max(p, axis=1, keepdims=True)
    yhat = xp.exp(shifted)
    yhat = yhat / xp.sum(yhat, axis=1, keepdims=True)
    dp = p_new - p
    top = xp.max(dp, axis=1, keepdims=True)
    small = top <= 1.0
    shift = xp.where(small, 0.0, top)
    # log(sum yhat exp(dp)) = shift + log1p(sum yhat expm1(dp - shift)), as sum yhat = 1
    lse = shift[:, 0] + xp.log1p(xp.sum(yhat * xp.expm1(dp - shift), axis=1))
    return xp.sum(y, axis=1) * lse - xp.sum(y * dp, axis=1)
