"""Appendix B.3: the feedforward network with a general entry-wise activation, Eqs 66-80,
and the contracted forms C9-C11 that make ``g^T H g`` a pair of sweeps again.

The first derivatives are those of B.1 (Eqs 19-28 hold for any ``A``); what is new is
that ``A'' != 0``, so ``gamma``, ``beta``, ``alpha`` and ``eta`` depend on the weights.
Every equation here is checked with ``A''`` kept free (``activation="general"``): the
reference is the explicit network with an undefined activation (``sympy.diff`` at the
smallest sizes, exact jets at random rationals otherwise).  Derivatives of
``gamma``, ``beta``, ``alpha`` and ``eta`` are *total* derivatives with respect to
``w^(q)`` along the network (they move with ``v^(l-1)`` as well as ``w^(l)``).

Array order (``docs/conventions.md``): upper indices first, then lower ones, then the
indices of the weight differentiated by, e.g. ``d eta_l^{(n,k),j} / d w_t^{(q),s}`` is
``deta(n,k,q)[j, l, s, t]`` and ``lambda_{rs}^{(l),m}`` is ``lam(l)[m, r, s]``.

Layer sums ``sum_{r=q+1}^{n}`` inside a form are built for concrete labels only (the
display then falls back to the paper's LaTeX); the code generator uses the per-``r``
``parts`` instead and the drivers loop over ``r``.
"""

from __future__ import annotations

import itertools

import sympy as sp

from derive import layer_checks
from derive.check_table import CHECKS
from derive.equations.cubic_regularization import _BATCH
from derive.equations.feedforward_relu import _huw, cases
from derive.forms import Equation, Erratum, Form, lookup, register, register_derived
from derive.notation import FAMILIES, contract, idx

F = FAMILIES
w, v, a1, a2 = F["w"], F["v"], F["a1"], F["a2"]
gamma, alpha, eta, lam = F["gamma"], F["alpha"], F["eta"], F["lam"]
dgamma, dbeta, dalpha, deta, d2v = F["dgamma"], F["dbeta"], F["dalpha"], F["deta"], F["d2v"]
dv = F["dv"]
delta, vdot, zdot, vbar, phi = F["delta"], F["vdot"], F["zdot"], F["vbar"], F["phi"]
u, dfdp, d2fdp2, omega, pdot = F["u"](), F["dfdp"](), F["d2fdp2"](), F["omega"](), F["pdot"]()

# ordinary indices (the Python names carry a trailing underscore where a layer label
# of the same letter is also in use)
m, r_, s, t, p, a, b, c, d, j, i = idx("m r s t p a b c d j i")
(l_,) = idx("l")

SECTION = "B.3"


def _layer_sum(lo: int, hi: int, term) -> sp.Expr:
    """``sum_{r=lo}^{hi} term(r)`` over a layer label (concrete labels only)."""
    return sum((term(rr) for rr in range(lo, hi + 1)), sp.S.Zero)


def _lq(n: int) -> list[dict]:
    return [{"n": n, "l": ll, "q": q} for ll in range(1, n + 1) for q in range(1, n + 1)]


def _rq(n: int) -> list[dict]:
    return [{"n": n, "r": rr, "q": q} for rr in range(1, n + 1) for q in range(1, n + 1)]


def _klq(n: int) -> list[dict]:
    return [
        {"n": n, "k": k, "l": ll, "q": q}
        for k in range(0, n + 1)
        for ll in range(0, n + 1)
        for q in range(1, n + 1)
        if ll <= k
    ]


def _kq(n: int) -> list[dict]:
    return [{"n": n, "k": k, "q": q} for k in range(1, n + 1) for q in range(1, n + 1)]


def _klr(n: int) -> list[dict]:
    return [
        {"n": n, "k": k, "l": ll, "r": rr}
        for k, ll in itertools.product(range(n + 1), repeat=2)
        for rr in range(1, n + 1)
    ]


# ---------------------------------------------------------------- 66-68: d gamma / dw
def _dgamma_66(n, l, q):  # noqa: E741
    return cases(
        (l < q, lambda: sp.S.Zero),
        (
            sp.Eq(l, q),
            lambda: sp.KroneckerDelta(r_, m) * a2(l)[m] * sp.KroneckerDelta(s, m) * v(l - 1)[t],
        ),
        (
            l > q,
            lambda: contract(
                sp.KroneckerDelta(r_, m)
                * a2(l)[m]
                * w(l)[m, a]
                * eta(l - 1, q)[a, s]
                * v(q - 1)[t],
                a,
            ),
        ),
    )


register(
    Equation(
        number="66",
        name="dgamma_dw",
        title="d gamma^(l)/dw^(q) (total derivative)",
        section=SECTION,
        paper_latex=(
            r"\begin{cases} 0 & l < q \\ \delta_r^m \mathcal{A}''(w_j^{(l),m} v^{(l-1),j}) "
            r"\delta_s^m v^{(l-1),t} & l = q \\ \delta_r^m \mathcal{A}''(w_j^{(l),m} "
            r"v^{(l-1),j}) w_a^{(l),m} \eta_s^{(l-1,q),a} v^{(q-1),t} & l > q \end{cases}"
        ),
        lhs_latex=r"\frac{\partial \gamma_r^{(l),m}}{\partial w_t^{(q),s}}",
        labels=("l", "q"),
        printed=Form(_dgamma_66, ("m", "r", "s", "t")),
        selfcheck=CHECKS["b3_dgamma"],
        label_sets=_lq,
        activation="general",
    )
)

