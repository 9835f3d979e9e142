"""Self-checks of Section 3 and Appendix B.1 (and of the contracted, factored and
low-rank forms built on them): one :class:`~derive.forms.SelfCheck` per kind of
quantity, each with its reference computed from the explicit network of a
:class:`~derive.checking.Context`.

The equation modules attach these objects to their equations (``selfcheck=``);
:mod:`derive.selfcheck` runs what an equation carries.  :data:`B1_CHECKS` maps each
check's name to it.
"""

from __future__ import annotations

import random

import numpy as np
import sympy as sp

from derive import cr_model
from derive.checking import Context, Verdict, accepted, obj_array
from derive.forms import Form, SelfCheck, lookup
from derive.indexform import evaluate, terms

__all__ = ["B1_CHECKS", "check_limits"]


# ---------------------------------------------------------------------- reference pieces
def _f1(ctx: Context, wrt) -> np.ndarray:
    """``df/dtheta`` of one weight group from the reference Jacobian of ``p``."""
    jac = ctx.ref_d1(("p",), wrt)
    return np.einsum("a,a...->...", ctx.base["dfdp"], jac)


def _f2(ctx: Context, wrt1, wrt2) -> np.ndarray:
    """``d2f/dtheta1 dtheta2`` of two weight groups, ``[i, j, s, t]``."""
    j1, j2 = ctx.ref_d1(("p",), wrt1), ctx.ref_d1(("p",), wrt2)
    gn = np.einsum("ab,aij,bst->ijst", ctx.base["d2fdp2"], j1, j2)
    cur = np.einsum("a,aijst->ijst", ctx.base["dfdp"], ctx.ref_d2(("p",), wrt1, wrt2))
    return gn + cur


def _groups(n: int) -> list:
    return [("w", k) for k in range(1, n + 1)] + [("u",)]


def _direction(ctx: Context, g) -> np.ndarray:
    return ctx.base["omega"] if g[0] == "u" else ctx.base[f"phi({g[1]})"]


def _g_dot_grad(ctx: Context, lab: dict) -> np.ndarray:
    total = sp.S.Zero
    for g in _groups(ctx.sizes.n):
        total += np.sum(_f1(ctx, g) * _direction(ctx, g))
    return np.asarray(sp.expand(total), dtype=object)


def _g_hess_g(ctx: Context, lab: dict) -> np.ndarray:
    total = sp.S.Zero
    for g1 in _groups(ctx.sizes.n):
        for g2 in _groups(ctx.sizes.n):
            blk = _f2(ctx, g1, g2)
            total += np.einsum("ij,ijst,st->", _direction(ctx, g1), blk, _direction(ctx, g2))
    return np.asarray(sp.expand(total), dtype=object)


def _g_norm_cubed(ctx: Context, lab: dict) -> np.ndarray:
    sq = sum(np.sum(_direction(ctx, g) ** 2) for g in _groups(ctx.sizes.n))
    return np.asarray(sp.Pow(sq, sp.Rational(3, 2)), dtype=object)


def _eta_lhs(ctx: Context, form: Form, lab: dict) -> np.ndarray:
    """Eq 23 is checked through Eq 24: ``eta^(k,l) v^(l-1)`` against ``dv^(k)/dw^(l)``."""
    eta_arr = ctx.evaluate(form, lab)
    v_prev = ctx.array(f"v({lab['l'] - 1})")
    return np.einsum("js,t->jst", eta_arr, v_prev)


def _with_a_lhs(ctx: Context, form: Form, lab: dict) -> np.ndarray:
    """Eq 6 with ``a_{is}`` from Eq 7 at the same labels."""
    expr = form(**accepted(form, lab))
    names = {f.base for t in terms(expr, form.free) for f in t.factors if f.base}
    arrays = {nm: ctx.array(nm) for nm in names if nm != "a"}
    arrays["a"] = ctx.evaluate(lookup("7").printed, lab)
    return evaluate(expr, form.free, arrays)


