"""Appendix B.1: the ReLU feedforward network, Eqs 10-36 (and Section 2's copies 1-7).

Every equation is registered as a :class:`derive.registry.Equation`.  Index forms
follow ``docs/conventions.md``: upper index first, so ``eta_i^{(n,k),m}`` is
``eta(n,k)[m, i]`` and a derivative with respect to ``w_j^{(k),i}`` has its axes
ordered ``[i, j]`` like the weight array ``w(k)[i, j]``.
"""

from __future__ import annotations

import itertools

import sympy as sp

from derive.check_table import CHECKS
from derive.forms import Equation, Erratum, Form, register
from derive.notation import FAMILIES, contract, idx

F = FAMILIES
w, v, a1 = F["w"], F["v"], F["a1"]
gamma, beta, alpha, eta = F["gamma"], F["beta"], F["alpha"], F["eta"]
u, dfdp, d2fdp2 = F["u"](), F["dfdp"](), F["d2fdp2"]()
dv = sp.IndexedBase  # placeholder for derivative families below

i, j, m, s, t, l, q, a, c = idx("i j m s t l q a c")
# the index k of Eq 25 (k is also a layer label in most forms of this module)
(k_,) = idx("k")


def cases(*pairs: tuple[object, object]) -> sp.Expr:
    """The paper's ``\\begin{cases}`` over layer labels.

    ``pairs`` are ``(condition, thunk)``.  With integer labels the first true
    condition's thunk is built; with symbolic labels a ``Piecewise`` is returned.
    """
    built = []
    for cond, thunk in pairs:
        cval = sp.sympify(cond)
        if cval is sp.true:
            if not built:
                return sp.sympify(thunk())
            built.append((thunk(), True))
            break
        if cval is sp.false:
            continue
        built.append((thunk(), cval))
    if not built:
        return sp.S.Zero
    return sp.Piecewise(*built)


def _labels(n: int) -> list[dict]:
    return [{"n": n, "k": k} for k in range(1, n + 1)]


def _pairs(n: int) -> list[dict]:
    return [{"n": n, "k": k, "r": r} for k in range(1, n + 1) for r in range(1, n + 1)]


def _layer_pairs0(n: int) -> list[dict]:
    return [{"n": n, "k": k, "l": ll} for k in range(n + 1) for ll in range(n + 1)]


def _layer_pairs1(n: int) -> list[dict]:
    return [{"n": n, "k": k, "l": ll} for k in range(1, n + 1) for ll in range(1, n + 1)]


def _triples(n: int) -> list[dict]:
    return [
        {"n": n, "k": k, "l": ll, "m": mm}
        for k, ll, mm in itertools.product(range(n + 1), repeat=3)
    ]


# derivative families (per sample), named like the tensors they hold
dv_f = F["dv"] if "dv" in F else None


def dvk(k: object, ll: object) -> sp.IndexedBase:
    """``d v^{(k)} / d w^{(l)}`` as a tensor ``[j, s, t]``."""
    return sp.IndexedBase(f"dv({k},{ll})".replace(" ", ""))


