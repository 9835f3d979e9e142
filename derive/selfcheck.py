"""Symbolic self-checks: every index form against an independent reference.

For each equation with a check, both its printed and its corrected form are
expanded into explicit scalars at concrete sizes and compared entry by entry with
derivatives of the explicit network (:mod:`derive.explicit`):

* ``symbolic`` mode: fully symbolic, reference by :func:`sympy.diff`; the difference
  of the two sides must expand to 0 (a proof at that size).
* ``rational`` mode: larger, unequal widths; everything is a random rational, the
  reference is exact second-order forward mode; both sides are polynomials in the
  free values, so agreement is a sound probabilistic proof and disagreement an exact
  counterexample.

Verdicts: ``proved``, ``disproved`` (with a counterexample), ``not checkable``
(with the reason), ``definition``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import sympy as sp

from derive.explicit import JetNetwork, Sizes, SymbolicNetwork
from derive.indexform import IndexFormError, evaluate, terms
from derive.registry import Equation, Form, all_equations, get

__all__ = ["Context", "Verdict", "check_equation", "run_checks", "DEFAULT_SIZES"]

DEFAULT_SIZES = {
    # smallest sizes where sympy.diff stays fast; unequal widths expose dimension errata
    "symbolic": Sizes((2, 3, 2), 2),
    # deeper, unequal widths for the exact random-point check
    "rational": Sizes((3, 4, 2, 3), 3),
}


def _obj(shape: tuple[int, ...], make: Callable[[tuple[int, ...]], object]) -> np.ndarray:
    arr = np.empty(shape, dtype=object)
    for pos in np.ndindex(*shape):
        arr[pos] = make(pos)
    return arr


class Context:
    """Concrete arrays for every base name an index form may use.

    Parameters
    ----------
    sizes : Sizes
    mode : {"symbolic", "rational"}
    seed : int
        Seed of the random rational point (rational mode).
    general_activation : bool
        Keep ``A''`` free (B.3) instead of 0 (ReLU, B.1).
    """

    def __init__(
        self, sizes: Sizes, mode: str = "symbolic", seed: int = 0, general_activation: bool = False
    ):
        if mode not in ("symbolic", "rational"):
            raise ValueError(f"mode must be 'symbolic' or 'rational', got {mode!r}")
        self.sizes, self.mode = sizes, mode
        n, W, c = sizes.n, sizes.widths, sizes.classes
        shapes: dict[str, tuple[int, ...]] = {
            "x": (W[0],),
            "u": (c, W[-1]),
            "dfdp": (c,),
            "d2fdp2": (c, c),
            "omega": (c, W[-1]),
        }
        self.batch = 3  # samples in the low-rank (mini-batch) checks
        shapes["Pb"] = (self.batch, c)
        for k in range(0, n + 1):
            shapes[f"Vb({k})"] = (self.batch, W[k])
            shapes[f"Vdotb({k})"] = (self.batch, W[k])
            if k:
                shapes[f"Db({k})"] = (self.batch, W[k])
        for k in range(1, n + 1):
            shapes[f"w({k})"] = (W[k], W[k - 1])
            shapes[f"phi({k})"] = (W[k], W[k - 1])
            for fam in ("v", "z", "a1", "a2"):
                shapes[f"{fam}({k})"] = (W[k],)
        rng = random.Random(seed)
        self.fractions: dict[str, np.ndarray] = {}
        self.base: dict[str, np.ndarray] = {}
        for name, shape in shapes.items():
            if mode == "symbolic":
                tag = name.replace("(", "").replace(")", "")
                if name == "d2fdp2":
                    arr = _obj(shape, lambda p: sp.Symbol(f"H_{min(p)}_{max(p)}", real=True))
                else:
                    arr = _obj(
                        shape,
                        lambda p, tag=tag: sp.Symbol(f"{tag}_" + "_".join(map(str, p)), real=True),
                    )
            else:

                def rnd(_p):
                    return Fraction(rng.randint(-40, 40), rng.randint(1, 17))

                if name == "d2fdp2":
                    fr = _obj(shape, rnd)
                    fr = _obj(shape, lambda p, fr=fr: fr[min(p), max(p)])
                else:
                    fr = _obj(shape, rnd)
                self.fractions[name] = fr
                arr = _obj(shape, lambda p, fr=fr: sp.Rational(fr[p].numerator, fr[p].denominator))
            self.base[name] = arr
        self.base["v(0)"] = self.base["x"]
        self.base["Vdotb(0)"] = _obj(shapes["Vdotb(0)"], lambda p: sp.S.Zero)
        if mode == "rational":
            self.fractions["v(0)"] = self.fractions["x"]
            self.reference = JetNetwork(sizes, self.fractions, general_activation)
        else:
            self.reference = SymbolicNetwork(sizes, self.base, general_activation)
        self._cache: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ conversion
    def to_sympy(self, arr: np.ndarray) -> np.ndarray:
        if self.mode == "symbolic":
            return arr
        return _obj(
            arr.shape,
            lambda p: (
                sp.Rational(arr[p].numerator, arr[p].denominator)
                if isinstance(arr[p], Fraction)
                else sp.sympify(arr[p])
            ),
        )

    # ------------------------------------------------------------------ references
    def ref_d1(self, out, wrt) -> np.ndarray:
        key = f"d1{out}{wrt}"
        if key not in self._cache:
            self._cache[key] = self.to_sympy(self.reference.d1(out, wrt))
        return self._cache[key]

    def ref_d2(self, out, wrt1, wrt2) -> np.ndarray:
        key = f"d2{out}{wrt1}{wrt2}"
        if key not in self._cache:
            self._cache[key] = self.to_sympy(self.reference.d2(out, wrt1, wrt2))
        return self._cache[key]

    def ref_alpha(self, k: int, l: int) -> np.ndarray:  # noqa: E741
        W = self.sizes.widths
        if k < l:
            return _obj((W[k], W[l]), lambda p: sp.S.Zero)
        if k == l:
            return _obj((W[k], W[l]), lambda p: sp.S.One if p[0] == p[1] else sp.S.Zero)
        return self.ref_d1(("v", k), ("v", l))

    # ------------------------------------------------------------------ base lookup
    def array(self, name: str) -> np.ndarray:
        """The concrete array for a base name such as ``eta(3,1)`` or ``dv(2,1)``."""
        if name in self.base:
            return self.base[name]
        if name in self._cache:
            return self._cache[name]
        fam, _, rest = name.partition("(")
        labels = [int(x) for x in rest.rstrip(")").split(",")] if rest else []
        n = self.sizes.n
        if fam == "gamma":
            val = self.evaluate(get("19").form, {"n": n, "k": labels[0]})
        elif fam == "beta":
            val = self.evaluate(get("20").form, {"n": n, "k": labels[0]})
        elif fam == "alpha":
            val = self.evaluate(
                get("21").form,
                {"n": n, "k": labels[0], "l": labels[1]},
                sizes={"j": self.sizes.widths[labels[0]], "i": self.sizes.widths[labels[1]]},
            )
        elif fam == "eta":
            val = self.evaluate(get("23").form, {"n": n, "k": labels[0], "l": labels[1]})
        elif fam == "dv":
            k, l = labels  # noqa: E741
            val = self.ref_d1(("v", k), ("w", l))
        elif fam == "dalpha":
            nn, k, r = labels
            val = self.ref_d2(("v", nn), ("v", k), ("w", r))
        elif fam == "delta":
            val = self.literal_delta(labels[0])
        elif fam == "vdot":
            val = self.literal_vdot(labels[0])
        elif fam == "pdot":
            val = self.reference_pdot()
        else:
            raise KeyError(f"no array for {name}")
        self._cache[name] = val
        return val

    # ------------------------------------------------------------------ literal forms
    def literal_delta(self, k: int) -> np.ndarray:
        """``delta^(k)_i = df/dp^l u_m^l eta_i^{(n,k),m}`` (the rank-1 vector of Eq 28)."""
        ii, ll, mm = sp.Idx("i"), sp.Idx("l"), sp.Idx("m")
        n = self.sizes.n
        expr = sp.Sum(
            sp.IndexedBase("dfdp")[ll]
            * sp.IndexedBase("u")[ll, mm]
            * sp.IndexedBase(f"eta({n},{k})")[mm, ii],
            (ll, 0, 1),
            (mm, 0, 1),
        )
        return self.evaluate_expr(expr, ("i",))

    def literal_vdot(self, k: int) -> np.ndarray:
        """``vdot^(k)_j = sum_{r<=k} eta_s^{(k,r),j} v^{(r-1),t} phi_t^{(r),s}`` (Eq 24)."""
        jj, ss, tt = sp.Idx("j"), sp.Idx("s"), sp.Idx("t")
        if k == 0:
            return _obj((self.sizes.widths[0],), lambda p: sp.S.Zero)
        expr = sum(
            sp.Sum(
                sp.IndexedBase(f"eta({k},{r})")[jj, ss]
                * sp.IndexedBase(f"v({r - 1})")[tt]
                * sp.IndexedBase(f"phi({r})")[ss, tt],
                (ss, 0, 1),
                (tt, 0, 1),
            )
            for r in range(1, k + 1)
        )
        return self.evaluate_expr(expr, ("j",))

    def reference_pdot(self) -> np.ndarray:
        """``dp/dtheta . g`` from the reference Jacobians."""
        total = np.einsum("aij,ij->a", self.ref_d1(("p",), ("u",)), self.base["omega"])
        for k in range(1, self.sizes.n + 1):
            total = total + np.einsum(
                "aij,ij->a", self.ref_d1(("p",), ("w", k)), self.base[f"phi({k})"]
            )
        return total

    def evaluate(self, form: Form, labels: dict, sizes: dict | None = None) -> np.ndarray:
        """Expand a form at concrete labels into an object array."""
        expr = form(**_accepted(form, labels))
        if expr is None:
            raise _OutsideValidity()
        return self.evaluate_expr(expr, form.free, sizes)

    def evaluate_expr(
        self, expr: sp.Expr, free: tuple[str, ...], sizes: dict | None = None
    ) -> np.ndarray:
        if isinstance(expr, sp.Pow) and not free:
            return np.asarray(self.evaluate_expr(expr.base, free, sizes) ** expr.exp, dtype=object)
        sp_expr = sp.sympify(expr).subs(sp.Symbol("B", positive=True, integer=True), self.batch)
        names = {f.base for t in terms(sp_expr, free) for f in t.factors if f.base}
        arrays = {nm: self.array(nm) for nm in names}
        return evaluate(sp_expr, free, arrays, sizes)


class _OutsideValidity(Exception):
    """The corrected form does not apply at these labels (outside its stated bound)."""


def _accepted(form: Form, labels: dict) -> dict:
    import inspect

    params = inspect.signature(form.build).parameters
    return {k: v for k, v in labels.items() if k in params}


# ---------------------------------------------------------------------- references per check
def _contract_f1(ctx: Context, wrt) -> np.ndarray:
    jac = ctx.ref_d1(("p",), wrt)
    return np.einsum("a,a...->...", ctx.base["dfdp"], jac)


def _contract_f2(ctx: Context, wrt1, wrt2) -> np.ndarray:
    j1, j2 = ctx.ref_d1(("p",), wrt1), ctx.ref_d1(("p",), wrt2)
    gn = np.einsum("ab,aij,bst->ijst", ctx.base["d2fdp2"], j1, j2)
    cur = np.einsum("a,aijst->ijst", ctx.base["dfdp"], ctx.ref_d2(("p",), wrt1, wrt2))
    return gn + cur


def _groups(n: int) -> list:
    return [("w", k) for k in range(1, n + 1)] + [("u",)]


def _direction(ctx: Context, g) -> np.ndarray:
    return ctx.base["omega"] if g[0] == "u" else ctx.base[f"phi({g[1]})"]


# Other modules (B.2, B.3) register their own checks here:
# name -> (reference(ctx, labels) -> array, lhs(ctx, form, labels) -> array or None)
CHECKS: dict[str, tuple[Callable, Callable | None]] = {}


def register_check(name: str, reference: Callable, lhs: Callable | None = None) -> None:
    """Add a self-check: ``reference(ctx, labels)`` and optionally ``lhs(ctx, form, labels)``
    (default: evaluate the form at the labels)."""
    if name in CHECKS:
        raise ValueError(f"check {name!r} registered twice")
    CHECKS[name] = (reference, lhs)


def _reference(check: str, ctx: Context, lab: dict) -> np.ndarray:
    if check in CHECKS:
        return CHECKS[check][0](ctx, lab)
    n = ctx.sizes.n
    k, l, r = lab.get("k"), lab.get("l"), lab.get("r")  # noqa: E741
    if check == "gamma":
        return ctx.ref_d1(("v", k), ("z", k))
    if check == "beta":
        return ctx.ref_d1(("v", k), ("v", k - 1))
    if check == "alpha":
        return ctx.ref_alpha(k, l)
    if check == "alpha_composition":
        return ctx.ref_alpha(k, lab["m"])
    if check in ("dv", "dv_recursive"):
        return ctx.ref_d1(("v", k), ("w", l))
    if check == "eta":
        return ctx.ref_d1(("v", k), ("w", l))
    if check == "dp_du":
        return ctx.ref_d1(("p",), ("u",))
    if check == "dp_dv":
        return ctx.ref_d1(("p",), ("v", n))
    if check == "grad_u":
        return _contract_f1(ctx, ("u",))
    if check == "grad_w":
        return _contract_f1(ctx, ("w", k))
    if check == "dalpha":
        return ctx.ref_d2(("v", n), ("v", k), ("w", r))
    if check == "deta":
        return ctx.ref_d2(("v", n), ("z", k), ("w", r))
    if check == "d2v":
        return ctx.ref_d2(("v", n), ("w", k), ("w", r))
    if check == "hessian_uu":
        return _contract_f2(ctx, ("u",), ("u",))
    if check == "hessian_uw":
        return _contract_f2(ctx, ("u",), ("w", k))
    if check == "hessian_ww":
        return _contract_f2(ctx, ("w", k), ("w", r))
    if check == "hessian_diag_u":
        return np.einsum("ijij->ij", _contract_f2(ctx, ("u",), ("u",)))
    if check == "hessian_diag_w":
        return np.einsum("ijij->ij", _contract_f2(ctx, ("w", k), ("w", k)))
    if check == "g_dot_grad":
        total = sp.S.Zero
        for g in _groups(n):
            total += np.sum(_contract_f1(ctx, g) * _direction(ctx, g))
        return np.asarray(sp.expand(total), dtype=object)
    if check == "g_hess_g":
        total = sp.S.Zero
        for g1 in _groups(n):
            for g2 in _groups(n):
                blk = _contract_f2(ctx, g1, g2)
                total += np.einsum("ij,ijst,st->", _direction(ctx, g1), blk, _direction(ctx, g2))
        return np.asarray(sp.expand(total), dtype=object)
    if check == "g_norm_cubed":
        sq = sum(np.sum(_direction(ctx, g) ** 2) for g in _groups(n))
        return np.asarray(sp.Pow(sq, sp.Rational(3, 2)), dtype=object)
    if check == "adjoint_top":
        return ctx.literal_delta(n)
    if check == "adjoint_step":
        return ctx.literal_delta(k - 1)
    if check == "tangent_step":
        return ctx.literal_vdot(k)
    if check == "tangent_logits":
        return ctx.reference_pdot()
    if check.startswith("lowrank"):
        return _lowrank_reference(check, ctx, lab)
    raise KeyError(check)


def _lowrank_reference(check: str, ctx: Context, lab: dict) -> np.ndarray:
    """Dense counterparts: build phi = -E[delta v^T] explicitly, then contract."""
    B = ctx.batch
    k, n = lab.get("k"), ctx.sizes.n
    A = ctx.base
    if check == "lowrank_source":
        phi = -np.einsum("ci,cj->ij", A[f"Db({k})"], A[f"Vb({k - 1})"]) / B
        return np.einsum("jt,bt->bj", phi, A[f"Vb({k - 1})"])
    if check == "lowrank_output_source":
        om = -np.einsum("ci,cj->ij", A["Pb"], A[f"Vb({n})"]) / B
        return np.einsum("it,bt->bi", om, A[f"Vb({n})"])
    if check == "lowrank_curvature":
        phi = -np.einsum("ci,cj->ij", A[f"Db({k})"], A[f"Vb({k - 1})"]) / B
        return np.asarray(
            np.einsum("bi,ij,bj->", A[f"Db({k})"], phi, A[f"Vdotb({k - 1})"]), dtype=object
        )
    if check == "lowrank_output_curvature":
        om = -np.einsum("ci,cj->ij", A["Pb"], A[f"Vb({n})"]) / B
        return np.asarray(np.einsum("bi,ij,bj->", A["Pb"], om, A[f"Vdotb({n})"]), dtype=object)
    if check == "lowrank_sq_norm":
        phi = -np.einsum("ci,cj->ij", A[f"Db({k})"], A[f"Vb({k - 1})"]) / B
        return np.asarray(np.sum(phi * phi), dtype=object)
    raise KeyError(check)


def _lhs(check: str, ctx: Context, form: Form, lab: dict) -> np.ndarray:
    if check in CHECKS and CHECKS[check][1] is not None:
        return CHECKS[check][1](ctx, form, lab)
    if check == "eta":
        eta_arr = ctx.evaluate(form, lab)
        v_prev = ctx.array(f"v({lab['l'] - 1})")
        return np.einsum("js,t->jst", eta_arr, v_prev)
    sizes = None
    W = ctx.sizes.widths
    if check == "alpha":
        sizes = {"j": W[lab["k"]], "i": W[lab["l"]]}
    elif check == "dp_du":
        sizes = {"j": ctx.sizes.classes, "a": ctx.sizes.classes, "c": W[-1]}
    elif check in ("dv", "dv_recursive"):
        sizes = {"j": W[lab["k"]], "s": W[lab["l"]], "t": W[lab["l"] - 1]}
    elif check == "d2v":
        n, k, r = lab["n"], lab["k"], lab["r"]
        sizes = {"m": W[n], "i": W[k], "j": W[k - 1], "s": W[r], "t": W[r - 1]}
    elif check == "dalpha":
        n, k, r = lab["n"], lab["k"], lab["r"]
        sizes = {"m": W[n], "q": W[k], "s": W[r], "t": W[r - 1]}
    elif check == "hessian_ww":
        k, r = lab["k"], lab["r"]
        sizes = {"i": W[k], "j": W[k - 1], "s": W[r], "t": W[r - 1]}
    return ctx.evaluate(form, lab, sizes)


# ---------------------------------------------------------------------- verdicts
@dataclass
class Verdict:
    """Outcome of one form's check at one size."""

    status: str  # proved | disproved | not checkable | definition | outside validity
    detail: str = ""
    cases: int = 0
    seconds: float = 0.0
    counterexample: dict = field(default_factory=dict)


