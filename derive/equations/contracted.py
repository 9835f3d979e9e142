"""Contracted recursive forms: what training uses instead of the literal eta chains.

These are not printed in the paper; they are derived here from its equations and
self-checked against the literal forms (symbolically at small sizes, in exact
rational arithmetic at larger ones).  Numbers are ``C1``... (contracted, per
sample) and ``L1``... (low-rank, the mini-batch gradient applied through its
``batch`` outer-product factors).

Derivation (Eq 22 with Eqs 20 and 23): ``eta^(n,k-1) = alpha^(n,k-1) gamma^(k-1)
= alpha^(n,k) beta^(k) gamma^(k-1) = eta^(n,k) w^(k) gamma^(k-1)``.  So the vector
``delta^(k) = df/dp u eta^(n,k)`` of Eq 28 obeys a backward recursion (an adjoint
sweep, C1-C3), and ``vdot^(k) = sum_{r<=k} eta^(k,r) v^(r-1) phi^(r)`` of Eq 38
a forward one (a tangent sweep, C4).  Eqs 38-39 then collapse to C6-C7: every
sum over layer pairs (k, r) of Eq 39 becomes one sweep.
"""

from __future__ import annotations

import sympy as sp

from derive.check_table import CHECKS
from derive.equations.feedforward_relu import cases
from derive.forms import Form, lookup, register_derived
from derive.notation import FAMILIES, contract, idx

F = FAMILIES
w, v, a1 = F["w"], F["v"], F["a1"]
delta, vdot, phi = F["delta"], F["vdot"], F["phi"]
Db, Vb, Vdotb = F["Db"], F["Vb"], F["Vdotb"]
u, dfdp, d2fdp2, omega, pdot, Pb = (
    F["u"](),
    F["dfdp"](),
    F["d2fdp2"](),
    F["omega"](),
    F["pdot"](),
    F["Pb"](),
)
i, j, m, s, t, l, b, c = idx("i j m s t l b c")
B = sp.Symbol("B", positive=True, integer=True)  # mini-batch size


def _k(n: int) -> list[dict]:
    return [{"n": n, "k": k} for k in range(1, n + 1)]


def _k2(n: int) -> list[dict]:
    return [{"n": n, "k": k} for k in range(2, n + 1)]


def _reg(number, name, title, lhs, form, check, derived_from, label_sets=None, labels=()):
    register_derived(number, name, title, lhs, form, CHECKS[check],
                     f"contracted (derived from {derived_from})", labels=labels,
                     label_sets=label_sets)  # fmt: skip


_reg(
    "C1",
    "adjoint_top",
    "adjoint of the last hidden layer: delta^(n) = A'(z^(n)) (u^T df/dp)",
    r"\delta^{(n)}_i",
    Form(lambda n: a1(n)[i] * contract(dfdp[l] * u[l, i], l), ("i",)),
    "adjoint_top",
    "Eqs 23, 28",
)
_reg(
    "C2",
    "adjoint_step",
    "backward sweep: delta^(k-1) = A'(z^(k-1)) (w^(k)^T delta^(k))",
    r"\delta^{(k-1)}_i",
    Form(lambda n, k: a1(k - 1)[i] * contract(delta(k)[j] * w(k)[j, i], j), ("i",)),
    "adjoint_step",
    "Eqs 20, 22, 23, 28",
    _k2,
    ("k",),
)
_reg(
    "C3",
    "grad_w_adjoint",
    "gradient block as the outer product delta^(k) v^(k-1)",
    r"\frac{\partial f}{\partial w_j^{(k),i}}",
    Form(lambda n, k: delta(k)[i] * v(k - 1)[j], ("i", "j")),
    "grad_w",
    "Eq 28",
    _k,
    ("k",),
)
_reg(
    "C4",
    "tangent_step",
    "forward sweep: vdot^(k) = A'(z^(k)) (phi^(k) v^(k-1) + w^(k) vdot^(k-1))",
    r"\dot{v}^{(k)}_j",
    Form(
        lambda n, k: (
            a1(k)[j]
            * (
                contract(phi(k)[j, t] * v(k - 1)[t], t)
                + (contract(w(k)[j, i] * vdot(k - 1)[i], i) if k != 1 else 0)
            )
        ),
        ("j",),
    ),
    "tangent_step",
    "Eqs 22, 24",
    _k,
    ("k",),
)
lookup("C4").parts.update(
    {
        "source": Form(lambda n, k: contract(phi(k)[j, t] * v(k - 1)[t], t), ("j",)),
        "propagate": Form(lambda n, k: contract(w(k)[j, i] * vdot(k - 1)[i], i), ("j",)),
    }
)
_reg(
    "C5",
    "tangent_logits",
    "tangent of the logits: pdot = omega v^(n) + u vdot^(n)",
    r"\dot{p}_i",
    Form(lambda n: contract(omega[i, j] * v(n)[j], j) + contract(u[i, m] * vdot(n)[m], m), ("i",)),
    "tangent_logits",
    "Eqs 25-26, 24",
)
lookup("C5").parts.update(
    {
        "omega_term": Form(lambda n: contract(omega[i, j] * v(n)[j], j), ("i",)),
        "u_term": Form(lambda n: contract(u[i, m] * vdot(n)[m], m), ("i",)),
    }
)
_reg(
    "C6",
    "g_dot_grad_tangent",
    "g^T grad f = df/dp . pdot",
    r"\mathbf{g}^T \nabla f",
    Form(lambda n: contract(dfdp[i] * pdot[i], i), ()),
    "g_dot_grad",
    "Eq 38",
)


