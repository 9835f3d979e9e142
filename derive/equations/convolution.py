"""Appendix B.2.1: one convolutional layer, Eqs 44-57, then input and output channels
(derived, not in the paper) and the pieces a network that stacks the layer needs
(contracted forms C12-C14).

Reading of the indices.  Positions in the input (``x_j^i``: row ``i``, column ``j``) and
in the output (``v_t^s``) count from 0; kernel offsets (``w_k^l``: row ``l``, column
``k``) count from 1.  This is the one reading under which Eq 45,
``x_{tau t + k - 1}^{sigma s + l - 1}``, is a standard strided convolution for every
stride (output ``s = 0`` starts at input row 0) and under which Eq 54's condition
``i + 1 > sigma s`` says "kernel offset ``i + 1 - sigma s >= 1``".  Arrays are 0-based,
so the forms below index the kernel by *position* = offset - 1: the paper's
``w_{j+1-tau t}^{i+1-sigma s}`` is ``cw[i - sigma s, j - tau t]``.  The layer is a
cross-correlation with VALID padding, as ``jax.lax.conv_general_dilated`` computes it.

Array order: ``cx[i, j]``, ``cw[l, k]``, ``cv[s, t]``, patches ``cz[s, t, l, k]``
(output position first, then kernel position), ``cdz[s, t, m, q, i, j]`` for
``dz_tq^sm / dx_j^i``; a derivative by ``x_j^i`` or ``w_q^p`` appends ``[i, j]`` or
``[p, q]`` in the order the paper's denominator lists them.

Two kinds of forms:

* *patch* (z) forms, Eqs 46-52: index forms with explicit contractions, evaluated and
  printed like B.1's (``einsum``);
* *entry-wise* forms, Eqs 45, 48, 53-57: an expression per entry whose indices are
  affine in the free indices, with the paper's piecewise conditions.  They are
  evaluated entry by entry (:func:`derive.layer_checks.evaluate_entrywise`) and printed
  as gathers with masks.

Strides ``sigma`` (rows) and ``tau`` (columns) are the forms' labels.
"""

from __future__ import annotations

import sympy as sp

from derive.check_table import CHECKS
from derive.forms import Equation, Erratum, Form, register, register_derived
from derive.notation import FAMILIES, contract, idx

F = FAMILIES
cx, cw, cxt, cz, cdz = F["cx"](), F["cw"](), F["cxt"](), F["cz"](), F["cdz"]()
cv, ca1, ca2 = F["cv"](), F["ca1"](), F["ca2"]()
mx, mw, mz, mv = F["mx"](), F["mw"](), F["mz"](), F["mv"]()
ma1, ma2, mphi, ceye = F["ma1"](), F["ma2"](), F["mphi"](), F["ceye"]()
mdelta, mzdot, mvbar = F["mdelta"](), F["mzdot"](), F["mvbar"]()

SECTION = "B.2.1"

# einsum indices
s, t, l, k, m, q, p, r, a, b, i, j = idx("s t l k m q p r a b i j")
c, e, o, h = idx("c e o h")
# second and third output-channel indices, named after o so that sympy lists the delta
# delta_o^x with o first (the kernel printer sizes a delta by its first index)
x_, y_ = idx("x y")

# entry-wise indices and extents (integer symbols)
S_ = {name: sp.Symbol(name, integer=True) for name in "s t l k m q p a b i j".split()}
K_h, K_w = (
    sp.Symbol("K_h", integer=True, positive=True),
    sp.Symbol("K_w", integer=True, positive=True),
)
#: extent symbols of the entry-wise forms: name -> (base, axis)
EXTENTS = {"K_h": ("cw", 0), "K_w": ("cw", 1)}


def _cases_single(n: int) -> list[dict]:
    return [{"n": n, "case": cc} for cc in range(2)]


def _cases_multi(n: int) -> list[dict]:
    return [{"n": n, "case": cc} for cc in range(2)]


def _in_kernel(row: sp.Expr, col: sp.Expr) -> sp.Boolean:
    """Kernel positions ``0 <= row < K_h`` and ``0 <= col < K_w``."""
    return sp.And(row >= 0, row < K_h, col >= 0, col < K_w)


