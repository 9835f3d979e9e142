"""Appendix B.2.2: the recurrent layer, Eqs 58-65, and its general-activation second
derivatives through B.3 (``63.g``, ``64.g``, ``65.g``, derived).

The layer ``v_(t) = A(w v_(t-1))``, ``v_(0) = x`` unrolled ``t`` steps is the
feedforward network of B.1 with one weight matrix at every layer, ``w^(k) = w``.  The
forms below therefore use B.1's tensors (``eta^(t,k)``, ``alpha``, ``v^(k)``) evaluated
at the tied weights, and the tied weight itself as ``wr`` (``w_i^j`` is ``wr[j, i]``).
The step count ``t`` is the forms' label (the paper also uses ``t`` as an index in Eq
65; the index names here avoid it).

Self-checks compare with the unrolled recursion differentiated with respect to the
*one* tied matrix (exact jets, :class:`derive.layer_checks.RecurrentReference`).
Eqs 63-65 are stated for the ReLU (``A'' = 0``); ``63.g``-``65.g`` keep ``A''`` free.
"""

from __future__ import annotations

import sympy as sp

from derive.check_table import CHECKS
from derive.forms import Equation, Erratum, Form, lookup, register
from derive.notation import FAMILIES, contract, idx

F = FAMILIES
v, eta, alpha, lam, dv = F["v"], F["eta"], F["alpha"], F["lam"], F["dv"]
wr = F["wr"]()

SECTION = "B.2.2"

m, s, r, i, j, q, l, o = idx("m s r i j q l o")
b, d, p, a, c = idx("b d p a c")
# Eq 75's free indices (j, l, s, t), reused by 65.g
(t_,) = idx("t")


def _steps(n: int) -> list[dict]:
    """Steps t = 1 .. 2n-1 (t = 1..3 in symbolic mode, 1..5 in rational mode)."""
    return [{"n": n, "t": tt} for tt in range(1, 2 * n)]


def _sum(lo: int, hi: int, term) -> sp.Expr:
    return sum((term(kk) for kk in range(lo, hi + 1)), sp.S.Zero)


register(
    Equation(
        number="58",
        name="recurrent_layer",
        title="recurrent layer v_(t) = A(w v_(t-1))",
        section=SECTION,
        paper_latex=r"\mathcal{A} \left( w_i^j v_{(t-1)}^i \right)",
        lhs_latex=r"v_{(t)}^j",
        role="definition",
    )
)
register(
    Equation(
        number="59",
        name="recurrent_input",
        title="recurrent layer input v_(0) = x",
        section=SECTION,
        paper_latex=r"x^j",
        lhs_latex=r"v_{(0)}^j",
        role="definition",
    )
)

