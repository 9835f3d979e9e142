"""Self-checks of the forms behind the CR variants (C42-C46, V1-V7).

The index forms (the factored adjoints C42-C43, the Hessian diagonal C44, the block
curvatures C45-C46 and the metric norm V1) are compared entry by entry with the
explicit network of :class:`derive.checking.Context`; the scalar forms (V2-V7) are
proved with SymPy (``run`` checks).  :data:`VARIANT_CHECKS` maps each check's name to
it; the equation module :mod:`derive.equations.variants` attaches them.
"""

from __future__ import annotations

import random

import numpy as np
import sympy as sp

from derive import cr_model
from derive import variant_model as vm
from derive.checking import Context, Verdict, obj_array
from derive.forms import Form, SelfCheck, lookup
from derive.references import _diag, _f2, _gn_f2, _rfac

__all__ = ["VARIANT_CHECKS"]


# ------------------------------------------------------------------ factored adjoints
def _reference_rows(ctx: Context, group) -> np.ndarray:
    """``R dp/d(group)`` from the reference Jacobian: rows ``[e, i]``."""
    return np.einsum("el,li->ei", _rfac(ctx), ctx.ref_d1(("p",), group))


def _factored_v_lhs(ctx: Context, form: Form, lab: dict) -> np.ndarray:
    """C42 at ``k``; the step branch reads ``rdelta(k+1)`` from the reference."""
    _rfac(ctx)
    k, n = lab["k"], ctx.sizes.n
    if k < n:
        ctx._cache[f"rdelta({k + 1})"] = _reference_rows(ctx, ("z", k + 1))
    return ctx.evaluate(form, lab)


def _factored_z_lhs(ctx: Context, form: Form, lab: dict) -> np.ndarray:
    """C43 at ``k`` with ``rvbar(k)`` from the reference."""
    _rfac(ctx)
    ctx._cache[f"rvbar({lab['k']})"] = _reference_rows(ctx, ("v", lab["k"]))
    return ctx.evaluate(form, lab)


def _sweep(ctx: Context) -> None:
    """``rvbar(k)``, ``rdelta(k)`` for every layer from the forms C42-C43 (top down)."""
    _rfac(ctx)
    n = ctx.sizes.n
    if ctx._cache.get("_swept") is not None:
        return
    for k in range(n, 0, -1):
        lab = {"n": n, "k": k}
        ctx._cache[f"rvbar({k})"] = ctx.evaluate(lookup("C42").form, lab)
        ctx._cache[f"rdelta({k})"] = ctx.evaluate(lookup("C43").form, lab)
    ctx._cache["_swept"] = True


def _swept_lhs(ctx: Context, form: Form, lab: dict) -> np.ndarray:
    _sweep(ctx)
    return ctx.evaluate(form, lab)


# ---------------------------------------------------------------------- block curvature
def _block_w(ctx: Context, lab: dict) -> np.ndarray:
    k = lab["k"]
    phi = ctx.base[f"phi({k})"]
    val = np.einsum("ij,ijst,st->", phi, _f2(ctx, ("w", k), ("w", k)), phi)
    return np.asarray(sp.expand(val), dtype=object)


def _block_u(ctx: Context, lab: dict) -> np.ndarray:
    om = ctx.base["omega"]
    val = np.einsum("ij,ijst,st->", om, _f2(ctx, ("u",), ("u",)), om)
    return np.asarray(sp.expand(val), dtype=object)


# ---------------------------------------------------------------------- metric norm (V1)
def _metric_arrays(ctx: Context) -> None:
    """Free positive values for the metric (and a rescaling D), kept in the context."""
    if "metu" in ctx.base:
        return
    rng = random.Random(101)
    n = ctx.sizes.n

    def make(shape, tag):
        if ctx.mode == "symbolic":
            return obj_array(
                shape, lambda p: sp.Symbol(f"{tag}_" + "_".join(map(str, p)), positive=True)
            )
        return obj_array(shape, lambda p: sp.Rational(rng.randint(1, 40), rng.randint(1, 17)))

    ctx.base["metu"] = make(ctx.base["omega"].shape, "Mu")
    ctx.base["scaleu"] = make(ctx.base["omega"].shape, "Du")
    for k in range(1, n + 1):
        shape = ctx.base[f"phi({k})"].shape
        ctx.base[f"metw({k})"] = make(shape, f"M{k}")
        ctx.base[f"scalew({k})"] = make(shape, f"D{k}")