# ---------------------------------------------------------------- 44-46: the layer
register(
    Equation(
        number="44",
        name="conv_layer",
        title="convolutional layer (its pre-activation)",
        section=SECTION,
        paper_latex=r"\mathcal{A} \left( (\tilde{x}_t^s)_k w_k^l \right)",
        lhs_latex=r"v_t^s",
        form_lhs_latex=r"\mathcal{A}^{-1}(v_t^s)",
        printed=Form(lambda: contract(cxt[s, t, k] * cw[l, k], k), ("s", "t")),
        corrected=Form(lambda: contract(cz[s, t, l, k] * cw[l, k], l, k), ("s", "t")),
        erratum=Erratum(
            kinds=("free-index",),
            what=(
                "the patch (x~_t^s)_k carries only the column offset k, so l in w_k^l is "
                "a free index the left-hand side does not have (Eq 45 defines the patch "
                "with l on the right-hand side only)"
            ),
            reading="(x~_t^s)_k^l w_k^l, summed over l and k (as Eq 53 writes it)",
        ),
        role="definition",
        selfcheck=CHECKS["conv_preactivation"],
        label_sets=_cases_single,
    )
)


def _patch(free_l: bool):
    def build(sigma, tau):
        ss, tt, ll, kk = S_["s"], S_["t"], S_["l"], S_["k"]
        return cx[sigma * ss + ll, tau * tt + kk]

    return Form(build, ("s", "t", "l", "k") if free_l else ("s", "t", "k"))


register(
    Equation(
        number="45",
        name="conv_patch",
        title="the patch of output (s, t)",
        section=SECTION,
        paper_latex=r"x_{\tau t+k-1}^{\sigma s+l-1}",
        lhs_latex=r"(\tilde{x}_t^s)_k",
        labels=("sigma", "tau"),
        printed=_patch(False),
        corrected=_patch(True),
        erratum=Erratum(
            kinds=("free-index",),
            what="the left-hand side (x~_t^s)_k lacks the row offset l of the right-hand side",
            reading="(x~_t^s)_k^l = x_{tau t+k-1}^{sigma s+l-1} (= z_tk^sl of Eq 46)",
        ),
        role="definition",
        selfcheck=CHECKS["conv_patch"],
        label_sets=_cases_single,
    )
)
register(
    Equation(
        number="46",
        name="conv_layer_patches",
        title="convolutional layer through the patches z (its pre-activation)",
        section=SECTION,
        paper_latex=r"\mathcal{A} (z_{tk}^{sl} w_k^l)",
        lhs_latex=r"v_t^s",
        form_lhs_latex=r"\mathcal{A}^{-1}(v_t^s)",
        printed=Form(lambda: contract(cz[s, t, l, k] * cw[l, k], l, k), ("s", "t")),
        role="definition",
        selfcheck=CHECKS["conv_preactivation"],
        label_sets=_cases_single,
    )
)

# ---------------------------------------------------------------- 47-52: patch forms
register(
    Equation(
        number="47",
        name="conv_dv_dx",
        title="dv/dx through the patches",
        section=SECTION,
        paper_latex=(
            r"\mathcal{A}'(z_{tk}^{sl} w_k^l) w_p^m \frac{\partial z_{tq}^{sm}}{\partial x_j^i}"
        ),
        lhs_latex=r"\frac{\partial v_t^s}{\partial x_j^i}",
        printed=Form(
            lambda: contract(ca1[s, t] * cw[m, p] * cdz[s, t, m, q, i, j], m), ("s", "t", "i", "j")
        ),
        corrected=Form(
            lambda: contract(ca1[s, t] * cw[m, q] * cdz[s, t, m, q, i, j], m, q),
            ("s", "t", "i", "j"),
        ),
        erratum=Erratum(
            kinds=("free-index",),
            what=(
                "w_p^m multiplies dz_tq^sm/dx: the column offsets p and q are different "
                "indices, each appearing once, so neither is summed and both are left free"
            ),
            reading="w_q^m dz_tq^sm/dx_j^i, summed over m and q",
        ),
        selfcheck=CHECKS["conv_dv_dx"],
        label_sets=_cases_single,
    )
)


