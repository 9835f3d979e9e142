"""Literal drivers of the recurrent layer (Appendix B.2.2, Eqs 58-65).

The recursion ``v_(t) = A(w v_(t-1))``, ``v_(0) = x`` (Eqs 58-59) unrolled ``t`` steps
with one weight matrix ``w`` (d, d), the chains of B.1 at the tied weights (Eqs 19-23,
67), and the derivatives of ``v_(t)`` with respect to ``w`` and ``x``: Eqs 61-65 for the
ReLU (printed and corrected) and, through B.3, ``63.g``-``65.g`` for any activation.  For
verification and exploration; per-sample arrays carry a leading batch axis.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from numeric.kernels import activations
from numeric.kernels import feedforward as ff
from numeric.kernels import general_activation as ga
from numeric.kernels import recurrent as rc

__all__ = [
    "RecForward",
    "forward",
    "hessian_ww",
    "hessian_wx",
    "hessian_xx",
    "jacobian_w",
    "jacobian_x",
]


class RecForward(NamedTuple):
    """The unrolled recursion: ``vs[t]`` is ``v_(t)`` (batch, d) with ``vs[0] = x``;
    ``masks[t-1]``/``a2s[t-1]`` are ``A'``/``A''`` at step ``t``; ``etas[(t, k)]`` and
    ``alphas[(t, k)]`` the chains of B.1 at the tied weights; ``lams[t-1]`` Eq 67."""

    vs: list
    masks: list
    a2s: list
    alphas: dict
    etas: dict
    lams: list
    activation: str


def forward(w, x, steps: int, activation: str = "relu") -> RecForward:
    """Eqs 58-59 unrolled ``steps`` times with one weight matrix ``w`` (d, d)."""
    w, x = np.asarray(w), np.asarray(x)
    if w.ndim != 2 or w.shape[0] != w.shape[1] or x.ndim != 2 or x.shape[1] != w.shape[0]:
        raise ValueError(f"w must be (d, d) and x (batch, d); got {w.shape} and {x.shape}")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    act = activations.ACTIVATIONS[activation]
    vs, masks, a2s = [x], [], []
    v = x
    for _ in range(steps):
        v, a1, a2 = act(ff.eq10_preactivation(w_k=w, v_km1=v))
        vs.append(v)
        masks.append(a1)
        a2s.append(a2)
    batch, d = x.shape
    gammas = [ff.eq19_gamma(a1_k=m) for m in masks]
    betas = [ff.eq20_beta(gamma_k=g, w_k=w) for g in gammas]
    alphas, etas = {}, {}
    for l in range(0, steps + 1):  # noqa: E741
        alphas[(l, l)] = np.broadcast_to(np.eye(d, dtype=x.dtype), (batch, d, d))
        alpha = None
        for k in range(l + 1, steps + 1):
            alpha = (
                betas[k - 1]
                if alpha is None
                else ff.eq22_compose(alpha_k_l=betas[k - 1], alpha_l_m=alpha)
            )
            alphas[(k, l)] = alpha
    for l in range(1, steps + 1):  # noqa: E741
        etas[(l, l)] = gammas[l - 1]
        for k in range(l + 1, steps + 1):
            etas[(k, l)] = ff.eq23_eta(alpha_k_l=alphas[(k, l)], gamma_l=gammas[l - 1])
        etas[(l - 1, l)] = np.zeros((batch, d, d), dtype=x.dtype)
    lams = [ga.eq67_lambda(a2_l=a2) for a2 in a2s]
    return RecForward(vs, masks, a2s, alphas, etas, lams, activation)


def jacobian_w(fwd: RecForward, t: int):
    """``dv_(t)/dw`` by Eq 61: (batch, d, d, d) with axes (m, s, r) for ``w_r^s``."""
    total = 0.0
    for k in range(1, t + 1):
        total = total + rc.eq61_term(eta_t_k=fwd.etas[(t, k)], v_km1=fwd.vs[k - 1])
    return total


def jacobian_x(fwd: RecForward, w, t: int):
    """``dv_(t)/dx`` by Eq 62: (batch, d, d)."""
    return rc.eq62_dv_dx(eta_t_1=fwd.etas[(t, 1)], wr=w)


def hessian_ww(fwd: RecForward, w, t: int, printed: bool = False):
    """``d2v_(t)/dw dw``: Eq 63 for the ReLU (corrected, or as printed with its factor 2),
    ``63.g`` otherwise.  (batch, d, d, d, d, d) with axes (m, i, j, q, r)."""
    if fwd.activation not in activations.SECOND_VANISHES:
        if printed:
            raise ValueError("Eq 63 is printed for the ReLU only")
        return _hessian_ww_general(fwd, w, t)
    fn = rc.eq63_pair_term_printed if printed else rc.eq63_pair_term
    total = np.zeros((fwd.vs[0].shape[0],) + (fwd.vs[0].shape[1],) * 5, dtype=fwd.vs[0].dtype)
    for k in range(2, t + 1):
        for p in range(1, k):
            total = total + fn(
                eta_t_k=fwd.etas[(t, k)], eta_km1_p=fwd.etas[(k - 1, p)], v_pm1=fwd.vs[p - 1]
            )
    return total


def hessian_xx(fwd: RecForward, w, t: int):
    """``d2v_(t)/dx dx``: 0 for the ReLU (Eq 64), ``64.g`` otherwise; (batch, d, d, d)."""
    batch, d = fwd.vs[0].shape
    total = np.zeros((batch, d, d, d), dtype=fwd.vs[0].dtype)
    if fwd.activation in activations.SECOND_VANISHES:
        return total
    for r in range(1, t + 1):
        total = total + rc.eq64g_term(
            alpha_t_r=fwd.alphas[(t, r)],
            lam_r=fwd.lams[r - 1],
            wr=w,
            alpha_rm1_0=fwd.alphas[(r - 1, 0)],
        )
    return total


def hessian_wx(fwd: RecForward, w, t: int):
    """``d2v_(t)/dw dx``: Eq 65 (corrected) for the ReLU, ``65.g`` otherwise;
    (batch, d, d, d, d) with axes (m, q, r, i) for ``w_r^q`` and ``x^i``."""
    total = rc.eq65_first_term(eta_t_1=fwd.etas[(t, 1)], alpha_0_0=fwd.alphas[(0, 0)])
    if fwd.activation in activations.SECOND_VANISHES:
        for k in range(2, t + 1):
            total = total + rc.eq65_sum_term(
                eta_t_k=fwd.etas[(t, k)], eta_km1_1=fwd.etas[(k - 1, 1)], wr=w
            )
        return total
    for k in range(1, t + 1):
        total = total + rc.eq65g_w_term(deta_t_1_k=_deta(fwd, w, t, 1, k), wr=w)
    return total


def _deta(fwd: RecForward, w, n: int, k: int, q: int):
    """``d eta^(n,k) / dw^(q)`` by Eq 75 (corrected) at the tied weights."""
    A, E, L, vs = fwd.alphas, fwd.etas, fwd.lams, fwd.vs
    total = 0.0
    for r in range(max(k, q) + 1, n + 1):
        total = total + ga.eq75_far_term(
            alpha_n_r=A[(n, r)],
            lam_r=L[r - 1],
            w_r=w,
            eta_rm1_q=E[(r - 1, q)],
            v_qm1=vs[q - 1],
            eta_rm1_k=E[(r - 1, k)],
        )
    if q > k:
        total = total + ga.eq75_lambda_term_q_gt_k(
            alpha_n_q=A[(n, q)], lam_q=L[q - 1], w_q=w, eta_qm1_k=E[(q - 1, k)], v_qm1=vs[q - 1]
        )
        total = total + ga.eq75_eta_term_q_gt_k(eta_n_q=E[(n, q)], eta_qm1_k=E[(q - 1, k)])
    elif q == k:
        total = total + ga.eq75_lambda_term_q_eq_k(
            alpha_n_k=A[(n, k)], lam_k=L[k - 1], v_km1=vs[k - 1]
        )
    else:
        total = total + ga.eq75_lambda_term_q_lt_k(
            alpha_n_k=A[(n, k)], lam_k=L[k - 1], w_k=w, eta_km1_q=E[(k - 1, q)], v_qm1=vs[q - 1]
        )
    return total


def _hessian_ww_general(fwd: RecForward, w, t: int):
    """``63.g``: Eq 77 (corrected) summed over all pairs of steps."""
    A, E, L, vs = fwd.alphas, fwd.etas, fwd.lams, fwd.vs
    total = 0.0
    for k in range(1, t + 1):
        for q in range(1, t + 1):
            for r in range(max(k, q) + 1, t + 1):
                total = total + ga.eq77_far_term(
                    alpha_n_r=A[(t, r)],
                    lam_r=L[r - 1],
                    w_r=w,
                    eta_rm1_q=E[(r - 1, q)],
                    v_qm1=vs[q - 1],
                    eta_rm1_k=E[(r - 1, k)],
                    v_km1=vs[k - 1],
                )
            if q > k:
                total = total + ga.eq77_lambda_term_q_gt_k(
                    alpha_n_q=A[(t, q)],
                    lam_q=L[q - 1],
                    w_q=w,
                    eta_qm1_k=E[(q - 1, k)],
                    v_qm1=vs[q - 1],
                    v_km1=vs[k - 1],
                )
                total = total + ga.eq77_eta_term_q_gt_k(
                    eta_n_q=E[(t, q)], eta_qm1_k=E[(q - 1, k)], v_km1=vs[k - 1]
                )
            elif q == k:
                total = total + ga.eq77_lambda_term_q_eq_k(
                    alpha_n_k=A[(t, k)], lam_k=L[k - 1], v_km1=vs[k - 1]
                )
            else:
                total = total + ga.eq77_lambda_term_q_lt_k(
                    alpha_n_k=A[(t, k)],
                    lam_k=L[k - 1],
                    w_k=w,
                    eta_km1_q=E[(k - 1, q)],
                    v_qm1=vs[q - 1],
                    v_km1=vs[k - 1],
                )
                total = total + ga.eq77_eta_term_q_lt_k(
                    eta_n_k=E[(t, k)], eta_km1_q=E[(k - 1, q)], v_qm1=vs[q - 1]
                )
    return total
