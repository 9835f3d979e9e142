"""Index-form expressions as data: terms, einsum specifications and evaluation.

An index-form expression is a SymPy expression built from :class:`sympy.Indexed`
factors, explicit :class:`sympy.Sum` contractions, scalar coefficients and
``KroneckerDelta``.  This module flattens it into a list of :class:`Term` objects
(coefficient, factors, summed indices), which is the one representation used by

* the self-checks (:func:`evaluate` runs each term as an ``einsum`` over object
  arrays, so symbols and exact rationals go through unchanged), and
* the code generator (:mod:`derive.codegen`), which prints the same terms as
  NumPy ``einsum`` calls.

Using one representation for both means the self-check also exercises the
translation from index form to ``einsum``.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np
import sympy as sp

__all__ = ["Factor", "Term", "terms", "evaluate", "einsum_spec", "IndexFormError"]


class IndexFormError(ValueError):
    """An expression that is not a valid index form (e.g. a free index left over)."""


@dataclass(frozen=True)
class Factor:
    """One tensor factor: ``base[indices]`` or a Kronecker delta (``base is None``)."""

    base: str | None
    indices: tuple[str, ...]


@dataclass(frozen=True)
class Term:
    """``coefficient * prod(factors)`` summed over ``summed`` indices."""

    coefficient: sp.Expr
    factors: tuple[Factor, ...]
    summed: frozenset[str]

    def indices(self) -> set[str]:
        out: set[str] = set()
        for f in self.factors:
            out.update(f.indices)
        return out


def _flatten_product(expr: sp.Expr, summed: frozenset[str]) -> list[Term]:
    if isinstance(expr, sp.Sum):
        inner = frozenset(str(lim[0]) for lim in expr.limits)
        return _flatten_product(expr.function, summed | inner)
    if isinstance(expr, sp.Add):
        out: list[Term] = []
        for arg in expr.args:
            out.extend(_flatten_product(arg, summed))
        return out
    if isinstance(expr, sp.Mul):
        partial = [Term(sp.S.One, (), summed)]
        for arg in expr.args:
            sub = _flatten_product(arg, frozenset())
            partial = [
                Term(
                    a.coefficient * b.coefficient,
                    a.factors + b.factors,
                    a.summed | b.summed,
                )
                for a in partial
                for b in sub
            ]
        return partial
    if isinstance(expr, sp.Pow) and expr.base.has(sp.Indexed):
        if not (expr.exp.is_Integer and expr.exp > 0):
            raise IndexFormError(f"non-integer power of an indexed factor: {expr!r}")
        return _flatten_product(sp.Mul(*([expr.base] * int(expr.exp)), evaluate=False), summed)
    if isinstance(expr, sp.Indexed):
        return [
            Term(
                sp.S.One,
                (Factor(str(expr.base.label), tuple(str(i) for i in expr.indices)),),
                summed,
            )
        ]
    if isinstance(expr, sp.KroneckerDelta):
        return [Term(sp.S.One, (Factor(None, tuple(str(i) for i in expr.args)),), summed)]
    if expr.is_number or (isinstance(expr, sp.Expr) and not expr.has(sp.Indexed)):
        return [Term(expr, (), summed)]
    raise IndexFormError(f"not an index form: {expr!r}")


def terms(expr: sp.Expr, free: tuple[str, ...]) -> list[Term]:
    """Flatten ``expr`` into terms and check its index structure.

    Parameters
    ----------
    expr : sympy.Expr
        Index-form expression (Indexed factors, Sum, KroneckerDelta, scalars).
    free : tuple of str
        The free (output) indices, in output-axis order.

    Raises
    ------
    IndexFormError
        When a term has an index that is neither free nor summed (the paper's
        summation convention would need a ``Sum`` that is not there), or lacks a
        free index.
    """
    out = []
    for term in _flatten_product(
        sp.expand(expr) if isinstance(expr, sp.Add) else expr, frozenset()
    ):
        if term.coefficient == 0:
            continue
        used = term.indices()
        stray = used - set(free) - term.summed
        if stray:
            raise IndexFormError(
                f"index {sorted(stray)} is neither free {list(free)} nor summed in {term}"
            )
        missing = set(free) - used
        if missing and term.factors:
            raise IndexFormError(f"free index {sorted(missing)} absent from term {term}")
        out.append(term)
    return out


def einsum_spec(
    term: Term, free: tuple[str, ...], batched: set[str] | None = None, batch_out: bool = False
) -> tuple[str, list[str | None]]:
    """The ``einsum`` subscripts of one delta-free term.

    Parameters
    ----------
    term : Term
    free : tuple of str
        Output indices in order.
    batched : set of str, optional
        Names of bases that carry a leading batch axis (``B`` is prepended).
    batch_out : bool
        Whether the output keeps the batch axis (per-sample kernel) or sums it
        (the caller divides by the batch size for a batch mean).

    Returns
    -------
    spec : str
        e.g. ``"Bl,lm,Bmi,Bj->Bij"``.
    operands : list of str
        Base names in operand order.
    """
    batched = batched or set()
    names = sorted(term.indices() | set(free))
    # keep the paper's single-letter index names; the batch axis is "B"
    letter: dict[str, str] = {}
    for name in names:
        if len(name) == 1 and name in string.ascii_lowercase:
            letter[name] = name
    spare = iter(c for c in string.ascii_lowercase if c not in letter.values())
    for name in names:
        if name not in letter:
            letter[name] = next(spare)
    ins, ops = [], []
    any_batched = False
    for f in term.factors:
        if f.base is None:
            raise IndexFormError("einsum_spec needs a delta-free term")
        prefix = "B" if f.base in batched else ""
        any_batched |= bool(prefix)
        ins.append(prefix + "".join(letter[i] for i in f.indices))
        ops.append(f.base)
    out = ("B" if (batch_out and any_batched) else "") + "".join(letter[i] for i in free)
    return ",".join(ins) + "->" + out, ops


def evaluate(
    expr: sp.Expr,
    free: tuple[str, ...],
    arrays: dict[str, np.ndarray],
    sizes: dict[str, int] | None = None,
) -> np.ndarray:
    """Evaluate an index form on concrete (object or numeric) arrays.

    Parameters
    ----------
    expr : sympy.Expr
        Index-form expression.
    free : tuple of str
        Output indices in order.
    arrays : dict
        ``base name -> array`` for every base in ``expr`` (one sample, no batch axis).
    sizes : dict, optional
        Extents of indices that appear only in Kronecker deltas.

    Returns
    -------
    numpy.ndarray
        Object array of shape given by the free indices.
    """
    given = dict(sizes or {})
    tlist = terms(expr, free)
    term_sizes: list[dict[str, int]] = []
    free_sizes = {i: given[i] for i in free if i in given}
    for term in tlist:
        local = dict(given)
        for f in term.factors:
            if f.base is None:
                continue
            if f.base not in arrays:
                raise KeyError(f"no array for {f.base}")
            arr = arrays[f.base]
            if arr.ndim != len(f.indices):
                raise IndexFormError(f"{f.base} has {arr.ndim} axes but is indexed by {f.indices}")
            for i, extent in zip(f.indices, arr.shape, strict=True):
                if local.setdefault(i, extent) != extent:
                    raise IndexFormError(
                        f"index {i} spans {local[i]} and {extent} (dimension mismatch at {f.base})"
                    )
        for f in term.factors:  # a Kronecker delta equates the extents of its indices
            if f.base is None:
                a, b = f.indices
                if a in local and b not in local:
                    local[b] = local[a]
                elif b in local and a not in local:
                    local[a] = local[b]
                elif a in local and b in local and local[a] != local[b]:
                    raise IndexFormError(f"delta over indices of unequal extent: {a}, {b}")
        for i in free:
            if i in local:
                if free_sizes.setdefault(i, local[i]) != local[i]:
                    raise IndexFormError(
                        f"free index {i} spans {free_sizes[i]} in one term, {local[i]} in another"
                    )
        term_sizes.append(local)
    unknown = [i for i in free if i not in free_sizes]
    if unknown:
        raise IndexFormError(f"extent of free index {unknown} unknown (pass sizes=)")
    shape = tuple(free_sizes[i] for i in free)
    total = np.zeros(shape, dtype=object)
    total[...] = sp.S.Zero
    for term, local in zip(tlist, term_sizes, strict=True):
        local.update(free_sizes)
        ops = []
        new_factors = []
        for f in term.factors:
            if f.base is None:
                a, _b = f.indices
                ops.append(np.eye(local[a], dtype=int).astype(object))
                new_factors.append(Factor("__delta__", f.indices))
            else:
                ops.append(np.asarray(arrays[f.base], dtype=object))
                new_factors.append(f)
        t = Term(term.coefficient, tuple(new_factors), term.summed)
        if not t.factors:
            total = total + term.coefficient
            continue
        spec, _ = einsum_spec(t, free)
        val = np.einsum(spec, *ops) if ops else np.array(1, dtype=object)
        total = total + np.asarray(val, dtype=object) * term.coefficient
    return total
