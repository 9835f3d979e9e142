"""Literal drivers of the feedforward network: the paper's eta chains and Hessian blocks.

These loops evaluate the equations as printed in Appendix B (corrected where
``derive check`` disproves the printed form): the per-sample ``eta^(k,l)`` chains of
Eqs 19-23 composed by Eq 22, the gradient blocks of Eqs 27-28, the Hessian blocks of
Eqs 34-36 (B.1) and 78-80 with Eq 77 (B.3), the directional quantities of Eqs 38-39
term by term and the Hessian diagonal of Table 2.  They cost O(n^2) to O(n^3) width-cubed
products per sample: they exist to verify the forms against autodiff and to explore them
in notebooks, not to train (training uses :mod:`numeric.curvature`).

Every kernel is reached through its generated module (``ff.``, ``cr.``, ``ct.``,
``ga.``), so a test that swaps a kernel in its module sees it used here.  ``fwd`` is the
:class:`~numeric.network.Tape` of a dense network (``fwd.vs``, ``fwd.masks``), ``ws`` and
``u`` its weights (``docs/conventions.md``); per-sample arrays carry a leading batch axis.
"""

from __future__ import annotations

import inspect
from typing import Any, NamedTuple

import numpy as np

from numeric.kernels import contracted as ct
from numeric.kernels import cubic_regularization as cr
from numeric.kernels import feedforward as ff
from numeric.kernels import general_activation as ga
from numeric.kernels._runtime import eye_like, namespace
from numeric.losses import hessian_factor
from numeric.network import Tape

__all__ = [
    "Chains",
    "chains",
    "d2v_literal",
    "deta_literal",
    "directional_literal",
    "eta_chains",
    "gradient_literal",
    "hessian_blocks",
    "hessian_blocks_general",
    "hessian_dense",
    "hessian_diagonal",
]


def _a2(fwd: Tape, k: int):
    """``A''(z^(k))``: zeros where it vanishes identically (the ReLU)."""
    cache = fwd.caches[k - 1]
    if cache.a2 is None:
        if cache.vanishes:
            return namespace(cache.a1).zeros_like(cache.a1)
        raise ValueError("the forward pass did not keep A''; run it with second=True")
    return cache.a2


def eta_chains(ws, masks) -> dict:
    """``eta^(k,l)`` for ``1 <= l <= k <= n`` (Eqs 19-23, composed by Eq 22).

    Returns
    -------
    dict
        ``(k, l) -> ndarray`` of shape (batch, w_k, w_l).
    """
    n = len(ws)
    gammas = [ff.eq19_gamma(a1_k=m) for m in masks]
    betas = [ff.eq20_beta(gamma_k=gammas[k - 1], w_k=ws[k - 1]) for k in range(1, n + 1)]
    etas = {}
    for l in range(1, n + 1):  # noqa: E741
        etas[(l, l)] = gammas[l - 1]  # alpha^(l,l) is the identity (Eq 21)
        alpha = None
        for k in range(l + 1, n + 1):
            if alpha is None:
                alpha = betas[k - 1]
            else:
                alpha = ff.eq22_compose(alpha_k_l=betas[k - 1], alpha_l_m=alpha)
            etas[(k, l)] = ff.eq23_eta(alpha_k_l=alpha, gamma_l=gammas[l - 1])
    return etas


def gradient_literal(fwd: Tape, etas: dict, ws, u, dfdp, reduce: str = "mean"):
    """Gradient blocks by Eqs 27-28 (``reduce`` as in :func:`eq28_grad_w`)."""
    n = len(ws)
    grad_u = ff.eq27_grad_u(dfdp=dfdp, v_n=fwd.vs[n], reduce=reduce)
    grads_w = [
        ff.eq28_grad_w(dfdp=dfdp, u=u, eta_n_k=etas[(n, k)], v_km1=fwd.vs[k - 1], reduce=reduce)
        for k in range(1, n + 1)
    ]
    return grad_u, grads_w