register(
    Equation(
        number="67",
        name="lambda",
        title="lambda^(l): A'' on the diagonal",
        section=SECTION,
        paper_latex=r"\delta_r^m \delta_s^m \mathcal{A}'' \left( w_j^{(l),m} v^{(l-1),j} \right)",
        lhs_latex=r"\lambda_{rs}^{(l),m}",
        relation=r"\equiv",
        labels=("l",),
        printed=Form(
            lambda n, l: sp.KroneckerDelta(r_, m) * sp.KroneckerDelta(s, m) * a2(l)[m],  # noqa: E741
            ("m", "r", "s"),
        ),
        role="definition",
        selfcheck=CHECKS["b3_lambda"],
        label_sets=lambda n: [{"n": n, "l": ll} for ll in range(1, n + 1)],
        activation="general",
    )
)


def _dgamma_68(n, l, q):  # noqa: E741
    return cases(
        (l < q, lambda: sp.S.Zero),
        (sp.Eq(l, q), lambda: lam(l)[m, r_, s] * v(l - 1)[t]),
        (
            l > q,
            lambda: (
                contract(lam(l)[m, r_, p] * w(l)[p, a] * eta(l - 1, q)[a, s], p, a) * v(q - 1)[t]
            ),
        ),
    )


register(
    Equation(
        number="68",
        name="dgamma_dw_lambda",
        title="d gamma^(l)/dw^(q) through lambda",
        section=SECTION,
        paper_latex=(
            r"\begin{cases} 0 & l < q \\ \lambda_{rs}^{(l),m} v^{(l-1),t} & l = q \\ "
            r"\lambda_{rp}^{(l),m} w_a^{(l),p} \eta_s^{(l-1,q),a} v^{(q-1),t} & l > q "
            r"\end{cases}"
        ),
        lhs_latex=r"\frac{\partial \gamma_r^{(l),m}}{\partial w_t^{(q),s}}",
        labels=("l", "q"),
        printed=Form(_dgamma_68, ("m", "r", "s", "t")),
        selfcheck=CHECKS["b3_dgamma"],
        label_sets=_lq,
        activation="general",
    )
)


# ---------------------------------------------------------------- 69-72: d alpha / dw
def _split(bounded: bool) -> Form:
    def build(n, k, l, r):  # noqa: E741
        if bounded and not (l < r <= k):
            return None
        return contract(alpha(k, r)[j, b] * alpha(r, r - 1)[b, a] * alpha(r - 1, l)[a, m], a, b)

    return Form(build, ("j", "m"))


register(
    Equation(
        number="69",
        name="alpha_split",
        title="alpha^(k,l) split at layer r",
        section=SECTION,
        paper_latex=r"\alpha_b^{(k,r),j} \alpha_a^{(r,r-1),b} \alpha_m^{(r-1,l),a}",
        lhs_latex=r"\alpha_m^{(k,l),j}",
        labels=("k", "l", "r"),
        printed=_split(False),
        corrected=_split(True),
        erratum=Erratum(
            kinds=("missing-bound",),
            what=(
                "stated for any r; it holds only for l < r <= k (the range of the sum in "
                "Eq 72): for r <= l or r > k one factor is 0 while alpha^(k,l) is not"
            ),
            reading="add the bound l < r <= k",
        ),
        role="identity",
        selfcheck=CHECKS["b3_alpha"],
        label_sets=_klr,
        activation="general",
    )
)

register(
    Equation(
        number="70",
        name="alpha_one_step",
        title="alpha^(r,r-1) = beta^(r) = gamma^(r) w^(r)",
        section=SECTION,
        paper_latex=r"\beta_a^{(r),b} = \gamma_s^{(r),b} w_a^{(r),s}",
        lhs_latex=r"\alpha_a^{(r,r-1),b}",
        labels=("r",),
        printed=Form(lambda n, r: contract(gamma(r)[b, s] * w(r)[s, a], s), ("b", "a")),
        role="identity",
        selfcheck=CHECKS["b3_alpha_step"],
        label_sets=lambda n: [{"n": n, "r": rr} for rr in range(1, n + 1)],
        activation="general",
    )
)


def _lam_ww(rr: int, target: sp.Idx, qq: int) -> sp.Expr:
    """``lambda_dp^(r),b w_a^(r),d w_c^(r),p eta_s^(r-1,qq),c v^(qq-1),t`` (free b, a, s, t)."""
    return (
        contract(lam(rr)[b, d, p] * w(rr)[d, target] * w(rr)[p, c] * eta(rr - 1, qq)[c, s], d, p, c)
        * v(qq - 1)[t]
    )


