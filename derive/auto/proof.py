"""Prove each derived form against ``sympy.diff`` of the explicit layer.

At concrete sizes (``m`` samples, index extents) the layer is written out entry by entry
as SymPy expressions of free symbols (:class:`ExplicitLayer`), with the activation the
plain undefined ``sympy.Function("A")``.  The references are ``sympy.diff`` of
``L = sum ybar . y``: by an intermediate (held as free symbols) for its adjoint, by the
input or a parameter for the input adjoint and the gradients, by ``e`` at ``e = 0`` with
every parameter and the input moved by ``e`` times its direction for the tangents and
(twice) for the second-order terms.  ``A'(z)`` and ``A''(z)`` in what ``diff`` returns are
renamed to the same free symbols the forms use (``a1``, ``a2``).

A derived form is evaluated on the same symbols, the named quantities it uses (``zbar``,
``zdot``, ...) from their own derived forms, the forward quantities (``z``, ``mu``, ...)
from the explicit layer.  ``symbolic`` mode: the difference expands to 0 (a proof at
that size).  ``rational`` mode: larger sizes, every free symbol a random rational; both
sides are rational functions of the free values, so agreement is a probabilistic proof
and a difference an exact counterexample (forms with square roots are compared to 40
digits).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import numpy as np
import sympy as sp

from derive.auto.deriver import BATCH, Derivation, DerivedForm
from derive.auto.rule import ACT, LayerRule

__all__ = ["ExplicitLayer", "Proof", "prove_form", "evaluate_form", "SIZES"]

#: extents per mode: samples, and the per-index extents of the layer (unequal on purpose)
SIZES = {
    "symbolic": {"m": 2, "i": 2, "j": 3},
    "rational": {"m": 2, "i": 3, "j": 2},
}
_E = sp.Symbol("e")


def _sizes(layer: LayerRule, mode: str) -> dict[str, int]:
    sizes = dict(SIZES[mode])
    if layer.name in ("residual", "layernorm"):  # square: the input is added to the output
        sizes["j"] = sizes["i"]
    # an index no entry above sizes (a user's own rule): small, unequal per mode
    for t in (*layer.params, layer.input, *layer.intermediates):
        for index in t.indices:
            sizes.setdefault(index, 2 if mode == "symbolic" else 3)
    if layer.name == "attention":  # queries and keys run over the same tokens
        # one sample, few tokens and features: the exponentials make the explicit
        # references grow fast (i != k in each mode, so a swapped index shows)
        sizes.update({"m": 1, "t": 2, "i": 1, "k": 1} if mode == "symbolic"
                     else {"m": 1, "t": 3, "i": 1, "k": 2})  # fmt: skip
        sizes["u"] = sizes["t"]
    return sizes


def _expand(expr: sp.Expr) -> sp.Expr:
    return sp.expand(expr, power_exp=False)


def _symbols(name: str, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.empty(shape, dtype=object)
    for pos in np.ndindex(*shape):
        arr[pos] = sp.Symbol(f"{name}_" + "_".join(map(str, pos)), real=True)
    return arr


def _extent(name: str, body: sp.Expr, env: dict) -> int:
    for ind in body.atoms(sp.Indexed):
        for axis, sub in enumerate(ind.indices):
            if str(sub) == name and str(ind.base.label) in env:
                return env[str(ind.base.label)].shape[axis]
    raise KeyError(f"no array gives the extent of {name} in {body}")


class _Evaluator:
    """An index form written out at one assignment of its free indices."""

    def __init__(self, env: dict, scalars: dict, act):
        self.env, self.scalars, self.act = env, scalars, act

    def __call__(self, expr: sp.Expr, at: dict[str, int]) -> sp.Expr:
        if isinstance(expr, sp.Indexed):
            arr = self.env[str(expr.base.label)]
            return arr[tuple(at[str(i)] for i in expr.indices)]
        if isinstance(expr, sp.Sum):
            body, limits = expr.function, expr.limits
            total = sp.S.Zero
            names = [str(lim[0]) for lim in limits]
            ranges = [range(_extent(n, body, self.env)) for n in names]
            for values in np.ndindex(*[len(r) for r in ranges]):
                total += self(body, {**at, **dict(zip(names, values, strict=True))})
            return total
        if isinstance(expr, sp.KroneckerDelta):
            a, b = (at[str(x)] for x in expr.args)
            return sp.S.One if a == b else sp.S.Zero
        if isinstance(expr, sp.Symbol):
            return self.scalars.get(expr, expr)
        if isinstance(expr, ACT):
            return self.act(self(expr.args[0], at))
        if not expr.args:
            return expr
        return expr.func(*[self(a, at) for a in expr.args])


def evaluate_form(
    expr: sp.Expr, free: tuple[str, ...], sizes: dict, env: dict, scalars: dict, act=None
) -> np.ndarray:
    """``expr`` at every assignment of its free indices: an object array."""
    ev = _Evaluator(env, scalars, act or sp.Function("A"))
    out = np.empty(tuple(sizes[i] for i in free), dtype=object)
    for pos in np.ndindex(*out.shape):
        out[pos] = ev(expr, dict(zip(free, pos, strict=True)))
    return out


class ExplicitLayer:
    """The layer written out at concrete sizes, and its ``sympy.diff`` references."""

    def __init__(self, deriv: Derivation, mode: str):
        self.layer, self.deriv, self.mode = deriv.layer, deriv, mode
        layer = self.layer
        self.sizes = _sizes(layer, mode)
        # rational mode compares at a random point: no expansion of the large references
        # (exp(a + b) stays one exponential: expanding it into products only swells terms)
        self._x = _expand if mode == "symbolic" else (lambda e: e)
        self.A = sp.Function("A")
        self.scalars = {BATCH: self.sizes["m"]}
        for index, sym in layer.extents.items():
            self.scalars[sym] = self.sizes[index]
        self.free: dict[str, np.ndarray] = {}
        for t in (*layer.params, layer.input):
            shape = tuple(self.sizes[i] for i in t.indices)
            self.free[t.name] = _symbols(t.name, shape)
            self.free[t.dot] = _symbols(t.dot, shape)
        out = layer.output
        self.free[out.bar] = _symbols(out.bar, tuple(self.sizes[i] for i in out.indices))
        self.forward = self._forward({})
        # A'(z), A''(z): the free symbols a1, a2 of each activated unit
        self.units: dict[sp.Expr, tuple[str, tuple]] = {}
        for st in layer.statements:
            for fn in st.rhs.atoms(ACT):
                name = str(fn.args[0].base.label)
                names = deriv.activation_names[name]
                shape = self.forward[name].shape
                for slot in names:
                    self.free[slot] = _symbols(slot, shape)
                for pos in np.ndindex(*shape):
                    self.units[sp.expand(self.forward[name][pos])] = (name, pos)
        self._cache: dict[str, np.ndarray] = {}
        self._leafmap: dict = {}

    # ---------------------------------------------------------------- forward
    def _forward(self, leaves: dict[str, np.ndarray], moved: bool = False) -> dict:
        """Every quantity of the rule; ``leaves`` replace statements by free arrays;
        ``moved``: parameters and input moved by ``e`` times their directions."""
        env = {}
        for t in (*self.layer.params, self.layer.input):
            env[t.name] = self.free[t.name] + (_E * self.free[t.dot] if moved else 0)
        for st in self.layer.statements:
            t = st.target
            if t.name in leaves:
                env[t.name] = leaves[t.name]
                continue
            env[t.name] = evaluate_form(st.rhs, t.indices, self.sizes, env, self.scalars, self.A)
        return env

    def _freeze(self, expr: sp.Expr) -> sp.Expr:
        """``A'(z)``, ``A''(z)`` of each unit -> its free symbols ``a1``, ``a2``."""
        if not expr.args:
            return expr
        if isinstance(expr, sp.Subs):
            deriv, point = expr.expr, sp.expand(self._freeze(expr.point[0]))
            return self._unit(point, deriv.derivative_count)
        if isinstance(expr, sp.Derivative):
            return self._unit(sp.expand(expr.expr.args[0]), expr.derivative_count)
        return expr.func(*[self._freeze(a) for a in expr.args])

    def _unit(self, point: sp.Expr, order: int) -> sp.Expr:
        if point not in self.units:
            point = sp.expand(point.xreplace(self._leafmap))
        name, pos = self.units[point]
        if order > 2:
            raise ValueError("a third derivative of the activation in a reference")
        return self.free[self.deriv.activation_names[name][order - 1]][pos]

    def _objective(self, env: dict, sample: int | None = None) -> sp.Expr:
        out = self.layer.output
        y, ybar = env[out.name], self.free[out.bar]
        rows = range(y.shape[0]) if sample is None else [sample]
        return sum((ybar[r] * y[r]).sum() for r in rows)

    def _d(self, expr: sp.Expr, var: sp.Symbol) -> sp.Expr:
        return self._x(self._freeze(sp.diff(expr, var)))

    # ---------------------------------------------------------------- references
    def reference(self, form: DerivedForm) -> np.ndarray:
        """``sympy.diff`` of the explicit layer for the quantity ``form`` defines."""
        layer, kind = self.layer, form.kind
        shape = tuple(self.sizes[i] for i in form.free)
        out = np.empty(shape, dtype=object)
        if kind == "adjoint":
            name = form.target[: -len("bar")]
            leaf = _symbols(f"{name}_leaf", self.forward[name].shape)
            env = self._forward({name: leaf})
            # units of the activation read from the leaf when it is the activated quantity
            obj = self._objective(env)
            self._leafmap = dict(zip(leaf.ravel(), self.forward[name].ravel(), strict=True))
            for pos in np.ndindex(*shape):
                d = self._freeze(sp.diff(obj, leaf[pos]))
                out[pos] = self._x(d.xreplace(self._leafmap))
            self._leafmap = {}
            return out
        if kind == "input adjoint":
            obj = self._objective(self.forward)
            for pos in np.ndindex(*shape):
                out[pos] = self._d(obj, self.free[layer.input.name][pos])
            return out
        if kind == "gradient":
            name = form.target[: -len("bar")]
            for pos in np.ndindex(*shape):
                obj = self._objective(self.forward, pos[0])
                out[pos] = self._d(obj, self.free[name][pos[1:]])
            return out
        if kind == "batch gradient":
            name = form.target[: -len("bar_batch")]
            obj = self._objective(self.forward) / self.sizes["m"]
            for pos in np.ndindex(*shape):
                out[pos] = self._d(obj, self.free[name][pos])
            return out
        moved = self._moved()
        if kind == "tangent":
            t = next(s.target for s in layer.statements if s.target.dot == form.target)
            for pos in np.ndindex(*shape):
                d = sp.diff(moved[t.name][pos], _E).subs(_E, 0)
                out[pos] = self._x(self._freeze(d))
            return out
        if kind == "second order" and form.part == "curvature":
            for pos in np.ndindex(*shape):
                d = sp.diff(self._objective(moved, pos[0]), _E, 2).subs(_E, 0)
                out[pos] = self._x(self._freeze(d))
            return out
        if kind == "second order":
            return self._statement_curvature(form)
        raise ValueError(f"no reference for {kind}")

    def _moved(self) -> dict:
        if "moved" not in self._cache:
            self._cache["moved"] = self._forward({}, moved=True)
        return self._cache["moved"]

    def _statement_curvature(self, form: DerivedForm) -> np.ndarray:
        """``Tbar . d^2/de^2 rule_T(args + e argdots)`` with the rule's arguments free:
        the adjoint ``Tbar`` and the tangents of the arguments from the references."""
        name = form.part[len("curv_") :]
        st = next(s for s in self.layer.statements if s.target.name == name)
        t = st.target
        env = {}
        for arg in {str(x.base.label) for x in st.rhs.atoms(sp.Indexed)}:
            tensor = self.layer.tensor(arg)
            value = self.forward[arg] if arg in self.forward else self.free[arg]
            env[arg] = value + _E * self._tangent_of(tensor)
        rule = evaluate_form(st.rhs, t.indices, self.sizes, env, self.scalars, self.A)
        if t is self.layer.output:
            bar = self.free[t.bar]
        else:
            bar = self._ref_cached(t.bar)
        out = np.empty((self.sizes["m"],), dtype=object)
        for r in range(self.sizes["m"]):
            row, bar_row = np.asarray(rule[r], dtype=object), np.asarray(bar[r], dtype=object)
            total = sum(
                (bar_row[p] * sp.diff(row[p], _E, 2).subs(_E, 0)) for p in np.ndindex(*row.shape)
            )
            out[r] = self._x(self._freeze(total))
        return out

    def _tangent_of(self, tensor) -> np.ndarray:
        if tensor.dot in self.free:
            return self.free[tensor.dot]
        return self._ref_cached(tensor.dot)

    def _ref_cached(self, base: str) -> np.ndarray:
        """The reference values of a named derived quantity (``zbar``, ``zdot``)."""
        key = f"ref:{base}"
        if key not in self._cache:
            self._cache[key] = self.reference(self.deriv.defining(base))
        return self._cache[key]

    # ---------------------------------------------------------------- the forms
    def named(self, base: str) -> np.ndarray:
        """The array of a base name a form uses: free symbols, a forward quantity, or a
        named derived quantity (from its own form)."""
        if base in self.free:
            return self.free[base]
        if base in self.forward:
            return self.forward[base]
        if base not in self._cache:
            form = self.deriv.defining(base)
            if form is None:
                raise KeyError(f"no array for {base} in layer {self.layer.name}")
            self._cache[base] = self.evaluate(form)
        return self._cache[base]

    def evaluate(self, form: DerivedForm) -> np.ndarray:
        names = {str(x.base.label) for x in form.expr.atoms(sp.Indexed)}
        env = {n: self.named(n) for n in names}
        out = evaluate_form(form.expr, form.free, self.sizes, env, self.scalars, self.A)
        return np.vectorize(self._x, otypes=[object])(out)