def _dzdx(use_q: bool):
    def build(sigma, tau):
        ss, tt, mm, qq, ii, jj = (S_[x] for x in "s t m q i j".split())
        col = qq if use_q else S_["p"]
        # the paper's offsets m, q (from 1) are positions m, q here: i = sigma s + m
        cond = sp.And(sp.Eq(ii, sigma * ss + mm), sp.Eq(jj, tau * tt + col))
        return sp.Piecewise((sp.S.One, cond), (sp.S.Zero, True))

    return Form(build, ("s", "t", "m", "q", "i", "j"))


register(
    Equation(
        number="48",
        name="conv_dz_dx",
        title="dz/dx: which input entry each patch entry reads",
        section=SECTION,
        paper_latex=(
            r"\begin{cases} 1 & i = \sigma s + m - 1 \text{ and } j = \tau t + p - 1 \\ 0 & "
            r"\text{else} \end{cases}"
        ),
        lhs_latex=r"\frac{\partial z_{tq}^{sm}}{\partial x_j^i}",
        labels=("sigma", "tau"),
        printed=_dzdx(False),
        corrected=_dzdx(True),
        erratum=Erratum(
            kinds=("free-index",),
            what="the condition uses the column offset p, the left-hand side's offset is q",
            reading="j = tau t + q - 1",
        ),
        selfcheck=CHECKS["conv_dz_dx"],
        label_sets=_cases_single,
    )
)
register(
    Equation(
        number="49",
        name="conv_dv_dw",
        title="dv/dw through the patches",
        section=SECTION,
        paper_latex=r"\mathcal{A}'(z_{tk}^{sl} w_k^l) z_{tq}^{sp}",
        lhs_latex=r"\frac{\partial v_t^s}{\partial w_q^p}",
        printed=Form(lambda: ca1[s, t] * cz[s, t, p, q], ("s", "t", "p", "q")),
        selfcheck=CHECKS["conv_dv_dw"],
        label_sets=_cases_single,
    )
)
register(
    Equation(
        number="50",
        name="conv_d2v_dxdx",
        title="d2v/dx dx through the patches",
        section=SECTION,
        paper_latex=(
            r"\mathcal{A}''(z_{tk}^{sl} w_k^l) w_r^m \frac{\partial z_{tr}^{sm}}{\partial x_j^i}"
            r" w_b^a \frac{\partial z_{tb}^{sa}}{\partial x_q^p}"
        ),
        lhs_latex=r"\frac{\partial^2 v_t^s}{\partial x_q^p \partial x_j^i}",
        printed=Form(
            lambda: contract(
                ca2[s, t] * cw[m, r] * cdz[s, t, m, r, i, j] * cw[a, b] * cdz[s, t, a, b, p, q],
                m,
                r,
                a,
                b,
            ),
            ("s", "t", "p", "q", "i", "j"),
        ),
        selfcheck=CHECKS["conv_d2v_dxdx"],
        label_sets=_cases_single,
    )
)
register(
    Equation(
        number="51",
        name="conv_d2v_dwdx",
        title="d2v/dw dx through the patches",
        section=SECTION,
        paper_latex=(
            r"\mathcal{A}'(z_{tk}^{sl} w_k^l) \frac{\partial z_{tq}^{sp}}{\partial x_j^i} + "
            r"\mathcal{A}''(z_{tk}^{sl} w_k^l) z_{tq}^{sp} w_r^m \frac{\partial z_{tr}^{sm}}"
            r"{\partial x_j^i}"
        ),
        lhs_latex=r"\frac{\partial^2 v_t^s}{\partial w_q^p \partial x_j^i}",
        printed=Form(
            lambda: (
                ca1[s, t] * cdz[s, t, p, q, i, j]
                + contract(ca2[s, t] * cz[s, t, p, q] * cw[m, r] * cdz[s, t, m, r, i, j], m, r)
            ),
            ("s", "t", "p", "q", "i", "j"),
        ),
        selfcheck=CHECKS["conv_d2v_dwdx"],
        label_sets=_cases_single,
    )
)
register(
    Equation(
        number="52",
        name="conv_d2v_dwdw",
        title="d2v/dw dw through the patches",
        section=SECTION,
        paper_latex=r"\mathcal{A}''(z_{tk}^{sl} w_k^l) z_{tq}^{sp} z_{tb}^{sa}",
        lhs_latex=r"\frac{\partial^2 v_t^s}{\partial w_q^p \partial w_b^a}",
        printed=Form(
            lambda: ca2[s, t] * cz[s, t, p, q] * cz[s, t, a, b], ("s", "t", "p", "q", "a", "b")
        ),
        selfcheck=CHECKS["conv_d2v_dwdw"],
        label_sets=_cases_single,
    )
)


