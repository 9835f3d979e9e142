"""Forms behind the CR variants (the paper's future work, Section 4): derived, not printed.

Per-variable CR (Table 2, the Discussion's "variable-specific learning rates") needs the
Hessian diagonal for every weight.  C22 gives it from the factored Jacobian C16, whose
``R u eta^(n,k)`` is, row by row of ``R``, the adjoint sweep C10/C1-C2 started from a row
of ``R`` instead of ``df/dp``:

* C42: the factored adjoint of ``v^(k)``: ``R u`` at the top, ``Zbar^(k+1) w^(k+1)`` below;
* C43: the factored adjoint of ``z^(k)``: ``Zbar^(k) = A'(z^(k)) Vbar^(k)`` (= ``R u
  eta^(n,k)``, Eq 23);
* C44: C22 with C16 = ``Zbar^(k)_ei v^(k-1)_j``: ``sum_e Zbar_ei^2 v_j^2``.

One sweep per row of ``R``: ``classes`` adjoint sweeps for the whole diagonal.

Per-layer CR ("rescaling the step of each variable in that layer by some measure of the
block diagonal component of the Hessian") takes Eq 37 per layer with the layer's block:
C45 (``w^(k)``) and C46 (``u``), the terms Eq 39 prints for ``r = k`` (its Gauss-Newton
sum over ``k`` only), which are exactly the diagonal blocks for the ReLU (Eq 36 at
``r = k`` has no curvature term).

The scale-invariant step measures the cubic term in a diagonal metric (V1, V2); the
adaptive rule compares the model's predicted decrease (V3) with the actual one (V4) and
updates sigma (V5); V6 is Table 2's per-variable step along a base direction; V7 caps
Eq 37's length by the predicted change of the logits (the output tangent of C4-C5).
"""

from __future__ import annotations

import sympy as sp

from derive import variant_model as vm
from derive.check_table import CHECKS
from derive.equations.feedforward_relu import cases
from derive.forms import Form, lookup, register_derived
from derive.notation import FAMILIES, contract, idx

F = FAMILIES
w, v, a1, eta, phi = F["w"], F["v"], F["a1"], F["eta"], F["phi"]
rvbar, rdelta, metw = F["rvbar"], F["rdelta"], F["metw"]
u, rfac, d2fdp2, omega, metu = F["u"](), F["rfac"](), F["d2fdp2"](), F["omega"](), F["metu"]()
i, j, m, s, t, l, q, a, e = idx("i j m s t l q a e")


def _k(n: int) -> list[dict]:
    return [{"n": n, "k": k} for k in range(1, n + 1)]


def _reg(number, name, title, lhs, form, check, derived_from, label_sets=None, labels=()):
    register_derived(number, name, title, lhs, form, CHECKS[check],
                     f"variants (derived from {derived_from})", labels=labels,
                     label_sets=label_sets)  # fmt: skip


# ------------------------------------------------------------------ Hessian diagonal
_reg(
    "C42",
    "factored_adjoint_v",
    "factored adjoint of v^(k): Vbar^(n) = R u, Vbar^(k) = Zbar^(k+1) w^(k+1) (C10 per row of R)",
    r"\bar{V}^{(k)}_{ei}",
    Form(
        lambda n, k: cases(
            (sp.Eq(k, n), lambda: contract(rfac[e, l] * u[l, i], l)),
            (k < n, lambda: contract(rdelta(k + 1)[e, j] * w(k + 1)[j, i], j)),
        ),
        ("e", "i"),
    ),
    "factored_adjoint_v",
    "C10 and C15: df/dp replaced by a row of R",
    _k,
    ("k",),
)
_reg(
    "C43",
    "factored_adjoint_z",
    "factored adjoint of z^(k): Zbar^(k) = A'(z^(k)) Vbar^(k) = R u eta^(n,k)",
    r"\bar{Z}^{(k)}_{ei}",
    Form(lambda n, k: a1(k)[i] * rvbar(k)[e, i], ("e", "i")),
    "factored_adjoint_z",
    "C1-C2 and C16: delta with df/dp replaced by a row of R",
    _k,
    ("k",),
)
_reg(
    "C44",
    "hessian_diag_w_adjoint",
    "Hessian diagonal, w^(k) entries, from the factored adjoints: sum_e Zbar_ei^2 v_j^2",
    r"\frac{\partial^2 f}{(\partial w_j^{(k),i})^2}",
    Form(
        lambda n, k: contract(rdelta(k)[e, i] * rdelta(k)[e, i] * v(k - 1)[j] * v(k - 1)[j], e),
        ("i", "j"),
    ),
    "hessian_diag_w_adjoint",
    "Table 2, C22 with C16 = Zbar^(k) v^(k-1) (C43)",
    _k,
    ("k",),
)