register(
    Equation(
        number="60",
        name="tied_weight_chain_rule",
        title="derivative by the tied weight = sum over the steps' copies (for (.) = v_(t))",
        section=SECTION,
        paper_latex=(
            r"\sum_k \frac{\partial(\cdot)}{\partial w_p^{(k),m}} \frac{\partial "
            r"w_j^{(k),i}}{\partial w_j^i} = \sum_k \frac{\partial(\cdot)}{\partial "
            r"w_j^{(k),i}}"
        ),
        lhs_latex=r"\frac{\partial(\cdot)}{\partial w_j^i}",
        form_lhs_latex=r"\frac{\partial v_{(t)}^o}{\partial w_j^i}",
        labels=("t",),
        printed=Form(lambda n, t: _sum(1, t, lambda k: dv(t, k)[o, m, p]), ("o", "i", "j")),
        corrected=Form(lambda n, t: _sum(1, t, lambda k: dv(t, k)[o, i, j]), ("o", "i", "j")),
        erratum=Erratum(
            kinds=("free-index",),
            what=(
                "the middle expression differentiates by w_p^{(k),m} but multiplies by "
                "dw_j^{(k),i}/dw_j^i: m and p are left free (and j is repeated without "
                "being summed); the right-hand side is right"
            ),
            reading=("sum_k d(.)/dw_p^{(k),m} dw_p^{(k),m}/dw_j^i = sum_k d(.)/dw_j^{(k),i}"),
        ),
        selfcheck=CHECKS["rec_dv_dw"],
        label_sets=_steps,
        activation="general",
    )
)
register(
    Equation(
        number="61",
        name="recurrent_dv_dw",
        title="dv_(t)/dw (tied weights)",
        section=SECTION,
        paper_latex=r"\sum_k \eta_s^{(t,k),m} v_{(t-1)}^r",
        lhs_latex=r"\frac{\partial v_{(t)}^m}{\partial w_r^s}",
        labels=("t",),
        printed=Form(
            lambda n, t: _sum(1, t, lambda k: eta(t, k)[m, s] * v(t - 1)[r]), ("m", "s", "r")
        ),
        corrected=Form(
            lambda n, t: _sum(1, t, lambda k: eta(t, k)[m, s] * v(k - 1)[r]), ("m", "s", "r")
        ),
        erratum=Erratum(
            kinds=("index",),
            what=(
                "every term of the sum over the steps k multiplies v_{(t-1)}^r, the input of "
                "the last step; the copy w^{(k)} of the tied weight acts at step k on "
                "v_{(k-1)}, so its term is eta^{(t,k)} v_{(k-1)} (Eq 24 with Eq 60); the "
                "printed form is right only for t = 1"
            ),
            reading="sum_k eta_s^{(t,k),m} v_{(k-1)}^r",
        ),
        selfcheck=CHECKS["rec_dv_dw"],
        label_sets=_steps,
        activation="general",
    )
)
register(
    Equation(
        number="62",
        name="recurrent_dv_dx",
        title="dv_(t)/dx",
        section=SECTION,
        paper_latex=r"\eta_s^{(t,1),m} w_i^s",
        lhs_latex=r"\frac{\partial v_{(t)}^m}{\partial x^i}",
        labels=("t",),
        printed=Form(lambda n, t: contract(eta(t, 1)[m, s] * wr[s, i], s), ("m", "i")),
        selfcheck=CHECKS["rec_dv_dx"],
        label_sets=_steps,
        activation="general",
    )
)


def _h63(mirror: bool):
    def build(n, t):
        def term(k, pp):
            first = eta(t, k)[m, i] * eta(k - 1, pp)[j, q] * v(pp - 1)[r]
            if not mirror:
                return 2 * first
            return first + eta(t, k)[m, q] * eta(k - 1, pp)[r, i] * v(pp - 1)[j]

        return _sum(2, t, lambda k: _sum(1, k - 1, lambda pp: term(k, pp)))

    return Form(build, ("m", "i", "j", "q", "r"))


register(
    Equation(
        number="63",
        name="recurrent_d2v_dwdw",
        title="d2v_(t)/dw dw for the ReLU (tied weights)",
        section=SECTION,
        paper_latex=(
            r"\sum_{k,p} \frac{\partial v_{(t)}^m}{\partial w_j^{(k),i} \partial w_r^{(p),q}}"
            r" = 2 \sum_{k=2}^t \sum_{p=1}^{k-1} \eta_i^{(t,k),m} \eta_q^{(k-1,p),j} "
            r"v_{(p-1)}^r"
        ),
        lhs_latex=r"\frac{\partial v_{(t)}^m}{\partial w_j^i \partial w_r^q}",
        labels=("t",),
        printed=_h63(False),
        corrected=_h63(True),
        erratum=Erratum(
            kinds=("index",),
            what=(
                "the pairs p < k and p > k of Eq 33 are not equal term by term: the p > k "
                "term is the p < k term with the roles of (i, j) and (q, r) swapped, so "
                "the sum is not twice the p < k sum (the factor 2 holds only after "
                "contracting both weight slots with the same direction, as in g^T H g)"
            ),
            reading=(
                "sum_{k=2}^t sum_{p=1}^{k-1} (eta_i^{(t,k),m} eta_q^{(k-1,p),j} v_{(p-1)}^r "
                "+ eta_q^{(t,k),m} eta_i^{(k-1,p),r} v_{(p-1)}^j)"
            ),
        ),
        selfcheck=CHECKS["rec_d2v_dwdw"],
        label_sets=_steps,
    )
)
register(
    Equation(
        number="64",
        name="recurrent_d2v_dxdx",
        title="d2v_(t)/dx dx = 0 for the ReLU",
        section=SECTION,
        paper_latex=r"0",
        lhs_latex=r"\frac{\partial v_{(t)}^m}{\partial x^i \partial x^l}",
        labels=("t",),
        printed=Form(lambda n, t: sp.S.Zero, ("m", "i", "l")),
        selfcheck=CHECKS["rec_d2v_dxdx"],
        label_sets=_steps,
    )
)


