"""Conv and recurrent layers inside a network (derived forms, not in the paper).

B.2 treats one layer on its own and leaves the input derivatives "necessary for
calculating total derivatives via back-propagation" to the reader.  These are the
contracted forms a stack needs, derived from B.2's equations; each is self-checked
against an explicit layer differentiated by exact second-order jets
(:mod:`derive.stack_checks`).

Convolutional layer fed by another layer (from Eqs 45-52 with channels):

* the input enters only through the patches, linearly (Eq 45), so a tangent ``xdot`` of
  the input has patches ``zx`` (Eq 45 applied to ``xdot``) and adds ``w . zx`` to the
  pre-activation tangent (C28, Eq 47.mc contracted with ``xdot``);
* the pre-activation is bilinear in the kernels and the patches, so its mixed second
  derivative (the ``A'`` part of Eq 51.mc) contracted with a kernel direction ``Phi`` and
  ``xdot`` gives the layer's cross term ``2 delta . (Phi . zx)`` (C29); its ``A''`` parts
  (Eqs 50.mc-52.mc) are C14 with the full tangent ``zdot = z . Phi + w . zx + psi`` (C33);
* the adjoint of the input is that of the patches (C30) gathered back through Eq 48's
  selection tensor (C31): a scatter-add over the static patch grid;
* a bias ``b_o`` per output channel adds ``sum_st delta`` to the gradient (C32).

Recurrent layer with an input at every step.  The paper's recursion (Eqs 58-59) feeds
the input once, as the initial state.  A sequence (an image read row by row) needs an
input at every step; the layer here is

    z_(t) = w v_(t-1) + U x_(t) + b,   v_(t) = A(z_(t)),   t = 1..T,   v_(0) = x_0

(Eq 58.s).  With ``U = 0``, ``b = 0`` and ``v_(0) = x`` it is Eqs 58-59; the sequence
layer starts from ``v_(0) = 0``.  Unrolled, it is B.1's network with tied weights
(Eq 60: a derivative by a tied weight is the sum over the steps' copies), so with the
adjoints ``delta_(t) = df/dz_(t)`` and tangents of the unrolled stack (C1-C4, C9-C10 at
the tied weights) Eqs 61-65 and their B.3 forms contract to step sums (C35-C41).
Arrays with a step axis ``[t, .]`` hold steps ``t = 1..T``; ``sv`` and ``svdot`` hold the
states and their tangents *entering* each step (``v_(t-1)``, ``vdot_(t-1)``).
"""

from __future__ import annotations

from derive.equations import bias, contracted, convolution, recurrent  # noqa: F401  (registered first: forms used here)
from derive.forms import Equation, Form, register, register_derived
from derive.forms import lookup as get
from derive.notation import FAMILIES, contract, idx
from derive.stack_checks import STACK_CHECKS

F = FAMILIES
mw, mz, mphi, mdelta, mvbar, ma2, mzdot = (
    F["mw"](), F["mz"](), F["mphi"](), F["mdelta"](), F["mvbar"](), F["ma2"](), F["mzdot"](),
)  # fmt: skip
mzx, mzbar, cdz = F["mzx"](), F["mzbar"](), F["cdz"]()
wr, ur, phir, phiu = F["wr"](), F["ur"](), F["phir"](), F["phiu"]()
sx, sxdot, sv, svdot = F["sx"](), F["sxdot"](), F["sv"](), F["svdot"]()
sdelta, svbar, sa2, szdot = F["sdelta"](), F["svbar"](), F["sa2"](), F["szdot"]()
o, c, s, t, l, k, i, j = idx("o c s t l k i j")

CONV = "B.2.1 stacked (derived)"
REC = "B.2.2 with an input at every step (derived)"


def _cases(n: int) -> list[dict]:
    return [{"n": n, "case": cc} for cc in range(2)]


def _reg(number, name, title, section, cites, lhs, form, check, role="contracted", labels=()):
    register_derived(number, name, title, lhs, form, STACK_CHECKS[check] if check else None,
                     f"{section}; from {cites}", labels=labels, label_sets=_cases, role=role,
                     activation="general")  # fmt: skip