def hessian_blocks(
    fwd: Tape,
    etas: dict,
    ws,
    u,
    dfdp,
    d2fdp2,
    reduce: str = "mean",
    factored: bool = True,
    rfac=None,
):
    """All Hessian blocks by Eqs 34-36.

    Parameters
    ----------
    reduce : {"mean", "sample"} (and "printed" with ``factored=False``)
    factored : bool
        Gauss-Newton parts through the factor ``R`` of ``d2fdp2`` (C16, C18-C20;
        default, accurate in float32 on nearly equal logits), or the paper's forms
        with ``d2fdp2`` (Eqs 34-36).
    rfac : ndarray, optional
        ``R``; default :func:`hessian_factor` of ``fwd.p`` and ``d2fdp2``.

    Returns
    -------
    dict
        ``("u", "u")``, ``("u", k)`` and ``(k, r)`` (layer numbers from 1) to arrays
        with axes (i, j, s, t) of the two weights, after a batch axis when
        ``reduce="sample"``.
    """
    n = len(ws)
    vs = fwd.vs
    if factored:
        return _hessian_blocks_factored(fwd, etas, ws, u, dfdp, d2fdp2, reduce, rfac)
    blocks: dict[tuple[str | int, str | int], Any] = {
        ("u", "u"): ff.eq34_hessian_uu(d2fdp2=d2fdp2, v_n=vs[n], reduce=reduce)
    }
    for k in range(1, n + 1):
        blocks[("u", k)] = ff.eq35_hessian_uw(
            dfdp=dfdp,
            eta_n_k=etas[(n, k)],
            v_km1=vs[k - 1],
            d2fdp2=d2fdp2,
            v_n=vs[n],
            u=u,
            reduce=reduce,
        )
    for k in range(1, n + 1):
        for r in range(1, n + 1):
            common = dict(
                d2fdp2=d2fdp2,
                u=u,
                eta_n_k=etas[(n, k)],
                v_km1=vs[k - 1],
                eta_n_r=etas[(n, r)],
                v_rm1=vs[r - 1],
                reduce=reduce,
            )
            if r > k:
                blocks[(k, r)] = ff.eq36_hessian_ww_r_gt_k(
                    dfdp=dfdp, eta_rm1_k=etas[(r - 1, k)], **common
                )
            elif r == k:
                blocks[(k, r)] = ff.eq36_hessian_ww_r_eq_k(**common)
            else:
                blocks[(k, r)] = ff.eq36_hessian_ww_r_lt_k(
                    dfdp=dfdp, eta_km1_r=etas[(k - 1, r)], **common
                )
    return blocks


def _hessian_blocks_factored(fwd: Tape, etas: dict, ws, u, dfdp, d2fdp2, reduce, rfac):
    """:func:`hessian_blocks` with the factored Gauss-Newton parts (C16, C18-C20)."""
    n = len(ws)
    vs = fwd.vs
    if rfac is None:
        rfac = hessian_factor(fwd.p, d2fdp2)
    jacs = {
        k: ct.c16_factored_jacobian(rfac=rfac, u=u, eta_n_k=etas[(n, k)], v_km1=vs[k - 1])
        for k in range(1, n + 1)
    }
    blocks: dict[tuple[str | int, str | int], Any] = {
        ("u", "u"): ct.c18_hessian_uu(rfac=rfac, v_n=vs[n], reduce=reduce)
    }
    for k in range(1, n + 1):
        blocks[("u", k)] = ct.c19_hessian_uw(
            dfdp=dfdp,
            eta_n_k=etas[(n, k)],
            v_km1=vs[k - 1],
            v_n=vs[n],
            rfac=rfac,
            rjac_k=jacs[k],
            reduce=reduce,
        )
    for k in range(1, n + 1):
        for r in range(1, n + 1):
            if r > k:
                blocks[(k, r)] = ct.c20_hessian_ww_r_gt_k(
                    rjac_k=jacs[k],
                    rjac_r=jacs[r],
                    dfdp=dfdp,
                    u=u,
                    eta_n_r=etas[(n, r)],
                    eta_rm1_k=etas[(r - 1, k)],
                    v_km1=vs[k - 1],
                    reduce=reduce,
                )
            elif r == k:
                blocks[(k, r)] = ct.c20_hessian_ww_r_eq_k(
                    rjac_k=jacs[k], rjac_r=jacs[r], reduce=reduce
                )
            else:
                blocks[(k, r)] = ct.c20_hessian_ww_r_lt_k(
                    rjac_k=jacs[k],
                    rjac_r=jacs[r],
                    dfdp=dfdp,
                    u=u,
                    eta_n_k=etas[(n, k)],
                    eta_km1_r=etas[(k - 1, r)],
                    v_rm1=vs[r - 1],
                    reduce=reduce,
                )
    return blocks


