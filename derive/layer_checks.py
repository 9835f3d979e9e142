"""Self-checks for Appendix B.2 (convolutional and recurrent layers) and B.3 (general
activations): :data:`LAYER_CHECKS` maps each check's name to its
:class:`~derive.forms.SelfCheck`, which the equation modules attach to their equations.

B.3 references are built from the derivatives of the explicit network of
:mod:`derive.explicit` with ``A''`` free (``sympy.diff`` in symbolic mode, exact jets in
rational mode), combined by the chain rule on *partial* derivatives only, never through
``eta``, ``alpha`` or ``lambda``:

* ``gamma^(l) = dv^(l)/dz^(l)``, ``alpha^(k,l) = dv^(k)/dv^(l)``, ``eta^(n,k) =
  dv^(n)/dz^(k)`` (the network started at ``z^(l)`` or ``v^(l)``);
* their total derivatives by ``w^(q)``: the mixed second partial (``q`` above the start)
  plus the second partial in the start variable times ``dv^(l)/dw^(q)`` or ``dz^(l)/dw^(q)``
  (``q`` at or below it), with ``z^(l) = w^(l) v^(l-1)`` (Eq 10).

The convolutional and recurrent references are explicit networks of their own:
:class:`ConvReference` and :class:`RecurrentReference` build the layer with an undefined
activation and differentiate it with :func:`sympy.diff` (symbolic mode) or propagate exact
second-order jets at a random rational point (rational mode); ``A(z)``, ``A'(z)``,
``A''(z)`` of every unit are free values.

Forms are evaluated with :func:`derive.indexform.evaluate` (or, for the entry-wise
conditional forms of Eqs 45, 48 and 53-57, with :func:`evaluate_entrywise`).  Bases that
name a derivative the equation takes as given (``dgamma``, ``dbeta``, ``dalpha``,
``deta``, ``d2v``, ``zdot``, ``vbar``) are filled with the *reference* values, so each
equation is checked on its own and an error is reported where it is made.
"""

from __future__ import annotations

import inspect
import weakref

import numpy as np
import sympy as sp

from derive.checking import DEFAULT_SIZES, Context, OutsideValidity
from derive.forms import Form, SelfCheck, lookup
from derive.indexform import evaluate, terms

__all__ = [
    "LAYER_CHECKS",
    "REDUCES_TO_B1",
    "resolve",
    "evaluate_form",
    "reduces_to_b1",
    "ref_dalpha",
    "ref_deta",
    "ref_dgamma",
]

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _cache(ctx: Context) -> dict:
    if ctx not in _CACHE:
        _CACHE[ctx] = {}
    return _CACHE[ctx]


def _zeros(shape: tuple[int, ...]) -> np.ndarray:
    arr = np.empty(shape, dtype=object)
    arr[...] = sp.S.Zero
    return arr


def _parse(name: str) -> tuple[str, list[int]]:
    fam, _, rest = name.partition("(")
    return fam, ([int(x) for x in rest.rstrip(")").split(",")] if rest else [])


def _accepted(form: Form, labels: dict) -> dict:
    params = inspect.signature(form.build).parameters
    return {k: v for k, v in labels.items() if k in params}


# ---------------------------------------------------------------------- B.3 references
def _W(ctx: Context) -> tuple[int, ...]:
    return ctx.sizes.widths


def ref_dz(ctx: Context, l: int, q: int) -> np.ndarray:  # noqa: E741
    """``dz^(l)/dw^(q)``, ``[e, s, t]``, from ``z^(l) = w^(l) v^(l-1)`` (Eq 10)."""
    key = ("dz", l, q)
    store = _cache(ctx)
    if key in store:
        return store[key]
    W = _W(ctx)
    if q > l:
        out = _zeros((W[l], W[q], W[q - 1]))
    elif q == l:
        eye = np.array(
            [[sp.S.One if a == b else sp.S.Zero for b in range(W[l])] for a in range(W[l])],
            dtype=object,
        )
        out = np.einsum("es,t->est", eye, ctx.array(f"v({l - 1})"))
    else:
        out = np.einsum("ea,ast->est", ctx.array(f"w({l})"), ctx.ref_d1(("v", l - 1), ("w", q)))
    store[key] = out
    return out


def ref_lambda(ctx: Context, l: int) -> np.ndarray:  # noqa: E741
    """``d^2 v^(l) / dz^(l) dz^(l)``: the reference for lambda (Eq 67)."""
    return ctx.ref_d2(("v", l), ("z", l), ("z", l))


def ref_dgamma(ctx: Context, l: int, q: int) -> np.ndarray:  # noqa: E741
    """Total ``d gamma^(l) / dw^(q)``, ``[m, r, s, t]``."""
    return np.einsum("mre,est->mrst", ref_lambda(ctx, l), ref_dz(ctx, l, q))