# ---------------------------------------------------------------- definitions 10-17
DEFINITIONS = [
    # (number, name, left side, right side as printed, title)
    (
        "10",
        "layer",
        r"v^{(k),j}",
        r"\mathcal{A} \left( w_i^{(k),j} v^{(k-1),i} \right), \quad k = 1, \dots, n",
        "hidden layer",
    ),
    ("11", "relu", r"\mathcal{A}(z)", r"\max(z, 0)", "ReLU"),
    ("12", "input", r"v^{(0),i}", r"x^i", "input"),
    ("13", "logits", r"p^j", r"u_i^j v^{(n),i}", "output-layer logits"),
    ("14", "softmax", r"\hat{y}^j", r"\frac{\exp(p^j)}{\sum_l \exp(p^l)}", "softmax"),
    ("15", "cross_entropy", r"f", r"-y^l \ln \hat{y}^l", "per-sample loss"),
    ("16", "objective", r"F", r"E[f]", "objective: batch mean of f"),
]
_DEFINITION_FORMS = {
    # the contraction inside the activation of Eq 10: z^(k),j = w_i^(k),j v^(k-1),i
    "10": Form(lambda n, k: contract(w(k)[j, i] * v(k - 1)[i], i), ("j",)),
    "13": Form(lambda n: contract(u[j, i] * v(n)[i], i), ("j",)),
}
for number, name, lhs, tex, title in DEFINITIONS:
    register(
        Equation(
            number=number,
            name=name,
            title=title,
            section="B.1",
            paper_latex=tex,
            lhs_latex=lhs,
            labels=("k",) if number == "10" else (),
            printed=_DEFINITION_FORMS.get(number),
            role="definition",
            selfcheck=CHECKS["network"] if number in {"10", "12", "13"} else None,
        )
    )

register(
    Equation(
        number="17",
        name="relu_derivative",
        title="A'(z) for the ReLU",
        section="B.1",
        paper_latex=r"\begin{cases} 1 & z > 0 \\ 0 & z < 0 \end{cases}",
        lhs_latex=r"\mathcal{A}'(z)",
        role="fact",
        selfcheck=CHECKS["relu_first"],
    )
)

# ---------------------------------------------------------------- 18: dv/dw recursion
_eq18 = Form(
    lambda n, k, l: cases(
        (l > k, lambda: sp.S.Zero),
        (sp.Eq(l, k), lambda: sp.KroneckerDelta(s, j) * a1(k)[j] * v(k - 1)[t]),
        (l < k, lambda: contract(a1(k)[j] * w(k)[j, q] * dvk(k - 1, l)[q, s, t], q)),
    ),
    ("j", "s", "t"),
)
register(
    Equation(
        number="18",
        name="dv_dw_recursive",
        title="dv^(k)/dw^(l), recursive form",
        section="B.1",
        paper_latex=(
            r"\begin{cases} 0 & l > k \\ \delta_s^j \mathcal{A}'(w_i^{(k),j} v^{(k-1),i}) "
            r"v^{(k-1),t} & l = k \\ \mathcal{A}'(w_i^{(k),j} v^{(k-1),i}) w_q^{(k),j} "
            r"\frac{\partial v^{(k-1),q}}{\partial w_t^{(l),s}} & l < k \end{cases}"
        ),
        lhs_latex=r"\frac{\partial v^{(k),j}}{\partial w_t^{(l),s}}",
        labels=("k", "l"),
        printed=_eq18,
        selfcheck=CHECKS["dv_recursive"],
        label_sets=_layer_pairs1,
    )
)

# ---------------------------------------------------------------- 19-23 intermediates
register(
    Equation(
        number="19",
        name="gamma",
        title="gamma^(k): diagonal of A'(z^(k))",
        section="B.1",
        paper_latex=r"\delta_s^j \mathcal{A}' \left( w_i^{(k),j} v^{(k-1),i} \right)",
        lhs_latex=r"\gamma_s^{(k),j}",
        relation=r"\equiv",
        labels=("k",),
        printed=Form(lambda n, k: sp.KroneckerDelta(j, s) * a1(k)[j], ("j", "s")),
        role="definition",
        selfcheck=CHECKS["gamma"],
        label_sets=_labels,
    )
)
register(
    Equation(
        number="20",
        name="beta",
        title="beta^(k) = dv^(k)/dv^(k-1)",
        section="B.1",
        paper_latex=(
            r"\mathcal{A}' \left( w_l^{(k),j} v^{(k-1),l} \right) w_i^{(k),j} = "
            r"\gamma_s^{(k),j} w_i^{(k),s}"
        ),
        lhs_latex=r"\beta_i^{(k),j}",
        relation=r"\equiv",
        labels=("k",),
        printed=Form(lambda n, k: contract(gamma(k)[j, s] * w(k)[s, i], s), ("j", "i")),
        role="definition",
        selfcheck=CHECKS["beta"],
        label_sets=_labels,
    )
)