def _ghg_contracted(n):
    total = contract(pdot[i] * d2fdp2[i, j] * pdot[j], i, j)
    total += 2 * contract(dfdp[i] * omega[i, m] * vdot(n)[m], i, m)
    for k in range(2, n + 1):
        total += 2 * contract(delta(k)[i] * phi(k)[i, j] * vdot(k - 1)[j], i, j)
    return total


_reg(
    "C7",
    "g_hess_g_tangent",
    "g^T H g = pdot^T (d2f/dp2) pdot + 2 df/dp omega vdot^(n) + 2 sum_k delta^(k) phi^(k) vdot^(k-1)",
    r"\mathbf{g}^T \mathbf{H} \mathbf{g}",
    Form(_ghg_contracted, ()),
    "g_hess_g",
    "Eqs 36, 39 (corrected)",
)
lookup("C7").parts.update(
    {
        "pdot_term": Form(lambda n: contract(pdot[i] * d2fdp2[i, j] * pdot[j], i, j), ()),
        "output_term": Form(lambda n: 2 * contract(dfdp[i] * omega[i, m] * vdot(n)[m], i, m), ()),
        "layer_term": Form(
            lambda n, k: 2 * contract(delta(k)[i] * phi(k)[i, j] * vdot(k - 1)[j], i, j), ()
        ),
    }
)

