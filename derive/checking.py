"""What a self-check works with: the concrete arrays of an explicit network
(:class:`Context`), the outcome of a check (:class:`Verdict`) and the signal that a
corrected form does not apply at some labels (:class:`OutsideValidity`).

The references of :mod:`derive.references` and :mod:`derive.layer_checks` compute their
values from a :class:`Context`; :mod:`derive.selfcheck` compares forms with them.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import sympy as sp

from derive.explicit import JetNetwork, Sizes, SymbolicNetwork
from derive.forms import Form, lookup
from derive.indexform import evaluate, terms
from derive.notation import FAMILIES

__all__ = [
    "DEFAULT_SIZES",
    "Context",
    "Verdict",
    "OutsideValidity",
    "accepted",
    "obj_array",
]

DEFAULT_SIZES = {
    # smallest sizes where sympy.diff stays fast; unequal widths expose dimension errata
    "symbolic": Sizes((2, 3, 2), 2),
    # deeper, unequal widths for the exact random-point check
    "rational": Sizes((3, 4, 2, 3), 3),
}


def _per_sample(name: str) -> bool:
    """Whether a base array of the context depends on the sample (inputs, activations,
    df/dp); the weights and the direction do not, nor the mini-batch arrays."""
    fam = name.partition("(")[0]
    return fam in FAMILIES and FAMILIES[fam].per_sample and fam not in ("Pb", "Vb", "Vdotb", "Db")


def obj_array(shape: tuple[int, ...], make: Callable[[tuple[int, ...]], object]) -> np.ndarray:
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
    sample : int
        ``0``: the context's own sample; ``b > 0``: another sample of the same network
        (same weights ``w``, ``u`` and direction ``omega``, ``phi``; its own input,
        activations and ``df/dp``, ``d2f/dp2``), for the batch readings of ``F = E[f]``.
    """

    def __init__(
        self,
        sizes: Sizes,
        mode: str = "symbolic",
        seed: int = 0,
        general_activation: bool = False,
        sample: int = 0,
    ):
        if mode not in ("symbolic", "rational"):
            raise ValueError(f"mode must be 'symbolic' or 'rational', got {mode!r}")
        self.sizes, self.mode, self.seed, self.sample = sizes, mode, seed, sample
        self.general_activation = general_activation
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
        # per-sample values of another sample of the same network (``sample > 0``):
        # the shared draws keep their values, the per-sample ones are redrawn
        rng_sample = random.Random(f"{seed}/{sample}")
        self.fractions: dict[str, np.ndarray] = {}
        self.base: dict[str, np.ndarray] = {}
        for name, shape in shapes.items():
            own = sample > 0 and _per_sample(name)
            if mode == "symbolic":
                tag = name.replace("(", "").replace(")", "")
                if own:
                    tag = f"{tag}s{sample}"
                if name == "d2fdp2":
                    arr = obj_array(
                        shape,
                        lambda p, tag=tag: sp.Symbol(f"H{tag[6:]}_{min(p)}_{max(p)}", real=True),
                    )
                else:
                    arr = obj_array(
                        shape,
                        lambda p, tag=tag: sp.Symbol(f"{tag}_" + "_".join(map(str, p)), real=True),
                    )
            else:

                def rnd(_p, own=own):
                    value = Fraction(rng.randint(-40, 40), rng.randint(1, 17))
                    if own:
                        return Fraction(rng_sample.randint(-40, 40), rng_sample.randint(1, 17))
                    return value

                if name == "d2fdp2":
                    fr = obj_array(shape, rnd)
                    fr = obj_array(shape, lambda p, fr=fr: fr[min(p), max(p)])
                else:
                    fr = obj_array(shape, rnd)
                self.fractions[name] = fr
                arr = obj_array(
                    shape, lambda p, fr=fr: sp.Rational(fr[p].numerator, fr[p].denominator)
                )
            self.base[name] = arr
        self.base["v(0)"] = self.base["x"]
        self.base["Vdotb(0)"] = obj_array(shapes["Vdotb(0)"], lambda p: sp.S.Zero)
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
        return obj_array(
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
            return obj_array((W[k], W[l]), lambda p: sp.S.Zero)
        if k == l:
            return obj_array((W[k], W[l]), lambda p: sp.S.One if p[0] == p[1] else sp.S.Zero)
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
            val = self.evaluate(lookup("19").form, {"n": n, "k": labels[0]})
        elif fam == "beta":
            val = self.evaluate(lookup("20").form, {"n": n, "k": labels[0]})
        elif fam == "alpha":
            val = self.evaluate(
                lookup("21").form,
                {"n": n, "k": labels[0], "l": labels[1]},
                sizes={"j": self.sizes.widths[labels[0]], "i": self.sizes.widths[labels[1]]},
            )
        elif fam == "eta":
            val = self.evaluate(lookup("23").form, {"n": n, "k": labels[0], "l": labels[1]})
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
            return obj_array((self.sizes.widths[0],), lambda p: sp.S.Zero)
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
        expr = form(**accepted(form, labels))
        if expr is None:
            raise OutsideValidity()
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


class OutsideValidity(Exception):
    """The corrected form does not apply at these labels (outside its stated bound)."""


def accepted(form: Form, labels: dict) -> dict:
    """The labels among ``labels`` that ``form.build`` takes."""
    params = inspect.signature(form.build).parameters
    return {k: v for k, v in labels.items() if k in params}


@dataclass
class Verdict:
    """Outcome of one form's check at one size."""

    status: str  # proved | disproved | not checkable | definition | outside validity
    detail: str = ""
    cases: int = 0
    seconds: float = 0.0
    counterexample: dict = field(default_factory=dict)