def _dbeta_same(q: int) -> sp.Expr:
    """``lambda_ps^(q),b w_a^(q),p v^(q-1),t + gamma_s^(q),b delta_a^t`` (free b, a, s, t)."""
    return contract(lam(q)[b, p, s] * w(q)[p, a], p) * v(q - 1)[t] + gamma(q)[
        b, s
    ] * sp.KroneckerDelta(a, t)


def _dbeta_71(n, r, q):
    return cases(
        (r < q, lambda: sp.S.Zero),
        (sp.Eq(r, q), lambda: _dbeta_same(q)),
        (r > q, lambda: _lam_ww(r, a, q)),
    )


register(
    Equation(
        number="71",
        name="dbeta_dw",
        title="d beta^(r)/dw^(q)",
        section=SECTION,
        paper_latex=(
            r"\begin{cases} 0 & r < q \\ \lambda_{ps}^{(r),b} w_a^{(r),p} v^{(r-1),t} + "
            r"\gamma_s^{(r),b} \delta_a^t & r = q \\ \lambda_{dp}^{(r),b} w_a^{(r),d} "
            r"w_m^{(r),p} \eta_s^{(r-1,q),m} v^{(q-1),t} & r > q \end{cases}"
        ),
        lhs_latex=r"\frac{\partial \beta_a^{(r),b}}{\partial w_t^{(q),s}}",
        labels=("r", "q"),
        printed=Form(_dbeta_71, ("b", "a", "s", "t")),
        selfcheck=CHECKS["b3_dbeta"],
        label_sets=_rq,
        activation="general",
    )
)


def _dalpha_product(n, k, l, q):  # noqa: E741
    """First line of Eq 72: the product rule over the betas of alpha^(k,l)."""
    return _layer_sum(
        l + 1,
        k,
        lambda rr: contract(
            alpha(k, rr)[j, b] * dbeta(rr, q)[b, a, s, t] * alpha(rr - 1, l)[a, m], a, b
        ),
    )


def _dalpha_cases(n, k, l, q):  # noqa: E741
    def far(lo):
        return _layer_sum(
            lo,
            k,
            lambda rr: contract(
                alpha(k, rr)[j, b] * _lam_ww(rr, a, q) * alpha(rr - 1, l)[a, m], b, a
            ),
        )

    return cases(
        (k < q, lambda: sp.S.Zero),
        (
            sp.And(l < q, q <= k),
            lambda: (
                far(q + 1)
                + contract(alpha(k, q)[j, b] * _dbeta_same(q) * alpha(q - 1, l)[a, m], b, a)
            ),
        ),
        (q <= l, lambda: far(l + 1)),
    )


_LATEX_72 = (
    r"\sum_{r=l+1}^k \alpha_b^{(k,r),j} \frac{\partial \beta_a^{(r),b}}{\partial "
    r"w_t^{(q),s}} \alpha_m^{(r-1,l),a} = \begin{cases} 0 & k < q \\ \sum_{r=q+1}^k "
    r"\alpha_b^{(k,r),j} \lambda_{dp}^{(r),b} w_a^{(r),d} w_c^{(r),p} \eta_s^{(r-1,q),c} "
    r"v^{(q-1),t} \alpha_m^{(r-1,l),a} + \alpha_b^{(k,q),j} ( \lambda_{ps}^{(q),b} "
    r"w_a^{(q),p} v^{(q-1),t} + \gamma_s^{(q),b} \delta_a^t ) \alpha_m^{(q-1,l),a} & l < q "
    r"\leq k \\ \sum_{r=l+1}^k \alpha_b^{(k,r),j} \lambda_{dp}^{(r),b} w_a^{(r),d} "
    r"w_c^{(r),p} \eta_s^{(r-1,q),c} v^{(q-1),t} \alpha_m^{(r-1,l),a} & q \leq l \end{cases}"
)

register(
    Equation(
        number="72",
        name="dalpha_dw_general",
        title="d alpha^(k,l)/dw^(q), general activation (piecewise form)",
        section=SECTION,
        paper_latex=_LATEX_72,
        lhs_latex=r"\frac{\partial \alpha_m^{(k,l),j}}{\partial w_t^{(q),s}}",
        labels=("k", "l", "q"),
        printed=Form(_dalpha_cases, ("j", "m", "s", "t")),
        parts={"product_rule": Form(_dalpha_product, ("j", "m", "s", "t"))},
        selfcheck=CHECKS["b3_dalpha"],
        label_sets=_klq,
        activation="general",
    )
)
register(
    Equation(
        number="72.a",
        name="dalpha_dw_product_rule",
        title="d alpha^(k,l)/dw^(q): first line of Eq 72 (product rule over the betas)",
        section=SECTION,
        paper_latex=(
            r"\sum_{r=l+1}^k \alpha_b^{(k,r),j} \frac{\partial \beta_a^{(r),b}}{\partial "
            r"w_t^{(q),s}} \alpha_m^{(r-1,l),a}"
        ),
        lhs_latex=r"\frac{\partial \alpha_m^{(k,l),j}}{\partial w_t^{(q),s}}",
        labels=("k", "l", "q"),
        printed=Form(_dalpha_product, ("j", "m", "s", "t")),
        selfcheck=CHECKS["b3_dalpha"],
        label_sets=_klq,
        activation="general",
    )
)


