"""The equation registry: one named object per equation of the paper.

Each :class:`Equation` carries its number, the paper's printed LaTeX, the index
form *as printed* and, where that form is wrong, a *corrected* form with a note on
what differs.  Both forms stay: the printed one is evidence (the verification
report measures its error), the corrected one is what kernels use.

Later sections of the paper (B.2, B.3) register their equations in the same
registry by importing :func:`register` in their own module under
``derive/equations/``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import sympy as sp
from sympy.printing.latex import LatexPrinter

__all__ = ["Form", "Erratum", "Equation", "register", "get", "all_equations", "ERRATUM_KINDS"]

ERRATUM_KINDS = {
    "index": "a wrong index or superscript",
    "dimension": "a dimension that only matches when widths are equal",
    "dropped-term": "a term dropped from a sum",
    "case-logic": "wrong case logic in a piecewise formula",
    "missing-bound": "a missing bound or condition on the layer labels",
    "sqrt-sign": "a sign error under a square root",
    "validity": "a stated condition of validity that does not hold",
    "batch-average": "the batch-average reading of F = E[f] (product of averages)",
    "free-index": "cannot be implemented as printed (a free index left over)",
}


@dataclass(frozen=True)
class Form:
    """An index-form right-hand side.

    Parameters
    ----------
    build : callable
        ``build(**labels) -> sympy.Expr``.  Labels are layer numbers (``n``, ``k``,
        ``r``, ...); with integer labels the piecewise cases of the paper resolve to
        one branch, with symbolic labels ``build`` may return a ``Piecewise``.
    free : tuple of str
        Free indices of the result, in array-axis order.
    """

    build: Callable[..., sp.Expr]
    free: tuple[str, ...]

    def __call__(self, **labels: object) -> sp.Expr:
        return self.build(**labels)


@dataclass(frozen=True)
class Erratum:
    """What is wrong with the printed form."""

    kinds: tuple[str, ...]
    what: str
    reading: str = ""

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(ERRATUM_KINDS)
        if unknown:
            raise ValueError(f"unknown erratum kinds {unknown}")


@dataclass(frozen=True)
class Equation:
    """One equation of the paper.

    Attributes
    ----------
    number : str
        The paper's equation number, e.g. ``"36"`` (or ``"T2"`` for Table 2).
    name : str
        Python name, e.g. ``"hessian_ww"``.
    title : str
        What it gives.
    section : str
        Paper section (``"B.1"``).
    paper_latex : str
        The right-hand side as printed in the paper (verbatim LaTeX).
    lhs_latex : str
        Left-hand side in LaTeX.
    labels : tuple of str
        Layer labels the forms take, always starting with ``"n"`` when the form
        depends on the depth.
    printed : Form or None
        The form as printed; ``None`` when it cannot be implemented as printed (see
        ``erratum.reading``) or when the equation is a definition with no form.
    corrected : Form or None
        The corrected form, when the printed one is wrong.
    erratum : Erratum or None
    copies : tuple of str
        Numbers of the same equation printed elsewhere (Section 2 repeats B.1).
    role : str
        ``"definition"``, ``"identity"``, ``"derivative"``, ``"cr"`` or ``"fact"``.
    check : str
        Name of the self-check that applies (see :mod:`derive.selfcheck`), or ``""``.
    label_sets : callable
        ``label_sets(n) -> iterable of dict`` of concrete labels to check for depth n.
    activation : {"relu", "general"}
        Which activation the self-check assumes: ``A'' = 0`` (B.1) or a general
        entry-wise function with free ``A''`` (B.3).
    parts : dict
        For equations that sum over layers (Eqs 38-40), one :class:`Form` per kind
        of term with its own layer labels; code generation emits one kernel per part.
    """

    number: str
    name: str
    title: str
    section: str
    paper_latex: str
    lhs_latex: str
    labels: tuple[str, ...] = ()
    printed: Form | None = None
    corrected: Form | None = None
    erratum: Erratum | None = None
    copies: tuple[str, ...] = ()
    role: str = "derivative"
    check: str = ""
    label_sets: Callable[[int], Iterable[dict]] = field(default=lambda n: [{"n": n}])
    parts: dict[str, Form] = field(default_factory=dict)
    activation: str = "relu"

    @property
    def form(self) -> Form | None:
        """The form kernels use: the corrected one where it exists."""
        return self.corrected if self.corrected is not None else self.printed

    def symbolic(self, which: str = "form") -> sp.Expr | None:
        """The form with symbolic layer labels (for display)."""
        f = self.form if which == "form" else getattr(self, which)
        if f is None:
            return None
        params = inspect.signature(f.build).parameters
        syms = {
            name: sp.Symbol(name, integer=True, positive=True)
            for name in ("n", *self.labels)
            if name in params
        }
        try:
            return f(**syms)
        except (TypeError, ValueError):
            # forms that loop over layers (Eqs 38-40) need a concrete depth
            return None

    def equation_latex(self, which: str = "form") -> str:
        """``lhs = rhs`` in LaTeX for the printed (paper's text), ``printed``, ``corrected``
        or kernel ``form``; empty when that form does not exist."""
        if which == "paper":
            rhs = self.paper_latex
        else:
            rhs = self.latex(which)
        if not rhs:
            return ""
        if not self.lhs_latex or "=" in rhs.split(r"\begin")[0]:
            return rhs
        if self.lhs_latex.rstrip().endswith(r"\approx"):
            return f"{self.lhs_latex} {rhs}"
        return f"{self.lhs_latex} = {rhs}"

    def latex(self, which: str = "form") -> str:
        """LaTeX of the index form (``which`` is ``form``, ``printed`` or ``corrected``)."""
        expr = self.symbolic(which)
        if expr is None:
            return self.paper_latex if which != "corrected" else ""
        return latex_index_form(expr)


class IndexFormLatexPrinter(LatexPrinter):
    """LaTeX printer for index forms: contractions as ``\\sum_{l,m}`` (their bounds
    are the extents of the indices, not written out)."""

    def _print_Sum(self, expr: sp.Sum) -> str:
        names = ",".join(self._print(lim[0]) for lim in expr.limits)
        return rf"\sum_{{{names}}} {self._print(expr.function)}"


def latex_index_form(expr: sp.Expr) -> str:
    """LaTeX of an index form with the paper's symbols: ``eta(n,k)`` -> ``\\eta^{(n,k)}``."""
    from derive.notation import FAMILIES

    names = {}
    for base in expr.atoms(sp.IndexedBase):
        text = str(base.label)
        fam, _, rest = text.partition("(")
        if fam in FAMILIES:
            tex = FAMILIES[fam].tex
            names[base.label] = f"{tex}^{{({rest}}}" if rest else tex
    return IndexFormLatexPrinter({"symbol_names": names}).doprint(expr)


_REGISTRY: dict[str, Equation] = {}


def register(eq: Equation) -> Equation:
    """Add an equation to the registry (numbers are unique)."""
    if eq.number in _REGISTRY:
        raise ValueError(f"equation {eq.number} registered twice")
    _REGISTRY[eq.number] = eq
    return eq


def _key(number: str) -> tuple[int, int, str]:
    """Paper equations in numeric order, then Table 2, then contracted and low-rank forms."""
    group = {"T": 1, "C": 2, "L": 3}.get(number[0], 0)
    digits = "".join(ch for ch in number.split(".")[0] if ch.isdigit())
    return (group, int(digits) if digits else 0, number)


def all_equations() -> list[Equation]:
    """Every registered equation, in paper order."""
    from derive import equations  # noqa: F401  (registers on import)

    return sorted(_REGISTRY.values(), key=lambda e: _key(e.number))


def get(number: str | int) -> Equation:
    """The equation with this number (or the number of one of its copies)."""
    from derive import equations  # noqa: F401

    key = str(number)
    if key in _REGISTRY:
        return _REGISTRY[key]
    for eq in _REGISTRY.values():
        if key in eq.copies:
            return eq
    raise KeyError(f"no equation {number}; known: {sorted(_REGISTRY, key=_key)}")