# ---------------------------------------------------------------- conv layer in a stack
register(
    Equation(
        number="46.b",
        name="conv_layer_bias",
        title="conv layer with a bias per output channel: z_ost = z . w + b_o",
        section=CONV,
        paper_latex="",
        lhs_latex=r"\mathcal{A}^{-1}(v_t^{o,s})",
        printed=Form(
            lambda: contract(mz[c, s, t, l, k] * mw[o, c, l, k], c, l, k), ("o", "s", "t")
        ),
        role="definition",
    )
)
_reg("C28", "conv_input_tangent",
     "input part of the conv tangent: w . zx, zx the patches of the input tangent (Eq 45)",
     CONV, "Eqs 45, 47.mc", r"\dot{z}_t^{o,s}",
     Form(lambda: contract(mw[o, c, l, k] * mzx[c, s, t, l, k], c, l, k), ("o", "s", "t")),
     "sconv_input_tangent")  # fmt: skip
_reg("C29", "conv_cross_term",
     "cross term of a conv layer fed by another layer: 2 delta . (Phi . zx)",
     CONV, "Eq 51.mc contracted with Phi and xdot", r"2 \Phi^T \frac{\partial^2 f}{\partial w \partial x}\dot{x}",
     Form(lambda: 2 * contract(mdelta[o, s, t] * mphi[o, c, l, k] * mzx[c, s, t, l, k],
                               o, s, t, c, l, k), ()),
     "sconv_cross")  # fmt: skip
_reg("C30", "conv_patch_adjoint", "adjoint of the patches: zbar = sum_o delta w",
     CONV, "Eq 46.mc", r"\frac{\partial f}{\partial z_{tk}^{c,sl}}",
     Form(lambda: contract(mdelta[o, s, t] * mw[o, c, l, k], o), ("c", "s", "t", "l", "k")),
     "sconv_patch_adjoint")  # fmt: skip
_reg("C31", "conv_input_adjoint",
     "adjoint of the input: the patch adjoint gathered through Eq 48 (a scatter-add)",
     CONV, "Eqs 47.mc, 48", r"\frac{\partial f}{\partial x_j^{c,i}}",
     Form(lambda: contract(mzbar[c, s, t, l, k] * cdz[s, t, l, k, i, j], s, t, l, k),
          ("c", "i", "j")),
     "sconv_input_adjoint")  # fmt: skip
_reg("C32", "conv_grad_bias", "gradient of the conv bias: sum over positions of delta",
     CONV, "Eq 46.b", r"\frac{\partial f}{\partial b^o}",
     Form(lambda: contract(mdelta[o, s, t], s, t), ("o",)), "sconv_grad_bias")  # fmt: skip


def _conv_layer_term():
    return get("C29").form() + get("C14").form()


_reg("C33", "conv_layer_curvature",
     "the conv layer's own terms of g^T H g along (Phi, psi, xdot): C29 + C14 with zdot = "
     "C12 + C28 + psi",
     CONV, "Eqs 50.mc-52.mc, C12-C14", r"\bar{v} \cdot \ddot{v}", Form(_conv_layer_term, ()),
     "sconv_layer_curvature")  # fmt: skip

# ---------------------------------------------------------------- recurrent with inputs
register(
    Equation(
        number="58.s",
        name="recurrent_layer_input",
        title="recurrent layer with an input at every step: z_(t) = w v_(t-1) + U x_(t) + b",
        section=REC,
        paper_latex="",
        lhs_latex=r"z_{(t)}^j - b^j",
        printed=Form(
            lambda: contract(wr[j, i] * sv[t, i], i) + contract(ur[j, i] * sx[t, i], i),
            ("t", "j"),
        ),
        role="definition",
    )
)
_reg("C34", "rec_input_preactivation", "input part of every step's pre-activation: U x_(t)",
     REC, "Eq 58.s", r"U_i^j x_{(t)}^i",
     Form(lambda: contract(ur[j, i] * sx[t, i], i), ("t", "j")), "", role="definition")  # fmt: skip