# ---------------------------------------------------------------- 73-75: d eta / dw
def _deta_73(n, k, q):
    return contract(dalpha(n, k, q)[j, m, s, t] * gamma(k)[m, l_], m) + contract(
        alpha(n, k)[j, m] * dgamma(k, q)[m, l_, s, t], m
    )


register(
    Equation(
        number="73",
        name="deta_dw_product",
        title="d eta^(n,k)/dw^(q) = d alpha gamma + alpha d gamma",
        section=SECTION,
        paper_latex=(
            r"\frac{\partial \alpha_m^{(n,k),j}}{\partial w_t^{(q),s}} \gamma_l^{(k),m} + "
            r"\alpha_m^{(n,k),j} \frac{\partial \gamma_l^{(k),m}}{\partial w_t^{(q),s}}"
        ),
        lhs_latex=r"\frac{\partial \eta_l^{(n,k),j}}{\partial w_t^{(q),s}}",
        labels=("k", "q"),
        printed=Form(_deta_73, ("j", "l", "s", "t")),
        selfcheck=CHECKS["b3_deta"],
        label_sets=_kq,
        activation="general",
    )
)


def _far_term(n, rr, k, q, *, with_gamma: bool, printed: bool) -> sp.Expr:
    """``alpha_b^(n,r),j lambda_dp^(r),b w_a^(r),d w_c^(r),p eta_s^(r-1,.),c v^(.-1),t X_l^a``.

    ``X = alpha^(r-1,k) gamma^(k)`` (Eq 74) or ``eta^(r-1,k)`` (Eq 75).  ``printed``:
    the ``q < k`` rows of Eqs 74, 75 and 77 write ``eta_s^(r-1,k),c v^(k-1),t``
    (the ``q = k`` row copied); the derivative needs ``eta_s^(r-1,q),c v^(q-1),t``.
    """
    qq = k if printed else q
    tail = (
        contract(alpha(rr - 1, k)[a, m] * gamma(k)[m, l_], m)
        if with_gamma
        else eta(rr - 1, k)[a, l_]
    )
    return contract(alpha(n, rr)[j, b] * _lam_ww(rr, a, qq) * tail, b, a)


def _deta_cases(with_gamma: bool, printed: bool):
    def build(n, k, q):
        def far(lo, wrong=False):
            return _layer_sum(
                lo,
                n,
                lambda rr: _far_term(n, rr, k, q, with_gamma=with_gamma, printed=wrong),
            )

        def gt_k():
            if with_gamma:
                back = contract(alpha(q - 1, k)[a, m] * gamma(k)[m, l_], m)
                return far(q + 1) + contract(alpha(n, q)[j, b] * _dbeta_same(q) * back, b, a)
            return (
                far(q + 1)
                + contract(
                    alpha(n, q)[j, b] * lam(q)[b, p, s] * w(q)[p, a] * eta(q - 1, k)[a, l_], b, p, a
                )
                * v(q - 1)[t]
                + eta(n, q)[j, s] * eta(q - 1, k)[t, l_]
            )

        return cases(
            (q > k, gt_k),
            (
                sp.Eq(q, k),
                lambda: (
                    far(k + 1) + contract(alpha(n, k)[j, m] * lam(k)[m, l_, s], m) * v(k - 1)[t]
                ),
            ),
            (
                q < k,
                lambda: (
                    far(k + 1, wrong=printed)
                    + contract(
                        alpha(n, k)[j, m] * lam(k)[m, l_, p] * w(k)[p, a] * eta(k - 1, q)[a, s],
                        m,
                        p,
                        a,
                    )
                    * v(q - 1)[t]
                ),
            ),
        )

    return Form(build, ("j", "l", "s", "t"))


_ERR_QK = (
    "the q < k row writes eta_s^{(r-1,k),c} v^{(k-1),t} in the sum over r (copied from the "
    "q = k row); w^(q) enters layer r through eta^(r-1,q) v^(q-1), so the row is wrong "
    "for q < k (and does not even fit when widths differ)"
)
_READ_QK = "eta_s^{(r-1,q),c} v^{(q-1),t} in the sum of the q < k row"