# ---------------------------------------------------------------- 53-57: entry-wise forms
def _e(*names: str) -> tuple[sp.Symbol, ...]:
    return tuple(S_[x] for x in names)


def _f53(sigma, tau):
    ss, tt, pp, qq = _e("s", "t", "p", "q")
    return ca1[ss, tt] * cx[sigma * ss + pp, tau * tt + qq]


register(
    Equation(
        number="53",
        name="conv_dv_dw_entrywise",
        title="dv/dw entry by entry",
        section=SECTION,
        paper_latex=(
            r"\mathcal{A}'((\tilde{x}_t^s)_k^l w_k^l) (\tilde{x}_t^s)_q^p = "
            r"\mathcal{A}'((\tilde{x}_t^s)_k^l w_k^l) x_{\tau t+q-1}^{\sigma s+p-1}"
        ),
        lhs_latex=r"\frac{\partial v_t^s}{\partial w_q^p}",
        labels=("sigma", "tau"),
        printed=Form(_f53, ("s", "t", "p", "q")),
        selfcheck=CHECKS["conv_dv_dw"],
        label_sets=_cases_single,
    )
)


def _f54(corrected: bool):
    def build(sigma, tau):
        ss, tt, ii, jj = _e("s", "t", "i", "j")
        row, col = ii - sigma * ss, jj - tau * tt  # positions of the offsets i+1-sigma s, ...
        cond = _in_kernel(row, col) if corrected else sp.And(ii + 1 > sigma * ss, jj + 1 > tau * tt)
        return sp.Piecewise((ca1[ss, tt] * cw[row, col], cond), (sp.S.Zero, True))

    return Form(build, ("s", "t", "i", "j"))


_BOUND_WHAT = (
    "the condition bounds the kernel offset i+1-sigma s (and j+1-tau t) from below only; "
    "for i+1-sigma s > K_h the form reads w outside the kernel (undefined; the derivative "
    "is 0 there)"
)
register(
    Equation(
        number="54",
        name="conv_dv_dx_entrywise",
        title="dv/dx entry by entry (conditional form)",
        section=SECTION,
        paper_latex=(
            r"\begin{cases} \mathcal{A}'((\tilde{x}_t^s)_k^l w_k^l) w_{j+1-\tau t}^{i+1-\sigma "
            r"s} & i+1 > \sigma s, j+1 > \tau t \\ 0 & \text{else} \end{cases}"
        ),
        lhs_latex=r"\frac{\partial v_t^s}{\partial x_j^i}",
        labels=("sigma", "tau"),
        printed=_f54(False),
        corrected=_f54(True),
        erratum=Erratum(
            kinds=("case-logic", "missing-bound"),
            what=_BOUND_WHAT,
            reading="1 <= i+1-sigma s <= K_h and 1 <= j+1-tau t <= K_w (K_h x K_w kernel)",
        ),
        selfcheck=CHECKS["conv_dv_dx"],
        label_sets=_cases_single,
    )
)


def _f55(sigma, tau):
    ss, tt, pp, qq, aa, bb = _e("s", "t", "p", "q", "a", "b")
    return ca2[ss, tt] * cx[sigma * ss + pp, tau * tt + qq] * cx[sigma * ss + aa, tau * tt + bb]


