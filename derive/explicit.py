"""Explicit scalar networks for the self-checks: the reference derivatives.

Two independent references compute derivatives of the network of Eqs 10-13 with an
*undefined* activation ``A`` (so ``A(z)``, ``A'(z)`` and ``A''(z)`` at each unit are
free values; the ReLU is the special case ``A'' = 0``):

* :class:`SymbolicNetwork` builds the network as SymPy expressions with
  ``A = sympy.Function("A")`` and differentiates with :func:`sympy.diff`; the
  derivatives of ``A`` that ``diff`` produces are then renamed to the free symbols
  ``v``, ``a1``, ``a2`` of each unit.  Exact and fully symbolic; feasible at the
  smallest sizes only.
* :class:`JetNetwork` propagates exact second-order forward-mode jets (value,
  gradient, Hessian) in rational arithmetic at a random rational point.  Both sides
  of every identity are polynomials in the free values, so agreement at random
  rational points is a sound probabilistic proof (Schwartz-Zippel) and a
  disagreement is an exact counterexample.

Both expose the same two methods, :meth:`d1` and :meth:`d2`, for the derivatives of
a network output (``("v", k)`` or ``("p",)``) with respect to variable groups
(``("w", k)``, ``("u",)``, ``("v", k)``, ``("z", k)``), the network being started at
the input, at ``v^(k)`` or at ``z^(k)`` as the variables require.

The loss ``f(p)`` enters through the chain rule with ``df/dp`` and ``d2f/dp2`` as
free values, as the paper keeps them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import sympy as sp

__all__ = ["Sizes", "SymbolicNetwork", "JetNetwork", "Group"]

Group = tuple  # ("w", k) | ("u",) | ("v", k) | ("z", k) | ("p",)


@dataclass(frozen=True)
class Sizes:
    """Widths ``(d_in, w_1, ..., w_n)`` and number of classes."""

    widths: tuple[int, ...]
    classes: int

    @property
    def n(self) -> int:
        return len(self.widths) - 1

    def shape(self, group: Group) -> tuple[int, ...]:
        kind = group[0]
        if kind == "w":
            k = group[1]
            return (self.widths[k], self.widths[k - 1])
        if kind == "u":
            return (self.classes, self.widths[-1])
        if kind in ("v", "z"):
            return (self.widths[group[1]],)
        if kind == "p":
            return (self.classes,)
        raise ValueError(group)


def _start_of(groups: list[Group]) -> tuple[str, int]:
    """Where the network must start so that every variable group is a leaf."""
    starts = [(g[0], g[1]) for g in groups if g[0] in ("v", "z")]
    if not starts:
        return ("v", 0)
    if len(set(starts)) > 1:
        raise ValueError(f"at most one activation variable group, got {starts}")
    return starts[0]


class SymbolicNetwork:
    """The network as SymPy expressions, differentiated with :func:`sympy.diff`.

    Parameters
    ----------
    sizes : Sizes
    symbols : dict
        ``name -> object array`` of the free symbols (see :func:`derive.selfcheck.symbols_for`).
    second_derivative : bool
        Keep ``A''`` as free symbols (general activation) instead of 0 (ReLU).
    """

    def __init__(self, sizes: Sizes, symbols: dict[str, np.ndarray], second_derivative: bool):
        self.sizes = sizes
        self.sym = symbols
        self.second = second_derivative
        self._A = sp.Function("A")
        self._nets: dict[tuple[str, int], dict] = {}
        # keys: pre-activation written with the free v symbols of the layer below
        self._unit: dict[sp.Expr, tuple[int, int]] = {}
        for k in range(1, sizes.n + 1):
            wk = symbols[f"w({k})"]
            vin = symbols[f"v({k - 1})"] if k > 1 else symbols["x"]
            for jj in range(sizes.widths[k]):
                key = sp.expand(sum(wk[jj, ii] * vin[ii] for ii in range(sizes.widths[k - 1])))
                self._unit[key] = (k, jj)
                self._unit[symbols[f"z({k})"][jj]] = (k, jj)

    def _net(self, start: tuple[str, int]) -> dict:
        if start in self._nets:
            return self._nets[start]
        kind, k0 = start
        out: dict = {}
        if kind == "v":
            v = sp.Matrix(self.sym["x"] if k0 == 0 else self.sym[f"v({k0})"])
            first = k0 + 1
        else:  # start at z^(k0)
            v = sp.Matrix(self.sym[f"z({k0})"]).applyfunc(self._A)
            first = k0 + 1
        out[k0] = v
        for k in range(first, self.sizes.n + 1):
            z = sp.Matrix(self.sym[f"w({k})"]) * v
            v = z.applyfunc(self._A)
            out[k] = v
        out["p"] = sp.Matrix(self.sym["u"]) * v
        self._nets[start] = out
        return out

    def _freeze(self, expr: sp.Expr) -> sp.Expr:
        """Rename A(z), A'(z), A''(z) of each unit to its free symbols (post-order)."""
        if not expr.args:
            return expr
        if isinstance(expr, sp.Subs):
            deriv = expr.expr
            point = sp.expand(self._freeze(expr.point[0]))
            order = deriv.derivative_count
            k, jj = self._unit[point]
            if order == 1:
                return self.sym[f"a1({k})"][jj]
            if order == 2:
                return self.sym[f"a2({k})"][jj] if self.second else sp.S.Zero
            raise ValueError("third derivative of A requested")
        if isinstance(expr, sp.Derivative):
            # d A(z_sym)/d z_sym when the network starts at z
            arg = expr.expr.args[0]
            k, jj = self._unit[arg]
            order = expr.derivative_count
            if order == 1:
                return self.sym[f"a1({k})"][jj]
            return self.sym[f"a2({k})"][jj] if self.second else sp.S.Zero
        if isinstance(expr, sp.core.function.AppliedUndef):
            arg = sp.expand(self._freeze(expr.args[0]))
            k, jj = self._unit[arg]
            return self.sym[f"v({k})"][jj]
        return expr.func(*[self._freeze(a) for a in expr.args])

    def _leaves(self, group: Group) -> np.ndarray:
        kind = group[0]
        if kind == "u":
            return self.sym["u"]
        return self.sym[f"{kind}({group[1]})"]

    def _output(self, out: Group, start: tuple[str, int]) -> sp.Matrix:
        net = self._net(start)
        return net["p"] if out[0] == "p" else net[out[1]]

    def d1(self, out: Group, wrt: Group) -> np.ndarray:
        """``d out / d wrt`` with shape ``out.shape + wrt.shape``."""
        start = _start_of([wrt])
        y = self._output(out, start)
        leaves = self._leaves(wrt)
        res = np.empty(self.sizes.shape(out) + leaves.shape, dtype=object)
        for o in range(len(y)):
            for pos in itertools.product(*[range(d) for d in leaves.shape]):
                res[(o, *pos)] = sp.expand(self._freeze(sp.diff(y[o], leaves[pos])))
        return res

    def d2(self, out: Group, wrt1: Group, wrt2: Group) -> np.ndarray:
        """``d2 out / d wrt1 d wrt2`` with shape ``out + wrt1 + wrt2``."""
        start = _start_of([wrt1, wrt2])
        y = self._output(out, start)
        l1, l2 = self._leaves(wrt1), self._leaves(wrt2)
        res = np.empty(self.sizes.shape(out) + l1.shape + l2.shape, dtype=object)
        for o in range(len(y)):
            for p1 in itertools.product(*[range(d) for d in l1.shape]):
                first = sp.diff(y[o], l1[p1])
                for p2 in itertools.product(*[range(d) for d in l2.shape]):
                    res[(o, *p1, *p2)] = sp.expand(self._freeze(sp.diff(first, l2[p2])))
        return res


