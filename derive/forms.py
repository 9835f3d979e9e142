"""What the registry holds: :class:`Form`, :class:`Erratum`, :class:`SelfCheck` and
:class:`Equation`, and the table the equation modules register into.

This is the bottom of the derive layer's equation stack: the equation modules
(``derive/equations/``) import it to build and :func:`register` their equations, and
the self-check modules (:mod:`derive.references`, :mod:`derive.layer_checks`) to build
the :class:`SelfCheck` objects the equations carry.  Nothing here imports an equation
module; the public entry point that loads them all is :mod:`derive.registry`.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import sympy as sp
from sympy.printing.latex import LatexPrinter

from derive.notation import FAMILIES

__all__ = [
    "ERRATUM_KINDS",
    "Form",
    "Erratum",
    "SelfCheck",
    "Equation",
    "register",
    "lookup",
    "registered",
    "latex_index_form",
    "symbol_legend",
]

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
class SelfCheck:
    """How an equation is checked against an independent reference.

    Equations carry their check (:attr:`Equation.selfcheck`); :mod:`derive.selfcheck`
    runs whatever the equation carries, so adding a check never touches a dispatcher.

    Parameters
    ----------
    name : str
        Short name (shown in tables and JSON), e.g. ``"grad_w"``.
    reference : callable, optional
        ``reference(ctx, labels) -> ndarray``: the reference values at concrete layer
        labels, from the explicit network of :class:`derive.checking.Context`.
    lhs : callable, optional
        ``lhs(ctx, form, labels) -> ndarray``: the form's values at the labels (default:
        ``ctx.evaluate(form, labels, sizes(ctx, labels))``).
    sizes : callable, optional
        ``sizes(ctx, labels) -> dict``: extents of free indices, for forms whose branch
        at these labels is ``0`` (the default ``lhs`` needs them then).
    run : callable, optional
        ``run(eq, ctx, which) -> Verdict``: a check that is not an entry-by-entry
        comparison (scalar facts, the CR step length); replaces the comparison.
    resolver : callable, optional
        ``resolver(ctx, name) -> ndarray``: the array of a base name for this check's
        forms (default ``ctx.array``); the batch-reading check uses it per sample.
    """

    name: str
    reference: Callable | None = None
    lhs: Callable | None = None
    sizes: Callable | None = None
    run: Callable | None = None
    resolver: Callable | None = None


@dataclass(frozen=True)
class Equation:
    """One equation of the paper (or a form derived from them).

    Attributes
    ----------
    number : str
        The paper's equation number, e.g. ``"36"``; ``"T2.u"``/``"T2.w"`` for Table 2;
        ``"C1"``, ``"L1"``, ``"63.g"``, ... for derived forms not in the paper.
    name : str
        Python name, e.g. ``"hessian_ww"``.
    title : str
        What it gives.
    section : str
        Paper section (``"B.1"``).
    paper_latex : str
        The right-hand side as printed in the paper, verbatim: everything after the
        left-hand side and its relation (middle expressions of a chain included).
        Empty for derived forms.
    lhs_latex : str
        The left-hand side as printed in the paper (empty for definitions printed with
        no separate left side).
    relation : str
        The relation printed between the two sides: ``"="``, ``"\\equiv"`` or
        ``"\\approx"``.
    form_lhs_latex : str
        The left-hand side of this project's index forms, where it differs from the
        paper's (a corrected or renamed left side); empty when it is the paper's.
    labels : tuple of str
        Layer labels the forms take, always starting with ``"n"`` when the form
        depends on the depth.
    printed : Form or None
        The form as printed, symbol for symbol; ``None`` when the equation is a
        definition with no form.  A printed form that cannot be evaluated (a free
        index) is still given: its self-check then reports why.
    corrected : Form or None
        The corrected form, when the printed one is wrong.
    erratum : Erratum or None
    copies : tuple of str
        Numbers of Section 2's restatements of this Appendix equation (kernels cite them);
        each restatement has an entry of its own with its own printed text and form,
        since a restatement may differ from the original (Eq 2 does).
    copy_of : str
        For Section 2's Eqs 1-7: the Appendix equation this one restates.
    role : str
        ``"definition"``, ``"identity"``, ``"derivative"``, ``"cr"``, ``"fact"`` or
        ``"contracted"`` (derived).
    selfcheck : SelfCheck or None
        The check that applies (see :mod:`derive.selfcheck`).
    check : str
        Name of the self-check (``selfcheck.name``; filled in from it), or ``""``.
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
    selfcheck: SelfCheck | None = None
    relation: str = "="
    form_lhs_latex: str = ""
    copy_of: str = ""

    def __post_init__(self) -> None:
        if self.selfcheck is not None and not self.check:
            object.__setattr__(self, "check", self.selfcheck.name)

    @property
    def form(self) -> Form | None:
        """The form kernels use: the corrected one where it exists."""
        return self.corrected if self.corrected is not None else self.printed

    @property
    def derived(self) -> bool:
        """Whether this is a form of the project's own, not printed in the paper."""
        return not self.paper_latex

    def paper_display(self) -> str:
        """The whole display as the paper prints it: ``lhs relation rhs``."""
        if not self.paper_latex:
            return ""
        if not self.lhs_latex:
            return self.paper_latex
        return f"{self.lhs_latex} {self.relation} {self.paper_latex}"

    def symbolic(self, which: str = "form") -> sp.Expr | None:
        """The form with symbolic layer labels (for display); ``None`` when the form
        needs concrete labels (layer sums) or does not exist."""
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

    def concrete(self, which: str = "form", n: int = 2) -> tuple[sp.Expr, dict] | None:
        """The form at the label set of depth ``n`` where it has the most terms (for
        display of forms that need concrete labels): ``(expr, labels)``, or ``None``."""
        f = self.form if which == "form" else getattr(self, which)
        if f is None:
            return None
        params = inspect.signature(f.build).parameters
        best = None
        for labels in self.label_sets(n):
            accepted = {k: v for k, v in labels.items() if k in params}
            try:
                expr = f(**accepted)
            except (TypeError, ValueError, KeyError):
                continue
            if expr is None:
                continue
            size = sp.count_ops(expr)
            if best is None or size > best[0]:
                best = (size, expr, accepted)
        return None if best is None else (best[1], best[2])

    def equation_latex(self, which: str = "form") -> str:
        """``lhs = rhs`` in LaTeX for the paper's text (``"paper"``), or the
        ``printed``, ``corrected`` or kernel ``form``; empty when that form does not
        exist."""
        if which == "paper":
            return self.paper_display()
        rhs = self.latex(which)
        if not rhs:
            return ""
        lhs = self.form_lhs_latex or self.lhs_latex
        if not lhs:
            return rhs
        return f"{lhs} {self.relation} {rhs}"

    def latex(self, which: str = "form") -> str:
        """LaTeX of the index form (``which`` is ``form``, ``printed`` or ``corrected``),
        by :func:`latex_index_form`; at concrete labels when the form needs them; empty
        when the form does not exist."""
        expr = self.symbolic(which)
        if expr is None:
            found = self.concrete(which)
            if found is None:
                return ""
            expr = found[0]
        return latex_index_form(expr)