register(
    Equation(
        number="55",
        name="conv_d2v_dwdw_entrywise",
        title="d2v/dw dw entry by entry",
        section=SECTION,
        paper_latex=(
            r"\mathcal{A}''((\tilde{x}_t^s)_k^l w_k^l) x_{\tau t+q-1}^{\sigma s+p-1} "
            r"x_{\tau t+b-1}^{\sigma s+a-1}"
        ),
        lhs_latex=r"\frac{\partial^2 v_t^s}{\partial w_q^p \partial w_b^a}",
        labels=("sigma", "tau"),
        printed=Form(_f55, ("s", "t", "p", "q", "a", "b")),
        selfcheck=CHECKS["conv_d2v_dwdw"],
        label_sets=_cases_single,
    )
)


def _f56(corrected: bool):
    def build(sigma, tau):
        ss, tt, pp, qq, ii, jj = _e("s", "t", "p", "q", "i", "j")
        row, col = ii - sigma * ss, jj - tau * tt
        cross = ca2[ss, tt] * cw[row, col] * cx[sigma * ss + pp, tau * tt + qq]
        # the paper's offsets: i+1-sigma s against p (from 1), i.e. positions row against p
        same = sp.And(sp.Eq(ii + 1 - sigma * ss, pp + 1), sp.Eq(jj + 1 - tau * tt, qq + 1))
        if corrected:
            other = _in_kernel(row, col)
        else:
            other = sp.And(
                ii + 1 - sigma * ss > 0,
                sp.Ne(ii + 1 - sigma * ss, pp + 1),
                jj + 1 - tau * tt > 0,
                sp.Ne(jj + 1 - tau * tt, qq + 1),
            )
        return sp.Piecewise((ca1[ss, tt] + cross, same), (cross, other), (sp.S.Zero, True))

    return Form(build, ("s", "t", "p", "q", "i", "j"))


register(
    Equation(
        number="56",
        name="conv_d2v_dwdx_entrywise",
        title="d2v/dw dx entry by entry (conditional form)",
        section=SECTION,
        paper_latex=(
            r"\left\{ \begin{array}{ll} \mathcal{A}' \left( (\tilde{x}_t^s)_k^l w_k^l "
            r"\right) + \mathcal{A}'' \left( (\tilde{x}_t^s)_k^l w_k^l \right) w_{j+1-\tau "
            r"t}^{i+1-\sigma s} x_{\tau t+q-1}^{\sigma s+p-1} & i+1-\sigma s = p, j+1-\tau t "
            r"= q \\ \mathcal{A}'' \left( (\tilde{x}_t^s)_k^l w_k^l \right) w_{j+1-\tau "
            r"t}^{i+1-\sigma s} x_{\tau t+q-1}^{\sigma s+p-1} & i+1-\sigma s > 0, i+1-\sigma "
            r"s \neq p, \\ & j+1-\tau t > 0, j+1-\tau t \neq q \\ 0 & \text{else} "
            r"\end{array} \right."
        ),
        lhs_latex=r"\frac{\partial^2 v_t^s}{\partial w_q^p \partial x_j^i}",
        labels=("sigma", "tau"),
        printed=_f56(False),
        corrected=_f56(True),
        erratum=Erratum(
            kinds=("case-logic", "missing-bound"),
            what=(
                "the A'' term belongs to every x entry under the kernel except the one "
                "that w_q^p itself multiplies, i.e. (i+1-sigma s, j+1-tau t) != (p, q); the "
                "second row asks for i+1-sigma s != p AND j+1-tau t != q, so entries in "
                "row p or column q of the window get 0 instead of A'' w x; and, as in Eq "
                "54, the offsets are not bounded above by the kernel size"
            ),
            reading=(
                "second row: 1 <= i+1-sigma s <= K_h, 1 <= j+1-tau t <= K_w and "
                "(i+1-sigma s, j+1-tau t) != (p, q)"
            ),
        ),
        selfcheck=CHECKS["conv_d2v_dwdx"],
        label_sets=_cases_single,
    )
)