def hessian_dense(blocks: dict, ws, u) -> np.ndarray:
    """Assemble the Hessian blocks of Eqs 34-36 into a matrix in the flattening order of
    ``docs/conventions.md`` (``ws[0], ..., ws[n-1], u``, each C order).

    Returns
    -------
    ndarray, shape (P, P) or (batch, P, P)
    """
    n = len(ws)
    keys = list(range(1, n + 1)) + ["u"]
    sizes: dict[str | int, int] = {k: ws[k - 1].size for k in range(1, n + 1)}
    sizes["u"] = u.size
    lead = blocks[("u", "u")].shape[:-4]
    rows = []
    for a in keys:
        row = []
        for b in keys:
            if (a, b) in blocks:
                blk = blocks[(a, b)]
            elif a == "u":
                blk = (
                    np.moveaxis(blocks[(b, "u")], (-4, -3), (-2, -1))
                    if (b, "u") in blocks
                    else None
                )
            else:
                blk = None
            if blk is None:  # (k, "u"): transpose of ("u", k)
                src = blocks[("u", a)] if b == "u" else blocks[(b, a)]
                blk = np.moveaxis(src, (-2, -1), (-4, -3))
            row.append(blk.reshape(*lead, sizes[a], sizes[b]))
        rows.append(np.concatenate(row, axis=-1))
    return np.concatenate(rows, axis=-2)


def directional_literal(
    fwd: Tape,
    etas: dict,
    ws,
    u,
    dfdp,
    d2fdp2,
    omega,
    phis,
    reduce: str = "mean",
    printed: bool = False,
):
    """``g^T grad F`` (Eq 38) and ``g^T H g`` (Eq 39) term by term.

    Parameters
    ----------
    reduce : {"mean", "sample", "printed"}
        ``"printed"`` reads ``dF/dp * v`` as a product of batch means (erratum).
    printed : bool
        Eq 39 as printed: the Gauss-Newton (w, w) terms only for ``r = k``
        (erratum: the cross terms are dropped).  Default: corrected.
    """
    n = len(ws)
    vs = fwd.vs
    gtg = cr.eq38_u_term(dfdp=dfdp, v_n=vs[n], omega=omega, reduce=reduce)
    for k in range(1, n + 1):
        gtg = gtg + cr.eq38_w_term(
            dfdp=dfdp, u=u, eta_n_k=etas[(n, k)], v_km1=vs[k - 1], phi_k=phis[k - 1], reduce=reduce
        )
    ghg = cr.eq39_uu_term(omega=omega, d2fdp2=d2fdp2, v_n=vs[n], reduce=reduce)
    for k in range(1, n + 1):
        ghg = ghg + cr.eq39_uw_term(
            omega=omega,
            dfdp=dfdp,
            eta_n_k=etas[(n, k)],
            v_km1=vs[k - 1],
            phi_k=phis[k - 1],
            d2fdp2=d2fdp2,
            v_n=vs[n],
            u=u,
            reduce=reduce,
        )
    for k in range(1, n + 1):
        for r in range(1, n + 1):
            if printed and r != k:
                continue
            ghg = ghg + cr.eq39_ww_gauss_newton_term(
                phi_k=phis[k - 1],
                d2fdp2=d2fdp2,
                u=u,
                eta_n_k=etas[(n, k)],
                v_km1=vs[k - 1],
                eta_n_r=etas[(n, r)],
                v_rm1=vs[r - 1],
                phi_r=phis[r - 1],
                reduce=reduce,
            )
    for k in range(2, n + 1):
        for r in range(1, k):
            ghg = ghg + cr.eq39_ww_curvature_term(
                phi_k=phis[k - 1],
                dfdp=dfdp,
                u=u,
                eta_n_k=etas[(n, k)],
                eta_km1_r=etas[(k - 1, r)],
                v_rm1=vs[r - 1],
                phi_r=phis[r - 1],
                reduce=reduce,
            )
    return gtg, ghg


