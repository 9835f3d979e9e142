"""Forms the deriver derives from each declared layer's forward rule (auto-derived).

Every form of every layer of :data:`derive.auto.layers.LAYERS` becomes a registry
equation numbered ``A.<layer>.<part>`` (``A.dense.wbar``), role ``"auto"``, whose
section cites the forward rule it came from.  Its self-check proves it against
``sympy.diff`` of the explicit layer (:func:`derive.auto.proof.prove_form`) and, for the
re-derived dense and logits layers, equal to the hand-encoded forms
(:data:`derive.auto.match.MATCHES`: ``C1``-``C5``, ``C9``-``C11``, ``C24``-``C26``,
Eqs 27 and 27.b, the layer and output terms of ``C7``).  The printed-from-the-paper
entries are untouched.
"""

from __future__ import annotations

import time

import sympy as sp

from derive.auto.deriver import Derivation, DerivedForm, derive_layer
from derive.auto.layers import LAYERS
from derive.auto.match import matches_for, run_match
from derive.auto.proof import prove_form
from derive.checking import Verdict
from derive.equations import bias, contracted, general_activation  # noqa: F401  (matched forms)
from derive.forms import Form, SelfCheck, register_derived

__all__ = ["number", "DERIVATIONS"]


def number(layer: str, part: str) -> str:
    """Registry number of a derived form: ``A.<layer>.<part>``."""
    return f"A.{layer}.{part}"


def _run(layer: str, part: str):
    def run(eq, ctx, which: str) -> Verdict:
        if which != "printed":
            return Verdict("not checkable", "no such form")
        start = time.perf_counter()
        proof = prove_form(derive_layer(LAYERS[layer]), part, ctx.mode, ctx.seed)
        if proof.status != "proved":
            return Verdict("disproved", proof.detail, proof.cases, proof.seconds)
        details, cases = [proof.detail], proof.cases
        for match in matches_for(layer, part):
            ok, detail = run_match(match, ctx.seed)
            if not ok:
                return Verdict("disproved", detail, cases, time.perf_counter() - start)
            details.append(detail)
        return Verdict("proved", "; ".join(details), cases, time.perf_counter() - start)

    return run


def _lhs(form: DerivedForm) -> str:
    return sp.latex(sp.IndexedBase(form.target)[tuple(sp.Idx(i) for i in form.free)])


def _register(deriv: Derivation) -> None:
    layer = deriv.layer
    rule = "; ".join(layer.forward_text())
    origin = f"{layer.cites}: " if layer.cites else "a layer not in the paper: "
    for part, form in deriv.forms.items():
        title = f"[auto] {layer.name}: {form.title}"
        if form.outer is not None and form.kind == "gradient":
            title += f"; {form.rank_note}"
        register_derived(
            number(layer.name, part),
            f"{layer.name}_{part}",
            title,
            _lhs(form),
            Form(lambda expr=form.expr: expr, form.free),
            SelfCheck("auto", run=_run(layer.name, part)),
            f"auto-derived from the forward rule ({origin}{rule})",
            role="auto",
            activation="general",
        )


#: layer name -> its derivation (each derived once, at import)
DERIVATIONS: dict[str, Derivation] = {name: derive_layer(rule) for name, rule in LAYERS.items()}
for _deriv in DERIVATIONS.values():
    _register(_deriv)