def _f57(corrected: bool):
    def build(sigma, tau):
        ss, tt, pp, qq, ii, jj = _e("s", "t", "p", "q", "i", "j")
        r1, c1 = ii - sigma * ss, jj - tau * tt
        r2, c2 = pp - sigma * ss, qq - tau * tt
        val = ca2[ss, tt] * cw[r1, c1] * cw[r2, c2]
        if corrected:
            cond = sp.And(_in_kernel(r1, c1), _in_kernel(r2, c2))
        else:
            cond = sp.And(
                pp + 1 > sigma * ss, ii + 1 > sigma * ss, qq + 1 > tau * tt, jj + 1 > tau * tt
            )
        return sp.Piecewise((val, cond), (sp.S.Zero, True))

    return Form(build, ("s", "t", "p", "q", "i", "j"))


register(
    Equation(
        number="57",
        name="conv_d2v_dxdx_entrywise",
        title="d2v/dx dx entry by entry (conditional form)",
        section=SECTION,
        paper_latex=(
            r"\begin{cases} \mathcal{A}'' \left( (\tilde{x}_t^s)_k^l w_k^l \right) "
            r"w_{j+1-\tau t}^{i+1-\sigma s} w_{q+1-\tau t}^{p+1-\sigma s} & p+1 > \sigma s, "
            r"i+1 > \sigma s \\ & q+1 > \tau t, j+1 > \tau t \\ 0 & \text{else} \end{cases}"
        ),
        lhs_latex=r"\frac{\partial^2 v_t^s}{\partial x_q^p \partial x_j^i}",
        labels=("sigma", "tau"),
        printed=_f57(False),
        corrected=_f57(True),
        erratum=Erratum(
            kinds=("case-logic", "missing-bound"),
            what=_BOUND_WHAT,
            reading="both kernel offsets within 1..K_h x 1..K_w",
        ),
        selfcheck=CHECKS["conv_d2v_dxdx"],
        label_sets=_cases_single,
    )
)

# ---------------------------------------------------------------- input/output channels
# Derived in the paper's index style: x_j^{c,i}, w_k^{o,c,l}, z_tk^{c,sl} =
# x_{tau t+k-1}^{c,sigma s+l-1}, v_t^{o,s} = A(z_tk^{c,sl} w_k^{o,c,l}) (sum over c, l,
# k).  dz_tq^{c,sm}/dx_j^{e,i} = delta_c^e dz_tq^sm/dx_j^i (Eq 48, per channel) and
# dv^{o}/dw^{x,c} = delta_o^x (each output channel has its own kernels); the sums over c
# then collapse the deltas (delta_c^e stays as the operand ceye where no other factor
# carries both channel indices).
MC = "B.2.1 (channels, derived)"


def _mc(number, name, title, lhs, form, check):
    register(
        Equation(
            number=number,
            name=name,
            title=title,
            section=MC,
            paper_latex="",
            lhs_latex=lhs,
            printed=form,
            selfcheck=CHECKS[check],
            label_sets=_cases_multi,
        )
    )


