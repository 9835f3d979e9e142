"""The deriver (derive/auto): forms derived from forward rules, proved against sympy.diff of
the explicit layer and equal to the hand-encoded registry forms; unsupported constructs
refused with a message naming them."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import sympy as sp

from derive.auto.algebra import UPPER, outer_factors, plain, simplify
from derive.auto.deriver import _Deriver, derive_layer
from derive.auto.layers import LAYERS, dense_rule
from derive.auto.match import MATCHES, run_match
from derive.auto.proof import prove_form
from derive.auto.rule import ACT, LayerRule, Statement, Tensor, UnsupportedConstruct, ix
from derive.registry import get

m, i, j, s, t = ix("m i j s t")
w, v, b = sp.IndexedBase("w"), sp.IndexedBase("v"), sp.IndexedBase("b")


def test_delta_elimination_and_canonical_dummies():
    expr = sp.Sum(sp.KroneckerDelta(i, t) * sp.KroneckerDelta(j, s) * v[m, i], (i, 0, UPPER - 1))
    assert simplify(expr, ("m", "j", "s", "t")) == sp.KroneckerDelta(j, s) * v[m, t]
    # the same contraction written with two dummy names collects into one term
    a = sp.Sum(w[j, i] * v[m, i], (i, 0, UPPER - 1))
    bb = sp.Sum(w[j, s] * v[m, s], (s, 0, UPPER - 1))
    out = simplify(a + bb, ("m", "j"))
    assert plain(out) == "sum_{a} (2*v[m, a]*w[j, a])"


def test_outer_product_is_detected_only_where_it_holds():
    zbar = sp.IndexedBase("zbar")
    assert outer_factors(zbar[m, j] * v[m, i], "m", "j") == (zbar[m, j], v[m, i])
    linked = sp.Sum(zbar[m, s] * w[s, j] * v[m, i], (s, 0, UPPER - 1)) + zbar[m, j] * v[m, i]
    assert outer_factors(linked, "m", "j") is None


def test_dense_layer_forms_are_the_papers_structure():
    forms = derive_layer(LAYERS["dense_bias"]).forms
    assert plain(forms["zbar"].expr) == "a1[m, j]*ybar[m, j]"
    assert plain(forms["wbar"].expr) == "v[m, i]*zbar[m, j]"
    assert forms["wbar"].outer is not None and "rank one per sample" in forms["wbar"].rank_note
    assert plain(forms["bbar"].expr) == "zbar[m, j]"
    assert forms["bbar"].outer is None
    assert plain(forms["curv_y"].expr) == "sum_{a} (a2[m, a]*ybar[m, a]*zdot[m, a]**2)"
    assert plain(forms["curv_z"].expr) == "sum_{a,b} (2*phi[a, b]*vdot[m, b]*zbar[m, a])"


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_every_form_is_proved_against_sympy_diff(name):
    deriv = derive_layer(LAYERS[name])
    for part in deriv.forms:
        proof = prove_form(deriv, part, "symbolic")
        assert proof.status == "proved", (name, part, proof.detail)


def test_each_layer_records_its_derivation_time():
    """``derive layer --list`` reports these seconds (speed is measured, not asserted)."""
    for rule in LAYERS.values():
        seconds = _Deriver(rule).run().seconds
        assert seconds > 0 and seconds == seconds, rule.name


def test_a_wrong_form_is_disproved():
    deriv = derive_layer(LAYERS["dense"])
    wrong = dataclasses.replace(deriv.forms["curv_z"], expr=deriv.forms["curv_z"].expr / 2)
    bad = dataclasses.replace(deriv, forms={**deriv.forms, "curv_z": wrong})
    for mode in ("symbolic", "rational"):
        assert prove_form(bad, "curv_z", mode).status == "disproved"


@pytest.mark.parametrize("match", MATCHES, ids=lambda x: f"{x.layer}.{x.part}={x.number}")
def test_rederived_forms_equal_the_hand_encoded_ones(match):
    ok, detail = run_match(match)
    assert ok, detail


def test_the_comparison_with_the_registry_can_fail():
    match = next(x for x in MATCHES if x.number == "C9")
    swapped = {**match.names, "phi": match.names["w"], "w": match.names["phi"]}
    ok, detail = run_match(dataclasses.replace(match, names=swapped))
    assert not ok and "differs from C9" in detail  # w v + phi vdot is not zdot
    ok, _ = run_match(dataclasses.replace(match, number="C4"))
    assert not ok  # zdot is not vdot = A'(z) zdot
    relu = next(x for x in MATCHES if x.zero)
    ok, _ = run_match(dataclasses.replace(relu, zero=()))
    assert not ok  # with A'' free the curvature has the second-order term


def test_auto_forms_are_registered_and_cite_their_rule():
    eq = get("A.dense.wbar")
    assert eq.role == "auto" and eq.derived
    assert "Eq 10" in eq.section and "A(z[m, j])" in eq.section
    assert "rank one per sample" in eq.title
    assert get("A.layernorm.vbar").section.startswith("auto-derived from the forward rule (a layer")


def _rule(rhs: sp.Expr, statements=()) -> LayerRule:
    base = dense_rule("probe", bias=True, activation=True, cites="")
    z = Tensor("z", ("m", "j"))
    return dataclasses.replace(base, name="probe", statements=(Statement(z, rhs), *statements))


@pytest.mark.parametrize(
    "rhs, words",
    [
        (sp.Max(v[m, j], 0), "Max"),
        (v[m, sp.IndexedBase("k")[j]], "data-dependent indexing"),
        (v[m, j + 1], "shifted or strided"),
        (sp.Sum(w[j, i] * v[m, 2 * i + j], (i, 0, UPPER - 1)), "index expression"),
        (sp.Piecewise((v[m, j], v[m, j] > 0), (0, True)), "Piecewise"),
        (ACT(sp.Sum(w[j, i] * v[m, i], (i, 0, UPPER - 1))), "activation A of"),
    ],
)
def test_unsupported_constructs_are_refused_by_name(rhs, words):
    with pytest.raises(UnsupportedConstruct, match=words):
        _Deriver(_rule(rhs))


def test_undeclared_tensor_is_refused():
    with pytest.raises(ValueError, match="neither a parameter"):
        _Deriver(_rule(sp.IndexedBase("q")[m, j]))


def test_layer_command_lists_and_shows():
    out = subprocess.run(
        [sys.executable, "-m", "derive", "layer", "--list", "--no-check"],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout  # fmt: skip
    for name in LAYERS:
        assert name in out
    assert "paper" in out and "new" in out
    shown = subprocess.run(
        [sys.executable, "-m", "derive", "layer", "dense", "--no-check"],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout  # fmt: skip
    assert "z[m, j] = sum_{i} (v[m, i]*w[j, i])" in shown
    assert r"{\bar{w}}_{m,j,i} = {v}_{m,i} {\bar{z}}_{m,j}" in shown
    assert "rank one per sample" in shown