def ref_dalpha(ctx: Context, k: int, l: int, q: int) -> np.ndarray:  # noqa: E741
    """Total ``d alpha^(k,l) / dw^(q)``, ``[j, m, s, t]`` (``alpha^(k,l) = dv^(k)/dv^(l)``)."""
    key = ("dalpha", k, l, q)
    store = _cache(ctx)
    if key in store:
        return store[key]
    W = _W(ctx)
    out = _zeros((W[k], W[l], W[q], W[q - 1]))
    if k > l:
        if q > l:
            out = out + ctx.ref_d2(("v", k), ("v", l), ("w", q))
        elif l >= 1:
            out = out + np.einsum(
                "jme,est->jmst",
                ctx.ref_d2(("v", k), ("v", l), ("v", l)),
                ctx.ref_d1(("v", l), ("w", q)),
            )
    store[key] = out
    return out


def ref_deta(ctx: Context, n: int, k: int, q: int) -> np.ndarray:
    """Total ``d eta^(n,k) / dw^(q)``, ``[j, l, s, t]`` (``eta^(n,k) = dv^(n)/dz^(k)``)."""
    key = ("deta", n, k, q)
    store = _cache(ctx)
    if key in store:
        return store[key]
    W = _W(ctx)
    out = _zeros((W[n], W[k], W[q], W[q - 1]))
    if n >= k:
        if q > k:
            out = out + ctx.ref_d2(("v", n), ("z", k), ("w", q))
        else:
            out = out + np.einsum(
                "jle,est->jlst", ctx.ref_d2(("v", n), ("z", k), ("z", k)), ref_dz(ctx, k, q)
            )
    store[key] = out
    return out


def ref_zdot(ctx: Context, k: int) -> np.ndarray:
    """``dz^(k)/dtheta . g`` for the direction ``g = (omega, phi)``."""
    total = _zeros((_W(ctx)[k],))
    for q in range(1, k + 1):
        total = total + np.einsum("est,st->e", ref_dz(ctx, k, q), ctx.array(f"phi({q})"))
    return total


def ref_vbar(ctx: Context, k: int) -> np.ndarray:
    """``df/dv^(k) = df/dp . dp/dv^(k)``."""
    return np.einsum("a,ai->i", ctx.array("dfdp"), ctx.ref_d1(("p",), ("v", k)))


def _hess_f(ctx: Context, g1, g2) -> np.ndarray:
    j1, j2 = ctx.ref_d1(("p",), g1), ctx.ref_d1(("p",), g2)
    gn = np.einsum("ab,aij,bst->ijst", ctx.array("d2fdp2"), j1, j2)
    return gn + np.einsum("a,aijst->ijst", ctx.array("dfdp"), ctx.ref_d2(("p",), g1, g2))


def ref_g_hess_g(ctx: Context) -> np.ndarray:
    """``g^T H g`` from the reference Hessian blocks of ``f(p(theta))``."""
    n = ctx.sizes.n
    groups = [("w", k) for k in range(1, n + 1)] + [("u",)]

    def direction(g):
        return ctx.array("omega") if g[0] == "u" else ctx.array(f"phi({g[1]})")

    total = sp.S.Zero
    for g1 in groups:
        for g2 in groups:
            total += np.einsum("ij,ijst,st->", direction(g1), _hess_f(ctx, g1, g2), direction(g2))
    return np.asarray(total, dtype=object)


def resolve(ctx: Context, name: str) -> np.ndarray:
    """The array of a base name, with B.3's derivative bases taken from the references."""
    fam, lab = _parse(name)
    store = _cache(ctx)
    if ("base", name) in store:
        return store[("base", name)]
    n = ctx.sizes.n
    if fam == "lam":
        val = ctx.evaluate(lookup("67").printed, {"n": n, "l": lab[0]})
    elif fam == "dgamma":
        val = ref_dgamma(ctx, *lab)
    elif fam == "dbeta":
        val = ref_dalpha(ctx, lab[0], lab[0] - 1, lab[1])
    elif fam == "dalpha":
        val = ref_dalpha(ctx, *lab)
    elif fam == "deta":
        val = ref_deta(ctx, *lab)
    elif fam == "d2v":
        val = ctx.ref_d2(("v", lab[0]), ("w", lab[1]), ("w", lab[2]))
    elif fam == "zdot":
        val = ref_zdot(ctx, lab[0])
    elif fam == "vbar":
        val = ref_vbar(ctx, lab[0])
    else:
        return ctx.array(name)
    store[("base", name)] = val
    return val


def evaluate_form(
    ctx: Context, form: Form, labels: dict, shape: tuple[int, ...] | None = None, resolver=None
) -> np.ndarray:
    """Evaluate ``form`` at ``labels``; ``shape`` sizes free indices of zero branches."""
    expr = form(**_accepted(form, labels))
    if expr is None:
        raise OutsideValidity()
    resolver = resolver or resolve
    sizes = dict(zip(form.free, shape, strict=True)) if shape is not None else None
    if isinstance(expr, sp.Pow) and not form.free:
        inner = Form(lambda: expr.base, ())
        return np.asarray(evaluate_form(ctx, inner, {}, None, resolver) ** expr.exp, dtype=object)
    names = {f.base for t in terms(expr, form.free) for f in t.factors if f.base}
    arrays = {nm: resolver(ctx, nm) for nm in names}
    if sizes is not None:
        return evaluate_fast(expr, form.free, arrays, sizes)
    return evaluate(expr, form.free, arrays, sizes)