# ---------------------------------------------------------------------- low-rank (L1-L5)
def _phi_lowrank(ctx: Context, k: int) -> np.ndarray:
    """``phi = -E[delta v^T]`` built explicitly from the mini-batch arrays."""
    A = ctx.base
    return -np.einsum("ci,cj->ij", A[f"Db({k})"], A[f"Vb({k - 1})"]) / ctx.batch


def _omega_lowrank(ctx: Context) -> np.ndarray:
    A, n = ctx.base, ctx.sizes.n
    return -np.einsum("ci,cj->ij", A["Pb"], A[f"Vb({n})"]) / ctx.batch


def _lowrank_source(ctx: Context, lab: dict) -> np.ndarray:
    k = lab["k"]
    return np.einsum("jt,bt->bj", _phi_lowrank(ctx, k), ctx.base[f"Vb({k - 1})"])


def _lowrank_output_source(ctx: Context, lab: dict) -> np.ndarray:
    return np.einsum("it,bt->bi", _omega_lowrank(ctx), ctx.base[f"Vb({ctx.sizes.n})"])


def _lowrank_curvature(ctx: Context, lab: dict) -> np.ndarray:
    k, A = lab["k"], ctx.base
    val = np.einsum("bi,ij,bj->", A[f"Db({k})"], _phi_lowrank(ctx, k), A[f"Vdotb({k - 1})"])
    return np.asarray(val, dtype=object)


def _lowrank_output_curvature(ctx: Context, lab: dict) -> np.ndarray:
    A, n = ctx.base, ctx.sizes.n
    val = np.einsum("bi,ij,bj->", A["Pb"], _omega_lowrank(ctx), A[f"Vdotb({n})"])
    return np.asarray(val, dtype=object)


def _lowrank_sq_norm(ctx: Context, lab: dict) -> np.ndarray:
    phi = _phi_lowrank(ctx, lab["k"])
    return np.asarray(np.sum(phi * phi), dtype=object)


# ------------------------------------------------------ factored Gauss-Newton (C15-C23)
# C15 is proved for the explicit softmax factor; C16-C23 with R left free and the
# reference's d2f/dp2 replaced by R^T R (so they hold for any factor of the Hessian).
def _rfac(ctx: Context) -> np.ndarray:
    """Free values for the factor ``R`` of ``d2f/dp2 = R^T R``, kept in the context."""
    if "rfac" not in ctx.base:
        c = ctx.sizes.classes
        if ctx.mode == "symbolic":
            arr = obj_array((c, c), lambda p: sp.Symbol(f"R_{p[0]}_{p[1]}", real=True))
        else:
            rng = random.Random(15)
            arr = obj_array((c, c), lambda p: sp.Rational(rng.randint(-40, 40), rng.randint(1, 17)))
        ctx.base["rfac"] = arr
    return ctx.base["rfac"]


def _factored(ctx: Context) -> None:
    """Put ``R``, ``rjac(k)`` (C16) and ``rpdot`` (C17) where the forms look them up."""
    _rfac(ctx)
    n = ctx.sizes.n
    for k in range(1, n + 1):
        if f"rjac({k})" not in ctx._cache:
            ctx._cache[f"rjac({k})"] = ctx.evaluate(lookup("C16").form, {"n": n, "k": k})
    if "rpdot" not in ctx._cache:
        ctx._cache["rpdot"] = ctx.evaluate(lookup("C17").form, {"n": n})


def _gn_f2(ctx: Context, wrt1, wrt2) -> np.ndarray:
    """Second derivatives of ``f`` (as :func:`_f2`) with ``d2f/dp2 := R^T R``."""
    R = _rfac(ctx)
    rr = np.einsum("ea,eb->ab", R, R)
    j1, j2 = ctx.ref_d1(("p",), wrt1), ctx.ref_d1(("p",), wrt2)
    gn = np.einsum("ab,aij,bst->ijst", rr, j1, j2)
    cur = np.einsum("a,aijst->ijst", ctx.base["dfdp"], ctx.ref_d2(("p",), wrt1, wrt2))
    return gn + cur


