"""Section 3 and Appendix B.1: cubic regularization (CR) quantities, Eqs 8-9 and 37-43,
and the variable-specific rates of Table 2.

The scalars are written with SymPy symbols ``h = g^T H g``, ``d = g^T grad F``,
``c = sigma ||g||^3``.  The directional quantities 38-40 are index forms over a
direction ``g = (omega, phi^{(k)})`` and, for the batch objective ``F = E[f]``, are
averages over samples of per-sample products (see the ``batch-average`` errata).
"""

from __future__ import annotations

import sympy as sp

from derive import cr_model
from derive.check_table import CHECKS
from derive.equations.feedforward_relu import _huw, _hww, cases
from derive.forms import Equation, Erratum, Form, register
from derive.notation import FAMILIES, contract, idx

F = FAMILIES
w, v, eta = F["w"], F["v"], F["eta"]
u, dfdp, d2fdp2 = F["u"](), F["dfdp"](), F["d2fdp2"]()
omega, phi = F["omega"](), F["phi"]

i, j, m, s, t, l, q, a = idx("i j m s t l q a")

# scalar symbols of the CR model (g^T H g, g^T grad F, sigma ||g||^3) and its closed forms
h, d, cc, sigma, alpha_s = cr_model.h, cr_model.d, cr_model.cc, cr_model.sigma, cr_model.alpha_s
CR_SYMBOLS = cr_model.CR_SYMBOLS
cubic_model = cr_model.cubic_model
step_length = cr_model.step_length
step_length_stable = cr_model.step_length_stable
LIMITS_PRINTED = cr_model.LIMITS_PRINTED
LIMITS_CORRECTED = cr_model.LIMITS_CORRECTED


register(
    Equation(
        number="8",
        name="cubic_model",
        title="cubic model of the objective",
        section="3",
        paper_latex=(
            r"m_j(\mathbf{s}_j) = f(\mathbf{x}_j) + \mathbf{s}_j^T \frac{\partial "
            r"f}{\partial \mathbf{x}} + \frac{1}{2} \mathbf{s}_j^T \mathbf{H}_j \mathbf{s}_j "
            r"+ \frac{1}{6} \sigma_j \|\mathbf{s}_j\|^3"
        ),
        lhs_latex=r"f(\mathbf{x})",
        relation=r"\approx",
        role="definition",
    )
)
register(
    Equation(
        number="9",
        name="cr_roots",
        title="both roots of dm/dalpha = 0",
        section="3.1",
        paper_latex=(
            r"\frac{-\mathbf{g}^T \mathbf{H} \mathbf{g} \pm \sqrt{(\mathbf{g}^T \mathbf{H} "
            r"\mathbf{g})^2 - 2(\mathbf{g}^T \nabla f) (\sigma \|\mathbf{g}\|^3)}}"
            r"{\sigma \|\mathbf{g}\|^3}"
        ),
        lhs_latex=r"\alpha",
        # the paper's +- : both roots (Section 3.1 then picks the positive one, Eq 37)
        printed=Form(lambda: cr_model.roots(), ()),
        role="cr",
        selfcheck=CHECKS["cr_roots"],
    )
)
register(
    Equation(
        number="37",
        name="cr_step_length",
        title="CR step length (positive root)",
        section="B.1",
        paper_latex=(
            r"\frac{-\mathbf{g}^T \mathbf{H} \mathbf{g} + \sqrt{(\mathbf{g}^T \mathbf{H} "
            r"\mathbf{g})^2 - 2(\mathbf{g}^T \nabla f)(\sigma \|\mathbf{g}\|^3)}}"
            r"{\sigma \|\mathbf{g}\|^3}"
        ),
        lhs_latex=r"\alpha",
        printed=Form(lambda: step_length(), ()),
        role="cr",
        selfcheck=CHECKS["cr_step"],
    )
)

register(
    Equation(
        number="C8",
        name="cr_step_length_stable",
        title="CR step length without cancellation (rationalized for g^T H g >= 0)",
        section="contracted (derived from Eq 37)",
        paper_latex="",
        lhs_latex=r"\alpha",
        printed=Form(lambda: step_length_stable(), ()),
        role="contracted",
        selfcheck=CHECKS["cr_stable"],
    )
)

_BATCH = Erratum(
    kinds=("batch-average",),
    what=(
        "written with dF/dp and d2F/dp2 multiplying per-sample v and eta; read literally "
        "as (batch mean of df/dp) x (batch mean of v ...), a product of averages, it is "
        "not the derivative of F = E[f]"
    ),
    reading="the batch mean of the per-sample products E[df/dp v ...]",
)


def _gtgrad_u(n):
    return contract(dfdp[i] * v(n)[j] * omega[i, j], i, j)