def evaluate_fast(
    expr: sp.Expr, free: tuple[str, ...], arrays: dict[str, np.ndarray], sizes: dict[str, int]
) -> np.ndarray:
    """:func:`derive.indexform.evaluate` with pairwise contractions (``optimize``).

    Same terms and ``einsum`` subscripts (:func:`derive.indexform.terms`,
    :func:`derive.indexform.einsum_spec`); only the order of the pairwise products
    differs, which matters for the large selection tensors of the conv forms.  The
    extents of all free indices are given.
    """
    from derive.indexform import Factor, IndexFormError, Term, einsum_spec

    shape = tuple(sizes[x] for x in free)
    total = _zeros(shape)
    for term in terms(expr, free):
        local = dict(sizes)
        for f in term.factors:
            if f.base is None:
                continue
            arr = arrays[f.base]
            if arr.ndim != len(f.indices):
                raise IndexFormError(f"{f.base} has {arr.ndim} axes but is indexed by {f.indices}")
            for x, extent in zip(f.indices, arr.shape, strict=True):
                if local.setdefault(x, extent) != extent:
                    raise IndexFormError(
                        f"index {x} spans {local[x]} and {extent} (dimension mismatch at {f.base})"
                    )
        ops, factors = [], []
        for f in term.factors:
            if f.base is None:
                size = local[f.indices[0]] if f.indices[0] in local else local[f.indices[1]]
                eye = np.empty((size, size), dtype=object)
                for pos in np.ndindex(size, size):
                    eye[pos] = sp.S.One if pos[0] == pos[1] else sp.S.Zero
                ops.append(eye)
                factors.append(Factor("__delta__", f.indices))
            else:
                ops.append(np.asarray(arrays[f.base], dtype=object))
                factors.append(f)
        if not ops:
            total = total + term.coefficient
            continue
        spec, _ = einsum_spec(Term(term.coefficient, tuple(factors), term.summed), free)
        val = np.einsum(spec, *ops, optimize="greedy") if len(ops) > 1 else np.einsum(spec, *ops)
        total = total + np.asarray(val, dtype=object) * term.coefficient
    return total


#: check name -> :class:`SelfCheck` (B.2 and B.3, and the forms derived from them)
LAYER_CHECKS: dict[str, SelfCheck] = {}


def _add(check: SelfCheck) -> None:
    if check.name in LAYER_CHECKS:
        raise ValueError(f"check {check.name!r} defined twice")
    LAYER_CHECKS[check.name] = check


def _b3(name: str, reference) -> None:
    def lhs(ctx, form, labels):
        ref = np.asarray(reference(ctx, labels), dtype=object)
        return evaluate_form(ctx, form, labels, ref.shape)

    _add(SelfCheck(name, reference=reference, lhs=lhs, resolver=resolve))


_b3("b3_lambda", lambda ctx, lab: ref_lambda(ctx, lab["l"]))
_b3("b3_dgamma", lambda ctx, lab: ref_dgamma(ctx, lab["l"], lab["q"]))
_b3("b3_alpha", lambda ctx, lab: ctx.ref_alpha(lab["k"], lab["l"]))
_b3("b3_alpha_step", lambda ctx, lab: ctx.ref_alpha(lab["r"], lab["r"] - 1))
_b3("b3_dbeta", lambda ctx, lab: ref_dalpha(ctx, lab["r"], lab["r"] - 1, lab["q"]))
_b3("b3_dalpha", lambda ctx, lab: ref_dalpha(ctx, lab["k"], lab["l"], lab["q"]))
_b3("b3_deta", lambda ctx, lab: ref_deta(ctx, lab["n"], lab["k"], lab["q"]))
_b3("b3_d2v", lambda ctx, lab: ctx.ref_d2(("v", lab["n"]), ("w", lab["k"]), ("w", lab["q"])))
_b3("b3_hessian_ww", lambda ctx, lab: _hess_f(ctx, ("w", lab["k"]), ("w", lab["q"])))
_b3("b3_zdot", lambda ctx, lab: ref_zdot(ctx, lab["k"]))
_b3("b3_vbar", lambda ctx, lab: ref_vbar(ctx, lab["k"]))
_b3("b3_g_hess_g", lambda ctx, lab: ref_g_hess_g(ctx))


# ---------------------------------------------------------------------- A'' = 0: B.3 -> B.1
#: B.3 equation -> (B.1 equation, label map B.3 -> B.1); "80.x" is Eq 80 expanded by Eq 77
REDUCES_TO_B1 = {
    "66": ("31", {}),
    "68": ("31", {}),
    "72": ("30", {"k": "n", "l": "k", "q": "r"}),
    "75": ("32", {"k": "k", "q": "r"}),
    "77": ("33", {"k": "k", "q": "r"}),
    "80": ("36", {"k": "k", "q": "r"}),
    "80.x": ("36", {"k": "k", "q": "r"}),
    "C11": ("C7", {}),
}