def _alpha_chain(k: int, ll: int, top: sp.Idx = j, bottom: sp.Idx = i) -> sp.Expr:
    """prod_{i=l+1}^{k} beta^{(i)} as an explicit contraction chain ``[top, bottom]``."""
    if k == ll + 1:
        return beta(k)[top, bottom]
    inner = [sp.Idx(f"c{p}") for p in range(k - ll - 1)]
    chain = [top, *inner, bottom]
    expr = sp.S.One
    for p, layer in enumerate(range(k, ll, -1)):
        expr = expr * beta(layer)[chain[p], chain[p + 1]]
    return contract(expr, *inner)


def _alpha_form(reading_delta: bool) -> Form:
    def build(n, k, l):  # noqa: E741
        if isinstance(k, int) and isinstance(l, int):
            if k > l:
                return _alpha_chain(k, l)
            if k == l:
                return sp.KroneckerDelta(j, i)
            return sp.S.Zero
        return sp.Piecewise(
            (sp.Symbol(r"\prod_{i=l+1}^{k} \beta^{(i)}"), k > l),
            (sp.KroneckerDelta(j, i), sp.Eq(k, l)),
            (0, True),
        )

    return Form(build, ("j", "i"))


# Eq 21 symbol for symbol: the left side is alpha_{j_i}^{(k,l),j_k}; the product of the
# betas beta_{j_{i-1}}^{(i),j_i}, i = l+1..k, runs from j_k down to j_l; the k = l case is
# delta_j^i
_jk, _ji, _jl = sp.Idx("j_k"), sp.Idx("j_i"), sp.Idx("j_l")


def _alpha_printed(n, k, l):  # noqa: E741
    if isinstance(k, int) and isinstance(l, int):
        if k > l:
            return _alpha_chain(k, l, top=_jk, bottom=_jl)
        if k == l:
            return sp.KroneckerDelta(j, i)
        return sp.S.Zero
    return sp.Piecewise(
        (sp.Symbol(r"\prod_{i=l+1}^k \beta_{j_{i-1}}^{(i),j_i}"), k > l),
        (sp.KroneckerDelta(j, i), sp.Eq(k, l)),
        (0, k < l),
    )


register(
    Equation(
        number="21",
        name="alpha",
        title="alpha^(k,l) = dv^(k)/dv^(l), a product of betas",
        section="B.1",
        paper_latex=(
            r"\begin{cases} \prod_{i=l+1}^k \beta_{j_{i-1}}^{(i),j_i} & k > l \\ \delta_j^i "
            r"& k = l \\ 0 & k < l \end{cases}"
        ),
        lhs_latex=r"\alpha_{j_i}^{(k,l),j_k}",
        relation=r"\equiv",
        labels=("k", "l"),
        printed=Form(_alpha_printed, ("j_k", "j_i")),
        corrected=_alpha_form(True),
        erratum=Erratum(
            kinds=("free-index",),
            what=(
                "the left-hand side's lower index j_i is named after the product's running "
                "layer label i, while the product ends on j_l (its i = l+1 factor is "
                "beta_{j_l}^{(l+1),j_{l+1}}); the k = l case is printed as delta_j^i, whose "
                "indices i, j are not the left-hand side's j_k, j_i"
            ),
            reading=(
                "alpha_{j_l}^{(k,l),j_k}: the product for k > l, delta_{j_l}^{j_k} (the "
                "identity on layer l's units) for k = l, 0 for k < l"
            ),
        ),
        role="definition",
        selfcheck=CHECKS["alpha"],
        label_sets=_layer_pairs0,
    )
)