@dataclass
class Proof:
    """Outcome of proving one form: ``status`` is ``proved`` or ``disproved``."""

    status: str
    detail: str
    cases: int = 0
    seconds: float = 0.0


def _point(arrays: list[np.ndarray], seed: int) -> dict:
    symbols = set()
    for arr in arrays:
        for x in arr.ravel():
            symbols |= sp.sympify(x).free_symbols
    rng = random.Random(seed)
    return {
        s: sp.Rational(rng.randint(1, 40), rng.randint(1, 17)) * rng.choice((-1, 1))
        if not s.is_positive
        else sp.Rational(rng.randint(1, 40), rng.randint(1, 17))
        for s in sorted(symbols, key=str)
    }


def _same(a: sp.Expr, b: sp.Expr, point: dict | None) -> bool:
    diff = sp.sympify(a) - sp.sympify(b)
    if point is not None:
        diff = diff.xreplace(point)
        if diff.is_Rational:
            return diff == 0
        return abs(sp.N(diff, 60)) < sp.Float(10) ** -40
    expanded = _expand(diff)
    if expanded == 0:
        return True
    # a rational function (a softmax's 1/den^k): its numerator over a common denominator
    if _expand(sp.numer(sp.together(expanded))) == 0:
        return True
    return sp.simplify(diff) == 0