# ------------------------------------------------------------------ block curvature
_reg(
    "C45",
    "block_curvature_w",
    "diagonal block of g^T H g for w^(k): phi^(k) H_(kk) phi^(k) (Eq 39's r = k Gauss-Newton term)",
    r"\boldsymbol{\phi}^{(k)T} \mathbf{H}_{kk} \boldsymbol{\phi}^{(k)}",
    Form(
        lambda n, k: contract(
            d2fdp2[l, q]
            * u[l, m]
            * eta(n, k)[m, i]
            * phi(k)[i, j]
            * v(k - 1)[j]
            * u[q, a]
            * eta(n, k)[a, s]
            * phi(k)[s, t]
            * v(k - 1)[t],
            l,
            q,
            m,
            a,
            i,
            j,
            s,
            t,
        ),  # fmt: skip
        (),
    ),
    "block_curvature_w",
    "Eqs 36 (r = k), 39",
    _k,
    ("k",),
)
_reg(
    "C46",
    "block_curvature_u",
    "diagonal block of g^T H g for u: omega H_uu omega (Eq 39's first term)",
    r"\boldsymbol{\omega}^T \mathbf{H}_{uu} \boldsymbol{\omega}",
    Form(
        lambda n: contract(
            d2fdp2[i, s] * omega[i, j] * v(n)[j] * omega[s, t] * v(n)[t], i, j, s, t
        ),
        (),
    ),
    "block_curvature_u",
    "Eqs 34, 39",
)


# ------------------------------------------------------------------ scale-invariant CR
def _metric_u(n):
    return contract(metu[i, j] * omega[i, j] * omega[i, j], i, j)


def _metric_w(n, k):
    return contract(metw(k)[i, j] * phi(k)[i, j] * phi(k)[i, j], i, j)


def _metric(n):
    return _metric_u(n) + sum((_metric_w(n, k) for k in range(1, n + 1)), sp.S.Zero)


_reg(
    "V1",
    "metric_sq_norm",
    "squared norm of g in a diagonal metric M: ||g||_M^2 = sum M omega^2 + sum_k M phi^2",
    r"\|\mathbf{g}\|_M^2",
    Form(_metric, ()),
    "metric_sq_norm",
    "Eq 40 with a diagonal metric",
)
lookup("V1").parts.update({"u_term": Form(_metric_u, ()), "w_term": Form(_metric_w, ())})

_reg(
    "V2",
    "cr_step_length_metric",
    "CR step length with the cubic term in the metric M: Eq 37 with c = sigma ||g||_M^3",
    r"\alpha_M",
    Form(vm.metric_step_length, ()),
    "metric_step",
    "Eqs 8, 37 and V1",
)

# ------------------------------------------------------------------ adaptive sigma (ARC)
_reg(
    "V3",
    "predicted_decrease",
    "decrease the cubic model predicts at Eq 37's root: m(0) - m(alpha) = -alpha d/2 + "
    "c alpha^3/12",
    r"m(0) - m(\alpha)",
    Form(vm.predicted_decrease, ()),
    "predicted_decrease",
    "Eqs 8, 37",
)
_reg(
    "V4",
    "loss_change",
    "change of f from the change of the logits: s log(sum yhat exp(dp)) - y . dp",
    r"f(\mathbf{p} + \delta\mathbf{p}) - f(\mathbf{p})",
    Form(lambda: vm.loss_change()[0], ()),
    "loss_change",
    "Eqs 14-15",
)
_reg(
    "V5",
    "arc_sigma_update",
    "ARC update of sigma from rho = actual / predicted decrease (step taken iff rho >= eta_1)",
    r"\sigma_{j+1}",
    Form(vm.arc_sigma, ()),
    "arc_rule",
    "Eq 8's sigma_j update (Section 3, after Kohler & Lucchi), V3, V4",
)
_reg(
    "V6",
    "per_variable_step",
    "per-variable step along the base direction's component d_i: alpha(d_i^2 H_ii, "
    "d_i g_i, sigma |d_i|^3) d_i",
    r"\alpha_i d_i",
    Form(lambda: vm.per_variable_step()[0], ()),
    "per_variable_step",
    "Table 2 (corrected), Eq 37, C44",
)
_reg(
    "V7",
    "output_trust_step",
    "output-trust step length: Eq 37's alpha, at most r_p / sqrt(mean_m ||J_m g||^2), so the "
    "linearised change of the logits has RMS at most r_p",
    r"\alpha_T",
    Form(vm.output_trust_step, ()),
    "output_trust_step",
    "Eq 37, C4-C5 (pdot = J g, the tangent sweep of Eq 39)",
)
