"""Scalar closed forms of the CR variants (the registry's V-forms), in SymPy.

Along a direction ``g`` the cubic model of Eq 8 depends on ``h = g^T H g``,
``d = g^T grad F`` and ``c = sigma ||g||^3`` (:mod:`derive.cr_model`).  The variants of
CR change what ``c`` measures or what happens after the step:

* the scale-invariant step (V2) measures the cubic term in a diagonal metric ``M``:
  ``c = sigma ||g||_M^3`` with ``||g||_M^2 = g^T M g`` (V1);
* the adaptive rule (V3-V5) compares the actual decrease of ``F`` with the decrease the
  cubic model predicts at the step of Eq 37, and updates ``sigma`` (the ARC rule of
  Cartis, Gould and Toint, as used by Kohler and Lucchi's sub-sampled CR, whom
  Section 3 cites for "an update scheme based on how well m approximates f");
* the per-variable step (V6) is Table 2's step with the base direction's component
  ``g = d_i e_i``;
* the output-trust step (V7) caps Eq 37's length so that the linearised change of the
  logits, ``alpha J_m g`` per sample ``m``, has root-mean-square at most ``r_p``:
  ``min(alpha_37, r_p / sqrt(J_2))`` with ``J_2 = mean_m ||J_m g||^2`` (C4-C5's ``pdot``).

The equation module :mod:`derive.equations.variants` registers these forms; the
self-checks (:mod:`derive.variant_checks`) and the code generator use the same objects.
"""

from __future__ import annotations

import sympy as sp

from derive import cr_model

__all__ = [
    "ARC_SYMBOLS",
    "MEANINGS",
    "arc_accept",
    "arc_sigma",
    "loss_change",
    "metric_step_length",
    "output_trust_step",
    "per_variable_step",
    "predicted_decrease",
]

h, d, cc, sigma = cr_model.h, cr_model.d, cr_model.cc, cr_model.sigma
alpha = sp.Symbol("alpha", positive=True)
#: ||g||_M, the direction's norm in the metric M
norm_m = sp.Symbol("n_M", positive=True)
rho = sp.Symbol("rho", real=True)
eta1, eta2 = sp.Symbol("eta_1", positive=True), sp.Symbol("eta_2", positive=True)
gamma = sp.Symbol("gamma", positive=True)
sigma_min, sigma_max = sp.Symbol("sigma_min", positive=True), sp.Symbol("sigma_max", positive=True)
ARC_SYMBOLS = {
    "rho": rho,
    "sigma": sigma,
    "eta1": eta1,
    "eta2": eta2,
    "gamma": gamma,
    "sigma_min": sigma_min,
    "sigma_max": sigma_max,
}

#: the radius of V7 (logit units) and ``mean_m ||J_m g||^2``
radius = sp.Symbol("r_p", positive=True)
jj = sp.Symbol("J_2", positive=True)

#: What each symbol stands for, by name (the legend of ``derive show``); ``_i`` stands for
#: any number (``p_0``, ``p_1``, ...).  The CR symbols are :data:`derive.cr_model.MEANINGS`.
MEANINGS = {
    "n_M": "||g||_M, the direction's norm in the metric M",
    "rho": "ARC's ratio of the actual to the predicted decrease",
    "eta_1": "ARC's threshold on rho for accepting a step",
    "eta_2": "ARC's threshold on rho for a very successful step",
    "gamma": "ARC's factor by which sigma grows or shrinks",
    "sigma_min": "the smallest sigma ARC uses",
    "sigma_max": "the largest sigma ARC uses",
    "d_i": "the base direction's component i",
    "g_i": "dF/dtheta_i, the gradient's component i",
    "H_ii": "the Hessian's diagonal entry i",
    "p_i": "logit i",
    "dp_i": "the change of logit i",
    "y_i": "the target's entry i",
    "r_p": "the output-trust radius: the largest RMS change of a sample's logits per step",
    "J_2": "mean over the batch of ||J_m g||^2, the squared output tangent pdot of each sample",
}


def metric_step_length() -> sp.Expr:
    """V2: Eq 37 with the cubic term measured in the metric M, ``c = sigma ||g||_M^3``."""
    c = sigma * norm_m**3
    return (-h + sp.sqrt(h**2 - 2 * d * c)) / c