def hessian_diagonal(
    fwd: Tape, etas: dict, ws, u, d2fdp2, reduce: str = "mean", factored: bool = True, rfac=None
):
    """Diagonal of the Hessian (Table 2, corrected): ``(diag_u, diag_ws)``.

    ``factored``, ``rfac`` as in :func:`hessian_blocks` (C16, C21-C22, or Table 2's
    forms with ``d2fdp2``).
    """
    n = len(ws)
    if factored:
        if rfac is None:
            rfac = hessian_factor(fwd.p, d2fdp2)
        diag_u = ct.c21_hessian_diag_u(rfac=rfac, v_n=fwd.vs[n], reduce=reduce)
        diag_ws = [
            ct.c22_hessian_diag_w(
                rjac_k=ct.c16_factored_jacobian(
                    rfac=rfac, u=u, eta_n_k=etas[(n, k)], v_km1=fwd.vs[k - 1]
                ),
                reduce=reduce,
            )
            for k in range(1, n + 1)
        ]
        return diag_u, diag_ws
    diag_u = cr.table2_hessian_diag_u(d2fdp2=d2fdp2, v_n=fwd.vs[n], reduce=reduce)
    diag_ws = [
        cr.table2_hessian_diag_w(
            d2fdp2=d2fdp2, u=u, eta_n_k=etas[(n, k)], v_km1=fwd.vs[k - 1], reduce=reduce
        )
        for k in range(1, n + 1)
    ]
    return diag_u, diag_ws


"""

CR = """


# ------------------------------------------------- B.3: chains, Eqs 75, 77, 78-80


class Chains(NamedTuple):
    """Per-sample ``alpha^(k,l)`` (``0 <= l <= k``), ``eta^(k,l)`` (``1 <= l <= k``) and
    ``lambda^(k)`` (Eqs 19-23, 67), each a dict or list of (batch, ...) arrays."""

    alphas: dict
    etas: dict
    lams: list


def chains(fwd: Tape, ws) -> Chains:
    """The literal intermediates of B.1 and B.3 (Eqs 19-23 composed by Eq 22; Eq 67)."""
    n = len(ws)
    xp = namespace(fwd.p)
    batch = fwd.p.shape[0]
    gammas = [ff.eq19_gamma(a1_k=m) for m in fwd.masks]
    betas = [ff.eq20_beta(gamma_k=gammas[k - 1], w_k=ws[k - 1]) for k in range(1, n + 1)]
    alphas, etas = {}, {}
    for l in range(0, n + 1):  # noqa: E741
        width = fwd.vs[l].shape[1]
        alphas[(l, l)] = xp.broadcast_to(eye_like(fwd.vs[l], 1), (batch, width, width))
        alpha = None
        for k in range(l + 1, n + 1):
            alpha = (
                betas[k - 1]
                if alpha is None
                else ff.eq22_compose(alpha_k_l=betas[k - 1], alpha_l_m=alpha)
            )
            alphas[(k, l)] = alpha
    for l in range(1, n + 1):  # noqa: E741
        etas[(l, l)] = gammas[l - 1]
        for k in range(l + 1, n + 1):
            etas[(k, l)] = ff.eq23_eta(alpha_k_l=alphas[(k, l)], gamma_l=gammas[l - 1])
    lams = [ga.eq67_lambda(a2_l=_a2(fwd, k)) for k in range(1, n + 1)]
    return Chains(alphas, etas, lams)


