"""Index notation of the paper as SymPy objects.

The paper (Appendix B) writes tensors with bracketed layer labels that are never
summed, e.g. ``eta_i^{(n,k),m}``, and ordinary indices that follow the summation
convention.  Here a *family* (``eta``) turns concrete or symbolic layer labels into a
:class:`sympy.IndexedBase`, and every contraction is an explicit :class:`sympy.Sum`
(the summation convention made explicit, so no repeated index is ever ambiguous).

Array convention (see ``docs/conventions.md``): the upper index comes first, then
the lower one, so ``eta_i^{(n,k),m}`` is ``eta(n, k)[m, i]`` and
``w_i^{(k),j}`` is ``w(k)[j, i]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

__all__ = [
    "Family",
    "FAMILIES",
    "idx",
    "contract",
    "label_text",
    "base_family",
    "base_labels",
]

# symbolic layer labels used in display forms
n, k, r, l, q = sp.symbols("n k r l q", integer=True, positive=True)


def label_text(label: object) -> str:
    """Render one layer label (an int or a SymPy expression) without spaces."""
    return str(label).replace(" ", "")


@dataclass(frozen=True)
class Family:
    """A layer-labelled tensor family of the paper.

    Parameters
    ----------
    name : str
        Python-friendly name, e.g. ``"eta"``.
    tex : str
        LaTeX symbol, e.g. ``r"\\eta"``.
    labels : int
        Number of bracketed layer labels (0 for ``u``, 1 for ``w^{(k)}``, 2 for
        ``eta^{(k,l)}``).
    rank : int
        Number of ordinary indices.
    per_sample : bool
        Whether the tensor depends on the sample (it then gains a leading batch axis
        in generated kernels).
    doc : str
        One-line meaning.
    """

    name: str
    tex: str
    labels: int
    rank: int
    per_sample: bool
    doc: str

    def __call__(self, *labels: object) -> sp.IndexedBase:
        if len(labels) != self.labels:
            raise ValueError(f"{self.name} takes {self.labels} layer labels, got {len(labels)}")
        if self.labels == 0:
            return sp.IndexedBase(self.name)
        text = ",".join(label_text(x) for x in labels)
        return sp.IndexedBase(f"{self.name}({text})")


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family("x", "x", 0, 1, True, "input of one sample"),
        Family("v", "v", 1, 1, True, "output of hidden layer k (v^(0) = x)"),
        Family("z", "z", 1, 1, True, "pre-activation of layer k"),
        Family("a1", r"\mathcal{A}'", 1, 1, True, "A'(z^(k)) per unit"),
        Family("a2", r"\mathcal{A}''", 1, 1, True, "A''(z^(k)) per unit"),
        Family("w", "w", 1, 2, False, "weights of hidden layer k, [out, in]"),
        Family("u", "u", 0, 2, False, "output-layer weights, [class, unit]"),
        Family("gamma", r"\gamma", 1, 2, True, "diag(A'(z^(k))) (Eq 19)"),
        Family("beta", r"\beta", 1, 2, True, "dv^(k)/dv^(k-1) (Eq 20)"),
        Family("alpha", r"\alpha", 2, 2, True, "dv^(k)/dv^(l) (Eq 21)"),
        Family("eta", r"\eta", 2, 2, True, "alpha^(k,l) gamma^(l) (Eq 23, corrected)"),
        Family("lam", r"\lambda", 1, 3, True, "A'' on the diagonal (Eq 67)"),
        Family("dfdp", r"\frac{\partial f}{\partial p}", 0, 1, True, "df/dp per sample"),
        Family("d2fdp2", r"\frac{\partial^2 f}{\partial p^2}", 0, 2, True, "d2f/dp2 per sample"),
        Family("omega", r"\omega", 0, 2, False, "direction for u (Eq 38)"),
        Family("a", "a", 0, 2, True, "a_is of Eq 7 (Section 2), at the layer k of Eq 6"),
        Family("dv", r"\partial v", 2, 3, True, "dv^(k)/dw^(l), [j, s, t] (Eq 18, 24)"),
        Family("dalpha", r"\partial \alpha", 3, 4, True, "d alpha^(n,k)/dw^(r) (Eq 30)"),
        Family("delta", r"\delta", 1, 1, True, "adjoint of z^(k): df/dz^(k) (contracted form)"),
        Family("vdot", r"\dot{v}", 1, 1, True, "tangent of v^(k) along g (contracted form)"),
        Family("pdot", r"\dot{p}", 0, 1, True, "tangent of p along g (contracted form)"),
        Family("Db", r"\Delta", 1, 2, False, "adjoints of a mini-batch, [sample, unit]"),
        Family("Vb", r"V", 1, 2, False, "layer outputs of a mini-batch, [sample, unit]"),
        Family("Vdotb", r"\dot{V}", 1, 2, False, "tangents of a mini-batch, [sample, unit]"),
        Family("Pb", r"P", 0, 2, False, "df/dp of a mini-batch, [sample, class]"),
        # factored Gauss-Newton: d2f/dp2 = R^T R (derived from Eqs 14-15)
        Family(
            "rfac",
            "R",
            0,
            2,
            True,
            "factor of d2f/dp2 = R^T R: sqrt(s yhat_r) (delta_rl - yhat_l), [r, l]",
        ),
        Family(
            "rjac",
            r"\mathcal{J}",
            1,
            3,
            True,
            "R u eta^(n,k) v^(k-1): the factored Jacobian of p by w^(k), [r, i, j]",
        ),
        Family("rpdot", r"R\dot{p}", 0, 1, True, "R pdot: the factored tangent of p, [r]"),
        # factored adjoints: the rows of R propagated backward (derived, C42-C44)
        Family(
            "rvbar",
            r"\bar{V}",
            1,
            2,
            True,
            "R dp/dv^(k): the factored adjoint of v^(k), one row per row of R, [r, i]",
        ),
        Family(
            "rdelta",
            r"\bar{Z}",
            1,
            2,
            True,
            "R dp/dz^(k) = R u eta^(n,k): the factored adjoint of z^(k), [r, i]",
        ),
        # a diagonal metric for the cubic term (derived, V1)
        Family("metu", r"M^{u}", 0, 2, False, "diagonal metric of the u entries, [class, unit]"),
        Family("metw", r"M", 1, 2, False, "diagonal metric of the w^(k) entries, [out, in]"),
        Family("phi", r"\phi", 1, 2, False, "direction for w^(k) (Eq 38)"),
        # Appendix B.3: general entry-wise activations
        Family(
            "dgamma", r"\partial \gamma", 2, 4, True, "d gamma^(l)/dw^(q), [m, r, s, t] (Eq 66)"
        ),
        Family("dbeta", r"\partial \beta", 2, 4, True, "d beta^(r)/dw^(q), [b, a, s, t] (Eq 71)"),
        Family("deta", r"\partial \eta", 3, 4, True, "d eta^(n,k)/dw^(q), [j, l, s, t] (Eq 73)"),
        Family(
            "d2v", r"\partial^2 v", 3, 5, True, "d2 v^(n)/dw^(k) dw^(q), [j, l, i, s, t] (Eq 76)"
        ),
        Family("zdot", r"\dot{z}", 1, 1, True, "tangent of z^(k) along g (contracted form)"),
        Family("vbar", r"\bar{v}", 1, 1, True, "adjoint of v^(k): df/dv^(k) (contracted form)"),
        # Appendix B.2.1: one convolutional layer (single channel, as printed)
        Family("cx", "x", 0, 2, True, "conv input x_j^i, [i, j]"),
        Family("cw", "w", 0, 2, False, "conv kernel w_k^l, [l, k]"),
        Family("cxt", r"\tilde{x}", 0, 3, True, "patch (x~_t^s)_k as printed (Eq 45), [s, t, k]"),
        Family("cz", "z", 0, 4, True, "patches z_tk^sl (Eq 46), [s, t, l, k]"),
        Family("cdz", r"\partial z", 0, 6, False, "dz_tq^sm/dx_j^i (Eq 48), [s, t, m, q, i, j]"),
        Family("cv", "v", 0, 2, True, "conv output v_t^s, [s, t]"),
        Family("ca1", r"\mathcal{A}'", 0, 2, True, "A' at each conv output, [s, t]"),
        Family("ca2", r"\mathcal{A}''", 0, 2, True, "A'' at each conv output, [s, t]"),
        Family("cphi", r"\Phi", 0, 2, False, "direction for the conv kernel, [l, k]"),
        # B.2.1 with input channels c and output channels o (derived)
        Family("mx", "x", 0, 3, True, "conv input x_j^{c,i}, [c, i, j]"),
        Family("mw", "w", 0, 4, False, "conv kernels w_k^{o,c,l}, [o, c, l, k]"),
        Family("mz", "z", 0, 5, True, "patches z_tk^{c,sl}, [c, s, t, l, k]"),
        Family("mv", "v", 0, 3, True, "conv output v_t^{o,s}, [o, s, t]"),
        Family("ma1", r"\mathcal{A}'", 0, 3, True, "A' at each conv output, [o, s, t]"),
        Family("ma2", r"\mathcal{A}''", 0, 3, True, "A'' at each conv output, [o, s, t]"),
        Family("mphi", r"\Phi", 0, 4, False, "direction for the conv kernels, [o, c, l, k]"),
        Family("ceye", r"\delta", 0, 2, False, "delta_c^e on the input channels, [c, e]"),
        Family("mdelta", r"\delta", 0, 3, True, "adjoint df/dz of the conv outputs, [o, s, t]"),
        Family("mzdot", r"\dot{z}", 0, 3, True, "tangent of the conv pre-activation, [o, s, t]"),
        Family("mvbar", r"\bar{v}", 0, 3, True, "adjoint df/dv of the conv outputs, [o, s, t]"),
        # Appendix B.2.2: the recurrent layer (weights tied over the steps)
        Family("wr", "w", 0, 2, False, "recurrent weights w_i^j (tied over steps), [j, i]"),
        # biases (derived: derive/equations/bias.py)
        Family("bias", "b", 1, 1, False, "bias of hidden layer k, [j] (z^(k) = w v + b)"),
        Family("psi", r"\psi", 1, 1, False, "direction for the bias b^(k), [j]"),
        Family("ub", "c", 0, 1, False, "bias of the output layer, [class] (p = u v + c)"),
        Family("omegab", r"\omega_c", 0, 1, False, "direction for the output bias c, [class]"),
        Family("mb", "b", 0, 1, False, "bias of the conv output channels, [o]"),
        Family("mpsi", r"\psi", 0, 1, False, "direction for the conv bias, [o]"),
        # stacking a conv layer on another layer (derived: derive/equations/stacking.py)
        Family(
            "mzx", r"\dot{z}_x", 0, 5, True, "patches of the input tangent xdot, [c, s, t, l, k]"
        ),
        Family("mzbar", r"\bar{z}", 0, 5, True, "adjoint of the patches df/dz, [c, s, t, l, k]"),
        # the recurrent layer with an input at every step (derived: stacking.py)
        Family("ur", "U", 0, 2, False, "recurrent input weights U, [j, i]"),
        Family("rb", "b", 0, 1, False, "recurrent bias, [j]"),
        Family("phir", r"\phi", 0, 2, False, "direction for the recurrent weights w, [j, i]"),
        Family("phiu", r"\phi_U", 0, 2, False, "direction for the input weights U, [j, i]"),
        Family("rpsi", r"\psi", 0, 1, False, "direction for the recurrent bias, [j]"),
        Family("sx", "x", 0, 2, True, "inputs x_(t) of steps t = 1..T, [t, i]"),
        Family("sxdot", r"\dot{x}", 0, 2, True, "input tangents xdot_(t), [t, i]"),
        Family("sv", "v", 0, 2, True, "states v_(t-1) entering steps t = 1..T, [t, i]"),
        Family("svdot", r"\dot{v}", 0, 2, True, "state tangents vdot_(t-1), [t, i]"),
        Family("sdelta", r"\delta", 0, 2, True, "adjoints df/dz_(t) of steps 1..T, [t, j]"),
        Family("svbar", r"\bar{v}", 0, 2, True, "adjoints df/dv_(t) of steps 1..T, [t, j]"),
        Family("sa2", r"\mathcal{A}''", 0, 2, True, "A''(z_(t)) of steps 1..T, [t, j]"),
        Family("szdot", r"\dot{z}", 0, 2, True, "pre-activation tangents zdot_(t), [t, j]"),
    ]
}


def base_family(base: sp.IndexedBase) -> Family:
    """The :class:`Family` an ``IndexedBase`` made by a family belongs to."""
    name = str(base.label).split("(", 1)[0]
    return FAMILIES[name]


def base_labels(base: sp.IndexedBase) -> tuple[str, ...]:
    """Layer labels of an ``IndexedBase`` as strings (empty for unlabelled families)."""
    text = str(base.label)
    if "(" not in text:
        return ()
    return tuple(text.split("(", 1)[1].rstrip(")").split(","))


def idx(names: str) -> tuple[sp.Idx, ...]:
    """Ordinary (summable) indices, e.g. ``i, j = idx("i j")``."""
    return tuple(sp.Idx(s) for s in names.split())


def contract(expr: sp.Expr, *summed: sp.Idx) -> sp.Expr:
    """Sum ``expr`` over the given indices (the paper's summation convention).

    The bounds are symbolic placeholders: they are fixed by the axes each index
    labels when the expression is expanded or turned into an ``einsum``.
    """
    if not summed:
        return expr
    upper = sp.Symbol("N")
    return sp.Sum(expr, *[(s, 0, upper - 1) for s in summed])