def _h65(printed: bool):
    def build(n, t):
        if printed:
            first = contract(eta(t, 1)[j, s] * sp.KroneckerDelta(i, s), s)
            lo = 1
        else:
            first = eta(t, 1)[m, q] * sp.KroneckerDelta(i, r)
            lo = 2
        rest = _sum(lo, t, lambda k: contract(eta(t, k)[m, q] * eta(k - 1, 1)[r, s] * wr[s, i], s))
        return first + rest

    return Form(build, ("m", "q", "r", "i"))


register(
    Equation(
        number="65",
        name="recurrent_d2v_dwdx",
        title="d2v_(t)/dw dx for the ReLU",
        section=SECTION,
        paper_latex=(
            r"\eta_s^{(t,1),j} \delta_i^s + \sum_k \frac{\partial \eta_q^{(t,1),m}}{\partial "
            r"w_t^{(k),s}} w_i^s = \eta_s^{(t,1),j} \delta_i^s + \sum_k \eta_q^{(t,k),m} "
            r"\eta_s^{(k-1,1),r} w_i^s"
        ),
        lhs_latex=r"\frac{\partial v_{(t)}^m}{\partial w_r^q \partial x^i}",
        labels=("t",),
        printed=_h65(True),
        corrected=_h65(False),
        erratum=Erratum(
            kinds=("free-index", "index"),
            what=(
                "the first term eta_s^{(t,1),j} delta_i^s = eta_i^{(t,1),j} carries j instead "
                "of the left-hand side's m, q, r (differentiating eta_s^{(t,1),m} w_i^s by "
                "w_r^q hits w_i^s and gives eta_q^{(t,1),m} delta_i^r); the middle "
                "expression differentiates eta_q^{(t,1),m} by w_t^{(k),s} where it needs "
                "eta_s^{(t,1),m} by w_r^{(k),q} (and t is also the step count); the final "
                "sum is right (its k = 1 term is 0)"
            ),
            reading=(
                "eta_q^{(t,1),m} delta_i^r + sum_{k=2}^t eta_q^{(t,k),m} eta_s^{(k-1,1),r} w_i^s"
            ),
        ),
        selfcheck=CHECKS["rec_d2v_dwdx"],
        label_sets=_steps,
    )
)

# ---------------------------------------------------------------- general activation (B.3)
GEN = "B.2.2 with B.3 (derived)"


def _h63g(n, t):
    d77 = lookup("77").corrected
    return _sum(1, t, lambda k: _sum(1, t, lambda qq: d77(n=t, k=k, q=qq)))


def _h64g(n, t):
    return _sum(
        1,
        t,
        lambda rr: contract(
            alpha(t, rr)[m, b]
            * lam(rr)[b, d, p]
            * wr[d, a]
            * alpha(rr - 1, 0)[a, i]
            * wr[p, c]
            * alpha(rr - 1, 0)[c, l],
            b,
            d,
            p,
            a,
            c,
        ),
    )


def _h65g(n, t):
    d75 = lookup("75").corrected
    (jj, ll, ss) = idx("j l s")
    first = eta(t, 1)[jj, ss] * sp.KroneckerDelta(i, t_)
    return first + _sum(1, t, lambda k: contract(d75(n=t, k=1, q=k) * wr[ll, i], ll))