def _d2v_terms(fwd: Tape, ch: Chains, ws, n: int, k: int, q: int, printed: bool, kernels: dict):
    """The terms of Eq 77's row for (k, q) as keyword sets for ``kernels``."""
    vs, A, E, L = fwd.vs, ch.alphas, ch.etas, ch.lams
    terms = []
    kernels = {**dict.fromkeys(_PARTS), **kernels}
    far = "far_term_printed" if (printed and q < k) else "far_term"
    for r in range(max(k, q) + 1, n + 1):
        terms.append(
            (
                kernels[far],
                dict(
                    alpha_n_r=A[(n, r)],
                    lam_r=L[r - 1],
                    w_r=ws[r - 1],
                    eta_rm1_q=E.get((r - 1, q)),
                    v_qm1=vs[q - 1],
                    eta_rm1_k=E[(r - 1, k)],
                    v_km1=vs[k - 1],
                ),
            )
        )
    if q > k:
        terms.append(
            (
                kernels["lambda_term_q_gt_k"],
                dict(
                    alpha_n_q=A[(n, q)],
                    lam_q=L[q - 1],
                    w_q=ws[q - 1],
                    eta_qm1_k=E[(q - 1, k)],
                    v_qm1=vs[q - 1],
                    v_km1=vs[k - 1],
                ),
            )
        )
        terms.append(
            (
                kernels["eta_term_q_gt_k"],
                dict(
                    eta_n_q=E[(n, q)],
                    eta_qm1_k=E[(q - 1, k)],
                    v_km1=vs[k - 1],
                ),
            )
        )
    elif q == k:
        terms.append(
            (
                kernels["lambda_term_q_eq_k"],
                dict(
                    alpha_n_k=A[(n, k)],
                    lam_k=L[k - 1],
                    v_km1=vs[k - 1],
                ),
            )
        )
    else:
        terms.append(
            (
                kernels["lambda_term_q_lt_k"],
                dict(
                    alpha_n_k=A[(n, k)],
                    lam_k=L[k - 1],
                    w_k=ws[k - 1],
                    eta_km1_q=E[(k - 1, q)],
                    v_qm1=vs[q - 1],
                    v_km1=vs[k - 1],
                ),
            )
        )
        terms.append(
            (
                kernels["eta_term_q_lt_k"],
                dict(
                    eta_n_k=E[(n, k)],
                    eta_km1_q=E[(k - 1, q)],
                    v_qm1=vs[q - 1],
                ),
            )
        )
    return [(getattr(ga, fn), kw) for fn, kw in terms if fn is not None]


def _call(fn, kwargs, **extra):
    names = inspect.signature(fn).parameters
    return fn(**{key: val for key, val in {**kwargs, **extra}.items() if key in names})