def _equal(ctx: Context, a, b) -> bool:
    diff = a - b
    if ctx.mode == "rational":
        return sp.nsimplify(diff) == 0
    return sp.expand(diff) == 0


def check_form(eq: Equation, form: Form, ctx: Context) -> Verdict:
    """Check one form of ``eq`` at every label set of the context's depth."""
    start = time.perf_counter()
    cases = 0
    skipped = 0
    for lab in eq.label_sets(ctx.sizes.n):
        try:
            lhs = _lhs(eq.check, ctx, form, lab)
        except _OutsideValidity:
            skipped += 1
            continue
        except IndexFormError as err:
            return Verdict(
                "disproved",
                f"cannot be evaluated at {lab}: {err}",
                cases,
                time.perf_counter() - start,
                {"labels": lab, "error": str(err)},
            )
        ref = _reference(eq.check, ctx, lab)
        lhs = np.asarray(lhs, dtype=object)
        ref = np.asarray(ref, dtype=object)
        if lhs.shape != ref.shape:
            return Verdict(
                "disproved",
                f"shape {lhs.shape} != reference {ref.shape} at {lab}",
                cases,
                time.perf_counter() - start,
                {"labels": lab},
            )
        for pos in np.ndindex(*lhs.shape) if lhs.shape else [()]:
            cases += 1
            if not _equal(ctx, lhs[pos], ref[pos]):
                ce = {
                    "labels": lab,
                    "entry": list(pos),
                    "form": str(lhs[pos])[:200],
                    "reference": str(ref[pos])[:200],
                }
                return Verdict(
                    "disproved",
                    f"at labels {lab}, entry {list(pos)}: {ce['form']} != {ce['reference']}",
                    cases,
                    time.perf_counter() - start,
                    ce,
                )
    detail = f"{cases} entries"
    if skipped:
        detail += f"; {skipped} label sets outside the stated bound"
    return Verdict("proved", detail, cases, time.perf_counter() - start)