def _metric_lhs(ctx: Context, form: Form, lab: dict) -> np.ndarray:
    _metric_arrays(ctx)
    return ctx.evaluate(form, lab)


def _metric_reference(ctx: Context, lab: dict) -> np.ndarray:
    """``sum M g^2`` in rescaled coordinates: ``(M / D^2) (D g)^2`` per entry (the norm
    does not depend on the coordinates when the metric transforms as ``D^-1 M D^-1``)."""
    _metric_arrays(ctx)
    terms = [(ctx.base["metu"], ctx.base["scaleu"], ctx.base["omega"])]
    for k in range(1, ctx.sizes.n + 1):
        terms.append((ctx.base[f"metw({k})"], ctx.base[f"scalew({k})"], ctx.base[f"phi({k})"]))
    total = sp.S.Zero
    for m, dsc, g in terms:
        total += np.sum((m / dsc**2) * (dsc * g) ** 2)
    return np.asarray(sp.expand(total), dtype=object)


# ---------------------------------------------------------------------- scalar forms
_h, _d, _c, _sigma = cr_model.h, cr_model.d, cr_model.cc, cr_model.sigma


def _form(eq, which: str):
    f = getattr(eq, which)
    return None if f is None else f()


def _metric_step_run(eq, ctx: Context, which: str) -> Verdict:
    """V2: a root of the metric model's derivative; unchanged by ``g -> lam g``; the
    three scalars it reads are invariant under a diagonal change of coordinates."""
    alpha = _form(eq, which)
    if alpha is None:
        return Verdict("not checkable", "no such form")
    nm = vm.norm_m
    root_ok = sp.simplify(_d + alpha * _h + _sigma * nm**3 * alpha**2 / 2) == 0
    lam = sp.Symbol("lambda", positive=True)
    scaled = alpha.subs({_h: lam**2 * _h, _d: lam * _d, nm: lam * nm}, simultaneous=True)
    scale_ok = sp.simplify(scaled * lam - alpha) == 0
    # g' = D g, grad' = D^-1 grad, H' = D^-1 H D^-1, M' = D^-1 M D^-1 (two coordinates)
    g = sp.Matrix(sp.symbols("g_1 g_2", real=True))
    gr = sp.Matrix(sp.symbols("r_1 r_2", real=True))
    a, b, e = sp.symbols("H_11 H_12 H_22", real=True)
    hess = sp.Matrix([[a, b], [b, e]])
    met = sp.diag(*sp.symbols("M_1 M_2", positive=True))
    dsc = sp.diag(*sp.symbols("D_1 D_2", positive=True))
    di = dsc.inv()
    before = [(g.T * gr)[0], (g.T * hess * g)[0], (g.T * met * g)[0]]
    after = [
        ((dsc * g).T * (di * gr))[0],
        ((dsc * g).T * (di * hess * di) * (dsc * g))[0],
        ((dsc * g).T * (di * met * di) * (dsc * g))[0],
    ]
    cov_ok = all(sp.simplify(x - y) == 0 for x, y in zip(before, after, strict=True))
    ok = root_ok and scale_ok and cov_ok
    return Verdict(
        "proved" if ok else "disproved",
        "root of d + alpha h + sigma ||g||_M^3 alpha^2 / 2; alpha(lam g) lam = alpha(g); "
        "g^T grad F, g^T H g, ||g||_M invariant under a diagonal change of coordinates",
        3,
    )


def _predicted_decrease_run(eq, ctx: Context, which: str) -> Verdict:
    """V3 = -m(alpha) + (alpha / 2) m'(alpha) identically, so it is m(0) - m(alpha) at
    Eq 37's root; both terms are positive for d < 0."""
    form = _form(eq, which)
    if form is None:
        return Verdict("not checkable", "no such form")
    a = vm.alpha
    model = a * _d + a**2 * _h / 2 + _c * a**3 / 6
    slope = _d + a * _h + _c * a**2 / 2
    ident = sp.expand(form - (-model + a * slope / 2)) == 0
    root = cr_model.step_length()
    rng = random.Random(3)
    positive = True
    for _ in range(40):
        sub = {
            _h: sp.Rational(rng.randint(-50, 50), 7),
            _d: -sp.Rational(rng.randint(1, 50), 3),
            _c: sp.Rational(rng.randint(1, 50), 5),
        }
        at = root.subs(sub)
        val = sp.N(form.subs(sub).subs(a, at), 30)
        exact = sp.N(-model.subs(sub).subs(a, at), 30)
        positive &= bool(val > 0) and abs(val - exact) <= sp.Float(1e-25) * abs(exact)
    ok = ident and positive
    return Verdict(
        "proved" if ok else "disproved",
        "form = -m(alpha) + alpha m'(alpha) / 2 (polynomial identity); at Eq 37's root it "
        "equals m(0) - m(alpha) > 0 (40 points, 30 digits)",
        41,
    )


