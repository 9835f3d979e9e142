"""The equation registry: one named object per equation of the paper.

This module is the registry's public API; the code generator and ``verify`` read
equations only through it.  Importing it registers every equation (the modules of
``derive/equations/``).

Public API
----------
:func:`get`
    One equation by its number (``get("36")``, ``get(28)``, ``get("T2.u")``).
:func:`all_equations`
    Every equation, in paper order (paper numbers, Table 2, then derived forms).
:class:`Equation`
    ``number``, ``name``, ``title``, ``section``; the paper's text (``lhs_latex``,
    ``relation``, ``paper_latex``, :meth:`Equation.paper_display`); the index forms
    ``printed`` (symbol for symbol as the paper prints it), ``corrected`` and ``form``
    (what kernels use); ``erratum``; ``parts`` (per-term forms for the code
    generator); ``labels`` and ``label_sets``; ``copies`` / ``copy_of`` (Section 2's
    restatements); ``derived``; ``selfcheck``; LaTeX of the forms by :meth:`Equation.latex`
    and :meth:`Equation.equation_latex`.
:class:`Form`
    ``build(**labels) -> sympy.Expr`` (also callable) and ``free`` (free indices in
    array-axis order).
:class:`Erratum`
    ``kinds`` (keys of :data:`ERRATUM_KINDS`), ``what`` and ``reading``.
:func:`latex_index_form`
    LaTeX of an index form with the paper's symbols.

Each :class:`Equation` carries its number, the paper's printed LaTeX, the index form
*as printed* and, where that form is wrong, a *corrected* form with a note on what
differs.  Both forms stay: the printed one is evidence (the verification report measures
its error), the corrected one is what kernels use.  New equations are added in a module
under ``derive/equations/`` with :func:`derive.forms.register`.
"""

from __future__ import annotations

from derive import equations as _equations  # noqa: F401  (registers every equation)
from derive.forms import _REGISTRY as _TABLE
from derive.forms import (
    ERRATUM_KINDS,
    Equation,
    Erratum,
    Form,
    SelfCheck,
    latex_index_form,
    register,
    registered,
)

__all__ = [
    "ERRATUM_KINDS",
    "Equation",
    "Erratum",
    "Form",
    "SelfCheck",
    "all_equations",
    "get",
    "latex_index_form",
    "number_hint",
    "register",
]


def all_equations() -> list[Equation]:
    """Every registered equation, in paper order."""
    return registered()


def get(number: str | int) -> Equation:
    """The equation with this number.

    Raises
    ------
    KeyError
        With a one-line hint on the numbers that exist (``python -m derive table``
        lists them).
    """
    key = str(number).strip()
    if key in _TABLE:
        return _TABLE[key]
    for eq in _TABLE.values():
        if key in eq.copies:
            return eq
    raise KeyError(f"no equation {number!r}: {number_hint()}")


def number_hint() -> str:
    """One line on the equation numbers that exist (not the list of them)."""
    groups: dict[str, list[int]] = {}
    subs = []
    for number in _TABLE:
        head, dot, _ = number.partition(".")
        if dot and head[0].isdigit():
            subs.append(number)
        prefix = head.rstrip("0123456789")
        digits = head[len(prefix) :]
        if digits:
            groups.setdefault(prefix, []).append(int(digits))
    ranges = {p: f"{p}{min(v)}-{p}{max(v)}" for p, v in groups.items() if p != "T"}
    text = f"paper equations {ranges.get('', '')}"
    if subs:
        text += f" (sub-forms such as {', '.join(sorted(subs)[:3])})"
    text += ", Table 2 as T2 (T2.u, T2.w)"
    derived = [ranges[p] for p in sorted(ranges) if p]
    if derived:
        text += f", derived forms {', '.join(derived)}"
    if any(number.startswith("A.") for number in _TABLE):
        text += ", auto-derived forms A.<layer>.<part> (`python -m derive layer --list`)"
    return text + "; `python -m derive table` lists them all"