def _gtgrad_w(n, k):
    return contract(dfdp[l] * u[l, m] * eta(n, k)[m, i] * v(k - 1)[j] * phi(k)[i, j], l, m, i, j)


def _gtgrad(n):
    return _gtgrad_u(n) + sum((_gtgrad_w(n, k) for k in range(1, n + 1)), sp.S.Zero)


register(
    Equation(
        number="38",
        name="g_dot_grad",
        title="g^T grad F",
        section="B.1",
        paper_latex=(
            r"\frac{\partial F}{\partial p^i} v^{(n),j} \omega_j^i + \sum_k \frac{\partial "
            r"F}{\partial p^l} u_m^l \eta_i^{(n,k),m} v^{(k-1),j} \phi_j^{(k),i}"
        ),
        lhs_latex=r"\mathbf{g}^T \nabla f",
        printed=Form(_gtgrad, ()),
        parts={"u_term": Form(_gtgrad_u, ()), "w_term": Form(_gtgrad_w, ())},
        erratum=Erratum(
            kinds=_BATCH.kinds,
            what=(
                "the left-hand side is printed g^T grad f (the per-sample f) while the "
                "right-hand side is written with dF/dp multiplying per-sample v and eta; read "
                "literally as (batch mean of df/dp) x (batch mean of v ...), a product of "
                "averages, it is not the derivative of F = E[f]"
            ),
            reading=_BATCH.reading,
        ),
        role="cr",
        selfcheck=CHECKS["g_dot_grad"],
    )
)


def _block(expr, free_left, free_right, left, right):
    """Contract a Hessian block ``[i, j, s, t]`` with direction blocks on both sides."""
    return contract(left[i, j] * expr * right[s, t], i, j, s, t)


def _huu_expr(n):
    return d2fdp2[i, s] * v(n)[j] * v(n)[t]


def _ghg_uu(n):
    return _block(_huu_expr(n), None, None, omega, omega)


def _ghg_uw(n, k):
    return 2 * _block(_huw(n, k), None, None, omega, phi(k))


def _ghg_ww_gn(n, k, r):
    gn = contract(
        d2fdp2[l, q] * u[l, m] * eta(n, k)[m, i] * v(k - 1)[j]
        * u[q, a] * eta(n, r)[a, s] * v(r - 1)[t],
        l, q, m, a,
    )  # fmt: skip
    return _block(gn, None, None, phi(k), phi(r))


def _ghg_ww_cur(n, k, r):
    """The r < k curvature term, counted twice (symmetry of Eq 36)."""
    cur = contract(dfdp[l] * u[l, m] * eta(n, k)[m, i] * eta(k - 1, r)[j, s] * v(r - 1)[t], l, m)
    return 2 * _block(cur, None, None, phi(k), phi(r))


def _ghg(n, printed: bool):
    total = _ghg_uu(n)
    for k in range(1, n + 1):
        total += _ghg_uw(n, k)
    for k in range(1, n + 1):
        for r in range(1, n + 1):
            if printed and r != k:
                continue
            total += _ghg_ww_gn(n, k, r)
    for k in range(2, n + 1):
        for r in range(1, k):
            total += _ghg_ww_cur(n, k, r)
    return total


register(
    Equation(
        number="39",
        name="g_hess_g",
        title="g^T H g",
        section="B.1",
        paper_latex=(
            r"\omega_j^i \frac{\partial^2 F}{\partial p^i \partial p^s} v^{(n),j} v^{(n),t} "
            r"\omega_t^s + 2 \sum_k \omega_j^i ( \frac{\partial F}{\partial p^i} "
            r"\eta_s^{(n,k),j} v^{(k-1),t} + \frac{\partial^2 F}{\partial p^i \partial p^l} "
            r"v^{(n),j} u_m^l \eta_s^{(n,k),m} v^{(k-1),t} ) \phi_t^{(k),s} + \sum_k "
            r"\phi_j^{(k),i} \frac{\partial^2 F}{\partial p^l \partial p^q} u_m^l "
            r"\eta_i^{(n,k),m} v^{(k-1),j} u_a^q \eta_s^{(n,k),a} v^{(k-1),t} \phi_t^{(k),s} "
            r"+ 2 \sum_{k=2}^n \sum_{r=1}^{k-1} \phi_j^{(k),i} \frac{\partial F}{\partial p^l} "
            r"u_m^l \eta_i^{(n,k),m} \eta_s^{(k-1,r),j} v^{(r-1),t} \phi_t^{(r),s}"
        ),
        lhs_latex=r"\mathbf{g}^T \mathbf{H} \mathbf{g}",
        printed=Form(lambda n: _ghg(n, printed=True), ()),
        corrected=Form(lambda n: _ghg(n, printed=False), ()),
        parts={
            "uu_term": Form(_ghg_uu, ()),
            "uw_term": Form(_ghg_uw, ()),
            "ww_gauss_newton_term": Form(_ghg_ww_gn, ()),
            "ww_curvature_term": Form(_ghg_ww_cur, ()),
        },
        erratum=Erratum(
            kinds=("dropped-term", "batch-average"),
            what=(
                "the Gauss-Newton part of the (w, w) blocks is summed over k only (r = k); "
                "the cross terms k != r of Eq 36's first term are dropped. Also read with "
                "dF/dp as in Eq 38 (product of averages)."
            ),
            reading=(
                "sum over all pairs (k, r) of phi^(k) [d2F/dp2 u eta^(n,k) v^(k-1) u "
                "eta^(n,r) v^(r-1)] phi^(r), as batch means of per-sample products"
            ),
        ),
        role="cr",
        selfcheck=CHECKS["g_hess_g"],
    )
)