register(
    Equation(
        number="63.g",
        name="recurrent_d2v_dwdw_general",
        title="d2v_(t)/dw dw, general activation: Eq 77 (corrected) summed over step pairs",
        section=GEN,
        paper_latex="",
        lhs_latex=r"\frac{\partial^2 v_{(t)}^j}{\partial w_i^l \partial w_t^s}",
        labels=("t",),
        printed=Form(_h63g, ("j", "l", "i", "s", "t")),
        selfcheck=CHECKS["rec_d2v_dwdw"],
        label_sets=_steps,
        activation="general",
    )
)
register(
    Equation(
        number="64.g",
        name="recurrent_d2v_dxdx_general",
        title="d2v_(t)/dx dx, general activation: sum_r alpha^(t,r) lambda^(r) (w alpha^(r-1,0))^2",
        section=GEN,
        paper_latex="",
        lhs_latex=r"\frac{\partial^2 v_{(t)}^m}{\partial x^i \partial x^l}",
        labels=("t",),
        printed=Form(_h64g, ("m", "i", "l")),
        selfcheck=CHECKS["rec_d2v_dxdx"],
        label_sets=_steps,
        activation="general",
    )
)
register(
    Equation(
        number="65.g",
        name="recurrent_d2v_dwdx_general",
        title="d2v_(t)/dw dx, general activation: Eq 65 (corrected) with d eta from Eq 75",
        section=GEN,
        paper_latex="",
        lhs_latex=r"\frac{\partial^2 v_{(t)}^j}{\partial w_t^s \partial x^i}",
        labels=("t",),
        printed=Form(_h65g, ("j", "s", "t", "i")),
        selfcheck=CHECKS["rec_d2v_dwdx"],
        label_sets=_steps,
        activation="general",
    )
)

# ---------------------------------------------------------------- parts for the code generator
# one term of each sum over steps; the drivers of numeric/kernels/recurrent.py add them
lookup("61").parts["term"] = Form(lambda n, t, k: eta(t, k)[m, s] * v(k - 1)[r], ("m", "s", "r"))
lookup("63").parts.update(
    {
        "pair_term": Form(
            lambda n, t, k, p: (
                eta(t, k)[m, i] * eta(k - 1, p)[j, q] * v(p - 1)[r]
                + eta(t, k)[m, q] * eta(k - 1, p)[r, i] * v(p - 1)[j]
            ),
            ("m", "i", "j", "q", "r"),
        ),
        "pair_term_printed": Form(
            lambda n, t, k, p: 2 * eta(t, k)[m, i] * eta(k - 1, p)[j, q] * v(p - 1)[r],
            ("m", "i", "j", "q", "r"),
        ),
    }
)
lookup("65").parts.update(
    {
        # delta_i^r written as alpha^(0,0) (the identity on the input units, Eq 21), so
        # that the kernel reads its extent from an operand
        "first_term": Form(lambda n, t: eta(t, 1)[m, q] * alpha(0, 0)[i, r], ("m", "q", "r", "i")),
        "sum_term": Form(
            lambda n, t, k: contract(eta(t, k)[m, q] * eta(k - 1, 1)[r, s] * wr[s, i], s),
            ("m", "q", "r", "i"),
        ),
    }
)
lookup("64.g").parts["term"] = Form(
    lambda n, t, r: contract(
        alpha(t, r)[m, b]
        * lam(r)[b, d, p]
        * wr[d, a]
        * alpha(r - 1, 0)[a, i]
        * wr[p, c]
        * alpha(r - 1, 0)[c, l],
        b,
        d,
        p,
        a,
        c,
    ),
    ("m", "i", "l"),
)
_deta = F["deta"]
lookup("65.g").parts["w_term"] = Form(
    lambda n, t, k: contract(_deta(t, 1, k)[idx("j")[0], l, s, t_] * wr[l, i], l),
    ("j", "s", "t", "i"),
)
