"""The re-derived dense and logits layers against the forms the registry encodes by hand.

Each :class:`Match` renames a derived form's tensors to the registry's families at a
concrete layer (``w -> w(k)``, ``zbar -> delta(k)``, ``ybar -> vbar(k)``, ...), drops
the per-sample index (registry forms are per sample), and compares it with a registry
form (``C3``, ``C10``, a part of ``C7``, ...) at random rational arrays, at three sets of
sizes.  Both sides are polynomials in the arrays, so agreement is a probabilistic proof
(Schwartz-Zippel) and a difference an exact counterexample.  ``provide`` composes forms:
an array the registry form reads (``vbar(n)`` in ``C1``) is computed from another derived
form first (the logits layer's input adjoint), so the adjoint steps ``C1``-``C2`` are
checked as one derived layer feeding the next.  ``zero`` sets arrays to 0 (``a2 = 0``:
the ReLU of B.1, whose second-order term is the paper's Eq 39 layer term).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from derive.auto.deriver import derive_layer
from derive.auto.layers import LAYERS
from derive.forms import Form, lookup
from derive.indexform import evaluate, terms

__all__ = ["Match", "MATCHES", "run_match", "matches_for"]

N, K = 3, 2  # the depth and the hidden layer at which the dense layer is compared


def _dense(k: int) -> dict[str, str]:
    return {
        "w": f"w({k})", "b": f"bias({k})", "v": f"v({k - 1})", "y": f"v({k})",
        "zbar": f"delta({k})", "ybar": f"vbar({k})", "vbar": f"vbar({k - 1})",
        "a1": f"a1({k})", "a2": f"a2({k})", "phi": f"phi({k})", "psi": f"psi({k})",
        "vdot": f"vdot({k - 1})", "zdot": f"zdot({k})", "ydot": f"vdot({k})",
    }  # fmt: skip


_LOGITS = {
    "u": "u", "c": "ub", "v": f"v({N})", "pbar": "dfdp", "vbar": f"vbar({N})",
    "omega": "omega", "omegac": "omegab", "vdot": f"vdot({N})", "pdot": "pdot",
}  # fmt: skip


@dataclass(frozen=True)
class Match:
    """``layer.part`` renamed by ``names`` equals registry ``number`` (its ``part`` when
    given, or the sum of ``parts``) at ``labels``."""

    layer: str
    part: str
    number: str
    labels: dict
    names: dict
    parts: tuple[str, ...] = ()
    provide: tuple[tuple[str, str, str, dict], ...] = ()  # (registry name, layer, part, names)
    zero: tuple[str, ...] = ()
    note: str = ""
    sizes: tuple[dict, ...] = field(
        default=(
            {"i": 2, "j": 3, "l": 4, "c": 3},
            {"i": 3, "j": 2, "l": 2, "c": 4},
            {"i": 4, "j": 5, "l": 3, "c": 2},
        )
    )

    @property
    def cites(self) -> str:
        where = self.number + (f" ({', '.join(self.parts)})" if self.parts else "")
        return where + (f" {self.note}" if self.note else "")


def _per_sample(expr: sp.Expr, names: dict, sample: str = "m") -> sp.Expr:
    """Rename the bases and drop the per-sample index."""
    sub = {}
    for ind in expr.atoms(sp.Indexed):
        label = str(ind.base.label)
        ids = tuple(i for i in ind.indices if str(i) != sample)
        sub[ind] = sp.IndexedBase(names.get(label, label))[ids]
    return expr.xreplace(sub)


def _auto(layer: str, part: str, names: dict) -> tuple[sp.Expr, tuple[str, ...]]:
    form = derive_layer(LAYERS[layer]).forms[part]
    return _per_sample(form.expr, names), tuple(i for i in form.free if i != "m")


def _shapes(sizes: dict) -> Callable[[str], tuple[int, ...]]:
    """Extents of the registry's arrays: hidden widths ``j`` (layer K-1), ``i`` (K) and
    ``l`` (the others), ``c`` classes."""
    width = {0: sizes["l"], K - 1: sizes["j"], K: sizes["i"], N: sizes["l"]}
    if K == N:
        raise ValueError("the comparison layer must not be the last")

    def shape(name: str) -> tuple[int, ...]:
        fam, _, rest = name.partition("(")
        labels = [int(x) for x in rest.rstrip(")").split(",")] if rest else []
        w_ = {k: width.get(k, sizes["l"] + k) for k in range(N + 1)}
        if fam in ("w", "phi"):
            return (w_[labels[0]], w_[labels[0] - 1])
        if fam in ("u", "omega"):
            return (sizes["c"], w_[N])
        if fam in ("dfdp", "pdot", "ub", "omegab"):
            return (sizes["c"],)
        if fam == "d2fdp2":
            return (sizes["c"], sizes["c"])
        return (w_[labels[0]],)

    return shape


def _random(shape: tuple[int, ...], rng: random.Random) -> np.ndarray:
    arr = np.empty(shape, dtype=object)
    for pos in np.ndindex(*shape):
        arr[pos] = sp.Rational(rng.randint(-40, 40), rng.randint(1, 17))
    return arr


def _bases(expr: sp.Expr, free: tuple[str, ...]) -> set[str]:
    return {f.base for t in terms(expr, free) for f in t.factors if f.base}


def run_match(match: Match, seed: int = 0) -> tuple[bool, str]:
    """``(equal, detail)``: the derived form against the registry form."""
    reg = lookup(match.number)
    forms: list[Form] = [reg.parts[p] for p in match.parts] if match.parts else [reg.form]
    cases = 0
    for s, sizes in enumerate(match.sizes):
        rng = random.Random(f"{seed}/{s}/{match.layer}.{match.part}")
        shape = _shapes(sizes)
        arrays: dict[str, np.ndarray] = {}

        def array(name: str, arrays=arrays, shape=shape, rng=rng) -> np.ndarray:
            if name not in arrays:
                arrays[name] = _random(shape(name), rng)
                if name in match.zero:
                    arrays[name] = arrays[name] * 0
            return arrays[name]

        for name, layer, part, names in match.provide:
            expr, free = _auto(layer, part, names)
            arrays[name] = evaluate(expr, free, {b: array(b) for b in _bases(expr, free)})
        expr, free = _auto(match.layer, match.part, match.names)
        mine = evaluate(expr, free, {b: array(b) for b in _bases(expr, free)})
        theirs = None
        for form in forms:
            params = [p for p in ("n", "k", "r") if p in form.build.__code__.co_varnames]
            rexpr = form(**{p: match.labels[p] for p in params})
            val = evaluate(rexpr, form.free, {b: array(b) for b in _bases(rexpr, form.free)})
            theirs = val if theirs is None else theirs + val
        mine, theirs = np.asarray(mine, dtype=object), np.asarray(theirs, dtype=object)
        if mine.shape != theirs.shape:
            return False, f"shape {mine.shape} != {match.number}'s {theirs.shape} at {sizes}"
        for pos in np.ndindex(*mine.shape):
            cases += 1
            if sp.nsimplify(mine[pos] - theirs[pos]) != 0:
                return False, (
                    f"differs from {match.cites} at sizes {sizes}, entry {list(pos)}: "
                    f"{mine[pos]} != {theirs[pos]}"
                )
    return True, f"equals {match.cites} ({cases} entries at {len(match.sizes)} sizes)"


_D, _DL = _dense(K), _dense(K + 1)
_DN = _dense(N)
_DP = _dense(K - 1)
_RELU = "with a2 = 0 (ReLU, B.1)"

#: every comparison of a re-derived form with a hand-encoded one
MATCHES: tuple[Match, ...] = (
    Match("dense", "wbar", "C3", {"n": N, "k": K}, _D),
    Match("dense_bias", "wbar", "C3", {"n": N, "k": K}, _D),
    Match("dense_bias", "bbar", "C24", {"n": N, "k": K}, _D),
    Match("dense", "vbar", "C10", {"n": N, "k": K - 1}, _D),
    Match("dense_bias", "vbar", "C10", {"n": N, "k": K - 1}, _D),
    Match("linear", "vbar", "C10", {"n": N, "k": N}, _LOGITS),
    Match("linear", "ubar", "27", {"n": N}, _LOGITS),
    Match("linear_bias", "cbar", "27.b", {"n": N}, _LOGITS),
    Match(
        "dense",
        "zbar",
        "C1",
        {"n": N},
        _DN,
        provide=((f"vbar({N})", "linear", "vbar", _LOGITS),),
        note="(composed with the logits layer's input adjoint)",
    ),  # fmt: skip
    Match(
        "dense",
        "zbar",
        "C2",
        {"n": N, "k": K + 1},
        _dense(K),
        provide=((f"vbar({K})", "dense", "vbar", _DL),),
        note="(composed with the next dense layer's input adjoint)",
    ),  # fmt: skip
    Match("dense", "zdot", "C9", {"n": N, "k": K}, _D),
    Match("dense_bias", "zdot", "C25", {"n": N, "k": K}, _D),
    Match(
        "dense",
        "ydot",
        "C4",
        {"n": N, "k": K},
        _D,
        provide=((f"zdot({K})", "dense", "zdot", _D),),
        note="(composed with the derived zdot)",
    ),  # fmt: skip
    Match("linear", "pdot", "C5", {"n": N}, _LOGITS),
    Match("dense", "curv_z", "C7", {"n": N, "k": K}, _D, parts=("layer_term",)),
    Match(
        "dense_bias",
        "curv_z",
        "C7",
        {"n": N, "k": K},
        _D,
        parts=("layer_term",),
        note="(C26: a bias adds no cross term)",
    ),  # fmt: skip
    Match("dense", "curv_y", "C11", {"n": N, "k": K}, _D, parts=("second_order_term",)),
    Match(
        "dense", "curvature", "C11", {"n": N, "k": K}, _D, parts=("layer_term", "second_order_term")
    ),  # fmt: skip
    Match(
        "dense",
        "curvature",
        "C7",
        {"n": N, "k": K},
        _D,
        parts=("layer_term",),
        zero=(f"a2({K})",),
        note=_RELU,
    ),  # fmt: skip
    Match("linear", "curv_p", "C7", {"n": N}, _LOGITS, parts=("output_term",)),
)


def matches_for(layer: str, part: str) -> list[Match]:
    """The comparisons of one derived form."""
    return [m for m in MATCHES if m.layer == layer and m.part == part]