_reg("C35", "rec_grad_w", "gradient of the tied weight: sum_t delta_(t) v_(t-1)",
     REC, "Eqs 60-61 with C3", r"\frac{\partial f}{\partial w_i^j}",
     Form(lambda: contract(sdelta[t, j] * sv[t, i], t), ("j", "i")), "srec_grad_w")  # fmt: skip
_reg("C36", "rec_grad_u", "gradient of the input weights: sum_t delta_(t) x_(t)",
     REC, "Eq 58.s with C3", r"\frac{\partial f}{\partial U_i^j}",
     Form(lambda: contract(sdelta[t, j] * sx[t, i], t), ("j", "i")), "srec_grad_u")  # fmt: skip
_reg("C37", "rec_grad_bias", "gradient of the recurrent bias: sum_t delta_(t)",
     REC, "Eq 58.s with C24", r"\frac{\partial f}{\partial b^j}",
     Form(lambda: contract(sdelta[t, j], t), ("j",)), "srec_grad_b")  # fmt: skip
_reg("C38", "rec_input_adjoint", "adjoint of the step inputs: U^T delta_(t)",
     REC, "Eq 58.s with C10", r"\frac{\partial f}{\partial x_{(t)}^i}",
     Form(lambda: contract(sdelta[t, j] * ur[j, i], j), ("t", "i")), "srec_input_adjoint")  # fmt: skip


def _source():
    return (
        contract(phir[j, i] * sv[t, i], i)
        + contract(phiu[j, i] * sx[t, i], i)
        + contract(ur[j, i] * sxdot[t, i], i)
    )


_reg("C39", "rec_tangent_source",
     "the parts of every step's tangent known before the recursion: phi v_(t-1) + phi_U x_(t) "
     "+ U xdot_(t)", REC, "Eq 58.s with C9", r"\dot{z}_{(t)}^j - \psi^j - w_i^j \dot{v}_{(t-1)}^i",
     Form(_source, ("t", "j")), "srec_source")  # fmt: skip
get("C39").parts.update(
    {
        "state": Form(lambda: contract(phir[j, i] * sv[t, i], i), ("t", "j")),
        "input": Form(lambda: contract(phiu[j, i] * sx[t, i], i), ("t", "j")),
        "input_tangent": Form(lambda: contract(ur[j, i] * sxdot[t, i], i), ("t", "j")),
    }
)
_reg("C40", "rec_tangent",
     "the tangent recursion: zdot_(t) = C39 + w vdot_(t-1) + psi (the bias direction, the same "
     "at every step), vdot_(t) = A'(z_(t)) zdot_(t)",
     REC, "C4, C9 at the tied weight", r"\dot{z}_{(t)}^j - \psi^j",
     Form(lambda: _source() + contract(wr[j, i] * svdot[t, i], i), ("t", "j")),
     "srec_zdot")  # fmt: skip


def _rec_terms():
    return (
        2 * contract(sdelta[t, j] * phir[j, i] * svdot[t, i], t, j, i)
        + 2 * contract(sdelta[t, j] * phiu[j, i] * sxdot[t, i], t, j, i)
        + contract(svbar[t, j] * sa2[t, j] * szdot[t, j] * szdot[t, j], t, j)
    )


_reg("C41", "rec_layer_curvature",
     "the recurrent layer's own terms of g^T H g: 2 sum_t delta_(t) . (phi vdot_(t-1) + phi_U "
     "xdot_(t)) + sum_t vbar_(t) A''(z_(t)) zdot_(t)^2",
     REC, "Eqs 63.g-65.g contracted with the direction (C7, C11 at the tied weight)",
     r"\bar{v}_{(T)} \cdot \ddot{v}_{(T)}", Form(_rec_terms, ()), "srec_layer_curvature")  # fmt: skip
get("C41").parts.update(
    {
        "state_term": Form(
            lambda: 2 * contract(sdelta[t, j] * phir[j, i] * svdot[t, i], t, j, i), ()
        ),
        "input_term": Form(
            lambda: 2 * contract(sdelta[t, j] * phiu[j, i] * sxdot[t, i], t, j, i), ()
        ),
        "second_order_term": Form(
            lambda: contract(svbar[t, j] * sa2[t, j] * szdot[t, j] * szdot[t, j], t, j), ()
        ),
    }
)