def _loss_change_run(eq, ctx: Context, which: str) -> Verdict:
    """V4 against Eqs 14-15: ``f(p + dp) - f(p)`` with ``f = -sum y ln softmax(p)``."""
    if getattr(eq, which) is None:
        return Verdict("not checkable", "no such form")
    form, sy = vm.loss_change()
    p, dp, y = sy["p"], sy["dp"], sy["y"]

    def f(logits):
        norm = sum(sp.exp(x) for x in logits)
        return -sum(yi * sp.log(sp.exp(x) / norm) for yi, x in zip(y, logits, strict=True))

    diff = f([a + b for a, b in zip(p, dp, strict=True)]) - f(p) - form
    symbolic = sp.simplify(sp.expand_log(sp.expand(diff), force=True)) == 0
    rng = random.Random(4)
    numeric = True
    for _ in range(20):
        sub = {s: sp.Rational(rng.randint(-30, 30), 7) for s in (*p, *dp)}
        sub.update({s: sp.Rational(rng.randint(0, 9), 4) for s in y})
        numeric &= abs(sp.N(diff.subs(sub), 40)) < sp.Float(1e-30)
    ok = symbolic and numeric
    return Verdict(
        "proved" if ok else "disproved",
        "f(p + dp) - f(p) of Eqs 14-15 (3 classes, any label rows): simplified to 0 and "
        "0 at 20 rational points (40 digits)",
        21,
    )


def _arc_run(eq, ctx: Context, which: str) -> Verdict:
    """V5: on a function equal to its quadratic model the ratio is at least 1 (a very
    successful step); the rule never lowers sigma after a rejected step and never raises
    it after a very successful one."""
    rule = _form(eq, which)
    if rule is None:
        return Verdict("not checkable", "no such form")
    a = vm.alpha
    model = a * _d + a**2 * _h / 2 + _c * a**3 / 6
    slope = _d + a * _h + _c * a**2 / 2
    actual = -(a * _d + a**2 * _h / 2)  # the decrease of the quadratic model itself
    predicted = vm.predicted_decrease(a)
    # actual - predicted = c alpha^3 / 6 - (alpha / 2) m'(alpha): c alpha^3 / 6 at the root
    quad_ok = sp.expand(actual - predicted - (_c * a**3 / 6 - a * slope / 2)) == 0
    del model
    S = vm.ARC_SYMBOLS
    rng = random.Random(5)
    mono = True
    for _ in range(200):
        e1 = sp.Rational(rng.randint(1, 40), 100)
        e2 = e1 + sp.Rational(rng.randint(1, 50), 100)
        g = sp.Rational(rng.randint(11, 40), 10)
        smin, smax = sp.Rational(1, 10**6), sp.Integer(10**6)
        sg = sp.Rational(rng.randint(1, 10**4), rng.randint(1, 100))
        r = sp.Rational(rng.randint(-300, 300), 100)
        sub = {S["rho"]: r, S["sigma"]: sg, S["eta1"]: e1, S["eta2"]: e2, S["gamma"]: g,
               S["sigma_min"]: smin, S["sigma_max"]: smax}  # fmt: skip
        new = rule.subs(sub)
        if r < e1:
            mono &= bool(new >= sg)
        elif r > e2:
            mono &= bool(new <= sg)
        else:
            mono &= bool(new == sg)
    accept = vm.arc_accept()
    acc_ok = bool(accept.subs({S["rho"]: 1, S["eta1"]: sp.Rational(1, 10)})) and not bool(
        accept.subs({S["rho"]: 0, S["eta1"]: sp.Rational(1, 10)})
    )
    ok = quad_ok and mono and acc_ok
    return Verdict(
        "proved" if ok else "disproved",
        "actual - predicted = c alpha^3 / 6 >= 0 on a quadratic (rho >= 1); sigma up after "
        "a rejection, down after a very successful step (200 points)",
        202,
    )