def _compose(valid_only: bool) -> Form:
    def build(n, k, l, m):  # noqa: E741
        if valid_only and not (m <= l <= k):
            return None
        lhs = alpha(k, l)[j, c] * alpha(l, m)[c, i]
        return contract(lhs, c)

    return Form(build, ("j", "i"))


register(
    Equation(
        number="22",
        name="alpha_composition",
        title="composition rule alpha^(k,l) alpha^(l,m) = alpha^(k,m)",
        section="B.1",
        paper_latex=r"\alpha_{j_m}^{(k,m),j_k}",
        lhs_latex=r"\alpha_{j_l}^{(k,l),j_k} \alpha_{j_m}^{(l,m),j_l}",
        form_lhs_latex=r"\alpha_{j_m}^{(k,m),j_k}",
        labels=("k", "l", "m"),
        printed=_compose(False),
        corrected=_compose(True),
        erratum=Erratum(
            kinds=("missing-bound",),
            what=(
                "stated for all k, l, m; it holds only for m <= l <= k (for l outside "
                "[m, k] one factor is 0 while alpha^(k,m) is not)"
            ),
            reading="add the bound m <= l <= k",
        ),
        role="identity",
        selfcheck=CHECKS["alpha_composition"],
        label_sets=_triples,
    )
)

register(
    Equation(
        number="23",
        name="eta",
        title="eta^(k,l) = alpha^(k,l) gamma^(l)",
        section="B.1",
        paper_latex=r"\alpha_s^{(k,l),j} \gamma_i^{(k),s}",
        lhs_latex=r"\eta_i^{(k,l),j}",
        relation=r"\equiv",
        labels=("k", "l"),
        printed=Form(lambda n, k, l: contract(alpha(k, l)[j, s] * gamma(k)[s, i], s), ("j", "i")),
        corrected=Form(lambda n, k, l: contract(alpha(k, l)[j, s] * gamma(l)[s, i], s), ("j", "i")),
        erratum=Erratum(
            kinds=("index", "dimension"),
            what=(
                "gamma carries the superscript (k) instead of (l): alpha^(k,l) ends on "
                "layer l's units, so gamma^(k) only fits when widths k and l are equal, "
                "and even then it applies layer k's ReLU mask to layer l"
            ),
            reading="gamma_i^{(l),s}",
        ),
        role="definition",
        selfcheck=CHECKS["eta"],
        label_sets=lambda n: [d for d in _layer_pairs1(n) if d["l"] <= d["k"]],
    )
)

register(
    Equation(
        number="24",
        name="dv_dw",
        title="dv^(k)/dw^(l) = eta^(k,l) v^(l-1)",
        section="B.1",
        paper_latex=(
            r"\begin{cases} 0 & l > k \\ \eta_s^{(k,l),j} v^{(l-1),t} & l \leq k \end{cases}"
        ),
        lhs_latex=r"\frac{\partial v^{(k),j}}{\partial w_t^{(l),s}}",
        labels=("k", "l"),
        printed=Form(
            lambda n, k, l: cases(
                (l > k, lambda: sp.S.Zero), (l <= k, lambda: eta(k, l)[j, s] * v(l - 1)[t])
            ),
            ("j", "s", "t"),
        ),
        selfcheck=CHECKS["dv"],
        label_sets=_layer_pairs1,
    )
)