class _Jet:
    """Second-order forward jet: value ``(S)``, first ``(S, P)``, second ``(S, P, P)``."""

    __slots__ = ("val", "d1", "d2")

    def __init__(self, val: np.ndarray, d1: np.ndarray, d2: np.ndarray):
        self.val, self.d1, self.d2 = val, d1, d2

    @classmethod
    def const(cls, val: np.ndarray, nvar: int) -> _Jet:
        shape = val.shape
        zero1 = np.full(shape + (nvar,), Fraction(0), dtype=object)
        zero2 = np.full(shape + (nvar, nvar), Fraction(0), dtype=object)
        return cls(val, zero1, zero2)


def _matvec(W: _Jet, x: _Jet) -> _Jet:
    val = np.einsum("ji,i->j", W.val, x.val)
    d1 = np.einsum("jia,i->ja", W.d1, x.val) + np.einsum("ji,ia->ja", W.val, x.d1)
    d2 = (
        np.einsum("jiab,i->jab", W.d2, x.val)
        + np.einsum("jia,ib->jab", W.d1, x.d1)
        + np.einsum("jib,ia->jab", W.d1, x.d1)
        + np.einsum("ji,iab->jab", W.val, x.d2)
    )
    return _Jet(val, d1, d2)


def _activate(z: _Jet, value: np.ndarray, a1: np.ndarray, a2: np.ndarray) -> _Jet:
    d1 = a1[:, None] * z.d1
    d2 = a1[:, None, None] * z.d2 + a2[:, None, None] * np.einsum("ja,jb->jab", z.d1, z.d1)
    return _Jet(value.copy(), d1, d2)


