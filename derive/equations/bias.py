"""Biases, which the paper omits: ``z^(k) = w^(k) v^(k-1) + b^(k)`` and ``p = u v^(n) + c``
(derived forms, not in the paper).

The rule every form below follows.  A bias is a weight on a constant input 1:
``dz^(k)/db_s^(k) = delta_s`` is ``dz^(k)/dw_t^(k),s = delta_s v^(k-1),t`` with the factor
``v^(k-1),t`` replaced by 1, and ``b^(k)`` appears nowhere else (in particular not in
``beta^(k) = gamma^(k) w^(k)``, Eq 20).  So every derivative by ``b^(k)`` is the derivative
by ``w^(k)`` keeping only the terms that carry the factor ``v^(k-1),t`` (the ones that came
from ``dz^(k)/dw^(k)``), with that factor replaced by 1; terms without it came from
``w^(k)`` multiplying something else (``delta_a^t`` in Eqs 30, 71-77) and vanish.  The same
holds for the output bias ``c`` with the factor ``v^(n),j`` of Eq 25.
:func:`bias_slot` applies the rule to an index form term by term; each equation here is
the rule applied to the equation it cites, and each is self-checked against an explicit
network with biases (:mod:`derive.stack_checks`), not against the form it came from.

Contracted and low-rank forms: the bias gradient is the adjoint itself (C24), the tangent
gains ``psi^(k)`` (C25), ``g^T H g`` gains no cross term (C26: a bias multiplies no other
quantity, so the mixed second derivatives of the layer maps along a bias vanish) and, for
``g = -grad F``, the bias direction ``-E[delta]`` adds 1 to the Gram matrix of the low-rank
tangent source (L6, L7).
"""

from __future__ import annotations

import sympy as sp

from derive.equations import contracted, feedforward_relu, general_activation  # noqa: F401  (registered first: forms used here)
from derive.forms import Equation, Form, register, register_derived
from derive.forms import lookup as get
from derive.indexform import Term, terms
from derive.notation import FAMILIES, contract, idx
from derive.stack_checks import STACK_CHECKS

F = FAMILIES
v, bias, psi, eta = F["v"], F["bias"], F["psi"], F["eta"]
w, phi, vdot, delta, a1 = F["w"], F["phi"], F["vdot"], F["delta"], F["a1"]
Db, Pb = F["Db"], F["Pb"]()
u, ub = F["u"](), F["ub"]()
j, i, t, c = idx("j i t c")
B = sp.Symbol("B", positive=True, integer=True)

SECTION = "B.1 with biases (derived)"
B3 = "B.3 with biases (derived)"
CONTRACTED = "contracted (derived from C1-C11 with biases)"


# ---------------------------------------------------------------------- the rule
def _rebuild(ts: list[Term]) -> sp.Expr:
    """An index-form expression from terms (the inverse of :func:`terms`)."""
    total = sp.S.Zero
    for term in ts:
        factors = []
        for f in term.factors:
            ids = tuple(sp.Idx(x) for x in f.indices)
            factors.append(
                sp.KroneckerDelta(*ids) if f.base is None else sp.IndexedBase(f.base)[ids]
            )
        body = term.coefficient * sp.Mul(*factors)
        total += contract(body, *(sp.Idx(x) for x in sorted(term.summed)))
    return total


def _slot(expr: sp.Expr, free: tuple[str, ...], base: str, index: str) -> sp.Expr:
    out = []
    for term in terms(expr, free):
        hits = [
            pos for pos, f in enumerate(term.factors) if f.base == base and f.indices == (index,)
        ]
        if len(hits) > 1:
            raise ValueError(f"{base}[{index}] appears twice in a term")
        if hits:
            pos = hits[0]
            out.append(
                Term(term.coefficient, term.factors[:pos] + term.factors[pos + 1 :], term.summed)
            )
    return _rebuild(out)


def bias_slot(expr: sp.Expr, free: tuple[str, ...], base: sp.IndexedBase, index: str) -> sp.Expr:
    """The rule: keep the terms of ``expr`` that carry ``base[index]``, with it replaced by 1.

    ``base`` is the input of the layer whose weight becomes a bias (``v(k-1)``, or ``v(n)``
    for the output bias) and ``index`` that weight's column index.  Piecewise forms (over
    layer labels) are transformed branch by branch.
    """
    expr = sp.piecewise_fold(sp.sympify(expr))
    name = str(base.label)
    if isinstance(expr, sp.Piecewise):
        return sp.Piecewise(*((_slot(e, free, name, index), cond) for e, cond in expr.args))
    return _slot(expr, free, name, index)