_LATEX_74 = (
    r"\begin{cases} \sum_{r=q+1}^n \alpha_b^{(n,r),j} \lambda_{dp}^{(r),b} w_a^{(r),d} "
    r"w_c^{(r),p} \eta_s^{(r-1,q),c} v^{(q-1),t} \alpha_m^{(r-1,k),a} \gamma_l^{(k),m} + "
    r"\alpha_b^{(n,q),j} ( \lambda_{ps}^{(q),b} w_a^{(q),p} v^{(q-1),t} + \gamma_s^{(q),b} "
    r"\delta_a^t ) \alpha_m^{(q-1,k),a} \gamma_l^{(k),m} & q > k \\ \sum_{r=k+1}^n "
    r"\alpha_b^{(n,r),j} \lambda_{dp}^{(r),b} w_a^{(r),d} w_c^{(r),p} \eta_s^{(r-1,k),c} "
    r"v^{(k-1),t} \alpha_m^{(r-1,k),a} \gamma_l^{(k),m} + \alpha_m^{(n,k),j} "
    r"\lambda_{ls}^{(k),m} v^{(k-1),t} & q = k \\ \sum_{r=k+1}^n \alpha_b^{(n,r),j} "
    r"\lambda_{dp}^{(r),b} w_a^{(r),d} w_c^{(r),p} \eta_s^{(r-1,k),c} v^{(k-1),t} "
    r"\alpha_m^{(r-1,k),a} \gamma_l^{(k),m} + \alpha_m^{(n,k),j} \lambda_{lp}^{(k),m} "
    r"w_a^{(k),p} \eta_s^{(k-1,q),a} v^{(q-1),t} & q < k \end{cases}"
)
_LATEX_75 = (
    r"\begin{cases} \sum_{r=q+1}^n \alpha_b^{(n,r),j} \lambda_{dp}^{(r),b} w_a^{(r),d} "
    r"w_c^{(r),p} \eta_s^{(r-1,q),c} v^{(q-1),t} \eta_l^{(r-1,k),a} + \alpha_b^{(n,q),j} "
    r"\lambda_{ps}^{(q),b} w_a^{(q),p} v^{(q-1),t} \eta_l^{(q-1,k),a} + \eta_s^{(n,q),j} "
    r"\eta_l^{(q-1,k),t} & q > k \\ \sum_{r=k+1}^n \alpha_b^{(n,r),j} \lambda_{dp}^{(r),b} "
    r"w_a^{(r),d} w_c^{(r),p} \eta_s^{(r-1,k),c} v^{(k-1),t} \eta_l^{(r-1,k),a} + "
    r"\alpha_m^{(n,k),j} \lambda_{ls}^{(k),m} v^{(k-1),t} & q = k \\ \sum_{r=k+1}^n "
    r"\alpha_b^{(n,r),j} \lambda_{dp}^{(r),b} w_a^{(r),d} w_c^{(r),p} \eta_s^{(r-1,k),c} "
    r"v^{(k-1),t} \eta_l^{(r-1,k),a} + \alpha_m^{(n,k),j} \lambda_{lp}^{(k),m} w_a^{(k),p} "
    r"\eta_s^{(k-1,q),a} v^{(q-1),t} & q < k \end{cases}"
)

for _num, _name, _with_gamma, _tex, _title in (
    ("74", "deta_dw_alpha", True, _LATEX_74, "d eta^(n,k)/dw^(q) in alpha and gamma"),
    ("75", "deta_dw_eta", False, _LATEX_75, "d eta^(n,k)/dw^(q) in eta"),
):
    register(
        Equation(
            number=_num,
            name=_name,
            title=_title,
            section=SECTION,
            paper_latex=_tex,
            lhs_latex=r"\frac{\partial \eta_l^{(n,k),j}}{\partial w_t^{(q),s}}",
            labels=("k", "q"),
            printed=_deta_cases(_with_gamma, printed=True),
            corrected=_deta_cases(_with_gamma, printed=False),
            erratum=Erratum(kinds=("index", "dimension"), what=_ERR_QK, reading=_READ_QK),
            selfcheck=CHECKS["b3_deta"],
            label_sets=_kq,
            activation="general",
        )
    )


# ---------------------------------------------------------------- 76-77: d2 v^(n) / dw dw
def _d2v_76(n, k, q):
    return cases(
        (q >= k, lambda: deta(n, k, q)[j, l_, s, t] * v(k - 1)[i]),
        (
            q < k,
            lambda: (
                deta(n, k, q)[j, l_, s, t] * v(k - 1)[i] + eta(n, k)[j, l_] * dv(k - 1, q)[i, s, t]
            ),
        ),
    )


register(
    Equation(
        number="76",
        name="d2v_dw2_general",
        title="second derivative of the last hidden output, through d eta",
        section=SECTION,
        paper_latex=(
            r"\begin{cases} \frac{\partial \eta_l^{(n,k),j}}{\partial w_t^{(q),s}} v^{(k-1),i}"
            r" & q \geq k \\ \frac{\partial \eta_l^{(n,k),j}}{\partial w_t^{(q),s}} "
            r"v^{(k-1),i} + \eta_l^{(n,k),j} \frac{\partial v^{(k-1),i}}{\partial w_t^{(q),s}}"
            r" & q < k \end{cases}"
        ),
        lhs_latex=r"\frac{\partial^2 v^{(n),j}}{\partial w_i^{(k),l} \partial w_t^{(q),s}}",
        labels=("k", "q"),
        printed=Form(_d2v_76, ("j", "l", "i", "s", "t")),
        selfcheck=CHECKS["b3_d2v"],
        label_sets=_kq,
        activation="general",
    )
)


def _d2v_77(printed: bool):
    deta_form = _deta_cases(False, printed=printed)

    def build(n, k, q):
        lower = cases(
            (q >= k, lambda: sp.S.Zero),
            (q < k, lambda: eta(n, k)[j, l_] * eta(k - 1, q)[i, s] * v(q - 1)[t]),
        )
        return deta_form(n=n, k=k, q=q) * v(k - 1)[i] + lower

    return Form(build, ("j", "l", "i", "s", "t"))