# ---------------------------------------------------------------------- special checks
def _check_relu(which: str) -> Verdict:
    z = sp.Symbol("z", real=True)
    relu = sp.Max(z, 0)
    d1 = sp.diff(relu, z)
    if which == "relu_first":
        ok = d1.subs(z, sp.Rational(3, 2)) == 1 and d1.subs(z, -sp.Rational(3, 2)) == 0
        return Verdict("proved" if ok else "disproved", f"d/dz max(z,0) = {d1} (z != 0)", 2)
    d2 = sp.diff(relu, z, 2)
    ok = all(d2.subs(z, val) == 0 for val in (sp.Rational(3, 2), -sp.Rational(3, 2)))
    return Verdict(
        "proved" if ok else "disproved",
        f"d2/dz2 max(z,0) = {d2}, zero for z != 0 (removable at 0)",
        2,
    )


def _check_dgamma(ctx: Context) -> Verdict:
    cases = 0
    for k in range(1, ctx.sizes.n + 1):
        blk = ctx.ref_d2(("v", k), ("z", k), ("z", k))
        for pos in np.ndindex(*blk.shape):
            cases += 1
            if sp.expand(blk[pos]) != 0:
                return Verdict("disproved", f"d gamma^({k}) != 0 at {pos}", cases)
    return Verdict("proved", "d gamma/dz = diag(A'') = 0 under Eq 29", cases)