def _rule(number: str, slots, free: tuple[str, ...], params: tuple[str, ...]) -> Form:
    """Eq ``number`` (kernel form) with ``slots`` = ``[(labels -> base, index), ...]``."""
    out_free = tuple(x for x in free if x not in {ix for _, ix in slots})

    def build(**labels):
        expr = get(number).form(**labels)
        cur_free = free
        for base_of, ix in slots:
            expr = bias_slot(expr, cur_free, base_of(labels), ix)
            cur_free = tuple(x for x in cur_free if x != ix)
        return expr

    return Form(_SIGNATURES[params](build), out_free)


# explicit signatures: the registry and the printer read a form's labels from its parameters
_SIGNATURES = {
    ("n",): lambda f: lambda n: f(n=n),
    ("n", "k"): lambda f: lambda n, k: f(n=n, k=k),
    ("n", "k", "l"): lambda f: lambda n, k, l: f(n=n, k=k, l=l),  # noqa: E741
    ("n", "k", "r"): lambda f: lambda n, k, r: f(n=n, k=k, r=r),
    ("n", "k", "q"): lambda f: lambda n, k, q: f(n=n, k=k, q=q),
}


def _pairs(n):
    return [{"n": n, "k": k, "r": r} for k in range(1, n + 1) for r in range(1, n + 1)]


def _ks(n):
    return [{"n": n, "k": k} for k in range(1, n + 1)]


def _kq(n):
    return [{"n": n, "k": k, "q": q} for k in range(1, n + 1) for q in range(1, n + 1)]


def _reg(number, name, title, lhs, form, check, cites, labels=(), label_sets=None, section=SECTION,
         activation="relu", role="derivative"):  # fmt: skip
    register_derived(number, name, title, lhs, form, STACK_CHECKS[check] if check else None,
                     f"{section}; {cites}", labels=labels, label_sets=label_sets, role=role,
                     activation=activation)  # fmt: skip


def _vkm1(lab):
    return v(lab["k"] - 1)


def _vrm1(lab):
    return v(lab["r"] - 1)


def _vqm1(lab):
    return v(lab["q"] - 1)


def _vn(lab):
    return v(lab["n"])


# ---------------------------------------------------------------------- definitions
register(
    Equation(
        number="10.b",
        name="preactivation_bias",
        title="hidden layer with a bias: z^(k) = w^(k) v^(k-1) + b^(k)",
        section=SECTION,
        paper_latex="",
        lhs_latex=r"z^{(k),j}",
        labels=("k",),
        printed=Form(lambda n, k: contract(w(k)[j, i] * v(k - 1)[i], i) + bias(k)[j], ("j",)),
        role="definition",
    )
)
register(
    Equation(
        number="13.b",
        name="logits_bias",
        title="logits with a bias: p = u v^(n) + c",
        section=SECTION,
        paper_latex="",
        lhs_latex=r"p^j",
        printed=Form(lambda n: contract(u[j, i] * v(n)[i], i) + ub[j], ("j",)),
        role="definition",
    )
)

# ---------------------------------------------------------------------- B.1 by the rule
_reg("24.b", "dv_db", "dv^(k)/db^(l) = eta^(k,l) (Eq 24 by the bias rule)",
     r"\frac{\partial v^{(k),j}}{\partial b^{(l),s}}",
     _rule("24", [(lambda L: v(L["l"] - 1), "t")], ("j", "s", "t"), ("n", "k", "l")),
     "bias_dv", "Eq 24", ("k", "l"),
     lambda n: [{"n": n, "k": k, "l": ll} for k in range(1, n + 1) for ll in range(1, n + 1)])  # fmt: skip
_reg("27.b", "grad_c", "df/dc = df/dp (Eq 27 by the bias rule)",
     r"\frac{\partial f}{\partial c^i}", _rule("27", [(_vn, "j")], ("i", "j"), ("n",)),
     "bias_grad_c", "Eq 27")  # fmt: skip