register(
    Equation(
        number="25",
        name="dp_du",
        title="dp/du",
        section="B.1",
        paper_latex=r"\delta_l^j v^{(n),k}",
        lhs_latex=r"\frac{\partial p^j}{\partial u_k^j}",
        form_lhs_latex=r"\frac{\partial p^j}{\partial u_c^a}",
        labels=(),
        # as printed: d p^j / d u_k^j (j twice on the left) = delta_l^j v^{(n),k}, l free
        printed=Form(lambda n: sp.KroneckerDelta(l, j) * v(n)[k_], ("j", "k")),
        corrected=Form(lambda n: sp.KroneckerDelta(j, a) * v(n)[c], ("j", "a", "c")),
        erratum=Erratum(
            kinds=("free-index",),
            what=(
                "the left-hand side differentiates by u_k^j (the same j as p^j) while the "
                "right-hand side has a free index l that appears nowhere else"
            ),
            reading="dp^j/du_k^l = delta_l^j v^{(n),k}",
        ),
        selfcheck=CHECKS["dp_du"],
    )
)
register(
    Equation(
        number="26",
        name="dp_dv",
        title="dp/dv^(n)",
        section="B.1",
        paper_latex=r"u_i^j",
        lhs_latex=r"\frac{\partial p^j}{\partial v^{(n),i}}",
        printed=Form(lambda n: u[j, i], ("j", "i")),
        selfcheck=CHECKS["dp_dv"],
    )
)

# ---------------------------------------------------------------- 27-28 gradients
register(
    Equation(
        number="27",
        name="grad_u",
        title="df/du (outer product)",
        section="B.1",
        paper_latex=(
            r"\frac{\partial f}{\partial p^k} \frac{\partial p^k}{\partial u_j^i} = "
            r"\frac{\partial f}{\partial p^i} v^{(n),j}"
        ),
        lhs_latex=r"\frac{\partial f}{\partial u_j^i}",
        printed=Form(lambda n: dfdp[i] * v(n)[j], ("i", "j")),
        copies=("1",),
        selfcheck=CHECKS["grad_u"],
    )
)
register(
    Equation(
        number="28",
        name="grad_w",
        title="df/dw^(k) (outer product)",
        section="B.1",
        paper_latex=(
            r"\frac{\partial f}{\partial p^l} \frac{\partial p^l}{\partial v^{(n),m}} "
            r"\frac{\partial v^{(n),m}}{\partial w_j^{(k),i}} = \frac{\partial f}{\partial "
            r"p^l} u_m^l \eta_i^{(n,k),m} v^{(k-1),j}"
        ),
        lhs_latex=r"\frac{\partial f}{\partial w_j^{(k),i}}",
        labels=("k",),
        printed=Form(
            lambda n, k: contract(dfdp[l] * u[l, m] * eta(n, k)[m, i] * v(k - 1)[j], l, m),
            ("i", "j"),
        ),
        copies=("2",),
        selfcheck=CHECKS["grad_w"],
        label_sets=_labels,
    )
)

# ---------------------------------------------------------------- 29-33 second-order pieces
register(
    Equation(
        number="29",
        name="relu_second_derivative",
        title="A''(z) = 0 for the ReLU",
        section="B.1",
        paper_latex=r"0",
        lhs_latex=r"\mathcal{A}''(z)",
        role="fact",
        selfcheck=CHECKS["relu_second"],
    )
)


def dalpha(n: object, k: object, r: object) -> sp.IndexedBase:
    """``d alpha^{(n,k)} / d w^{(r)}`` as ``[m, q, s, t]``."""
    return sp.IndexedBase(f"dalpha({n},{k},{r})".replace(" ", ""))