def _cr_checks(eq: Equation, which: str) -> Verdict:
    from derive.equations.cubic_regularization import (
        LIMITS_CORRECTED,
        LIMITS_PRINTED,
        cc,
        d,
        h,
        step_length,
    )

    alpha = sp.Symbol("alpha", positive=True)
    dm = d + alpha * h + cc * alpha**2 / 2  # d/dalpha of Eq 8 along g, alpha > 0
    if eq.check == "cr_step":
        root = step_length()
        ok = sp.simplify(dm.subs(alpha, root)) == 0
        # positive for a descent direction: sqrt(h^2 - 2dc) > |h| when d < 0, c > 0
        rng = random.Random(1)
        pos = all(
            step_length().subs(
                {
                    h: sp.Rational(rng.randint(-50, 50), 7),
                    d: -sp.Rational(rng.randint(1, 50), 3),
                    cc: sp.Rational(rng.randint(1, 50), 5),
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
    if eq.check == "cr_stable":
        from derive.equations.cubic_regularization import step_length_stable

        ok = True
        for branch, _cond in step_length_stable().args:
            ok &= sp.simplify(sp.radsimp(step_length() - branch)) == 0
        return Verdict(
            "proved" if ok else "disproved",
            "both branches equal Eq 37 (multiply by the conjugate)",
            2,
        )
    if eq.check == "cr_roots":
        roots = [(-h + sp.sqrt(h**2 - 2 * d * cc)) / cc, (-h - sp.sqrt(h**2 - 2 * d * cc)) / cc]
        ok = all(sp.simplify(dm.subs(alpha, rt)) == 0 for rt in roots)
        return Verdict("proved" if ok else "disproved", "both roots of the quadratic", 2)
    if eq.check == "cr_limits":
        return check_limits(LIMITS_PRINTED if which == "printed" else LIMITS_CORRECTED, which)
    raise KeyError(eq.check)


def check_limits(limits: list, which: str) -> Verdict:
    """Eq 41: each approximation against the exact root inside its regime.

    Regimes are probed at ratios ``rho = (g^T H g)^2 / (|g^T grad f| sigma ||g||^3)``
    (1e6 for ``>>``, 1e-6 for ``<<``) and, to test the printed conditions, at points
    where ``|g^T H g| / (|g^T grad f| sigma ||g||^3)`` is large but ``rho`` is not.
    """
    from derive.equations.cubic_regularization import cc, d, h, step_length

    exact = step_length()
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
            sub = {h: hv, d: dv_, cc: cv}
            ex = sp.N(exact.subs(sub), 30)
            ap = sp.N(approx.subs(sub), 30)
            if not ap.is_real:
                return Verdict(
                    "disproved",
                    f"{approx} is not real at h={hv}, d={dv_}, c={cv} (a descent direction): {ap}",
                    cases,
                    counterexample={
                        "h": str(hv),
                        "d": str(dv_),
                        "c": str(cv),
                        "approx": str(ap),
                        "exact": str(ex),
                    },
                )
            rel = abs((ap - ex) / ex)
            if rel > sp.Rational(1, 100):
                return Verdict(
                    "disproved",
                    f"{approx} under '{cond}' at h={hv}, d={dv_}, c={cv}: "
                    f"approx {sp.N(ap, 6)} vs exact {sp.N(ex, 6)} "
                    f"(relative error {sp.N(rel, 3)})",
                    cases,
                    counterexample={
                        "h": str(hv),
                        "d": str(dv_),
                        "c": str(cv),
                        "approx": str(sp.N(ap, 8)),
                        "exact": str(sp.N(ex, 8)),
                    },
                )
    return Verdict("proved", "each approximation within 1% of Eq 37 inside its regime", cases)


def check_equation(eq: Equation, ctx: Context, which: str) -> Verdict:
    """Check the ``printed`` or ``corrected`` form of ``eq`` in context ``ctx``."""
    form = getattr(eq, which)
    if eq.check in ("relu_first", "relu_second"):
        return _check_relu(eq.check) if which == "printed" else Verdict("not checkable", "")
    if eq.check == "dgamma":
        return _check_dgamma(ctx) if which == "printed" else Verdict("not checkable", "")
    if eq.check in ("cr_step", "cr_roots", "cr_limits", "cr_stable"):
        if form is None:
            return Verdict("not checkable", "no such form")
        return _cr_checks(eq, which)
    if eq.role == "definition" and not eq.check:
        return Verdict("definition", "defines the network or the update; used by the references")
    if eq.check == "network":
        return Verdict("definition", "builds the explicit reference network")
    if form is None:
        if which == "printed" and eq.erratum is not None:
            return Verdict(
                "not checkable", f"cannot be implemented as printed; read as {eq.erratum.reading}"
            )
        return Verdict("not checkable", "no such form")
    return check_form(eq, form, ctx)


@dataclass
class Row:
    """One line of the self-check summary."""

    number: str
    name: str
    mode: str
    printed: Verdict
    corrected: Verdict | None


def run_checks(
    numbers: Iterable[str] | None = None,
    modes: Iterable[str] = ("symbolic", "rational"),
    sizes: dict[str, Sizes] | None = None,
    seed: int = 0,
    progress: bool = False,
) -> list[Row]:
    """Run the self-checks and return one :class:`Row` per equation and mode."""
    sizes = {**DEFAULT_SIZES, **(sizes or {})}
    eqs = all_equations()
    if numbers is not None:
        wanted = {str(x) for x in numbers}
        eqs = [e for e in eqs if e.number in wanted or set(e.copies) & wanted]
    jobs = [(mode, eq) for mode in modes for eq in eqs]
    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=len(jobs), desc="self-check", unit="eq")
        except ImportError:  # pragma: no cover
            bar = None
    rows = []
    contexts: dict[tuple[str, str], Context] = {}
    for mode, eq in jobs:
        key = (mode, eq.activation)
        if key not in contexts:
            contexts[key] = Context(
                sizes[mode], mode, seed, general_activation=eq.activation == "general"
            )
        ctx = contexts[key]
        if bar is not None:
            bar.set_postfix_str(f"{mode} Eq {eq.number}")
        printed = check_equation(eq, ctx, "printed")
        corrected = check_equation(eq, ctx, "corrected") if eq.corrected is not None else None
        rows.append(Row(eq.number, eq.name, mode, printed, corrected))
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    return rows


# ------------------------------------------------------ factored Gauss-Newton (C15-C23)
# C15 is proved for the explicit softmax factor; C16-C23 with R left free and the
# reference's d2f/dp2 replaced by R^T R (so they hold for any factor of the Hessian).
def _rfac(ctx: Context) -> np.ndarray:
    """Free values for the factor ``R`` of ``d2f/dp2 = R^T R``, kept in the context."""
    if "rfac" not in ctx.base:
        c = ctx.sizes.classes
        if ctx.mode == "symbolic":
            arr = _obj((c, c), lambda p: sp.Symbol(f"R_{p[0]}_{p[1]}", real=True))
        else:
            rng = random.Random(15)
            arr = _obj((c, c), lambda p: sp.Rational(rng.randint(-40, 40), rng.randint(1, 17)))
        ctx.base["rfac"] = arr
    return ctx.base["rfac"]


def _factored(ctx: Context) -> None:
    """Put ``R``, ``rjac(k)`` (C16) and ``rpdot`` (C17) where the forms look them up."""
    _rfac(ctx)
    n = ctx.sizes.n
    for k in range(1, n + 1):
        if f"rjac({k})" not in ctx._cache:
            ctx._cache[f"rjac({k})"] = ctx.evaluate(get("C16").form, {"n": n, "k": k})
    if "rpdot" not in ctx._cache:
        ctx._cache["rpdot"] = ctx.evaluate(get("C17").form, {"n": n})


def _gn_f2(ctx: Context, wrt1, wrt2) -> np.ndarray:
    """Second derivatives of ``f`` (as :func:`_contract_f2`) with ``d2f/dp2 := R^T R``."""
    R = _rfac(ctx)
    rr = np.einsum("ea,eb->ab", R, R)
    j1, j2 = ctx.ref_d1(("p",), wrt1), ctx.ref_d1(("p",), wrt2)
    gn = np.einsum("ab,aij,bst->ijst", rr, j1, j2)
    cur = np.einsum("a,aijst->ijst", ctx.base["dfdp"], ctx.ref_d2(("p",), wrt1, wrt2))
    return gn + cur


def _diag(block: np.ndarray) -> np.ndarray:
    return _obj(block.shape[:2], lambda p: block[p[0], p[1], p[0], p[1]])


def _factor_lhs(ctx: Context, form: Form, lab: dict) -> np.ndarray:
    _factored(ctx)
    return ctx.evaluate(form, lab)


def _softmax_factor_lhs(ctx: Context, form: Form, lab: dict) -> np.ndarray:
    """C15 with the explicit ``R = sqrt(s yhat_e) (delta_el - yhat_l)``, ``sum yhat = 1``."""
    c = ctx.sizes.classes
    y = [sp.Symbol(f"yhat_{e}", positive=True) for e in range(c - 1)]
    y.append(1 - sum(y))
    s = sp.Symbol("s", positive=True)
    R = _obj((c, c), lambda p: sp.sqrt(s * y[p[0]]) * (int(p[0] == p[1]) - y[p[1]]))
    ctx._cache["softmax_factor"] = (y, s)
    out = evaluate(form(**_accepted(form, lab)), form.free, {"rfac": R})
    return _obj(out.shape, lambda p: sp.expand(out[p]))


def _softmax_factor_ref(ctx: Context, lab: dict) -> np.ndarray:
    y, s = ctx._cache["softmax_factor"]
    c = len(y)
    return _obj((c, c), lambda p: sp.expand(s * (y[p[0]] * int(p[0] == p[1]) - y[p[0]] * y[p[1]])))


register_check("gauss_newton_factor", _softmax_factor_ref, _softmax_factor_lhs)
register_check(
    "factored_jacobian",
    lambda ctx, lab: np.einsum("el,lij->eij", _rfac(ctx), ctx.ref_d1(("p",), ("w", lab["k"]))),
    _factor_lhs,
)
register_check(
    "factored_tangent",
    lambda ctx, lab: np.einsum("el,l->e", _rfac(ctx), ctx.reference_pdot()),
    _factor_lhs,
)
register_check("hessian_uu_factored", lambda ctx, lab: _gn_f2(ctx, ("u",), ("u",)), _factor_lhs)
register_check(
    "hessian_uw_factored", lambda ctx, lab: _gn_f2(ctx, ("u",), ("w", lab["k"])), _factor_lhs
)
register_check(
    "hessian_ww_factored",
    lambda ctx, lab: _gn_f2(ctx, ("w", lab["k"]), ("w", lab["r"])),
    _factor_lhs,
)
register_check(
    "hessian_diag_u_factored", lambda ctx, lab: _diag(_gn_f2(ctx, ("u",), ("u",))), _factor_lhs
)
register_check(
    "hessian_diag_w_factored",
    lambda ctx, lab: _diag(_gn_f2(ctx, ("w", lab["k"]), ("w", lab["k"]))),
    _factor_lhs,
)
register_check(
    "pdot_term_factored",
    lambda ctx, lab: np.asarray(
        np.einsum(
            "a,ea,eb,b->", ctx.reference_pdot(), _rfac(ctx), _rfac(ctx), ctx.reference_pdot()
        ),
        dtype=object,
    ),
    _factor_lhs,
)