def reduces_to_b1(mode: str = "symbolic", seed: int = 0, zero_a2: bool = True) -> dict[str, str]:
    """Evaluate each B.3 form with ``A'' = 0`` and its B.1 counterpart; compare exactly.

    ``zero_a2=False`` keeps ``A''`` free in the B.3 forms (a negative control: they then
    differ from B.1 wherever ``A''`` enters).  Call after the equations are loaded
    (:mod:`derive.registry`).

    Returns
    -------
    dict
        ``B.3 number -> "identical"`` or a description of the first difference.
    """
    ctx = Context(DEFAULT_SIZES[mode], mode, seed, general_activation=False)
    n = ctx.sizes.n
    if zero_a2:
        for k in range(1, n + 1):
            ctx.base[f"a2({k})"] = _zeros((ctx.sizes.widths[k],))
    out = {}
    for number, (b1_number, label_map) in REDUCES_TO_B1.items():
        eq3, eq1 = lookup(number), lookup(b1_number)
        form3 = eq3.form
        verdict = "identical"
        for lab in eq3.label_sets(n):
            shape = np.asarray(eq3.selfcheck.reference(ctx, lab), dtype=object).shape
            try:
                val3 = np.asarray(evaluate_form(ctx, form3, lab, shape), dtype=object)
            except OutsideValidity:
                continue
            if eq1.form is None:  # Eq 31: d gamma = 0 for the ReLU
                target = _zeros(shape)
            else:
                lab1 = {"n": n, **{b: lab[a] for a, b in label_map.items()}}
                target = np.asarray(
                    evaluate_form(ctx, eq1.form, lab1, shape, _b1_resolver), dtype=object
                )
            diff = [sp.expand(x - y) for x, y in zip(val3.ravel(), target.ravel(), strict=True)]
            bad = [x for x in diff if x != 0]
            if bad:
                verdict = f"differs at {lab}: {str(bad[0])[:120]}"
                break
        out[number] = verdict
    return out


def _b1_resolver(ctx: Context, name: str) -> np.ndarray:
    """B.1's own arrays (``dalpha`` is B.1's partial derivative, as in Eq 32)."""
    fam, _ = _parse(name)
    if fam in ("zdot", "vbar"):
        return resolve(ctx, name)
    return ctx.array(name)


# ---------------------------------------------------------------------- entry-wise forms
class OutOfRange(Exception):
    """An entry-wise form read an array outside its extent."""


def _compile(e: sp.Basic, arrays: dict[str, np.ndarray], names: set[str]):
    """Turn an entry-wise expression into ``f(env) -> value`` (``env``: index -> int)."""
    from derive.indexform import IndexFormError

    if isinstance(e, sp.Piecewise):
        branches = [(_compile(c, arrays, names), _compile(v, arrays, names)) for v, c in e.args]

        def piecewise(env):
            for cond, val in branches:
                if cond(env):
                    return val(env)
            raise IndexFormError("no branch of the piecewise form applies")

        return piecewise
    if isinstance(e, sp.Indexed):
        base = str(e.base.label)
        if base not in arrays:
            raise KeyError(f"no array for {base}")
        arr = arrays[base]
        fns = [_compile(ix, arrays, names) for ix in e.indices]

        def read(env):
            pos = tuple(int(fn(env)) for fn in fns)
            if any(x < 0 or x >= n for x, n in zip(pos, arr.shape, strict=True)):
                raise OutOfRange(f"{base}{list(pos)} is outside its extent {list(arr.shape)}")
            return arr[pos]

        return read
    if isinstance(e, sp.Symbol):
        if e.name not in names:
            raise IndexFormError(f"index {e.name} is neither free nor bound")
        return lambda env: env[e.name]
    if e is sp.true or e == sp.true:
        return lambda env: True
    if e is sp.false or e == sp.false:
        return lambda env: False
    if e.is_Number:
        value = int(e) if e.is_Integer else e
        return lambda env: value
    parts = [_compile(x, arrays, names) for x in e.args]
    if isinstance(e, sp.Add):
        return lambda env: sum((f(env) for f in parts[1:]), parts[0](env))
    if isinstance(e, sp.Mul):

        def mul(env):
            out = parts[0](env)
            for f in parts[1:]:
                out = out * f(env)
            return out

        return mul
    if isinstance(e, sp.Pow):
        return lambda env: parts[0](env) ** parts[1](env)
    ops = {
        sp.Equality: lambda x, y: x == y,
        sp.Unequality: lambda x, y: x != y,
        sp.StrictLessThan: lambda x, y: x < y,
        sp.LessThan: lambda x, y: x <= y,
        sp.StrictGreaterThan: lambda x, y: x > y,
        sp.GreaterThan: lambda x, y: x >= y,
    }
    for kind, op in ops.items():
        if isinstance(e, kind):
            return lambda env, op=op: op(parts[0](env), parts[1](env))
    if isinstance(e, sp.And):
        return lambda env: all(f(env) for f in parts)
    if isinstance(e, sp.Or):
        return lambda env: any(f(env) for f in parts)
    if isinstance(e, sp.Not):
        return lambda env: not parts[0](env)
    if isinstance(e, sp.KroneckerDelta):
        return lambda env: 1 if parts[0](env) == parts[1](env) else 0
    raise TypeError(f"not an entry-wise form: {e!r}")