def _sq_norm_u(n):
    return contract(omega[i, j] * omega[i, j], i, j)


def _sq_norm_w(n, k):
    return contract(phi(k)[i, j] * phi(k)[i, j], i, j)


def _norm3(n):
    sq = contract(omega[i, j] * omega[i, j], i, j) + sum(
        (contract(phi(k)[i, j] * phi(k)[i, j], i, j) for k in range(1, n + 1)), sp.S.Zero
    )
    return sp.Pow(sq, sp.Rational(3, 2))


register(
    Equation(
        number="40",
        name="g_norm_cubed",
        title="||g||^3",
        section="B.1",
        paper_latex=(
            r"\left( \omega_j^i \omega_j^i + \sum_k \phi_j^{(k),i} \phi_j^{(k),i} "
            r"\right)^{\frac{3}{2}}"
        ),
        lhs_latex=r"\|\mathbf{g}\|^3",
        printed=Form(_norm3, ()),
        parts={"u_sq_norm": Form(_sq_norm_u, ()), "w_sq_norm": Form(_sq_norm_w, ())},
        role="cr",
        selfcheck=CHECKS["g_norm_cubed"],
    )
)


def _cond_tex(cond: str) -> str:
    for a, b in (
        ("**2", "^2"),
        ("abs(h)", "|h|"),
        ("abs(d)*c", r"|d|\,c"),
        (">>", r"\gg"),
        ("<<", r"\ll"),
        (" and ", r",\ "),
    ):
        cond = cond.replace(a, b)
    return cond


def _limits_display(limits: list) -> sp.Expr:
    """Eq 41's cases as one ``Piecewise``, each with its condition (a symbol named by the
    condition's LaTeX; the third case's condition is printed too, not "otherwise")."""
    return sp.Piecewise(*[(approx, sp.Symbol(_cond_tex(cond))) for approx, cond in limits])


register(
    Equation(
        number="41",
        name="cr_limits",
        title="limiting cases of the CR step length",
        section="B.1",
        paper_latex=(
            r"\begin{cases} \frac{|\mathbf{g}^T \nabla f|}{\mathbf{g}^T \mathbf{H} "
            r"\mathbf{g}} & |\mathbf{g}^T \mathbf{H} \mathbf{g}| \gg |\mathbf{g}^T \nabla f| "
            r"\left( \sigma \|\mathbf{g}\|^3 \right) \text{ and } \mathbf{g}^T \mathbf{H} "
            r"\mathbf{g} > 0 \\ \sqrt{\frac{2\mathbf{g}^T \nabla f}{\sigma "
            r"\|\mathbf{g}\|^3}} & |\mathbf{g}^T \mathbf{H} \mathbf{g}| \ll |\mathbf{g}^T "
            r"\nabla f| \left( \sigma \|\mathbf{g}\|^3 \right) \text{ and } \mathbf{g}^T "
            r"\mathbf{H} \mathbf{g} > 0 \\ 2 \left| \frac{\mathbf{g}^T \mathbf{H} "
            r"\mathbf{g}}{\sigma \|\mathbf{g}\|^3} \right| + \left| \frac{\mathbf{g}^T "
            r"\nabla f}{\mathbf{g}^T \mathbf{H} \mathbf{g}} \right| & |\mathbf{g}^T "
            r"\mathbf{H} \mathbf{g}| \gg |\mathbf{g}^T \nabla f| \left( \sigma "
            r"\|\mathbf{g}\|^3 \right) \text{ and } \mathbf{g}^T \mathbf{H} \mathbf{g} < 0 "
            r"\end{cases}"
        ),
        lhs_latex=r"\alpha",
        relation=r"\approx",
        printed=Form(lambda: _limits_display(LIMITS_PRINTED), ()),
        corrected=Form(lambda: _limits_display(LIMITS_CORRECTED), ()),
        erratum=Erratum(
            kinds=("sqrt-sign", "validity"),
            what=(
                "second case: sqrt(2 g^T grad f / (sigma ||g||^3)) takes the square root of a "
                "negative number for a descent direction (g^T grad f < 0); all three "
                "conditions compare |g^T H g| with |g^T grad f| sigma ||g||^3, which is not "
                "scale-free: the expansion needs (g^T H g)^2 against |g^T grad f| sigma "
                "||g||^3, and the second case holds for either sign of g^T H g"
            ),
            reading=(
                "sqrt(-2 g^T grad f / (sigma ||g||^3)); conditions (g^T H g)^2 >> or << "
                "|g^T grad f| sigma ||g||^3"
            ),
        ),
        role="cr",
        selfcheck=CHECKS["cr_limits"],
    )
)
register(
    Equation(
        number="42",
        name="update_u",
        title="update of u",
        section="B.1",
        paper_latex=r"\mathbf{u}_j + \alpha_j \boldsymbol{\omega}_j",
        lhs_latex=r"\mathbf{u}_{j+1}",
        role="definition",
    )
)
register(
    Equation(
        number="43",
        name="update_w",
        title="update of w^(k)",
        section="B.1",
        paper_latex=r"\mathbf{w}_j^{(k)} + \alpha_j \boldsymbol{\phi}_j^{(k)}",
        lhs_latex=r"\mathbf{w}_{j+1}^{(k)}",
        role="definition",
    )
)