register(
    Equation(
        number="30",
        name="dalpha_dw",
        title="d alpha^(n,k)/dw^(r)",
        section="B.1",
        paper_latex=(
            r"\alpha_a^{(n,r),m} \mathcal{A}'\left(w_p^{(r),a} v^{(r-1),p}\right) \delta_s^a "
            r"\delta_b^t \alpha_q^{(r-1,k),b} = \eta_s^{(n,r),m} \alpha_q^{(r-1,k),t}"
        ),
        lhs_latex=r"\frac{\partial \alpha_q^{(n,k),m}}{\partial w_t^{(r),s}}",
        labels=("k", "r"),
        printed=Form(lambda n, k, r: eta(n, r)[m, s] * alpha(r - 1, k)[t, q], ("m", "q", "s", "t")),
        selfcheck=CHECKS["dalpha"],
        label_sets=_pairs,
    )
)
register(
    Equation(
        number="31",
        name="dgamma_relu",
        title="d gamma / d(anything) = 0 for the ReLU",
        section="B.1",
        paper_latex=r"0",
        lhs_latex=r"\frac{\partial \gamma_s^{(k),j}}{\partial (\cdot)}",
        role="fact",
        selfcheck=CHECKS["dgamma"],
    )
)
register(
    Equation(
        number="32",
        name="deta_dw",
        title="d eta^(n,k)/dw^(r)",
        section="B.1",
        paper_latex=(r"\frac{\partial \alpha_q^{(n,k),m}}{\partial w_t^{(r),s}} \gamma_i^{(k),q}"),
        lhs_latex=r"\frac{\partial \eta_i^{(n,k),m}}{\partial w_t^{(r),s}}",
        labels=("k", "r"),
        printed=Form(
            lambda n, k, r: contract(dalpha(n, k, r)[m, q, s, t] * gamma(k)[q, i], q),
            ("m", "i", "s", "t"),
        ),
        selfcheck=CHECKS["deta"],
        label_sets=_pairs,
    )
)


def _d2v(n, k, r):
    return cases(
        (r > k, lambda: eta(n, r)[m, s] * eta(r - 1, k)[t, i] * v(k - 1)[j]),
        (sp.Eq(r, k), lambda: sp.S.Zero),
        (r < k, lambda: eta(n, k)[m, i] * eta(k - 1, r)[j, s] * v(r - 1)[t]),
    )


register(
    Equation(
        number="33",
        name="d2v_dw2",
        title="second derivative of the last hidden output",
        section="B.1",
        paper_latex=(
            r"\begin{cases} \frac{\partial \alpha_q^{(n,k),m}}{\partial w_t^{(r),s}} "
            r"\gamma_i^{(k),q} v^{(k-1),j} & r > k \\ 0 & r = k \\ \eta_i^{(n,k),m} "
            r"\frac{\partial v^{(k-1),j}}{\partial w_t^{(r),s}} & r < k \end{cases} = "
            r"\begin{cases} \eta_s^{(n,r),m} \eta_i^{(r-1,k),t} v^{(k-1),j} & r > k \\ 0 & r "
            r"= k \\ \eta_i^{(n,k),m} \eta_s^{(k-1,r),j} v^{(r-1),t} & r < k \end{cases}"
        ),
        lhs_latex=r"\frac{\partial^2 v^{(n),m}}{\partial w_j^{(k),i} \partial w_t^{(r),s}}",
        labels=("k", "r"),
        printed=Form(_d2v, ("m", "i", "j", "s", "t")),
        selfcheck=CHECKS["d2v"],
        label_sets=_pairs,
    )
)

# ---------------------------------------------------------------- 34-36 Hessian blocks
register(
    Equation(
        number="34",
        name="hessian_uu",
        title="Hessian block (u, u)",
        section="B.1",
        paper_latex=(
            r"\frac{\partial^2 f}{\partial p^k \partial p^l} \frac{\partial p^k}{\partial "
            r"u_j^i} \frac{\partial p^l}{\partial u_t^s} = \frac{\partial^2 f}{\partial p^i "
            r"\partial p^s} v^{(n),j} v^{(n),t}"
        ),
        lhs_latex=r"\frac{\partial^2 f}{\partial u_j^i \partial u_t^s}",
        printed=Form(lambda n: d2fdp2[i, s] * v(n)[j] * v(n)[t], ("i", "j", "s", "t")),
        copies=("3",),
        selfcheck=CHECKS["hessian_uu"],
    )
)


def _huw(n, k):
    return dfdp[i] * eta(n, k)[j, s] * v(k - 1)[t] + contract(
        d2fdp2[i, l] * v(n)[j] * u[l, m] * eta(n, k)[m, s] * v(k - 1)[t], l, m
    )


