"""Section 2: Eqs 1-7, the derivatives of Appendix B.1 stated again in the main text.

Each is registered with its own printed text and form (``copy_of`` names the Appendix
equation it restates), because a restatement is not necessarily the same formula:

* Eqs 1, 3, 4, 5 are the final right-hand sides of Eqs 27, 34, 35, 36, symbol for
  symbol; their forms are those equations' forms.
* Eq 2 restates Eq 28 with ``df/dp^i`` where Eq 28 has ``df/dp^l``: ``i`` appears three
  times and ``l`` only once (an erratum; its corrected form is Eq 28's).
* Eq 6 writes Eq 35 with the coefficient ``a_{is}`` that Eq 7 defines.
"""

from __future__ import annotations

from derive.check_table import CHECKS
from derive.equations import feedforward_relu as b1
from derive.forms import Equation, Erratum, Form, lookup, register
from derive.notation import FAMILIES, contract, idx

F = FAMILIES
v, eta = F["v"], F["eta"]
u, dfdp, d2fdp2, acoef = F["u"](), F["dfdp"](), F["d2fdp2"](), F["a"]()

i, j, m, s, t, l = idx("i j m s t l")

SECTION = "2"


def _restate(number: str, of: str, rhs: str, title: str) -> None:
    """A Section 2 equation that is the final right-hand side of ``of``, verbatim."""
    target = lookup(of)
    register(
        Equation(
            number=number,
            name=f"{target.name}_section2",
            title=f"{title} (Eq {of} restated)",
            section=SECTION,
            paper_latex=rhs,
            lhs_latex=target.lhs_latex,
            labels=target.labels,
            printed=target.printed,
            selfcheck=target.selfcheck,
            label_sets=target.label_sets,
            copy_of=of,
        )
    )


_restate("1", "27", r"\frac{\partial f}{\partial p^i} v^{(n),j}", "df/du (outer product)")


def _eq2_printed(n, k):
    """Eq 2 symbol for symbol: ``df/dp^i u_m^l eta_i^{(n,k),m} v^{(k-1),j}``, summed over
    ``m``; ``i`` appears three times (with the left-hand side's) and ``l`` once."""
    return contract(dfdp[i] * u[l, m] * eta(n, k)[m, i] * v(k - 1)[j], m)


register(
    Equation(
        number="2",
        name="grad_w_section2",
        title="df/dw^(k) (outer product) (Eq 28 restated)",
        section=SECTION,
        paper_latex=r"\frac{\partial f}{\partial p^i} u_m^l \eta_i^{(n,k),m} v^{(k-1),j}",
        lhs_latex=r"\frac{\partial f}{\partial w_j^{(k),i}}",
        labels=("k",),
        printed=Form(_eq2_printed, ("i", "j")),
        corrected=lookup("28").printed,
        erratum=Erratum(
            kinds=("free-index",),
            what=(
                "df/dp^i u_m^l eta_i^{(n,k),m}: i appears three times (on df/dp, on eta and "
                "on the left-hand side) and l only once, so l is left free and nothing "
                "pairs df/dp with u; Eq 28 prints df/dp^l (the sentence after Eq 2 repeats "
                "the misprint)"
            ),
            reading="df/dp^l u_m^l eta_i^{(n,k),m} v^{(k-1),j} (Eq 28)",
        ),
        selfcheck=lookup("28").selfcheck,
        label_sets=lookup("28").label_sets,
        copy_of="28",
    )
)

_restate(
    "3",
    "34",
    r"\frac{\partial^2 f}{\partial p^i \partial p^s} v^{(n),j} v^{(n),t}",
    "Hessian block (u, u)",
)
_restate(
    "4",
    "35",
    r"\frac{\partial f}{\partial p^i} \eta_s^{(n,k),j} v^{(k-1),t} + \frac{\partial^2 f}"
    r"{\partial p^i \partial p^l} v^{(n),j} u_m^l \eta_s^{(n,k),m} v^{(k-1),t}",
    "Hessian block (u, w^(k))",
)
_restate(
    "5",
    "36",
    r"\frac{\partial^2 f}{\partial p^l \partial p^q} u_m^l \eta_i^{(n,k),m} v^{(k-1),j} "
    r"u_a^q \eta_s^{(n,r),a} v^{(r-1),t} + \frac{\partial f}{\partial p^l} u_m^l \times "
    r"\begin{cases} \eta_s^{(n,r),m} \eta_i^{(r-1,k),t} v^{(k-1),j} & r > k \\ 0 & r = k \\ "
    r"\eta_i^{(n,k),m} \eta_s^{(k-1,r),j} v^{(r-1),t} & r < k \end{cases}",
    "Hessian block (w^(k), w^(r))",
)


def _eq6(n, k):
    """Eq 6: ``df/dp^i eta_s^{(n,k),j} v^{(k-1),t} + a_{is} v^{(n),j} v^{(k-1),t}``."""
    return dfdp[i] * eta(n, k)[j, s] * v(k - 1)[t] + acoef[i, s] * v(n)[j] * v(k - 1)[t]


register(
    Equation(
        number="6",
        name="hessian_uw_with_a",
        title="Hessian block (u, w^(k)) with the coefficient a_is of Eq 7 (Eq 35 restated)",
        section=SECTION,
        paper_latex=(
            r"\left( \frac{\partial f}{\partial p^i} \times \eta_s^{(n,k),j} \times v^{(k-1),t} "
            r"\right) + \left( a_{is} \times v^{(n),j} \times v^{(k-1),t} \right)"
        ),
        lhs_latex=r"\frac{\partial^2 f}{\partial u_j^i \partial w_t^{(k),s}}",
        labels=("k",),
        printed=Form(_eq6, ("i", "j", "s", "t")),
        selfcheck=CHECKS["hessian_uw_with_a"],
        label_sets=b1._labels,
        copy_of="35",
    )
)
register(
    Equation(
        number="7",
        name="coefficient_a",
        title="the coefficient a_is of Eq 6 (at the layer k of Eq 6)",
        section=SECTION,
        paper_latex=r"\frac{\partial^2 f}{\partial p^i \partial p^l} u_m^l \eta_s^{(n,k),m}",
        lhs_latex=r"a_{is}",
        labels=("k",),
        printed=Form(
            lambda n, k: contract(d2fdp2[i, l] * u[l, m] * eta(n, k)[m, s], l, m), ("i", "s")
        ),
        role="definition",
        label_sets=b1._labels,
    )
)