_PARTS = (
    "far_term",
    "far_term_printed",
    "lambda_term_q_gt_k",
    "eta_term_q_gt_k",
    "lambda_term_q_eq_k",
    "lambda_term_q_lt_k",
    "eta_term_q_lt_k",
)
_DETA = {
    "far_term": "eq75_far_term",
    "far_term_printed": "eq75_far_term_printed",
    "lambda_term_q_gt_k": "eq75_lambda_term_q_gt_k",
    "eta_term_q_gt_k": "eq75_eta_term_q_gt_k",
    "lambda_term_q_eq_k": "eq75_lambda_term_q_eq_k",
    "lambda_term_q_lt_k": "eq75_lambda_term_q_lt_k",
}
_D2V = {
    "far_term": "eq77_far_term",
    "far_term_printed": "eq77_far_term_printed",
    "lambda_term_q_gt_k": "eq77_lambda_term_q_gt_k",
    "eta_term_q_gt_k": "eq77_eta_term_q_gt_k",
    "lambda_term_q_eq_k": "eq77_lambda_term_q_eq_k",
    "lambda_term_q_lt_k": "eq77_lambda_term_q_lt_k",
    "eta_term_q_lt_k": "eq77_eta_term_q_lt_k",
}
_CURV = {
    "far_term": "eq80_far_term",
    "far_term_printed": "eq80_far_term_printed",
    "lambda_term_q_gt_k": "eq80_lambda_term_q_gt_k",
    "eta_term_q_gt_k": "eq80_eta_term_q_gt_k",
    "lambda_term_q_eq_k": "eq80_lambda_term_q_eq_k",
    "lambda_term_q_lt_k": "eq80_lambda_term_q_lt_k",
    "eta_term_q_lt_k": "eq80_eta_term_q_lt_k",
}


def deta_literal(fwd: Tape, ch: Chains, ws, k: int, q: int, printed: bool = False):
    """``d eta^(n,k) / dw^(q)`` per sample by Eq 75 (corrected, or as printed).

    Returns an array (batch, w_n, w_k, w_q, w_(q-1)).
    """
    n = len(ws)
    total = 0.0
    for fn, kw in _d2v_terms(fwd, ch, ws, n, k, q, printed, _DETA):
        total = total + _call(fn, kw)
    return total


def d2v_literal(fwd: Tape, ch: Chains, ws, k: int, q: int, printed: bool = False):
    """``d2 v^(n) / dw^(k) dw^(q)`` per sample by Eq 77 (corrected, or as printed).

    Returns an array (batch, w_n, w_k, w_(k-1), w_q, w_(q-1)).
    """
    n = len(ws)
    total = 0.0
    for fn, kw in _d2v_terms(fwd, ch, ws, n, k, q, printed, _D2V):
        total = total + _call(fn, kw)
    return total


def hessian_blocks_general(
    fwd: Tape, ch: Chains, ws, u, dfdp, d2fdp2, reduce: str = "mean", printed: bool = False
):
    """All Hessian blocks by Eqs 78-80 (Eq 80's curvature from Eq 77's terms).

    ``printed``: Eq 77's ``q < k`` row as printed (evidence; it only fits when the
    widths agree).  Keys as in :func:`hessian_blocks`.
    """
    n = len(ws)
    vs = fwd.vs
    blocks: dict[tuple[str | int, str | int], Any] = {
        ("u", "u"): ga.eq78_hessian_uu(d2fdp2=d2fdp2, v_n=vs[n], reduce=reduce)
    }
    for k in range(1, n + 1):
        blocks[("u", k)] = ga.eq79_hessian_uw(
            dfdp=dfdp,
            eta_n_k=ch.etas[(n, k)],
            v_km1=vs[k - 1],
            d2fdp2=d2fdp2,
            v_n=vs[n],
            u=u,
            reduce=reduce,
        )
    for k in range(1, n + 1):
        for q in range(1, n + 1):
            blk = ga.eq80_gauss_newton(
                d2fdp2=d2fdp2,
                u=u,
                eta_n_k=ch.etas[(n, k)],
                v_km1=vs[k - 1],
                eta_n_q=ch.etas[(n, q)],
                v_qm1=vs[q - 1],
                reduce=reduce,
            )
            for fn, kw in _d2v_terms(fwd, ch, ws, n, k, q, printed, _CURV):
                blk = blk + _call(fn, kw, dfdp=dfdp, u=u, reduce=reduce)
            blocks[(k, q)] = blk
    return blocks