def evaluate_entrywise(
    expr: sp.Expr,
    free: tuple[str, ...],
    shape: tuple[int, ...],
    arrays: dict[str, np.ndarray],
    extents: dict[str, int] | None = None,
) -> np.ndarray:
    """Evaluate an entry-wise form at every entry of ``shape`` (free indices in order).

    Raises
    ------
    derive.indexform.IndexFormError
        When the form has an index that is neither free nor an extent, or reads an
        array outside its extent at some entry (the entry is named).
    """
    from derive.indexform import IndexFormError

    extents = dict(extents or {})
    fn = _compile(sp.sympify(expr), arrays, set(free) | set(extents))
    out = np.empty(shape, dtype=object)
    for pos in np.ndindex(*shape):
        env = dict(zip(free, pos, strict=True))
        env.update(extents)
        try:
            out[pos] = sp.sympify(fn(env))
        except OutOfRange as err:
            raise IndexFormError(
                f"at entry {dict(zip(free, pos, strict=True))}: reads {err}"
            ) from None
    return out


def _is_entrywise(form: Form) -> bool:
    return "sigma" in inspect.signature(form.build).parameters


# ---------------------------------------------------------------------- convolution
#: (C, O, H, W, K_h, K_w, sigma, tau) per mode and case; single-channel cases first
CONV_CASES = {
    # the first single-channel case is a kernel that just fits the input (one output):
    # no form reads outside the kernel there, so Eq 56's case logic shows on its own
    "symbolic": {
        "single": [(1, 1, 2, 3, 2, 3, 2, 1), (1, 1, 3, 4, 2, 2, 1, 2)],
        "multi": [(2, 2, 3, 3, 2, 2, 1, 1), (2, 1, 3, 4, 3, 2, 1, 2)],
    },
    "rational": {
        # strides 2-3, non-square inputs and kernels, unequal channel counts
        "single": [(1, 1, 4, 5, 4, 5, 3, 2), (1, 1, 5, 6, 3, 2, 2, 3)],
        "multi": [(2, 2, 4, 3, 2, 2, 2, 1), (2, 1, 3, 4, 3, 2, 1, 2)],
    },
}