def _diag(block: np.ndarray) -> np.ndarray:
    return obj_array(block.shape[:2], lambda p: block[p[0], p[1], p[0], p[1]])


def _factor_lhs(ctx: Context, form: Form, lab: dict) -> np.ndarray:
    _factored(ctx)
    return ctx.evaluate(form, lab)


def _softmax_factor_lhs(ctx: Context, form: Form, lab: dict) -> np.ndarray:
    """C15 with the explicit ``R = sqrt(s yhat_e) (delta_el - yhat_l)``, ``sum yhat = 1``."""
    c = ctx.sizes.classes
    y = [sp.Symbol(f"yhat_{e}", positive=True) for e in range(c - 1)]
    y.append(1 - sum(y))
    s = sp.Symbol("s", positive=True)
    R = obj_array((c, c), lambda p: sp.sqrt(s * y[p[0]]) * (int(p[0] == p[1]) - y[p[1]]))
    ctx._cache["softmax_factor"] = (y, s)
    out = evaluate(form(**accepted(form, lab)), form.free, {"rfac": R})
    return obj_array(out.shape, lambda p: sp.expand(out[p]))


def _softmax_factor_ref(ctx: Context, lab: dict) -> np.ndarray:
    y, s = ctx._cache["softmax_factor"]
    c = len(y)
    return obj_array(
        (c, c), lambda p: sp.expand(s * (y[p[0]] * int(p[0] == p[1]) - y[p[0]] * y[p[1]]))
    )


def _pdot_term_factored(ctx: Context, lab: dict) -> np.ndarray:
    pdot, R = ctx.reference_pdot(), _rfac(ctx)
    return np.asarray(np.einsum("a,ea,eb,b->", pdot, R, R, pdot), dtype=object)


# ---------------------------------------------------------------------- facts and CR
def _relu_run(first: bool):
    def run(eq, ctx: Context, which: str) -> Verdict:
        if which != "printed":
            return Verdict("not checkable", "")
        z = sp.Symbol("z", real=True)
        relu = sp.Max(z, 0)
        d1 = sp.diff(relu, z)
        if first:
            ok = d1.subs(z, sp.Rational(3, 2)) == 1 and d1.subs(z, -sp.Rational(3, 2)) == 0
            return Verdict("proved" if ok else "disproved", f"d/dz max(z,0) = {d1} (z != 0)", 2)
        d2 = sp.diff(relu, z, 2)
        ok = all(d2.subs(z, val) == 0 for val in (sp.Rational(3, 2), -sp.Rational(3, 2)))
        return Verdict(
            "proved" if ok else "disproved",
            f"d2/dz2 max(z,0) = {d2}, zero for z != 0 (removable at 0)",
            2,
        )

    return run


def _dgamma_run(eq, ctx: Context, which: str) -> Verdict:
    if which != "printed":
        return Verdict("not checkable", "")
    cases = 0
    for k in range(1, ctx.sizes.n + 1):
        blk = ctx.ref_d2(("v", k), ("z", k), ("z", k))
        for pos in np.ndindex(*blk.shape):
            cases += 1
            if sp.expand(blk[pos]) != 0:
                return Verdict("disproved", f"d gamma^({k}) != 0 at {pos}", cases)
    return Verdict("proved", "d gamma/dz = diag(A'') = 0 under Eq 29", cases)


def _network_run(eq, ctx: Context, which: str) -> Verdict:
    return Verdict("definition", "builds the explicit reference network")


_h, _d, _c = cr_model.h, cr_model.d, cr_model.cc


def _dm(alpha: sp.Expr) -> sp.Expr:
    """``dm/dalpha`` of Eq 8 along ``g`` (for ``alpha > 0``)."""
    return _d + alpha * _h + _c * alpha**2 / 2


def _cr_form(eq, which: str):
    form = getattr(eq, which)
    return None if form is None else form()