# per-r and per-case pieces of Eqs 75 and 77 for the code generator: Eq 75's rows are
# sums of these (free j, l, s, t); Eq 77 multiplies each by v^(k-1),i and adds, for q < k,
# eta_l^(n,k),j eta_s^(k-1,q),i v^(q-1),t
_P75 = {
    "far_term": Form(
        lambda n, k, q, r: _far_term(n, r, k, q, with_gamma=False, printed=False),
        ("j", "l", "s", "t"),
    ),
    "far_term_printed": Form(
        lambda n, k, q, r: _far_term(n, r, k, q, with_gamma=False, printed=True),
        ("j", "l", "s", "t"),
    ),
    "lambda_term_q_gt_k": Form(
        lambda n, k, q: (
            contract(
                alpha(n, q)[j, b] * lam(q)[b, p, s] * w(q)[p, a] * eta(q - 1, k)[a, l_], b, p, a
            )
            * v(q - 1)[t]
        ),
        ("j", "l", "s", "t"),
    ),
    "eta_term_q_gt_k": Form(
        lambda n, k, q: eta(n, q)[j, s] * eta(q - 1, k)[t, l_], ("j", "l", "s", "t")
    ),
    "lambda_term_q_eq_k": Form(
        lambda n, k, q: contract(alpha(n, k)[j, m] * lam(k)[m, l_, s], m) * v(k - 1)[t],
        ("j", "l", "s", "t"),
    ),
    "lambda_term_q_lt_k": Form(
        lambda n, k, q: (
            contract(
                alpha(n, k)[j, m] * lam(k)[m, l_, p] * w(k)[p, a] * eta(k - 1, q)[a, s], m, p, a
            )
            * v(q - 1)[t]
        ),
        ("j", "l", "s", "t"),
    ),
}
lookup("75").parts.update(_P75)


def _times_v(form: Form) -> Form:
    """A part of Eq 75 times ``v^(k-1),i`` (a part of Eq 77, free j, l, i, s, t)."""
    import inspect

    def build(**labels):
        return form.build(**labels) * v(labels["k"] - 1)[i]

    build.__signature__ = inspect.signature(form.build)  # type: ignore[attr-defined]
    return Form(build, ("j", "l", "i", "s", "t"))


_P77 = {name: _times_v(f) for name, f in _P75.items()}
_P77["eta_term_q_lt_k"] = Form(
    lambda n, k, q: eta(n, k)[j, l_] * eta(k - 1, q)[i, s] * v(q - 1)[t],
    ("j", "l", "i", "s", "t"),
)

register(
    Equation(
        number="77",
        name="d2v_dw2_general_expanded",
        title="second derivative of the last hidden output, expanded",
        section=SECTION,
        paper_latex=(
            r"\begin{cases} \sum_{r=q+1}^n \alpha_b^{(n,r),j} \lambda_{dp}^{(r),b} "
            r"w_a^{(r),d} w_c^{(r),p} \eta_s^{(r-1,q),c} v^{(q-1),t} \eta_l^{(r-1,k),a} "
            r"v^{(k-1),i} + \alpha_b^{(n,q),j} \lambda_{ps}^{(q),b} w_a^{(q),p} v^{(q-1),t} "
            r"\eta_l^{(q-1,k),a} v^{(k-1),i} + \eta_s^{(n,q),j} \eta_l^{(q-1,k),t} v^{(k-1),i} "
            r"& q > k \\ \sum_{r=k+1}^n \alpha_b^{(n,r),j} \lambda_{dp}^{(r),b} w_a^{(r),d} "
            r"w_c^{(r),p} \eta_s^{(r-1,k),c} v^{(k-1),t} \eta_l^{(r-1,k),a} v^{(k-1),i} + "
            r"\alpha_m^{(n,k),j} \lambda_{ls}^{(k),m} v^{(k-1),t} v^{(k-1),i} & q = k \\ "
            r"\sum_{r=k+1}^n \alpha_b^{(n,r),j} \lambda_{dp}^{(r),b} w_a^{(r),d} w_c^{(r),p} "
            r"\eta_s^{(r-1,k),c} v^{(k-1),t} \eta_l^{(r-1,k),a} v^{(k-1),i} + "
            r"\alpha_m^{(n,k),j} \lambda_{lp}^{(k),m} w_a^{(k),p} \eta_s^{(k-1,q),a} "
            r"v^{(q-1),t} v^{(k-1),i} + \eta_l^{(n,k),j} \eta_s^{(k-1,q),i} v^{(q-1),t} & q < k"
            r" \end{cases}"
        ),
        lhs_latex=r"\frac{\partial^2 v^{(n),j}}{\partial w_i^{(k),l} \partial w_t^{(q),s}}",
        labels=("k", "q"),
        printed=_d2v_77(True),
        corrected=_d2v_77(False),
        erratum=Erratum(
            kinds=("index", "dimension"),
            what=_ERR_QK + " (inherited from Eq 75)",
            reading=_READ_QK,
        ),
        parts=dict(_P77),
        selfcheck=CHECKS["b3_d2v"],
        label_sets=_kq,
        activation="general",
    )
)