_LAYERS: dict[tuple[str, str], ExplicitLayer] = {}


def explicit(deriv: Derivation, mode: str) -> ExplicitLayer:
    """The explicit layer of a derivation in a mode (built once)."""
    key = (deriv.layer.name, mode)
    if key not in _LAYERS:
        _LAYERS[key] = ExplicitLayer(deriv, mode)
    return _LAYERS[key]


def prove_form(deriv: Derivation, part: str, mode: str = "symbolic", seed: int = 0) -> Proof:
    """The derived form ``part`` against ``sympy.diff`` of the explicit layer."""
    start = time.perf_counter()
    lay = explicit(deriv, mode)
    form = deriv.forms[part]
    lhs, ref = lay.evaluate(form), lay.reference(form)
    if lhs.shape != ref.shape:
        return Proof("disproved", f"shape {lhs.shape} != reference {ref.shape}")
    point = _point([lhs, ref], seed) if mode == "rational" else None
    for pos in np.ndindex(*lhs.shape):
        if not _same(lhs[pos], ref[pos], point):
            return Proof(
                "disproved",
                f"entry {list(pos)}: form {lhs[pos]} != sympy.diff {ref[pos]}",
                int(np.prod(lhs.shape)),
                time.perf_counter() - start,
            )
    sizes = ", ".join(f"{k}={v}" for k, v in lay.sizes.items())
    how = "expanded difference 0" if mode == "symbolic" else "equal at a random rational point"
    return Proof(
        "proved",
        f"{lhs.size} entries against sympy.diff of the explicit layer ({sizes}; {how})",
        int(lhs.size),
        time.perf_counter() - start,
    )