def _cr_step_run(eq, ctx: Context, which: str) -> Verdict:
    root = _cr_form(eq, which)
    if root is None:
        return Verdict("not checkable", "no such form")
    ok = sp.simplify(_dm(root)) == 0
    # positive for a descent direction: sqrt(h^2 - 2dc) > |h| when d < 0, c > 0
    rng = random.Random(1)
    pos = all(
        root.subs(
            {
                _h: sp.Rational(rng.randint(-50, 50), 7),
                _d: -sp.Rational(rng.randint(1, 50), 3),
                _c: sp.Rational(rng.randint(1, 50), 5),
            }
        )
        > 0
        for _ in range(50)
    )
    return Verdict(
        "proved" if ok and pos else "disproved",
        "root of dm/dalpha = 0, positive for g^T grad f < 0",
        51,
    )


def _cr_stable_run(eq, ctx: Context, which: str) -> Verdict:
    form = _cr_form(eq, which)
    if form is None:
        return Verdict("not checkable", "no such form")
    ok = True
    for branch, _cond in form.args:
        ok &= sp.simplify(sp.radsimp(cr_model.step_length() - branch)) == 0
    return Verdict(
        "proved" if ok else "disproved", "both branches equal Eq 37 (multiply by the conjugate)", 2
    )


def _cr_roots_run(eq, ctx: Context, which: str) -> Verdict:
    roots = _cr_form(eq, which)
    if roots is None:
        return Verdict("not checkable", "no such form")
    found = list(roots) if isinstance(roots, sp.FiniteSet) else [roots]
    ok = len(found) == 2 and all(sp.simplify(_dm(rt)) == 0 for rt in found)
    return Verdict(
        "proved" if ok else "disproved",
        f"{len(found)} value(s), each a root of dm/dalpha = 0 (a quadratic has two)",
        len(found),
    )


def _cr_limits_run(eq, ctx: Context, which: str) -> Verdict:
    form = _cr_form(eq, which)
    if form is None:
        return Verdict("not checkable", "no such form")
    return check_limits([(arg.expr, str(arg.cond)) for arg in form.args], which)


def check_limits(limits: list, which: str) -> Verdict:
    """Eq 41: each approximation against the exact root inside its regime.

    Regimes are probed at ratios ``rho = (g^T H g)^2 / (|g^T grad f| sigma ||g||^3)``
    (1e6 for ``>>``, 1e-6 for ``<<``) and, to test the printed conditions, at points
    where ``|g^T H g| / (|g^T grad f| sigma ||g||^3)`` is large but ``rho`` is not.
    """
    exact = cr_model.step_length()
    probes = [
        # (h, d, c) for each case: inside the corrected regime
        [(1, -sp.Rational(1, 10**6), 1)],
        [(sp.Rational(1, 10**3), -1, 1), (-sp.Rational(1, 10**3), -1, 1)],
        [(-1, -sp.Rational(1, 10**6), 1)],
    ]
    if which == "printed":
        # the printed conditions compare |h| with |d| c: |h| = 1e-3 >> |d| c = 1e-6,
        # yet h^2 = |d| c, so the expansion is not valid there
        probes[0].append((sp.Rational(1, 10**3), -sp.Rational(1, 10**6), 1))
        probes[2].append((-sp.Rational(1, 10**3), -sp.Rational(1, 10**6), 1))
    cases = 0
    for (approx, cond), points in zip(limits, probes, strict=True):
        for hv, dv_, cv in points:
            cases += 1
            sub = {_h: hv, _d: dv_, _c: cv}
            ex = sp.N(exact.subs(sub), 30)
            ap = sp.N(approx.subs(sub), 30)
            point = {"h": str(hv), "d": str(dv_), "c": str(cv)}
            if not ap.is_real:
                return Verdict(
                    "disproved",
                    f"{approx} is not real at h={hv}, d={dv_}, c={cv} (a descent direction): {ap}",
                    cases,
                    counterexample={**point, "approx": str(ap), "exact": str(ex)},
                )
            rel = abs((ap - ex) / ex)
            if rel > sp.Rational(1, 100):
                return Verdict(
                    "disproved",
                    f"{approx} under '{cond}' at h={hv}, d={dv_}, c={cv}: "
                    f"approx {sp.N(ap, 6)} vs exact {sp.N(ex, 6)} "
                    f"(relative error {sp.N(rel, 3)})",
                    cases,
                    counterexample={**point, "approx": str(sp.N(ap, 8)), "exact": str(sp.N(ex, 8))},
                )
    return Verdict("proved", "each approximation within 1% of Eq 37 inside its regime", cases)