def _per_variable_run(eq, ctx: Context, which: str) -> Verdict:
    """V6 depends on the base direction's component only through its sign: for
    ``d_i = +-lam`` it is ``+-alpha(H_ii, +-g_i, sigma)`` of a unit step (Table 2)."""
    step = _form(eq, which)
    if step is None:
        return Verdict("not checkable", "no such form")
    _, sy = vm.per_variable_step()
    dd, g, hii = sy["dd"], sy["g"], sy["H"]
    lam = sp.Symbol("lambda", positive=True)
    unit = cr_model.step_length()
    ok = True
    for sign in (1, -1):
        at = step.subs(dd, sign * lam)
        ref = sign * unit.subs({_h: hii, _d: sign * g, _c: _sigma}, simultaneous=True)
        ok &= sp.simplify(at - ref) == 0
    return Verdict(
        "proved" if ok else "disproved",
        "step(lam e) = alpha(H_ii, g_i, sigma) e for e = +-1, any lam > 0 (Table 2 with a "
        "unit step)",
        2,
    )


def _output_trust_run(eq, ctx: Context, which: str) -> Verdict:
    """V7: never longer than Eq 37; the linearised logit change ``alpha sqrt(J_2)`` is at
    most ``r_p``; Eq 37 itself when that bound holds for it, else on the bound; ``alpha g``
    unchanged by ``g -> lam g`` (``h -> lam^2 h``, ``d -> lam d``, ``c -> lam^3 c``,
    ``J_2 -> lam^2 J_2``)."""
    step = _form(eq, which)
    if step is None:
        return Verdict("not checkable", "no such form")
    unit = cr_model.step_length()
    lam = sp.Symbol("lambda", positive=True)
    scaled = step.subs({_h: lam**2 * _h, _d: lam * _d, _c: lam**3 * _c, vm.jj: lam**2 * vm.jj},
                       simultaneous=True)  # fmt: skip
    rng = random.Random(7)
    ok = True
    for _ in range(200):
        sub = {
            _h: sp.Rational(rng.randint(-300, 300), 100),
            _d: -sp.Rational(rng.randint(1, 300), 100),
            _c: sp.Rational(rng.randint(1, 300), 100),
            vm.jj: sp.Rational(rng.randint(1, 10**4), 100),
            vm.radius: sp.Rational(rng.randint(1, 300), 100),
            lam: sp.Rational(rng.randint(1, 1000), 100),
        }
        a, a37 = float(step.subs(sub)), float(unit.subs(sub))
        bound = float((vm.radius / sp.sqrt(vm.jj)).subs(sub))
        ok &= a <= a37 * (1 + 1e-14) and a <= bound * (1 + 1e-14)
        ok &= abs(a - (a37 if a37 <= bound else bound)) <= 1e-14 * max(a37, bound)
        ok &= abs(float(scaled.subs(sub)) * float(sub[lam]) - a) <= 1e-12 * a
    return Verdict(
        "proved" if ok else "disproved",
        "alpha_T = min(alpha_37, r_p / sqrt(J_2)): <= Eq 37, RMS logit change alpha_T "
        "sqrt(J_2) <= r_p, alpha_T(lam g) lam = alpha_T(g) (200 points)",
        200,
    )


def _check(name: str, reference=None, **kw) -> SelfCheck:
    return SelfCheck(name, reference=reference, **kw)


_CHECKS = [
    _check(
        "factored_adjoint_v",
        lambda ctx, lab: _reference_rows(ctx, ("v", lab["k"])),
        lhs=_factored_v_lhs,
    ),
    _check(
        "factored_adjoint_z",
        lambda ctx, lab: _reference_rows(ctx, ("z", lab["k"])),
        lhs=_factored_z_lhs,
    ),
    _check(
        "hessian_diag_w_adjoint",
        lambda ctx, lab: _diag(_gn_f2(ctx, ("w", lab["k"]), ("w", lab["k"]))),
        lhs=_swept_lhs,
    ),
    _check("block_curvature_w", _block_w),
    _check("block_curvature_u", _block_u),
    _check("metric_sq_norm", _metric_reference, lhs=_metric_lhs),
    _check("metric_step", run=_metric_step_run),
    _check("predicted_decrease", run=_predicted_decrease_run),
    _check("loss_change", run=_loss_change_run),
    _check("arc_rule", run=_arc_run),
    _check("per_variable_step", run=_per_variable_run),
    _check("output_trust_step", run=_output_trust_run),
]

#: check name -> :class:`SelfCheck` (the forms behind the CR variants)
VARIANT_CHECKS: dict[str, SelfCheck] = {c.name: c for c in _CHECKS}