class IndexFormLatexPrinter(LatexPrinter):
    """LaTeX printer for index forms: contractions as ``\\sum_{l,m}`` (their bounds
    are the extents of the indices, not written out)."""

    def _print_Sum(self, expr: sp.Sum) -> str:
        names = ",".join(self._print(lim[0]) for lim in expr.limits)
        return rf"\sum_{{{names}}} {self._print(expr.function)}"


def latex_index_form(expr: sp.Expr) -> str:
    """LaTeX of an index form with the paper's symbols: ``eta(n,k)`` -> ``\\eta^{(n,k)}``."""
    names = {}
    for base in expr.atoms(sp.IndexedBase):
        text = str(base.label)
        fam, _, rest = text.partition("(")
        if fam in FAMILIES:
            tex = FAMILIES[fam].tex
            names[base.label] = f"{tex}^{{({rest}}}" if rest else tex
    for sym in expr.atoms(sp.Symbol):
        if " " in sym.name or "\\" in sym.name:
            names[sym] = sym.name  # a condition or label written in LaTeX (Eq 41, Eq 21)
    return IndexFormLatexPrinter({"symbol_names": names}).doprint(expr)


def symbol_legend(expr: sp.Expr) -> list[str]:
    """``"name: meaning"`` for each tensor family (:data:`~derive.notation.FAMILIES`) and
    each named scalar (``h``, ``d``, ``c`` of :mod:`derive.cr_model`, the variants'
    symbols) in ``expr``, in the order of the names; symbols with no recorded meaning
    (indices, their bounds) are left out."""
    from derive import cr_model, variant_model  # they import sympy only

    scalars = {**cr_model.MEANINGS, **variant_model.MEANINGS}
    families = {str(b.label).split("(", 1)[0] for b in expr.atoms(sp.IndexedBase)}
    labels = {b.label for b in expr.atoms(sp.IndexedBase)}
    entries = {f: FAMILIES[f].doc for f in families if f in FAMILIES}
    for sym in expr.free_symbols - labels:
        name = getattr(sym, "name", "")
        key = name if name in scalars else re.sub(r"_\d+$", "_i", name)
        if key in scalars and name not in entries:
            entries[key] = scalars[key]
    return [f"{name}: {entries[name]}" for name in sorted(entries, key=str.lower)]