_mc(
    "46.mc",
    "conv_layer_channels",
    "layer with C input and O output channels (pre-activation)",
    r"\mathcal{A}^{-1}(v_t^{o,s})",
    Form(lambda: contract(mz[c, s, t, l, k] * mw[o, c, l, k], c, l, k), ("o", "s", "t")),
    "mconv_preactivation",
)
_mc(
    "47.mc",
    "conv_dv_dx_channels",
    "dv/dx with channels",
    r"\frac{\partial v_t^{o,s}}{\partial x_j^{e,i}}",
    Form(
        lambda: contract(ma1[o, s, t] * mw[o, e, m, q] * cdz[s, t, m, q, i, j], m, q),
        ("o", "s", "t", "e", "i", "j"),
    ),
    "mconv_dv_dx",
)
_mc(
    "49.mc",
    "conv_dv_dw_channels",
    "dv/dw with channels",
    r"\frac{\partial v_t^{o,s}}{\partial w_q^{x,c,p}}",
    Form(
        lambda: sp.KroneckerDelta(o, x_) * ma1[o, s, t] * mz[c, s, t, p, q],
        ("o", "s", "t", "x", "c", "p", "q"),
    ),
    "mconv_dv_dw",
)
_mc(
    "50.mc",
    "conv_d2v_dxdx_channels",
    "d2v/dx dx with channels",
    r"\frac{\partial^2 v_t^{o,s}}{\partial x_q^{h,p} \partial x_j^{e,i}}",
    Form(
        lambda: contract(
            ma2[o, s, t]
            * mw[o, h, a, b]
            * cdz[s, t, a, b, p, q]
            * mw[o, e, m, r]
            * cdz[s, t, m, r, i, j],
            m,
            r,
            a,
            b,
        ),
        ("o", "s", "t", "h", "p", "q", "e", "i", "j"),
    ),
    "mconv_d2v_dxdx",
)
_mc(
    "51.mc",
    "conv_d2v_dwdx_channels",
    "d2v/dw dx with channels",
    r"\frac{\partial^2 v_t^{o,s}}{\partial w_q^{x,c,p} \partial x_j^{e,i}}",
    Form(
        lambda: (
            sp.KroneckerDelta(o, x_)
            * (
                ma1[o, s, t] * ceye[c, e] * cdz[s, t, p, q, i, j]
                + contract(
                    ma2[o, s, t] * mz[c, s, t, p, q] * mw[o, e, m, r] * cdz[s, t, m, r, i, j], m, r
                )
            )
        ),
        ("o", "s", "t", "x", "c", "p", "q", "e", "i", "j"),
    ),
    "mconv_d2v_dwdx",
)
_mc(
    "52.mc",
    "conv_d2v_dwdw_channels",
    "d2v/dw dw with channels",
    r"\frac{\partial^2 v_t^{o,s}}{\partial w_q^{x,c,p} \partial w_b^{y,e,a}}",
    Form(
        lambda: (
            sp.KroneckerDelta(o, x_)
            * sp.KroneckerDelta(o, y_)
            * ma2[o, s, t]
            * mz[c, s, t, p, q]
            * mz[e, s, t, a, b]
        ),
        ("o", "s", "t", "x", "c", "p", "q", "y", "e", "a", "b"),
    ),
    "mconv_d2v_dwdw",
)


# ---------------------------------------------------------------- contracted: stacking
def _reg_c(number, name, title, lhs, form, check, derived_from):
    register_derived(number, name, title, lhs, form, CHECKS[check],
                     f"contracted (derived from {derived_from})",
                     label_sets=lambda n: [{"n": n, "case": 0}])  # fmt: skip


_reg_c(
    "C12",
    "conv_tangent",
    "tangent of the conv pre-activation along a kernel direction Phi: zdot = z . Phi",
    r"\dot{z}_t^{o,s}",
    Form(lambda: contract(mz[c, s, t, l, k] * mphi[o, c, l, k], c, l, k), ("o", "s", "t")),
    "mconv_tangent",
    "Eq 49 with channels",
)
_reg_c(
    "C13",
    "conv_grad_w",
    "kernel gradient from the adjoint delta = df/dz of the conv outputs: sum_st delta z",
    r"\frac{\partial f}{\partial w_k^{o,c,l}}",
    Form(lambda: contract(mdelta[o, s, t] * mz[c, s, t, l, k], s, t), ("o", "c", "l", "k")),
    "mconv_grad_w",
    "Eq 49 with channels",
)
_reg_c(
    "C14",
    "conv_second_order_term",
    "the conv layer's own curvature along Phi: sum vbar A'' zdot^2 (vbar = df/dv)",
    r"\Phi^T \frac{\partial^2 f}{\partial w^2}\Big|_{v} \Phi",
    Form(
        lambda: contract(mvbar[o, s, t] * ma2[o, s, t] * mzdot[o, s, t] * mzdot[o, s, t], o, s, t),
        (),
    ),
    "mconv_second_order",
    "Eq 52 with channels, contracted with Phi twice",
)
