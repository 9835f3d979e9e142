"""Derive a layer's derivative forms from its forward rule (:class:`~derive.auto.rule.LayerRule`).

Everything below is ``sympy.diff`` on ``Indexed`` entries followed by
:func:`derive.auto.algebra.simplify`; no derivative is written by hand.  For a layer
with statements ``T_1, ..., T_K`` (output ``y = T_K``) and the output adjoint ``ybar``
(``df/dy`` of one sample), per sample ``m``:

* **adjoints** (reverse sweep): ``Tbar[q] = sum_k sum_{idx} T_kbar[idx] dT_k[idx]/dT[q]``
  over the statements ``k`` that use ``T``; the input adjoint ``vbar`` likewise;
  intermediate adjoints stay named (``zbar`` is the paper's ``delta``).
* **parameter gradients** (per sample): ``Pbar[m, p] = sum_k sum_{idx} T_kbar[m, idx]
  dT_k[m, idx]/dP[p]``; where it is one outer product per sample (the paper's low-rank
  structure) the factors are reported and the batch gradient is emitted as a sum of
  outer products over the samples.
* **tangents** (forward sweep, JVP in parameters and input):
  ``Tdot = sum_Q sum_q dT/dQ[q] Qdot[q]`` over the quantities ``Q`` the rule of ``T``
  uses (parameters along their directions ``phi``, ``psi``, ..., the input along
  ``vdot``, earlier statements along their own tangents).
* **second-order terms** of ``d^T H d``: per statement, ``sum_{idx} T_kbar[idx]
  D^2 T_k[idx]`` with ``D^2 T_k`` the second derivative of the statement's rule along the
  tangents of its arguments (the tangent of the tangent): ``ybar A''(z) zdot^2`` for an
  activation, the bilinear cross terms ``2 zbar phi vdot`` for a weight times an input.
  Their sum (``curvature``) is the layer's whole part of ``d^T H d`` (the second
  derivative of ``ybar . y`` along the direction).

``A'(z)`` and ``A''(z)`` are named ``a1[m, j]`` and ``a2[m, j]`` (``a1_z``, ... when a
layer has several activations).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import sympy as sp

from derive.auto.algebra import UPPER, outer_factors, plain, simplify
from derive.auto.rule import ACT1, ACT2, LayerRule, Statement, Tensor

__all__ = ["DerivedForm", "Derivation", "derive_layer", "BATCH"]

#: mini-batch size in the batch forms (the registry's ``B``)
BATCH = sp.Symbol("B", positive=True, integer=True)


@dataclass(frozen=True)
class DerivedForm:
    """One derived form: ``target[free] = expr``.

    ``kind`` is ``adjoint``, ``input adjoint``, ``gradient``, ``batch gradient``,
    ``tangent`` or ``second order``; ``outer`` the two factors ``(X, Y)`` when the form is
    one outer product per sample (rank one per sample), else ``None``.
    """

    part: str
    kind: str
    target: str
    free: tuple[str, ...]
    expr: sp.Expr
    title: str
    outer: tuple[sp.Expr, sp.Expr] | None = None

    @property
    def rank_note(self) -> str:
        if self.outer is None:
            return ""
        x, y = self.outer
        return f"rank one per sample: {plain(x)} (x) {plain(y)}"


@dataclass
class Derivation:
    """The derived forms of one layer, in the order derived, and the seconds it took."""

    layer: LayerRule
    forms: dict[str, DerivedForm] = field(default_factory=dict)
    seconds: float = 0.0
    #: activated quantity -> names of its ``A'`` and ``A''`` values (``("a1", "a2")``)
    activation_names: dict[str, tuple[str, str]] = field(default_factory=dict)

    def defining(self, base: str) -> DerivedForm | None:
        """The form whose target is ``base`` (``zbar``, ``zdot``, ...), if derived here."""
        for f in self.forms.values():
            if f.target == base:
                return f
        return None


def _act_names(layer: LayerRule) -> dict[str, tuple[str, str]]:
    """``activated quantity -> (name of A' values, name of A'' values)``."""
    activated = []
    for st in layer.statements:
        for fn in st.rhs.atoms(sp.Function):
            if type(fn).__name__ == "ACT":
                activated.append(str(fn.args[0].base.label))
    if len(activated) == 1:
        return {activated[0]: ("a1", "a2")}
    return {name: (f"a1_{name}", f"a2_{name}") for name in activated}


class _Deriver:
    def __init__(self, layer: LayerRule):
        layer.validate()
        self.layer = layer
        self.m = sp.Idx(layer.sample)
        self.acts = _act_names(layer)
        self.avoid = tuple(
            sorted(
                {i for t in (*layer.params, layer.input, *layer.intermediates) for i in t.indices}
            )
        )
        self.extents = {k: v for k, v in layer.extents.items()}
        self.extents.setdefault("__", UPPER)

    # -------------------------------------------------------------- helpers
    def named(self, expr: sp.Expr) -> sp.Expr:
        """``A'(z[m, j])`` -> ``a1[m, j]``, ``A''`` -> ``a2``."""

        def rep(cls, slot):
            def f(arg):
                names = self.acts[str(arg.base.label)]
                return sp.IndexedBase(names[slot])[arg.indices]

            return cls, f

        for cls, slot in ((ACT1, 0), (ACT2, 1)):
            expr = expr.replace(*rep(cls, slot))
        return expr

    def fresh(self, t: Tensor) -> tuple:
        """Indices to differentiate by ``t`` with: the sample index kept, others primed."""
        return tuple(self.m if i == self.layer.sample else sp.Idx(f"{i}_q") for i in t.indices)

    def simplify(self, expr: sp.Expr, free: tuple) -> sp.Expr:
        return simplify(expr, tuple(str(i) for i in free), self.extents, self.avoid)

    def declared(self, expr: sp.Expr, t: Tensor) -> sp.Expr:
        """Rename the primed free indices of a derivative by ``t`` back to ``t``'s own."""
        sub = {sp.Idx(f"{i}_q"): sp.Idx(i) for i in t.indices}
        return expr.xreplace(sub)

    def args(self, st: Statement) -> list[Tensor]:
        names = sorted({str(e.base.label) for e in st.rhs.atoms(sp.Indexed)})
        return [self.layer.tensor(n) for n in names]

    def contract_target(self, st: Statement, body: sp.Expr) -> sp.Expr:
        """``sum`` over the target's indices other than the sample's."""
        others = [sp.Idx(i) for i in st.target.indices if i != self.layer.sample]
        if not others:
            return body
        return sp.Sum(body, *[(i, 0, UPPER - 1) for i in others])

    def directional(self, expr: sp.Expr, st_args: list[Tensor]) -> sp.Expr:
        """``sum_Q sum_q d expr / dQ[q] Qdot[q]`` (one derivative along the tangents)."""
        total = sp.S.Zero
        for q in st_args:
            at = self.fresh(q)
            d = sp.diff(expr, q.base[at])
            if d == 0:
                continue
            summed = [i for i in at if i != self.m]
            term = d * sp.IndexedBase(q.dot)[at]
            total += sp.Sum(term, *[(i, 0, UPPER - 1) for i in summed]) if summed else term
        return total

    # -------------------------------------------------------------- the sweeps
    def run(self) -> Derivation:
        start = time.perf_counter()
        layer = self.layer
        out = Derivation(layer, activation_names=self.acts)
        forms = out.forms
        # forward sweep: tangents (unnamed, to differentiate again) and second-order terms
        tangents: dict[str, sp.Expr] = {}
        second: dict[str, sp.Expr] = {}
        for st in layer.statements:
            t = st.target
            own = tuple(sp.Idx(i) for i in t.indices)
            d1 = self.simplify(self.directional(st.rhs, self.args(st)), own)
            tangents[t.name] = d1
            d2 = self.directional(d1, self.args(st))
            second[t.name] = self.simplify(d2, own) if d2 != 0 else sp.S.Zero
        # reverse sweep: adjoints of intermediates and input, gradients of parameters
        contributions: dict[str, sp.Expr] = {}
        for st in reversed(layer.statements):
            t = st.target
            if t.name != layer.output.name:
                own = tuple(sp.Idx(i) for i in t.indices)
                total = self.simplify(contributions.pop(t.name, sp.S.Zero), own)
                forms[t.bar] = DerivedForm(
                    t.bar, "adjoint", t.bar, t.indices, total,
                    f"adjoint of {t.name}: df/d{t.name}",
                )  # fmt: skip
            tbar = sp.IndexedBase(t.bar)[tuple(sp.Idx(i) for i in t.indices)]
            objective = self.contract_target(st, tbar * st.rhs)
            for q in self.args(st):
                d = sp.diff(objective, q.base[self.fresh(q)])
                if d == 0:
                    continue
                d = self.declared(
                    self.simplify(self.named(d), self.fresh(q)), q
                )  # fmt: skip
                contributions[q.name] = contributions.get(q.name, sp.S.Zero) + d
        for name, expr in contributions.items():
            t = layer.tensor(name)
            own = tuple(sp.Idx(i) for i in t.indices)
            if t is layer.input:
                forms[t.bar] = DerivedForm(
                    t.bar, "input adjoint", t.bar, t.indices, self.simplify(expr, own),
                    f"input adjoint: df/d{t.name} from the output adjoint {layer.output.bar}",
                )  # fmt: skip
        for p in layer.params:
            free = (layer.sample, *p.indices)
            expr = self.simplify(contributions.get(p.name, sp.S.Zero), tuple(map(sp.Idx, free)))
            outer = outer_factors(expr, layer.sample, p.indices[0]) if len(p.indices) >= 2 else None
            title = f"gradient of {p.name}, per sample: df/d{p.name}"
            if outer is not None:
                title += " (rank one per sample)"
            forms[p.bar] = DerivedForm(p.bar, "gradient", p.bar, free, expr, title, outer)
            if outer is not None:
                batch = sp.Sum(expr, (self.m, 0, UPPER - 1)) / BATCH
                forms[f"{p.bar}_batch"] = DerivedForm(
                    f"{p.bar}_batch", "batch gradient", f"{p.bar}_batch", p.indices, batch,
                    f"gradient of {p.name} over a mini-batch: (1/B) sum_m of outer products "
                    f"(rank <= B), factors {plain(outer[0])} and {plain(outer[1])}",
                    outer,
                )  # fmt: skip
        # tangents (named) and second-order terms
        for st in layer.statements:
            t = st.target
            forms[t.dot] = DerivedForm(
                t.dot, "tangent", t.dot, t.indices, self.named(tangents[t.name]),
                f"tangent of {t.name} (JVP along the parameters' directions and {layer.input.dot})",
            )  # fmt: skip
        total = sp.S.Zero
        for st in layer.statements:
            t = st.target
            if second[t.name] == 0:
                continue
            tbar = sp.IndexedBase(t.bar)[tuple(sp.Idx(i) for i in t.indices)]
            body = self.named(self.contract_target(st, tbar * second[t.name]))
            term = self.simplify(body, (self.m,))
            what = (
                "activation curvature" if any(isinstance(f, sp.Function) and type(f).__name__
                                              == "ACT" for f in st.rhs.atoms(sp.Function))
                else "cross terms"
            )  # fmt: skip
            forms[f"curv_{t.name}"] = DerivedForm(
                f"curv_{t.name}", "second order", f"curv_{t.name}", (layer.sample,), term,
                f"second-order term of d^T H d from the rule of {t.name} ({what}): "
                f"{t.bar} . D^2 {t.name}[{t.dot}]",
            )  # fmt: skip
            total += term
        forms["curvature"] = DerivedForm(
            "curvature", "second order", "curvature", (layer.sample,),
            self.simplify(total, (self.m,)) if total != 0 else sp.S.Zero,
            f"the layer's part of d^T H d per sample: d^2/de^2 {layer.output.bar} . "
            f"{layer.output.name}(theta + e d)",
        )  # fmt: skip
        out.seconds = time.perf_counter() - start
        return out


_CACHE: dict[str, Derivation] = {}


def derive_layer(layer: LayerRule) -> Derivation:
    """Derive (once per layer name) every form of ``layer``.

    Raises
    ------
    UnsupportedConstruct
        For a construct the deriver does not handle (:meth:`LayerRule.validate`).
    """
    if layer.name not in _CACHE:
        _CACHE[layer.name] = _Deriver(layer).run()
    return _CACHE[layer.name]