# ---------------------------------------------------------------- low-rank (SGD direction)
# With g = -grad F, phi^(k) = -(1/B) sum_c Db(k)[c] (x) Vb(k-1)[c] and
# omega = -(1/B) sum_c Pb[c] (x) Vb(n)[c]: rank <= B.  Substituting these factors
# into C4, C5 and C7 and contracting sample against sample first (Gram matrices)
# costs B^2 w instead of B w^2 per layer.
_reg(
    "L1",
    "lowrank_tangent_source",
    "phi^(k) v_b^(k-1) for phi = -E[delta v^T], through B x B Gram factors",
    r"(\phi^{(k)} v_b^{(k-1)})_j",
    Form(
        lambda n, k: -contract(Db(k)[c, j] * Vb(k - 1)[c, t] * Vb(k - 1)[b, t], c, t) / B,
        ("b", "j"),
    ),
    "lowrank_source",
    "C4 with phi = -E[delta v^T] (Eq 28)",
    _k,
    ("k",),
)
_reg(
    "L2",
    "lowrank_output_source",
    "omega v_b^(n) for omega = -E[df/dp v^T]",
    r"(\omega v_b^{(n)})_i",
    Form(lambda n: -contract(Pb[c, i] * Vb(n)[c, t] * Vb(n)[b, t], c, t) / B, ("b", "i")),
    "lowrank_output_source",
    "C5 with omega = -E[df/dp v^T] (Eq 27)",
)
_reg(
    "L3",
    "lowrank_curvature",
    "sum_b delta_b^(k) phi^(k) vdot_b^(k-1) for phi = -E[delta v^T]",
    r"\sum_b \delta_b^{(k)} \phi^{(k)} \dot{v}_b^{(k-1)}",
    Form(
        lambda n, k: (
            -contract(Db(k)[b, i] * Db(k)[c, i] * Vb(k - 1)[c, j] * Vdotb(k - 1)[b, j], b, c, i, j)
            / B
        ),
        (),
    ),
    "lowrank_curvature",
    "C7 with phi = -E[delta v^T] (Eq 28)",
    _k,
    ("k",),
)
_reg(
    "L4",
    "lowrank_output_curvature",
    "sum_b df/dp_b omega vdot_b^(n) for omega = -E[df/dp v^T]",
    r"\sum_b \frac{\partial f}{\partial p_b} \omega \dot{v}_b^{(n)}",
    Form(
        lambda n: -contract(Pb[b, i] * Pb[c, i] * Vb(n)[c, m] * Vdotb(n)[b, m], b, c, i, m) / B,
        (),
    ),
    "lowrank_output_curvature",
    "C7 with omega = -E[df/dp v^T] (Eq 27)",
)
_reg(
    "L5",
    "lowrank_sq_norm",
    "||phi^(k)||^2 for phi = -E[delta v^T]: (1/B^2) sum_bc (Db Db^T)_bc (V V^T)_bc",
    r"\|\phi^{(k)}\|^2",
    Form(
        lambda n, k: (
            contract(Db(k)[b, i] * Db(k)[c, i] * Vb(k - 1)[b, j] * Vb(k - 1)[c, j], b, c, i, j)
            / B**2
        ),
        (),
    ),
    "lowrank_sq_norm",
    "Eq 40 with phi = -E[delta v^T]",
    _k,
    ("k",),
)

# ---------------------------------------------------------------- factored Gauss-Newton
# The softmax cross-entropy Hessian factors as d2f/dp2 = R^T R with
# R[e, l] = sqrt(s yhat_e) (delta_el - yhat_l) (s = sum of the label row, sum yhat = 1).
# Contracting R with the Jacobian of p first gives sqrt(s yhat_e) (A_e - yhat . A):
# the centred differences of Eqs 34-36, Table 2 and C7's pdot term, instead of
# their difference of large similar products (which loses accuracy in float32 when
# the logits of a sample are nearly equal).  C15 states the factorization; C16-C17
# apply R to the Jacobian and to pdot; C18-C23 are the Gauss-Newton parts with R.
rfac, rpdot, rjac, eta_f = F["rfac"](), F["rpdot"](), F["rjac"], F["eta"]
e, q, a = idx("e q a")
_rr = contract(rfac[e, i] * rfac[e, s], e)