def _sym_array(tag: str, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.empty(shape, dtype=object)
    for pos in np.ndindex(*shape):
        arr[pos] = sp.Symbol(f"{tag}_" + "_".join(map(str, pos)), real=True)
    return arr


class _Freezer:
    """Renames ``A(z)``, ``A'(z)``, ``A''(z)`` of each unit to its free symbols."""

    def __init__(self, units: dict, v: np.ndarray, a1: np.ndarray, a2: np.ndarray):
        self.units, self.v, self.a1, self.a2 = units, v, a1, a2

    def __call__(self, expr: sp.Expr) -> sp.Expr:
        if not expr.args:
            return expr
        if isinstance(expr, sp.Subs):
            order = expr.expr.derivative_count
            unit = self.units[sp.expand(self(expr.point[0]))]
            return self._deriv(unit, order)
        if isinstance(expr, sp.Derivative):
            unit = self.units[sp.expand(self(expr.expr.args[0]))]
            return self._deriv(unit, expr.derivative_count)
        if isinstance(expr, sp.core.function.AppliedUndef):
            return self.v[self.units[sp.expand(self(expr.args[0]))]]
        return expr.func(*[self(a) for a in expr.args])

    def _deriv(self, unit, order):
        if order == 1:
            return self.a1[unit]
        if order == 2:
            return self.a2[unit]
        raise ValueError("third derivative of A requested")


def _rationals(shape: tuple[int, ...], rng) -> np.ndarray:
    arr = np.empty(shape, dtype=object)
    for pos in np.ndindex(*shape):
        arr[pos] = sp.Rational(rng.randint(-40, 40), rng.randint(1, 17))
    return arr


class ConvReference:
    """One convolutional layer, explicit: ``z_ost = sum_clk x[c, sigma s + l, tau t + k]
    w[o, c, l, k]`` as a polynomial in the entries of ``x`` and ``w`` (0-based, VALID
    cross-correlation), and an undefined activation with free ``A(z)``, ``A'(z)``,
    ``A''(z)`` per output unit.

    Derivatives are exact second-order jets: the gradient and Hessian of each unit's
    polynomial by :func:`sympy.diff`, then the activation step ``dv = A' dz``, ``d2v =
    A' d2z + A'' dz dz^T``.  Symbolic mode keeps every value a symbol (a proof at that
    size); rational mode substitutes a random rational point afterwards.

    Parameters
    ----------
    config : tuple
        ``(C, O, H, W, K_h, K_w, sigma, tau)``.
    mode : {"symbolic", "rational"}
    seed : int
    """

    def __init__(self, config: tuple, mode: str, seed: int):
        import random

        C, O, H, W, Kh, Kw, sigma, tau = config
        self.config, self.mode = config, mode
        self.sigma, self.tau = sigma, tau
        S, T = (H - Kh) // sigma + 1, (W - Kw) // tau + 1
        self.S, self.T = S, T
        shapes = {
            "x": (C, H, W),
            "w": (O, C, Kh, Kw),
            "v": (O, S, T),
            "a1": (O, S, T),
            "a2": (O, S, T),
            "phi": (O, C, Kh, Kw),
            "delta": (O, S, T),
            "vbar": (O, S, T),
        }
        self.sym = {name: _sym_array(name, shape) for name, shape in shapes.items()}
        if mode == "rational":
            rng = random.Random(seed * 7919 + sum(config) * 31 + len(config))
            self.val = {name: _rationals(shape, rng) for name, shape in shapes.items()}
            self.subs = {
                self.sym[nm][pos]: self.val[nm][pos]
                for nm in shapes
                for pos in np.ndindex(*shapes[nm])
            }
        else:
            self.val, self.subs = self.sym, None
        x, w = self.sym["x"], self.sym["w"]
        self.patch = np.empty((C, S, T, Kh, Kw), dtype=object)
        for c, s, t, l, k in np.ndindex(C, S, T, Kh, Kw):
            self.patch[c, s, t, l, k] = x[c, sigma * s + l, tau * t + k]
        self.pre = np.empty((O, S, T), dtype=object)
        for o, s, t in np.ndindex(O, S, T):
            self.pre[o, s, t] = sp.expand(
                sum(self.patch[c, s, t, l, k] * w[o, c, l, k] for c, l, k in np.ndindex(C, Kh, Kw))
            )
        self._memo: dict = {}

    def value(self, arr: np.ndarray) -> np.ndarray:
        """Substitute the rational point (rational mode)."""
        if self.subs is None:
            return arr
        out = np.empty(arr.shape, dtype=object)
        for pos in np.ndindex(*arr.shape):
            out[pos] = sp.sympify(arr[pos]).xreplace(self.subs)
        return out

    def _where(self, group: str) -> dict:
        leaves = self.sym[group]
        return {leaves[pos]: pos for pos in np.ndindex(*leaves.shape)}

    def d1(self, group: str, pre: bool = False) -> np.ndarray:
        """``d v / d group`` (or of the pre-activation), ``out.shape + group.shape``."""
        key = ("d1", group, pre)
        if key not in self._memo:
            where = self._where(group)
            res = _zeros(self.pre.shape + self.sym[group].shape)
            for u in np.ndindex(*self.pre.shape):
                scale = sp.S.One if pre else self.sym["a1"][u]
                for leaf in self.pre[u].free_symbols & where.keys():
                    res[u + where[leaf]] = scale * sp.diff(self.pre[u], leaf)
            self._memo[key] = self.value(res)
        return self._memo[key]

    def d2(self, g1: str, g2: str) -> np.ndarray:
        """``d2 v / d g1 d g2``, ``out.shape + g1.shape + g2.shape``."""
        key = ("d2", g1, g2)
        if key not in self._memo:
            w1, w2 = self._where(g1), self._where(g2)
            res = _zeros(self.pre.shape + self.sym[g1].shape + self.sym[g2].shape)
            for u in np.ndindex(*self.pre.shape):
                z = self.pre[u]
                a1, a2 = self.sym["a1"][u], self.sym["a2"][u]
                free = z.free_symbols
                for l1 in free & w1.keys():
                    dz1 = sp.diff(z, l1)
                    for l2 in free & w2.keys():
                        res[u + w1[l1] + w2[l2]] = a1 * sp.diff(dz1, l2) + a2 * dz1 * sp.diff(z, l2)
            self._memo[key] = self.value(res)
        return self._memo[key]

    def dz_dx(self) -> np.ndarray:
        """``d patch / d x`` of channel 0: ``[s, t, m, q, i, j]``."""
        if "dzdx" not in self._memo:
            x = self.sym["x"][0]
            patch = self.patch[0]
            res = _zeros(patch.shape + x.shape)
            for pos in np.ndindex(*patch.shape):
                for xp in np.ndindex(*x.shape):
                    res[pos + xp] = sp.diff(patch[pos], x[xp])
            self._memo["dzdx"] = res
        return self._memo["dzdx"]

    def arrays(self) -> dict[str, np.ndarray]:
        """Arrays of the conv families (single channel: channel 0 of each)."""
        if "arrays" in self._memo:
            return self._memo["arrays"]
        val = self.val
        C = self.config[0]
        patch = self.value(self.patch)
        tangent = np.einsum("ostgclk,gclk->ost", self.d1("w", pre=True), val["phi"])
        out = {
            "mx": val["x"],
            "mw": val["w"],
            "mz": patch,
            "mv": val["v"],
            "ma1": val["a1"],
            "ma2": val["a2"],
            "mphi": val["phi"],
            "mdelta": val["delta"],
            "mvbar": val["vbar"],
            "mzdot": tangent,
            "cx": val["x"][0],
            "cw": val["w"][0, 0],
            "cz": patch[0],
            "cv": val["v"][0],
            "ca1": val["a1"][0],
            "ca2": val["a2"][0],
            "cdz": self.dz_dx(),
            "ceye": np.array(
                [[sp.S.One if a == b else sp.S.Zero for b in range(C)] for a in range(C)],
                dtype=object,
            ),
        }
        self._memo["arrays"] = out
        return out


def conv_reference(ctx: Context, labels: dict, kind: str = "single") -> ConvReference:
    """The reference layer of a check case (cached per context)."""
    config = CONV_CASES[ctx.mode][kind][labels["case"]]
    store = _cache(ctx)
    key = ("conv", config)
    if key not in store:
        store[key] = ConvReference(config, ctx.mode, getattr(ctx, "seed", 0))
    return store[key]


_CONV_REFS = {
    # check -> (kind, reference(ref) -> array)
    "conv_preactivation": ("single", lambda R: R.value(R.pre)[0]),
    "conv_patch": ("single", lambda R: R.value(R.patch)[0]),
    "conv_dz_dx": ("single", lambda R: R.dz_dx()),
    "conv_dv_dx": ("single", lambda R: R.d1("x")[0, :, :, 0]),
    "conv_dv_dw": ("single", lambda R: R.d1("w")[0, :, :, 0, 0]),
    "conv_d2v_dxdx": ("single", lambda R: R.d2("x", "x")[0, :, :, 0, :, :, 0]),
    "conv_d2v_dwdx": ("single", lambda R: R.d2("w", "x")[0, :, :, 0, 0, :, :, 0]),
    "conv_d2v_dwdw": ("single", lambda R: R.d2("w", "w")[0, :, :, 0, 0, :, :, 0, 0]),
    "mconv_preactivation": ("multi", lambda R: R.value(R.pre)),
    "mconv_dv_dx": ("multi", lambda R: R.d1("x")),
    "mconv_dv_dw": ("multi", lambda R: R.d1("w")),
    "mconv_d2v_dxdx": ("multi", lambda R: R.d2("x", "x")),
    "mconv_d2v_dwdx": ("multi", lambda R: R.d2("w", "x")),
    "mconv_d2v_dwdw": ("multi", lambda R: R.d2("w", "w")),
    "mconv_tangent": ("multi", lambda R: R.arrays()["mzdot"]),
    "mconv_grad_w": (
        "multi",
        lambda R: np.einsum("ost,ostgclk->gclk", R.val["delta"], R.d1("w", pre=True)),
    ),
    "mconv_second_order": ("multi", lambda R: _second_order(R)),
}


def _second_order(R: ConvReference) -> object:
    """``sum_ost vbar_ost Phi^T (d2 v_ost / dw dw) Phi``."""
    hess = R.d2("w", "w")
    phi = R.val["phi"]
    return sp.expand(
        np.einsum(
            "ost,ostabcd,abcd->",
            R.val["vbar"],
            np.einsum("ostabcdefgh,efgh->ostabcd", hess, phi),
            phi,
        )
    )


def _register_conv(check: str) -> None:
    kind, fn = _CONV_REFS[check]

    def reference(ctx, labels):
        return np.asarray(fn(conv_reference(ctx, labels, kind)), dtype=object)

    def lhs(ctx, form, labels):
        R = conv_reference(ctx, labels, kind)
        ref = reference(ctx, labels)
        arrays = R.arrays()
        lab = {"sigma": R.sigma, "tau": R.tau}
        expr = form(**_accepted(form, lab))
        if _is_entrywise(form):
            extents = {"K_h": arrays["cw"].shape[0], "K_w": arrays["cw"].shape[1]}
            return evaluate_entrywise(expr, form.free, ref.shape, arrays, extents)
        sizes = dict(zip(form.free, ref.shape, strict=True))
        return evaluate_fast(expr, form.free, arrays, sizes)

    _add(SelfCheck(check, reference=reference, lhs=lhs))


for _check in _CONV_REFS:
    _register_conv(_check)


# ---------------------------------------------------------------------- recurrent layer
class _Jet:
    """Second-order forward jet on object arrays: value, ``d1[..., P]``, ``d2[..., P, P]``."""

    def __init__(self, val: np.ndarray, d1: np.ndarray, d2: np.ndarray):
        self.val, self.d1, self.d2 = val, d1, d2

    @classmethod
    def leaf(cls, val: np.ndarray, nvar: int, offset: int | None) -> _Jet:
        d1 = _zeros(val.shape + (nvar,))
        if offset is not None:
            flat = d1.reshape(-1, nvar)
            for e in range(val.size):
                flat[e, offset + e] = sp.S.One
        return cls(val, d1, _zeros(val.shape + (nvar, nvar)))


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


def _activate(z: _Jet, v: np.ndarray, a1: np.ndarray, a2: np.ndarray) -> _Jet:
    d1 = a1[:, None] * z.d1
    d2 = a1[:, None, None] * z.d2 + a2[:, None, None] * np.einsum("ja,jb->jab", z.d1, z.d1)
    return _Jet(v, d1, d2)


class RecurrentReference:
    """The recursion of Eqs 58-59 unrolled, with ONE weight matrix for every step.

    Exact second-order forward jets in the tied weight ``w`` and the input ``x`` (or in
    the copy ``w^(k)`` used at step ``k`` alone, for Eq 60); the activation's values
    ``A``, ``A'``, ``A''`` at each step are the free values of the context.

    Parameters
    ----------
    ctx : Context
        A context whose widths are all equal and whose ``w(k)`` are one array.
    general : bool
        Keep ``A''`` (else 0: the ReLU).
    """

    def __init__(self, ctx: Context, general: bool):
        self.ctx, self.general = ctx, general
        self.d = ctx.sizes.widths[0]
        self._memo: dict = {}

    def _run(self, steps: int, groups: list) -> tuple[_Jet, dict]:
        d = self.d
        sizes = {g: (d if g == "x" else d * d) for g in groups}
        offsets, pos = {}, 0
        for g in groups:
            offsets[g] = pos
            pos += sizes[g]
        base = self.ctx.base
        v = _Jet.leaf(base["x"], pos, offsets.get("x"))
        for k in range(1, steps + 1):
            seed = offsets.get("w", offsets.get(("w", k)))
            W = _Jet.leaf(base["w(1)"], pos, seed)
            a2 = base[f"a2({k})"] if self.general else _zeros((d,))
            v = _activate(_matvec(W, v), base[f"v({k})"], base[f"a1({k})"], a2)
        return v, offsets

    @staticmethod
    def _shape(g, d):
        return (d,) if g == "x" else (d, d)

    def d1(self, steps: int, group) -> np.ndarray:
        key = ("d1", steps, group)
        if key not in self._memo:
            jet, off = self._run(steps, [group])
            shp = self._shape(group, self.d)
            n = int(np.prod(shp))
            self._memo[key] = jet.d1[:, off[group] : off[group] + n].reshape((self.d, *shp))
        return self._memo[key]

    def d2(self, steps: int, g1, g2) -> np.ndarray:
        key = ("d2", steps, g1, g2)
        if key not in self._memo:
            groups = [g1] if g1 == g2 else [g1, g2]
            jet, off = self._run(steps, groups)
            s1, s2 = self._shape(g1, self.d), self._shape(g2, self.d)
            n1, n2 = int(np.prod(s1)), int(np.prod(s2))
            blk = jet.d2[:, off[g1] : off[g1] + n1, off[g2] : off[g2] + n2]
            self._memo[key] = np.vectorize(sp.expand, otypes=[object])(
                blk.reshape((self.d, *s1, *s2))
            )
        return self._memo[key]


def recurrent_context(ctx: Context, general: bool) -> tuple[Context, RecurrentReference]:
    """A context of ``2n - 1`` steps of equal width with tied weights (cached per ``ctx``)."""
    from derive.explicit import Sizes

    store = _cache(ctx)
    key = ("recurrent", general)
    if key not in store:
        steps = 2 * ctx.sizes.n - 1
        width = 2 if ctx.mode == "symbolic" else 3
        rc = Context(Sizes((width,) * (steps + 1), 2), ctx.mode, 0, general_activation=general)
        for k in range(2, steps + 1):
            rc.base[f"w({k})"] = rc.base["w(1)"]
            if rc.mode == "rational":
                rc.fractions[f"w({k})"] = rc.fractions["w(1)"]
        store[key] = (rc, RecurrentReference(rc, general))
    return store[key]


def _general(ctx: Context) -> bool:
    return bool(getattr(ctx.reference, "second", False))


def _rec_resolver(R: RecurrentReference):
    def res(rc: Context, name: str) -> np.ndarray:
        fam, lab = _parse(name)
        if fam == "wr":
            return rc.base["w(1)"]
        if fam == "dv":
            return R.d1(lab[0], ("w", lab[1]))
        return resolve(rc, name)

    return res


_REC_REFS = {
    "rec_dv_dw": lambda R, t: R.d1(t, "w"),
    "rec_dv_dx": lambda R, t: R.d1(t, "x"),
    "rec_d2v_dwdw": lambda R, t: R.d2(t, "w", "w"),
    "rec_d2v_dxdx": lambda R, t: R.d2(t, "x", "x"),
    "rec_d2v_dwdx": lambda R, t: R.d2(t, "w", "x"),
}


def _register_rec(check: str) -> None:
    fn = _REC_REFS[check]

    def reference(ctx, labels):
        _, R = recurrent_context(ctx, _general(ctx))
        return np.asarray(fn(R, labels["t"]), dtype=object)

    def lhs(ctx, form, labels):
        rc, R = recurrent_context(ctx, _general(ctx))
        ref = reference(ctx, labels)
        lab = {"n": rc.sizes.n, "t": labels["t"]}
        return evaluate_form(rc, form, lab, ref.shape, _rec_resolver(R))

    _add(SelfCheck(check, reference=reference, lhs=lhs))


for _check in _REC_REFS:
    _register_rec(_check)