# ---------------------------------------------------------------- 78-80: objective
register(
    Equation(
        number="78",
        name="hessian_uu_general",
        title="Hessian block (u, u), general activation",
        section=SECTION,
        paper_latex=(
            r"\frac{\partial^2 F}{\partial p^k \partial p^l} \frac{\partial p^k}{\partial "
            r"u_j^i} \frac{\partial p^l}{\partial u_t^s} = \frac{\partial^2 F}{\partial p^i "
            r"\partial p^s} v^{(n),j} v^{(n),t}"
        ),
        lhs_latex=r"\frac{\partial^2 F}{\partial u_j^i \partial u_t^s}",
        printed=Form(lambda n: d2fdp2[i, s] * v(n)[j] * v(n)[t], ("i", "j", "s", "t")),
        erratum=_BATCH,
        selfcheck=CHECKS["hessian_uu"],
        activation="general",
    )
)
register(
    Equation(
        number="79",
        name="hessian_uw_general",
        title="Hessian block (u, w^(k)), general activation",
        section=SECTION,
        paper_latex=(
            r"\frac{\partial F}{\partial p^i} \frac{\partial v^{(n),j}}{\partial "
            r"w_t^{(k),s}} + \frac{\partial^2 F}{\partial p^i \partial p^l} v^{(n),j} "
            r"\frac{\partial p^l}{\partial v^{(n),m}} \frac{\partial v^{(n),m}}{\partial "
            r"w_t^{(k),s}} = \frac{\partial F}{\partial p^i} \eta_s^{(n,k),j} v^{(k-1),t} + "
            r"\frac{\partial^2 F}{\partial p^i \partial p^l} v^{(n),j} u_m^l "
            r"\eta_s^{(n,k),m} v^{(k-1),t}"
        ),
        lhs_latex=r"\frac{\partial^2 F}{\partial u_j^i \partial w_t^{(k),s}}",
        labels=("k",),
        printed=Form(_huw, ("i", "j", "s", "t")),
        erratum=_BATCH,
        selfcheck=CHECKS["hessian_uw"],
        label_sets=lambda n: [{"n": n, "k": k} for k in range(1, n + 1)],
        activation="general",
    )
)


def _gn_80(n, k, q):
    return contract(
        d2fdp2[a, b] * u[a, j] * eta(n, k)[j, l_] * v(k - 1)[i] * u[b, c] * eta(n, q)[c, s] * v(q - 1)[t],
        a, b, j, c,
    )  # fmt: skip


def _cur_80(n, k, q):
    return contract(dfdp[a] * u[a, j] * d2v(n, k, q)[j, l_, i, s, t], a, j)


def _dfdp_u(inner: sp.Expr) -> sp.Expr:
    """``df/dp^f u_e^f inner^e`` for an expression with free output index ``j``
    (fresh dummies ``e``, ``f``: ``inner`` already sums over ``a``, ``b``, ...)."""
    e_, f_ = sp.Idx("e"), sp.Idx("f")
    return contract(dfdp[f_] * u[f_, e_] * inner.subs(j, e_), f_, e_)


def _with_dfdp_u(form: Form) -> Form:
    """``df/dp^a u_j^a (part)_j...``: a part of Eq 77 carried into Eq 80."""
    import inspect

    params = list(inspect.signature(form.build).parameters)

    def build(**labels):
        inner = form.build(**{k_: labels[k_] for k_ in params})
        return _dfdp_u(inner)

    build.__signature__ = inspect.signature(form.build)  # type: ignore[attr-defined]
    return Form(build, ("l", "i", "s", "t"))


register(
    Equation(
        number="80",
        name="hessian_ww_general",
        title="Hessian block (w^(k), w^(q)), general activation",
        section=SECTION,
        paper_latex=(
            r"\frac{\partial^2 F}{\partial p^a \partial p^b} \frac{\partial p^a}{\partial "
            r"v^{(n),j}} \frac{\partial v^{(n),j}}{\partial w_i^{(k),l}} \frac{\partial "
            r"p^b}{\partial v^{(n),c}} \frac{\partial v^{(n),c}}{\partial w_t^{(q),s}} + "
            r"\frac{\partial F}{\partial p^m} \frac{\partial p^m}{\partial v^{(n),j}} "
            r"\frac{\partial^2 v^{(n),j}}{\partial w_i^{(k),l} \partial w_t^{(q),s}} = "
            r"\frac{\partial^2 F}{\partial p^a \partial p^b} u_j^a \eta_l^{(n,k),j} "
            r"v^{(k-1),i} u_c^b \eta_s^{(n,q),c} v^{(q-1),t} + \frac{\partial F}{\partial "
            r"p^a} u_j^a \frac{\partial^2 v^{(n),j}}{\partial w_i^{(k),l} \partial "
            r"w_t^{(q),s}}"
        ),
        lhs_latex=r"\frac{\partial^2 F}{\partial w_i^{(k),l} \partial w_t^{(q),s}}",
        labels=("k", "q"),
        printed=Form(lambda n, k, q: _gn_80(n, k, q) + _cur_80(n, k, q), ("l", "i", "s", "t")),
        erratum=_BATCH,
        parts={
            "gauss_newton": Form(_gn_80, ("l", "i", "s", "t")),
            **{name: _with_dfdp_u(f) for name, f in _P77.items()},
        },
        selfcheck=CHECKS["b3_hessian_ww"],
        label_sets=_kq,
        activation="general",
    )
)