# ---------------------------------------------------------------- Table 2
_T2_ERR = Erratum(
    kinds=("free-index", "batch-average"),
    what=(
        "the g^T H g column keeps the free indices s, t of the full Hessian block (Eqs "
        "34, 36) instead of setting them to the diagonal entry's i, j; dF/dp read as in "
        "Eq 38"
    ),
    reading="s = i, t = j (no summation): the Hessian diagonal, as batch means",
)
register(
    Equation(
        number="T2.u",
        name="hessian_diag_u",
        title="Table 2: Hessian diagonal, u entries",
        section="B.1",
        paper_latex=(r"\frac{\partial^2 F}{\partial p^i \partial p^s} v^{(n),j} v^{(n),t}"),
        lhs_latex=r"\mathbf{g}^T \mathbf{H} \mathbf{g} \text{ for } \alpha_j^{(u),i}",
        # as printed: the block's free s, t stay on the right-hand side
        printed=Form(lambda n: d2fdp2[i, s] * v(n)[j] * v(n)[t], ("i", "j")),
        corrected=Form(lambda n: d2fdp2[i, i] * v(n)[j] * v(n)[j], ("i", "j")),
        erratum=_T2_ERR,
        selfcheck=CHECKS["hessian_diag_u"],
    )
)
register(
    Equation(
        number="T2.w",
        name="hessian_diag_w",
        title="Table 2: Hessian diagonal, w^(k) entries",
        section="B.1",
        paper_latex=(
            r"\frac{\partial^2 F}{\partial p^l \partial p^q} u_m^l \eta_i^{(n,k),m} "
            r"v^{(k-1),j} u_a^q \eta_s^{(n,k),a} v^{(k-1),t}"
        ),
        lhs_latex=r"\mathbf{g}^T \mathbf{H} \mathbf{g} \text{ for } \alpha_j^{(w,k),i}",
        labels=("k",),
        printed=Form(
            lambda n, k: contract(
                d2fdp2[l, q]
                * u[l, m]
                * eta(n, k)[m, i]
                * v(k - 1)[j]
                * u[q, a]
                * eta(n, k)[a, s]
                * v(k - 1)[t],
                l,
                q,
                m,
                a,
            ),
            ("i", "j"),
        ),
        corrected=Form(
            lambda n, k: contract(
                d2fdp2[l, q]
                * u[l, m]
                * eta(n, k)[m, i]
                * v(k - 1)[j]
                * u[q, a]
                * eta(n, k)[a, i]
                * v(k - 1)[j],
                l,
                q,
                m,
                a,
            ),
            ("i", "j"),
        ),
        erratum=_T2_ERR,
        selfcheck=CHECKS["hessian_diag_w"],
        label_sets=lambda n: [{"n": n, "k": k} for k in range(1, n + 1)],
    )
)

__all__ = [
    "CR_SYMBOLS",
    "cubic_model",
    "step_length",
    "LIMITS_PRINTED",
    "LIMITS_CORRECTED",
    "_hww",
    "cases",
]
