"""Self-check references for Appendix B.2 (convolutional and recurrent layers) and B.3
(general activations), registered with :func:`derive.selfcheck.register_check`.

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

from derive.indexform import evaluate, terms
from derive.registry import Form, get
from derive.selfcheck import Context, _OutsideValidity, register_check

__all__ = [
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
        val = ctx.evaluate(get("67").printed, {"n": n, "l": lab[0]})
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
        raise _OutsideValidity()
    resolver = resolver or resolve
    sizes = dict(zip(form.free, shape, strict=True)) if shape is not None else None
    if isinstance(expr, sp.Pow) and not form.free:
        inner = Form(lambda: expr.base, ())
        return np.asarray(evaluate_form(ctx, inner, {}, None, resolver) ** expr.exp, dtype=object)
    names = {f.base for t in terms(expr, form.free) for f in t.factors if f.base}
    arrays = {nm: resolver(ctx, nm) for nm in names}
    return evaluate(expr, form.free, arrays, sizes)


def _b3(name: str, reference) -> None:
    def lhs(ctx, form, labels):
        ref = np.asarray(reference(ctx, labels), dtype=object)
        return evaluate_form(ctx, form, labels, ref.shape)

    register_check(name, reference, lhs)


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
def reduces_to_b1(mode: str = "symbolic", seed: int = 0, zero_a2: bool = True) -> dict[str, str]:
    """Evaluate each B.3 form with ``A'' = 0`` and its B.1 counterpart; compare exactly.

    ``zero_a2=False`` keeps ``A''`` free in the B.3 forms (a negative control: they then
    differ from B.1 wherever ``A''`` enters).

    Returns
    -------
    dict
        ``B.3 number -> "identical"`` or a description of the first difference.
    """
    from derive.equations.general_activation import REDUCES_TO_B1
    from derive.selfcheck import DEFAULT_SIZES

    ctx = Context(DEFAULT_SIZES[mode], mode, seed, general_activation=False)
    n = ctx.sizes.n
    if zero_a2:
        for k in range(1, n + 1):
            ctx.base[f"a2({k})"] = _zeros((ctx.sizes.widths[k],))
    from derive.selfcheck import CHECKS

    out = {}
    for number, (b1_number, label_map) in REDUCES_TO_B1.items():
        eq3, eq1 = get(number), get(b1_number)
        form3 = eq3.form
        verdict = "identical"
        for lab in eq3.label_sets(n):
            shape = np.asarray(CHECKS[eq3.check][0](ctx, lab), dtype=object).shape
            try:
                val3 = np.asarray(evaluate_form(ctx, form3, lab, shape), dtype=object)
            except _OutsideValidity:
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
