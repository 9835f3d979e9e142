"""The deriver's algebra on index forms: flatten into terms, eliminate Kronecker deltas,
canonicalise, rebuild, and detect the per-sample outer-product (rank-one) structure.

A term is ``coefficient * prod(factors)`` summed over ``summed`` indices.  A factor is an
``Indexed`` entry, a ``KroneckerDelta``, or an *opaque* factor: any other expression
holding indexed entries (``(var[m] + eps)**(-1/2)``), whose indices are those of the
entries it holds.  Terms may lack some free indices (broadcast: ``v[m, j] - mu[m]``).

:func:`simplify` is what the deriver applies to every derivative that ``sympy.diff``
returns: each ``KroneckerDelta(a, b)`` with ``a`` summed is summed out (``a`` becomes
``b`` everywhere in the term; the two indices run over the same axis because ``b`` was
made to differentiate by the tensor ``a`` indexes), a summed index that no factor uses
becomes its extent, summed indices get canonical names, factors a canonical order, and
equal terms are collected.  SymPy's own ``Sum.doit`` on deltas would return ``Piecewise``
range conditions instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
from sympy.printing.str import StrPrinter

__all__ = [
    "Term",
    "flatten",
    "simplify",
    "rebuild",
    "plain",
    "free_indices",
    "outer_factors",
    "DUMMIES",
]

#: names of summed indices, in the order the canonical form uses them
DUMMIES = tuple("abcdefghklnopqrstuvxyz")
#: placeholder upper bound of a contraction (extents come from the arrays)
UPPER = sp.Symbol("N")


@dataclass(frozen=True)
class Term:
    """``coefficient * prod(factors)``, summed over ``summed`` (index names)."""

    coefficient: sp.Expr
    factors: tuple[sp.Expr, ...]
    summed: tuple[str, ...]


def _names(expr: sp.Expr) -> set[str]:
    """Index names an expression depends on (free indices of its entries and deltas)."""
    out: set[str] = set()
    for ind in expr.atoms(sp.Indexed):
        out.update(str(i) for i in ind.indices)
    for d in expr.atoms(sp.KroneckerDelta):
        out.update(str(a) for a in d.args)
    bound = set()
    for s in expr.atoms(sp.Sum):
        bound.update(str(lim[0]) for lim in s.limits)
    return out - bound


def free_indices(term: Term) -> set[str]:
    out: set[str] = set()
    for f in term.factors:
        out |= _names(f)
    return out - set(term.summed)


def _fresh(taken: set[str]) -> str:
    for k in range(1, 1000):
        name = f"d{k}"
        if name not in taken:
            return name
    raise RuntimeError("no fresh index name")


def _rename(term: Term, old: str, new: str) -> Term:
    sub = {sp.Idx(old): sp.Idx(new), sp.Symbol(old): sp.Idx(new)}
    factors = tuple(f.xreplace(sub) for f in term.factors)
    summed = tuple(new if s == old else s for s in term.summed)
    return Term(term.coefficient, factors, summed)


def _mul(a: Term, b: Term) -> Term:
    """Product of two terms, renaming b's summed indices that clash with a's."""
    taken = free_indices(a) | set(a.summed) | free_indices(b) | set(b.summed)
    for s in b.summed:
        if s in set(a.summed) | free_indices(a):
            new = _fresh(taken)
            taken.add(new)
            b = _rename(b, s, new)
    for s in a.summed:
        if s in free_indices(b):
            new = _fresh(taken)
            taken.add(new)
            a = _rename(a, s, new)
    return Term(a.coefficient * b.coefficient, a.factors + b.factors, a.summed + b.summed)


def flatten(expr: sp.Expr) -> list[Term]:
    """The terms of an index form (sums distributed over products)."""
    expr = sp.sympify(expr)
    if isinstance(expr, sp.Sum):
        inner = flatten(expr.function)
        names = tuple(str(lim[0]) for lim in expr.limits)
        return [Term(t.coefficient, t.factors, t.summed + names) for t in inner]
    if isinstance(expr, sp.Add):
        return [t for arg in expr.args for t in flatten(arg)]
    if isinstance(expr, sp.Mul):
        out = [Term(sp.S.One, (), ())]
        for arg in expr.args:
            out = [_mul(a, b) for a in out for b in flatten(arg)]
        return out
    if isinstance(expr, sp.Pow) and expr.exp.is_Integer and expr.exp > 0:
        if isinstance(expr.base, sp.Indexed | sp.KroneckerDelta):
            return [Term(sp.S.One, (expr.base,) * int(expr.exp), ())]
        if isinstance(expr.base, sp.Add | sp.Sum | sp.Mul):
            return flatten(sp.Mul(*([expr.base] * int(expr.exp)), evaluate=False))
    if isinstance(expr, sp.KroneckerDelta):
        a, b = expr.args
        if a == b:
            return [Term(sp.S.One, (), ())]
        return [Term(sp.S.One, (expr,), ())]
    if not expr.has(sp.Indexed) and not expr.has(sp.KroneckerDelta):
        return [Term(expr, (), ())]
    return [Term(sp.S.One, (expr,), ())]


def _eliminate(term: Term, extents: dict) -> Term | None:
    """Sum out the deltas against summed indices; ``None`` when the term vanishes."""
    while True:
        for pos, f in enumerate(term.factors):
            if not isinstance(f, sp.KroneckerDelta):
                continue
            a, b = (str(x) for x in f.args)
            rest = term.factors[:pos] + term.factors[pos + 1 :]
            if a == b:
                term = Term(term.coefficient, rest, term.summed)
                break
            if a in term.summed or b in term.summed:
                old, new = (a, b) if a in term.summed else (b, a)
                summed = tuple(s for s in term.summed if s != old)
                term = _rename(Term(term.coefficient, rest, summed), old, new)
                # the renaming may have made the summed list repeat ``new``: drop repeats
                term = Term(term.coefficient, term.factors, tuple(dict.fromkeys(term.summed)))
                break
        else:
            break
    # a summed index no factor uses counts its extent
    used = set()
    for f in term.factors:
        used |= _names(f)
    coeff = term.coefficient
    summed = []
    for s in term.summed:
        if s in used:
            summed.append(s)
        else:
            if s not in extents:
                raise ValueError(f"index {s} is summed over nothing and has no declared extent")
            coeff = coeff * extents[s]
    if coeff == 0:
        return None
    return Term(coeff, term.factors, tuple(summed))


def _key(f: sp.Expr, dummies: set[str]) -> tuple:
    if isinstance(f, sp.Indexed):
        ids = tuple("~" if str(i) in dummies else str(i) for i in f.indices)
        return (0, str(f.base.label), ids)
    if isinstance(f, sp.KroneckerDelta):
        return (1, "", tuple(sorted("~" if str(i) in dummies else str(i) for i in f.args)))
    return (2, sp.srepr(f), ())


def _canonical(term: Term, free: tuple[str, ...]) -> Term:
    """Sorted factors, summed indices renamed in order of first use, summed list sorted."""
    # rename dummies to names that clash with nothing first
    taken = set(free) | free_indices(term) | set(term.summed)
    for s in list(term.summed):
        new = _fresh(taken | set(DUMMIES))
        taken.add(new)
        term = _rename(term, s, new)
    for _ in range(2):  # sort, rename in order of use, sort again with the new names
        dummies = set(term.summed)
        factors = sorted(term.factors, key=lambda f: (_key(f, dummies), sp.srepr(f)))
        order: list[str] = []
        for f in factors:
            for name in sorted(_names(f)) if not isinstance(f, sp.Indexed) else map(str, f.indices):
                if name in dummies and name not in order:
                    order.append(name)
        pool = [d for d in DUMMIES if d not in set(free) | (free_indices(term) - dummies)]
        term = Term(term.coefficient, tuple(factors), term.summed)
        staged = {}
        for k, old in enumerate(order):
            tmp = _fresh(taken | set(DUMMIES) | set(staged.values()))
            taken.add(tmp)
            term = _rename(term, old, tmp)
            staged[tmp] = pool[k]
        for tmp, new in staged.items():
            term = _rename(term, tmp, new)
        term = Term(term.coefficient, term.factors, tuple(sorted(term.summed)))
    dummies = set(term.summed)
    factors = tuple(sorted(term.factors, key=lambda f: (_key(f, dummies), sp.srepr(f))))
    return Term(term.coefficient, factors, term.summed)


def simplify(
    expr: sp.Expr,
    free: tuple[str, ...],
    extents: dict | None = None,
    avoid: tuple[str, ...] = (),
) -> sp.Expr:
    """Delta-eliminated, canonical index form of ``expr`` with free indices ``free``;
    summed indices are named from :data:`DUMMIES`, never one of ``avoid``."""
    extents = extents or {}
    collected: dict[tuple, sp.Expr] = {}
    for t in flatten(expr):
        if t.coefficient == 0:
            continue
        t = _eliminate(t, extents)
        if t is None:
            continue
        t = _canonical(t, tuple(free) + tuple(avoid))
        key = (t.factors, t.summed)
        collected[key] = collected.get(key, sp.S.Zero) + t.coefficient
    terms = [Term(sp.factor(c), f, s) for (f, s), c in collected.items() if sp.simplify(c) != 0]
    return rebuild(terms)


def rebuild(terms: list[Term]) -> sp.Expr:
    """An index-form expression from terms (contractions as ``Sum``)."""
    total = sp.S.Zero
    for t in terms:
        body = t.coefficient * sp.Mul(*t.factors)
        if t.summed:
            body = sp.Sum(body, *[(sp.Idx(s), 0, UPPER - 1) for s in t.summed])
        total += body
    return total


class _Plain(StrPrinter):
    def _print_Sum(self, e):
        names = ",".join(self._print(lim[0]) for lim in e.limits)
        return f"sum_{{{names}}} ({self._print(e.function)})"

    def _print_Indexed(self, e):
        return f"{e.base.label}[{', '.join(self._print(i) for i in e.indices)}]"

    def _print_ACT(self, e):
        return f"A({self._print(e.args[0])})"

    def _print_ACT1(self, e):
        return f"A'({self._print(e.args[0])})"

    def _print_ACT2(self, e):
        return f"A''({self._print(e.args[0])})"


def plain(expr: sp.Expr) -> str:
    """One-line text of an index form: ``sum_{i} (v[m, i]*w[j, i])``."""
    return _Plain().doprint(sp.sympify(expr))


def outer_factors(expr: sp.Expr, sample: str, first: str) -> tuple[sp.Expr, sp.Expr] | None:
    """``(X, Y)`` when ``expr`` is one term ``X[m, S1] * Y[m, S2]`` per sample ``m``: its
    factors split into two groups sharing no index but ``m``, each carrying some free
    index (a rank-one matrix per sample); ``X`` is the group carrying the free index
    ``first``.  ``None`` otherwise."""
    terms = flatten(expr)
    if len(terms) != 1:
        return None
    t = terms[0]
    factors = list(t.factors)
    if len(factors) < 2:
        return None
    links = [_names(f) - {sample} for f in factors]
    # connected components of factors linked by a shared index other than the sample's
    comp = list(range(len(factors)))

    def find(a):
        while comp[a] != a:
            a = comp[a]
        return a

    for a in range(len(factors)):
        for b in range(a + 1, len(factors)):
            if links[a] & links[b]:
                comp[find(a)] = find(b)
    roots = sorted({find(a) for a in range(len(factors))})
    free = free_indices(t) - {sample}
    carrying = [
        r for r in roots if any(links[a] & free for a in range(len(factors)) if find(a) == r)
    ]
    if len(carrying) != 2:
        return None
    left_r = next(
        r for r in carrying if any(first in links[a] for a in range(len(factors)) if find(a) == r)
    )
    left = [f for a, f in enumerate(factors) if find(a) == left_r]
    right = [f for a, f in enumerate(factors) if find(a) != left_r]
    summed_l = [s for s in t.summed if any(s in _names(f) for f in left)]
    summed_r = [s for s in t.summed if s not in summed_l]
    x = rebuild([Term(t.coefficient, tuple(left), tuple(summed_l))])
    y = rebuild([Term(sp.S.One, tuple(right), tuple(summed_r))])
    return x, y