_REGISTRY: dict[str, Equation] = {}


def register(eq: Equation) -> Equation:
    """Add an equation to the table (numbers are unique)."""
    if eq.number in _REGISTRY:
        raise ValueError(f"equation {eq.number} registered twice")
    _REGISTRY[eq.number] = eq
    return eq


def register_derived(
    number: str,
    name: str,
    title: str,
    lhs: str,
    form: Form,
    selfcheck: Callable | None,
    section: str,
    *,
    labels: tuple[str, ...] = (),
    label_sets: Callable[[int], Iterable[dict]] | None = None,
    role: str = "contracted",
    activation: str = "relu",
) -> Equation:
    """Register a form the paper does not print (no ``paper_latex``): a derived,
    self-checked equation whose ``section`` names the equations it comes from."""
    return register(
        Equation(
            number=number,
            name=name,
            title=title,
            section=section,
            paper_latex="",
            lhs_latex=lhs,
            labels=labels,
            printed=form,
            role=role,
            selfcheck=selfcheck,
            label_sets=label_sets or (lambda n: [{"n": n}]),
            activation=activation,
        )
    )


def sort_key(number: str) -> tuple[int, int, str]:
    """Paper equations in numeric order, then Table 2, then contracted and low-rank forms,
    then the forms of the CR variants, then the auto-derived forms (``A.<layer>.<part>``)."""
    group = {"T": 1, "C": 2, "L": 3, "V": 4, "A": 5}.get(number[0], 0)
    digits = "".join(ch for ch in number.split(".")[0] if ch.isdigit())
    return (group, int(digits) if digits else 0, number)


def registered() -> list[Equation]:
    """The equations registered so far, in paper order (only those of the equation
    modules already imported; :func:`derive.registry.all_equations` loads them all)."""
    return sorted(_REGISTRY.values(), key=lambda e: sort_key(e.number))


def lookup(number: str | int) -> Equation:
    """An equation registered so far, by its number (for equation modules that build
    on an earlier equation and for the self-checks, which run after loading)."""
    key = str(number)
    if key not in _REGISTRY:
        raise KeyError(f"no equation {number} (registered so far: {len(_REGISTRY)})")
    return _REGISTRY[key]