class JetNetwork:
    """Exact second-order forward mode at a rational point.

    Parameters
    ----------
    sizes : Sizes
    values : dict
        ``name -> object array of Fraction`` for every free symbol name.
    second_derivative : bool
        Use the ``a2`` values (general activation) instead of 0 (ReLU).
    """

    def __init__(self, sizes: Sizes, values: dict[str, np.ndarray], second_derivative: bool):
        self.sizes = sizes
        self.val = values
        self.second = second_derivative

    def _run(self, out: Group, groups: list[Group]) -> tuple[_Jet, list[slice]]:
        shapes = [self.sizes.shape(g) for g in groups]
        counts = [int(np.prod(s)) for s in shapes]
        offsets = np.cumsum([0, *counts])
        nvar = int(offsets[-1])

        def seeded(name: str, group: Group) -> _Jet:
            arr = self.val[name]
            jet = _Jet.const(arr, nvar)
            for gi, g in enumerate(groups):
                if g == group:
                    flat = jet.d1.reshape(-1, nvar)
                    for e in range(arr.size):
                        flat[e, offsets[gi] + e] = Fraction(1)
            return jet

        start = _start_of(groups)
        kind, k0 = start
        zero_a2 = {
            k: np.full(self.sizes.widths[k], Fraction(0), dtype=object)
            for k in range(1, self.sizes.n + 1)
        }

        def a2(k: int) -> np.ndarray:
            return self.val[f"a2({k})"] if self.second else zero_a2[k]

        if kind == "v":
            v = seeded("x" if k0 == 0 else f"v({k0})", ("v", k0))
        else:
            z = seeded(f"z({k0})", ("z", k0))
            v = _activate(z, self.val[f"v({k0})"], self.val[f"a1({k0})"], a2(k0))
        layers = {k0: v}
        for k in range(k0 + 1, self.sizes.n + 1):
            W = seeded(f"w({k})", ("w", k))
            z = _matvec(W, v)
            v = _activate(z, self.val[f"v({k})"], self.val[f"a1({k})"], a2(k))
            layers[k] = v
        if out[0] == "p":
            result = _matvec(seeded("u", ("u",)), v)
        else:
            result = layers[out[1]]
        slices = [slice(int(offsets[i]), int(offsets[i + 1])) for i in range(len(groups))]
        return result, slices

    def d1(self, out: Group, wrt: Group) -> np.ndarray:
        jet, (sl,) = self._run(out, [wrt])
        return jet.d1[..., sl].reshape(self.sizes.shape(out) + self.sizes.shape(wrt))

    def d2(self, out: Group, wrt1: Group, wrt2: Group) -> np.ndarray:
        groups = [wrt1] if wrt1 == wrt2 else [wrt1, wrt2]
        jet, slices = self._run(out, groups)
        s1 = slices[0]
        s2 = slices[0] if wrt1 == wrt2 else slices[1]
        block = jet.d2[..., s1, s2]
        return block.reshape(
            self.sizes.shape(out) + self.sizes.shape(wrt1) + self.sizes.shape(wrt2)
        )