_reg("28.b", "grad_b", "df/db^(k) = df/dp u eta^(n,k) (Eq 28 by the bias rule)",
     r"\frac{\partial f}{\partial b^{(k),i}}",
     _rule("28", [(_vkm1, "j")], ("i", "j"), ("n", "k")), "bias_grad_b", "Eq 28", ("k",), _ks)  # fmt: skip
_reg("34.b", "hessian_cu", "Hessian block (c, u) (Eq 34 by the bias rule)",
     r"\frac{\partial^2 f}{\partial c^i \partial u_t^s}",
     _rule("34", [(_vn, "j")], ("i", "j", "s", "t"), ("n",)), "bias_hessian_cu", "Eq 34")  # fmt: skip
_reg("34.bb", "hessian_cc", "Hessian block (c, c) (Eq 34 by the bias rule, both slots)",
     r"\frac{\partial^2 f}{\partial c^i \partial c^s}",
     _rule("34", [(_vn, "j"), (_vn, "t")], ("i", "j", "s", "t"), ("n",)), "bias_hessian_cc",
     "Eq 34")  # fmt: skip
_reg("35.b", "hessian_ub", "Hessian block (u, b^(k)) (Eq 35 by the bias rule)",
     r"\frac{\partial^2 f}{\partial u_j^i \partial b^{(k),s}}",
     _rule("35", [(_vkm1, "t")], ("i", "j", "s", "t"), ("n", "k")), "bias_hessian_ub", "Eq 35",
     ("k",), _ks)  # fmt: skip
_reg("35.bw", "hessian_cw", "Hessian block (c, w^(k)) (Eq 35 by the bias rule)",
     r"\frac{\partial^2 f}{\partial c^i \partial w_t^{(k),s}}",
     _rule("35", [(_vn, "j")], ("i", "j", "s", "t"), ("n", "k")), "bias_hessian_cw", "Eq 35",
     ("k",), _ks)  # fmt: skip
_reg("35.bb", "hessian_cb", "Hessian block (c, b^(k)) (Eq 35 by the bias rule, both slots)",
     r"\frac{\partial^2 f}{\partial c^i \partial b^{(k),s}}",
     _rule("35", [(_vn, "j"), (_vkm1, "t")], ("i", "j", "s", "t"), ("n", "k")), "bias_hessian_cb",
     "Eq 35", ("k",), _ks)  # fmt: skip
_reg("36.b", "hessian_wb", "Hessian block (w^(k), b^(r)) (Eq 36 by the bias rule)",
     r"\frac{\partial^2 f}{\partial w_j^{(k),i} \partial b^{(r),s}}",
     _rule("36", [(_vrm1, "t")], ("i", "j", "s", "t"), ("n", "k", "r")), "bias_hessian_wb",
     "Eq 36", ("k", "r"), _pairs)  # fmt: skip
_reg("36.bb", "hessian_bb", "Hessian block (b^(k), b^(r)) (Eq 36 by the bias rule, both slots)",
     r"\frac{\partial^2 f}{\partial b^{(k),i} \partial b^{(r),s}}",
     _rule("36", [(_vkm1, "j"), (_vrm1, "t")], ("i", "j", "s", "t"), ("n", "k", "r")),
     "bias_hessian_bb", "Eq 36", ("k", "r"), _pairs)  # fmt: skip

# ---------------------------------------------------------------------- B.3 by the rule
# Eq 77 (corrected): d2 v^(n),j / dw_i^(k),l dw_t^(q),s, free (j, l, i, s, t)
_reg("77.b", "d2v_dw_db_general", "d2v^(n)/dw^(k) db^(q), general activation (Eq 77 by the rule)",
     r"\frac{\partial^2 v^{(n),j}}{\partial w_i^{(k),l} \partial b^{(q),s}}",
     _rule("77", [(_vqm1, "t")], ("j", "l", "i", "s", "t"), ("n", "k", "q")), "bias_d2v_wb", "Eq 77",
     ("k", "q"), _kq, B3, "general")  # fmt: skip