# ---------------------------------------------------------------------- the checks
def _widths(ctx: Context) -> tuple[int, ...]:
    return ctx.sizes.widths


def _check(name: str, reference=None, **kw) -> SelfCheck:
    return SelfCheck(name, reference=reference, **kw)


_CHECKS = [
    _check("network", run=_network_run),
    _check("relu_first", run=_relu_run(True)),
    _check("relu_second", run=_relu_run(False)),
    _check("dgamma", run=_dgamma_run),
    _check("cr_step", run=_cr_step_run),
    _check("cr_stable", run=_cr_stable_run),
    _check("cr_roots", run=_cr_roots_run),
    _check("cr_limits", run=_cr_limits_run),
    _check("gamma", lambda ctx, lab: ctx.ref_d1(("v", lab["k"]), ("z", lab["k"]))),
    _check("beta", lambda ctx, lab: ctx.ref_d1(("v", lab["k"]), ("v", lab["k"] - 1))),
    _check(
        "alpha",
        lambda ctx, lab: ctx.ref_alpha(lab["k"], lab["l"]),
        sizes=lambda ctx, lab: {
            "j": _widths(ctx)[lab["k"]],
            "i": _widths(ctx)[lab["l"]],
            # the printed form's names (Eq 21: alpha_{j_i}^{(k,l),j_k})
            "j_k": _widths(ctx)[lab["k"]],
            "j_i": _widths(ctx)[lab["l"]],
        },
    ),
    _check("alpha_composition", lambda ctx, lab: ctx.ref_alpha(lab["k"], lab["m"])),
    *(
        _check(
            name,
            lambda ctx, lab: ctx.ref_d1(("v", lab["k"]), ("w", lab["l"])),
            sizes=lambda ctx, lab: {
                "j": _widths(ctx)[lab["k"]],
                "s": _widths(ctx)[lab["l"]],
                "t": _widths(ctx)[lab["l"] - 1],
            },
        )
        for name in ("dv", "dv_recursive")
    ),
    _check("eta", lambda ctx, lab: ctx.ref_d1(("v", lab["k"]), ("w", lab["l"])), lhs=_eta_lhs),
    _check(
        "dp_du",
        lambda ctx, lab: ctx.ref_d1(("p",), ("u",)),
        sizes=lambda ctx, lab: {
            "j": ctx.sizes.classes,
            "a": ctx.sizes.classes,
            "c": _widths(ctx)[-1],
        },
    ),
    _check("dp_dv", lambda ctx, lab: ctx.ref_d1(("p",), ("v", ctx.sizes.n))),
    _check("grad_u", lambda ctx, lab: _f1(ctx, ("u",))),
    _check("grad_w", lambda ctx, lab: _f1(ctx, ("w", lab["k"]))),
    _check(
        "dalpha",
        lambda ctx, lab: ctx.ref_d2(("v", ctx.sizes.n), ("v", lab["k"]), ("w", lab["r"])),
        sizes=lambda ctx, lab: {
            "m": _widths(ctx)[lab["n"]],
            "q": _widths(ctx)[lab["k"]],
            "s": _widths(ctx)[lab["r"]],
            "t": _widths(ctx)[lab["r"] - 1],
        },
    ),
    _check(
        "deta", lambda ctx, lab: ctx.ref_d2(("v", ctx.sizes.n), ("z", lab["k"]), ("w", lab["r"]))
    ),
    _check(
        "d2v",
        lambda ctx, lab: ctx.ref_d2(("v", ctx.sizes.n), ("w", lab["k"]), ("w", lab["r"])),
        sizes=lambda ctx, lab: {
            "m": _widths(ctx)[lab["n"]],
            "i": _widths(ctx)[lab["k"]],
            "j": _widths(ctx)[lab["k"] - 1],
            "s": _widths(ctx)[lab["r"]],
            "t": _widths(ctx)[lab["r"] - 1],
        },
    ),
    _check("hessian_uu", lambda ctx, lab: _f2(ctx, ("u",), ("u",))),
    _check("hessian_uw", lambda ctx, lab: _f2(ctx, ("u",), ("w", lab["k"]))),
    _check(
        "hessian_uw_with_a", lambda ctx, lab: _f2(ctx, ("u",), ("w", lab["k"])), lhs=_with_a_lhs
    ),
    _check(
        "hessian_ww",
        lambda ctx, lab: _f2(ctx, ("w", lab["k"]), ("w", lab["r"])),
        sizes=lambda ctx, lab: {
            "i": _widths(ctx)[lab["k"]],
            "j": _widths(ctx)[lab["k"] - 1],
            "s": _widths(ctx)[lab["r"]],
            "t": _widths(ctx)[lab["r"] - 1],
        },
    ),
    _check("hessian_diag_u", lambda ctx, lab: np.einsum("ijij->ij", _f2(ctx, ("u",), ("u",)))),
    _check(
        "hessian_diag_w",
        lambda ctx, lab: np.einsum("ijij->ij", _f2(ctx, ("w", lab["k"]), ("w", lab["k"]))),
    ),
    _check("g_dot_grad", _g_dot_grad),
    _check("g_hess_g", _g_hess_g),
    _check("g_norm_cubed", _g_norm_cubed),
    _check("adjoint_top", lambda ctx, lab: ctx.literal_delta(ctx.sizes.n)),
    _check("adjoint_step", lambda ctx, lab: ctx.literal_delta(lab["k"] - 1)),
    _check("tangent_step", lambda ctx, lab: ctx.literal_vdot(lab["k"])),
    _check("tangent_logits", lambda ctx, lab: ctx.reference_pdot()),
    _check("lowrank_source", _lowrank_source),
    _check("lowrank_output_source", _lowrank_output_source),
    _check("lowrank_curvature", _lowrank_curvature),
    _check("lowrank_output_curvature", _lowrank_output_curvature),
    _check("lowrank_sq_norm", _lowrank_sq_norm),
    _check("gauss_newton_factor", _softmax_factor_ref, lhs=_softmax_factor_lhs),
    _check(
        "factored_jacobian",
        lambda ctx, lab: np.einsum("el,lij->eij", _rfac(ctx), ctx.ref_d1(("p",), ("w", lab["k"]))),
        lhs=_factor_lhs,
    ),
    _check(
        "factored_tangent",
        lambda ctx, lab: np.einsum("el,l->e", _rfac(ctx), ctx.reference_pdot()),
        lhs=_factor_lhs,
    ),
    _check("hessian_uu_factored", lambda ctx, lab: _gn_f2(ctx, ("u",), ("u",)), lhs=_factor_lhs),
    _check(
        "hessian_uw_factored",
        lambda ctx, lab: _gn_f2(ctx, ("u",), ("w", lab["k"])),
        lhs=_factor_lhs,
    ),
    _check(
        "hessian_ww_factored",
        lambda ctx, lab: _gn_f2(ctx, ("w", lab["k"]), ("w", lab["r"])),
        lhs=_factor_lhs,
    ),
    _check(
        "hessian_diag_u_factored",
        lambda ctx, lab: _diag(_gn_f2(ctx, ("u",), ("u",))),
        lhs=_factor_lhs,
    ),
    _check(
        "hessian_diag_w_factored",
        lambda ctx, lab: _diag(_gn_f2(ctx, ("w", lab["k"]), ("w", lab["k"]))),
        lhs=_factor_lhs,
    ),
    _check("pdot_term_factored", _pdot_term_factored, lhs=_factor_lhs),
]

#: check name -> :class:`SelfCheck` (Section 3, B.1 and the forms derived from them)
B1_CHECKS: dict[str, SelfCheck] = {c.name: c for c in _CHECKS}
if len(B1_CHECKS) != len(_CHECKS):
    raise ValueError("a check name is defined twice")