def output_trust_step() -> sp.Expr:
    """V7: Eq 37's length, at most ``r_p / sqrt(J_2)`` (RMS linearised logit change r_p)."""
    return sp.Min(cr_model.step_length(), radius / sp.sqrt(jj))


def predicted_decrease(a: sp.Expr = alpha) -> sp.Expr:
    """V3: ``m(0) - m(alpha)`` at the root ``alpha`` of Eq 37: ``-alpha d / 2 + c alpha^3 / 12``.

    Derivation: ``m'(alpha) = d + alpha h + c alpha^2 / 2 = 0`` gives
    ``alpha^2 h = -alpha d - c alpha^3 / 2``; substituted into
    ``m(alpha) - m(0) = alpha d + alpha^2 h / 2 + c alpha^3 / 6`` this leaves
    ``alpha d / 2 - c alpha^3 / 12``.  Both terms of the decrease are positive for a
    descent direction (``d < 0``): no cancellation, unlike ``-m(alpha)`` itself.
    """
    return -a * d / 2 + cc * a**3 / 12


def loss_change(classes: int = 3) -> tuple[sp.Expr, dict]:
    """V4: ``f(p + dp) - f(p)`` of Eqs 14-15 for one sample, from the logits' change.

    ``s log(sum_i yhat_i exp(dp_i)) - sum_i y_i dp_i`` with ``yhat = softmax(p)`` and
    ``s = sum_i y_i``: exact, and evaluated as ``s log1p(sum_i yhat_i expm1(dp_i))`` it
    keeps the relative accuracy of ``dp`` (the difference of two losses near 2.3 does
    not).  Returns the form at ``classes`` classes and its symbols
    ``{"p": [...], "dp": [...], "y": [...]}``.
    """
    p = [sp.Symbol(f"p_{i}", real=True) for i in range(classes)]
    dp = [sp.Symbol(f"dp_{i}", real=True) for i in range(classes)]
    y = [sp.Symbol(f"y_{i}", nonnegative=True) for i in range(classes)]
    norm = sum(sp.exp(pi) for pi in p)
    yhat = [sp.exp(pi) / norm for pi in p]
    s = sum(y)
    form = s * sp.log(sum(yh * sp.exp(di) for yh, di in zip(yhat, dp, strict=True)))
    form -= sum(yi * di for yi, di in zip(y, dp, strict=True))
    return form, {"p": p, "dp": dp, "y": y}


def arc_sigma() -> sp.Piecewise:
    """V5: the ARC update of ``sigma`` from ``rho = actual / predicted decrease``.

    Very successful (``rho > eta_2``): ``max(sigma / gamma, sigma_min)``; successful
    (``eta_1 <= rho <= eta_2``): ``sigma``; unsuccessful: ``min(gamma sigma, sigma_max)``.
    """
    return sp.Piecewise(
        (sp.Max(sigma / gamma, sigma_min), rho > eta2),
        (sigma, rho >= eta1),
        (sp.Min(gamma * sigma, sigma_max), True),
    )


def arc_accept() -> sp.Expr:
    """V5: a step is taken when ``rho >= eta_1`` (otherwise the weights stay)."""
    return rho >= eta1


def per_variable_step() -> tuple[sp.Expr, dict]:
    """V6: Table 2's per-variable step along the base direction's component ``d_i e_i``.

    With ``g = d_i e_i``: ``g^T grad F = d_i dF/dtheta_i``, ``g^T H g = d_i^2 H_ii``,
    ``||g||^3 = |d_i|^3``; the step is ``alpha d_i`` with ``alpha`` from Eq 37.  Returns
    the step and its symbols ``{"dd": d_i, "g": dF/dtheta_i, "H": H_ii}``.
    """
    dd = sp.Symbol("d_i", real=True, nonzero=True)
    g = sp.Symbol("g_i", real=True)
    hii = sp.Symbol("H_ii", real=True)
    a = cr_model.step_length().subs({h: dd**2 * hii, d: dd * g, cc: sigma * sp.Abs(dd) ** 3})
    return a * dd, {"dd": dd, "g": g, "H": hii}