register(
    Equation(
        number="35",
        name="hessian_uw",
        title="Hessian block (u, w^(k))",
        section="B.1",
        paper_latex=(
            r"\frac{\partial f}{\partial p^i} \frac{\partial v^{(n),j}}{\partial "
            r"w_t^{(k),s}} + \frac{\partial^2 f}{\partial p^i \partial p^l} v^{(n),j} "
            r"\frac{\partial p^l}{\partial v^{(n),m}} \frac{\partial v^{(n),m}}{\partial "
            r"w_t^{(k),s}} = \frac{\partial f}{\partial p^i} \eta_s^{(n,k),j} v^{(k-1),t} + "
            r"\frac{\partial^2 f}{\partial p^i \partial p^l} v^{(n),j} u_m^l "
            r"\eta_s^{(n,k),m} v^{(k-1),t}"
        ),
        lhs_latex=r"\frac{\partial^2 f}{\partial u_j^i \partial w_t^{(k),s}}",
        labels=("k",),
        printed=Form(_huw, ("i", "j", "s", "t")),
        copies=("4", "6", "7"),
        selfcheck=CHECKS["hessian_uw"],
        label_sets=_labels,
    )
)


def _hww(n, k, r):
    gauss_newton = contract(
        d2fdp2[l, q]
        * u[l, m]
        * eta(n, k)[m, i]
        * v(k - 1)[j]
        * u[q, a]
        * eta(n, r)[a, s]
        * v(r - 1)[t],
        l,
        q,
        m,
        a,
    )
    curvature = cases(
        (
            r > k,
            lambda: contract(
                dfdp[l] * u[l, m] * eta(n, r)[m, s] * eta(r - 1, k)[t, i] * v(k - 1)[j], l, m
            ),
        ),
        (sp.Eq(r, k), lambda: sp.S.Zero),
        (
            r < k,
            lambda: contract(
                dfdp[l] * u[l, m] * eta(n, k)[m, i] * eta(k - 1, r)[j, s] * v(r - 1)[t], l, m
            ),
        ),
    )
    return gauss_newton + curvature


register(
    Equation(
        number="36",
        name="hessian_ww",
        title="Hessian block (w^(k), w^(r))",
        section="B.1",
        paper_latex=(
            r"\frac{\partial^2 f}{\partial p^l \partial p^q} \frac{\partial p^l}{\partial "
            r"v^{(n),m}} \frac{\partial v^{(n),m}}{\partial w_j^{(k),i}} \frac{\partial "
            r"p^q}{\partial v^{(n),a}} \frac{\partial v^{(n),a}}{\partial w_t^{(r),s}} + "
            r"\frac{\partial f}{\partial p^l} \frac{\partial p^l}{\partial v^{(n),m}} "
            r"\frac{\partial^2 v^{(n),m}}{\partial w_j^{(k),i} \partial w_t^{(r),s}} = "
            r"\frac{\partial^2 f}{\partial p^l \partial p^q} u_m^l \eta_i^{(n,k),m} "
            r"v^{(k-1),j} u_a^q \eta_s^{(n,r),a} v^{(r-1),t} + \frac{\partial f}{\partial "
            r"p^l} u_m^l \times \begin{cases} \eta_s^{(n,r),m} \eta_i^{(r-1,k),t} "
            r"v^{(k-1),j} & r > k \\ 0 & r = k \\ \eta_i^{(n,k),m} \eta_s^{(k-1,r),j} "
            r"v^{(r-1),t} & r < k \end{cases}"
        ),
        lhs_latex=r"\frac{\partial^2 f}{\partial w_j^{(k),i} \partial w_t^{(r),s}}",
        labels=("k", "r"),
        printed=Form(_hww, ("i", "j", "s", "t")),
        copies=("5",),
        selfcheck=CHECKS["hessian_ww"],
        label_sets=_pairs,
    )
)