_reg("77.bw", "d2v_db_dw_general",
     "d2v^(n)/db^(k) dw^(q), general activation (Eq 77 by the rule; equals Eq 75)",
     r"\frac{\partial^2 v^{(n),j}}{\partial b^{(k),l} \partial w_t^{(q),s}}",
     _rule("77", [(_vkm1, "i")], ("j", "l", "i", "s", "t"), ("n", "k", "q")), "bias_d2v_bw", "Eq 77",
     ("k", "q"), _kq, B3, "general")  # fmt: skip
_reg("77.bb", "d2v_db_db_general",
     "d2v^(n)/db^(k) db^(q), general activation (Eq 77 by the rule, both slots)",
     r"\frac{\partial^2 v^{(n),j}}{\partial b^{(k),l} \partial b^{(q),s}}",
     _rule("77", [(_vkm1, "i"), (_vqm1, "t")], ("j", "l", "i", "s", "t"), ("n", "k", "q")),
     "bias_d2v_bb", "Eq 77", ("k", "q"), _kq, B3, "general")  # fmt: skip

# ---------------------------------------------------------------------- contracted
_reg("C24", "grad_b_adjoint", "bias gradient from the adjoint sweep: df/db^(k) = delta^(k)",
     r"\frac{\partial f}{\partial b^{(k),i}}", Form(lambda n, k: delta(k)[i], ("i",)),
     "bias_grad_b", "Eq 28.b with C1-C2", ("k",), _ks, CONTRACTED)  # fmt: skip


def _tangent_bias(n, k):
    src = contract(phi(k)[j, t] * v(k - 1)[t], t) + psi(k)[j]
    prop = contract(w(k)[j, i] * vdot(k - 1)[i], i) if k != 1 else 0
    return src + prop


_reg("C25", "tangent_preactivation_bias",
     "tangent of the pre-activation with biases: zdot^(k) = phi^(k) v^(k-1) + psi^(k) + w^(k) vdot^(k-1)",
     r"\dot{z}^{(k)}_j", Form(_tangent_bias, ("j",)), "bias_zdot", "C9 with Eq 10.b", ("k",), _ks,
     CONTRACTED, "general")  # fmt: skip
get("C25").parts["bias"] = Form(lambda n, k: psi(k)[j], ("j",))


def _ghg_bias(n):
    """C11's terms, each read with the bias-including tangents (C25)."""
    return get("C11").form(n=n)


_reg("C26", "g_hess_g_bias",
     "g^T H g with biases: C11 unchanged (no cross terms along a bias), with the tangents of C25",
     r"\mathbf{g}^T \mathbf{H} \mathbf{g}", Form(_ghg_bias, ()), "bias_g_hess_g",
     "C7, C11 with Eqs 10.b, 13.b", (), None, CONTRACTED, "general")  # fmt: skip
_reg("C27", "g_dot_grad_bias", "g^T grad f with biases: df/dp . pdot, pdot = C5 + omega_c",
     r"\mathbf{g}^T \nabla f", Form(lambda n: contract(F["dfdp"]()[i] * F["pdot"]()[i], i), ()),
     "bias_g_dot_grad", "C6 with Eq 13.b", (), None, CONTRACTED, "general")  # fmt: skip

# ---------------------------------------------------------------------- low rank
# With g = -grad F the bias directions are -E[delta^(k)] and -E[df/dp] (C24, Eq 27.b): a
# bias is a weight on the constant input 1, so its part of the low-rank tangent source of
# L1 (L2) is the Gram factor with V replaced by 1, the batch mean of the factors Db (Pb).
_reg("L6", "lowrank_bias_direction",
     "psi^(k) = -(1/B) sum_c Db(k)[c]: the bias part of the SGD direction (L1 with V -> 1)",
     r"\psi^{(k)}_j", Form(lambda n, k: -contract(Db(k)[c, j], c) / B, ("j",)),
     "lowrank_bias", "L1 with C24", ("k",), _ks, CONTRACTED)  # fmt: skip
_reg("L7", "lowrank_output_bias_direction",
     "omega_c = -(1/B) sum_c Pb[c]: the output-bias part of the SGD direction (L2 with V -> 1)",
     r"\omega_{c,i}", Form(lambda n: -contract(Pb[c, i], c) / B, ("i",)),
     "lowrank_bias", "L2 with Eq 27.b", (), None, CONTRACTED)  # fmt: skip