_reg(
    "C15",
    "gauss_newton_factor",
    "softmax Hessian as a Gram matrix: d2f/dp2 = R^T R, R = sqrt(s yhat) (I - 1 yhat^T)",
    r"\frac{\partial^2 f}{\partial p^i \partial p^s}",
    Form(lambda n: _rr, ("i", "s")),
    "gauss_newton_factor",
    "Eqs 14-15",
)
_reg(
    "C16",
    "factored_jacobian",
    "factored Jacobian of p by w^(k): J^(k) = R u eta^(n,k) v^(k-1)",
    r"\mathcal{J}^{(k),e}_{ij}",
    Form(
        lambda n, k: contract(rfac[e, l] * u[l, m] * eta_f(n, k)[m, i] * v(k - 1)[j], l, m),
        ("e", "i", "j"),
    ),
    "factored_jacobian",
    "Eqs 28, 36 with C15",
    _k,
    ("k",),
)
_reg(
    "C17",
    "factored_tangent",
    "factored tangent of the logits: R pdot",
    r"(R \dot{p})_e",
    Form(lambda n: contract(rfac[e, l] * pdot[l], l), ("e",)),
    "factored_tangent",
    "C5 with C15",
)
_reg(
    "C18",
    "hessian_uu_factored",
    "Hessian block (u, u) with d2f/dp2 = R^T R: sum_e R_ei v_j R_es v_t",
    r"\frac{\partial^2 f}{\partial u_j^i \partial u_t^s}",
    Form(lambda n: contract(rfac[e, i] * v(n)[j] * rfac[e, s] * v(n)[t], e), ("i", "j", "s", "t")),
    "hessian_uu_factored",
    "Eq 34 with C15",
)
_reg(
    "C19",
    "hessian_uw_factored",
    "Hessian block (u, w^(k)) with d2f/dp2 = R^T R: df/dp eta v + sum_e R_ei v_j J^(k)_est",
    r"\frac{\partial^2 f}{\partial u_j^i \partial w_t^{(k),s}}",
    Form(
        lambda n, k: (
            dfdp[i] * eta_f(n, k)[j, s] * v(k - 1)[t]
            + contract(rfac[e, i] * v(n)[j] * rjac(k)[e, s, t], e)
        ),
        ("i", "j", "s", "t"),
    ),
    "hessian_uw_factored",
    "Eq 35 with C15, C16",
    _k,
    ("k",),
)


def _pairs(n: int) -> list[dict]:
    return [{"n": n, "k": k, "r": r} for k in range(1, n + 1) for r in range(1, n + 1)]


def _hww_factored(n, k, r):
    gauss_newton = contract(rjac(k)[e, i, j] * rjac(r)[e, s, t], e)
    curvature = cases(
        (
            r > k,
            lambda: contract(
                dfdp[l] * u[l, m] * eta_f(n, r)[m, s] * eta_f(r - 1, k)[t, i] * v(k - 1)[j], l, m
            ),
        ),
        (sp.Eq(r, k), lambda: sp.S.Zero),
        (
            r < k,
            lambda: contract(
                dfdp[l] * u[l, m] * eta_f(n, k)[m, i] * eta_f(k - 1, r)[j, s] * v(r - 1)[t], l, m
            ),
        ),
    )
    return gauss_newton + curvature


_reg(
    "C20",
    "hessian_ww_factored",
    "Hessian block (w^(k), w^(r)) with d2f/dp2 = R^T R: sum_e J^(k)_eij J^(r)_est + Eq 36's "
    "curvature term",
    r"\frac{\partial^2 f}{\partial w_j^{(k),i} \partial w_t^{(r),s}}",
    Form(_hww_factored, ("i", "j", "s", "t")),
    "hessian_ww_factored",
    "Eq 36 with C15, C16",
    _pairs,
    ("k", "r"),
)
_reg(
    "C21",
    "hessian_diag_u_factored",
    "Hessian diagonal, u entries, with d2f/dp2 = R^T R: sum_e R_ei^2 v_j^2",
    r"\frac{\partial^2 f}{(\partial u_j^i)^2}",
    Form(lambda n: contract(rfac[e, i] * rfac[e, i] * v(n)[j] * v(n)[j], e), ("i", "j")),
    "hessian_diag_u_factored",
    "Table 2 with C15",
)
_reg(
    "C22",
    "hessian_diag_w_factored",
    "Hessian diagonal, w^(k) entries, with d2f/dp2 = R^T R: sum_e (J^(k)_eij)^2",
    r"\frac{\partial^2 f}{(\partial w_j^{(k),i})^2}",
    Form(lambda n, k: contract(rjac(k)[e, i, j] * rjac(k)[e, i, j], e), ("i", "j")),
    "hessian_diag_w_factored",
    "Table 2 with C15, C16",
    _k,
    ("k",),
)
_reg(
    "C23",
    "pdot_term_factored",
    "Gauss-Newton term of g^T H g with d2f/dp2 = R^T R: ||R pdot||^2",
    r"\dot{p}^T \frac{\partial^2 f}{\partial p^2} \dot{p}",
    Form(lambda n: contract(rpdot[e] * rpdot[e], e), ()),
    "pdot_term_factored",
    "Eq 39, C7 with C15, C17",
)