#: Eq 80 with its curvature term expanded by Eq 77 (corrected): what the kernels compute
HESSIAN_WW_EXPANDED = Form(
    lambda n, k, q: _gn_80(n, k, q) + _dfdp_u(_d2v_77(False)(n=n, k=k, q=q)),
    ("l", "i", "s", "t"),
)
register(
    Equation(
        number="80.x",
        name="hessian_ww_general_expanded",
        title="Hessian block (w^(k), w^(q)) with Eq 77 (corrected) substituted into Eq 80",
        section="B.3 (derived from Eqs 77, 80)",
        paper_latex="",
        lhs_latex=r"\frac{\partial^2 F}{\partial w_i^{(k),l} \partial w_t^{(q),s}}",
        labels=("k", "q"),
        printed=HESSIAN_WW_EXPANDED,
        erratum=_BATCH,
        selfcheck=CHECKS["b3_hessian_ww"],
        label_sets=_kq,
        activation="general",
    )
)


# ---------------------------------------------------------------- contracted forms C9-C11
# Derivation.  Along a direction g = (omega, phi), the tangent sweep C4 gives
# vdot^(k) = A'(z^(k)) zdot^(k) with zdot^(k) = phi^(k) v^(k-1) + w^(k) vdot^(k-1).  The
# second derivative of v^(k) along g is A'' zdot^2 + A' zddot, so g^T H g = pdot^T
# (d2f/dp2) pdot + df/dp . pddot gains, next to C7's terms, one term per layer:
# sum_j vbar^(k)_j A''(z^(k)_j) (zdot^(k)_j)^2 with vbar^(k) = df/dv^(k) the adjoint of
# v^(k) (delta^(k) = A'(z^(k)) vbar^(k), C1-C2).  With A'' = 0 the term vanishes and C11
# is C7.  This is Eq 80 summed against g on both sides: the lambda terms of Eq 77
# collapse into the new term, the eta terms into C7's.
def _reg_c(number, name, title, lhs, form, check, derived_from, label_sets=None, labels=()):
    register_derived(number, name, title, lhs, form, CHECKS[check],
                     f"contracted (derived from {derived_from})", labels=labels,
                     label_sets=label_sets, activation="general")  # fmt: skip


_reg_c(
    "C9",
    "tangent_preactivation",
    "tangent of the pre-activation: zdot^(k) = phi^(k) v^(k-1) + w^(k) vdot^(k-1)",
    r"\dot{z}^{(k)}_j",
    Form(
        lambda n, k: (
            contract(phi(k)[j, t] * v(k - 1)[t], t)
            + (contract(w(k)[j, i] * vdot(k - 1)[i], i) if k != 1 else 0)
        ),
        ("j",),
    ),
    "b3_zdot",
    "Eqs 10, 24",
    lambda n: [{"n": n, "k": k} for k in range(1, n + 1)],
    ("k",),
)
_reg_c(
    "C10",
    "adjoint_output",
    "adjoint of v^(k): vbar^(n) = u^T df/dp, vbar^(k) = w^(k+1)^T delta^(k+1)",
    r"\bar{v}^{(k)}_i",
    Form(
        lambda n, k: cases(
            (sp.Eq(k, n), lambda: contract(dfdp[a] * u[a, i], a)),
            (k < n, lambda: contract(delta(k + 1)[j] * w(k + 1)[j, i], j)),
        ),
        ("i",),
    ),
    "b3_vbar",
    "Eqs 26, 28",
    lambda n: [{"n": n, "k": k} for k in range(1, n + 1)],
    ("k",),
)


def _second_order_term(n, k):
    return contract(vbar(k)[j] * a2(k)[j] * zdot(k)[j] * zdot(k)[j], j)


def _ghg_general(n):
    return lookup("C7").printed(n=n) + sum(
        (_second_order_term(n, k) for k in range(1, n + 1)), sp.S.Zero
    )


_reg_c(
    "C11",
    "g_hess_g_general",
    "g^T H g = C7 + sum_k vbar^(k) A''(z^(k)) zdot^(k)^2 (general activation)",
    r"\mathbf{g}^T \mathbf{H} \mathbf{g}",
    Form(_ghg_general, ()),
    "b3_g_hess_g",
    "Eqs 78-80 contracted with g; C7",
)
lookup("C11").parts.update(
    {
        **lookup("C7").parts,
        "second_order_term": Form(_second_order_term, ()),
    }
)

# the reduction to B.1 (A'' = 0) is checked by derive.layer_checks.reduces_to_b1
REDUCES_TO_B1 = layer_checks.REDUCES_TO_B1
