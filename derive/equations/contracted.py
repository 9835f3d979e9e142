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

from derive.notation import FAMILIES, contract, idx
from derive.registry import Equation, Form, get, register

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
    register(
        Equation(
            number=number,
            name=name,
            title=title,
            section="contracted (derived from " + derived_from + ")",
            paper_latex="",
            lhs_latex=lhs,
            labels=labels,
            printed=form,
            role="contracted",
            check=check,
            label_sets=label_sets or (lambda n: [{"n": n}]),
        )
    )


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
get("C4").parts.update(
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
get("C5").parts.update(
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
get("C7").parts.update(
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
