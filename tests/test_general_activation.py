"""Appendix B.3 (general activations): derive checks, the reduction to B.1 at A'' = 0,
the generated kernels against finite differences and against JAX."""

from __future__ import annotations

import re

import numpy as np
import pytest
import sympy as sp

from derive import activations as acts
from derive.layer_checks import reduces_to_b1
from derive.selfcheck import run_checks
from numeric.kernels import activations
from numeric.layers import activation_names, get_activation
from verify.kernelset import default_kernels

K = default_kernels()

B3 = [
    "66",
    "67",
    "68",
    "69",
    "70",
    "71",
    "72",
    "72.a",
    "73",
    "74",
    "75",
    "76",
    "77",
    "78",
    "79",
    "80",
    "80.x",
    "C9",
    "C10",
    "C11",
]


# ------------------------------------------------------------------ activations
@pytest.mark.parametrize("name", acts.names())
def test_activation_numeric_forms_equal_sympy(name):
    assert acts.check_activation(acts.get(name)) == []


def test_activation_check_catches_a_wrong_form():
    z, v = acts.z, acts.v
    wrong = acts.Activation("bad_tanh", sp.tanh(z), numeric={"A1": 1 - v})
    assert acts.check_activation(wrong)


def test_shipped_activations_and_relu_special_case():
    assert {"relu", "tanh", "sigmoid", "softplus"} <= set(acts.names())
    assert set(activation_names()) == set(acts.names())
    assert acts.get("relu").second_vanishes and not acts.get("tanh").second_vanishes
    assert activations.SECOND_VANISHES == frozenset({"relu"})


@pytest.mark.parametrize("name", acts.names())
def test_generated_activation_matches_sympy(name):
    act = acts.get(name)
    zs = np.array([-4.5, -1.25, -0.3, 0.4, 1.7, 6.0])
    got = get_activation(name)(zs)
    for order in range(3):
        expr = act.derivative(order)
        want = [float(sp.N(expr.subs(acts.z, sp.Rational(str(zz))).doit(), 30)) for zz in zs]
        np.testing.assert_allclose(got[order], want, rtol=1e-13, atol=1e-15)


def test_activation_extremes_stay_finite():
    z = np.array([-800.0, -40.0, 40.0, 800.0])
    for name in activation_names():
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            v, a1, a2 = get_activation(name)(z)
        assert np.all(np.isfinite(v)) and np.all(np.isfinite(a1)) and np.all(np.isfinite(a2))


def test_unknown_activation_is_a_clear_error():
    with pytest.raises(ValueError, match="tanh"):
        get_activation("swish")
    with pytest.raises(ValueError, match="unknown activation"):
        K.forward([np.ones((2, 2))], np.ones((2, 2)), np.ones((1, 2)), activation="nope")


# ------------------------------------------------------------------ derive: B.3 self-checks
@pytest.fixture(scope="module")
def b3_rows():
    return run_checks(B3, modes=["rational"])


def test_b3_forms_used_by_kernels_are_proved(b3_rows):
    for row in b3_rows:
        used = row.corrected if row.corrected is not None else row.printed
        assert used.status == "proved", (row.number, used.detail)


@pytest.mark.parametrize("number", ["69", "74", "75", "77"])
def test_b3_printed_errata_are_detected(b3_rows, number):
    row = next(r for r in b3_rows if r.number == number)
    assert row.printed.status == "disproved"
    assert row.corrected is not None and row.corrected.status == "proved"


def test_b3_q_lt_k_row_is_a_dimension_error_with_unequal_widths(b3_rows):
    for number in ("74", "75", "77"):
        row = next(r for r in b3_rows if r.number == number)
        assert "dimension mismatch" in row.printed.detail
        assert "'k': 2, 'q': 1" in row.printed.detail


def test_b3_rows_that_hold_as_printed(b3_rows):
    for number in ("66", "67", "68", "70", "71", "72", "72.a", "73", "76", "78", "79", "80"):
        row = next(r for r in b3_rows if r.number == number)
        assert row.printed.status == "proved", (number, row.printed.detail)


def test_relu_reduces_b3_to_b1_exactly():
    """With A'' = 0 every B.3 form equals its B.1 counterpart, entry by entry (symbolic)."""
    out = reduces_to_b1("symbolic")
    assert out and all(v == "identical" for v in out.values()), out


def test_b3_differs_from_b1_when_second_derivative_is_kept():
    out = reduces_to_b1("symbolic", zero_a2=False)
    assert out["C11"] != "identical" and out["77"] != "identical"


# ------------------------------------------------------------------ numeric kernels
def _net(widths=(4, 5, 3, 6), classes=3, batch=3, seed=0):
    rng = np.random.default_rng(seed)
    ws = [rng.uniform(-1, 1, (widths[k + 1], widths[k])) for k in range(len(widths) - 1)]
    u = rng.uniform(-1, 1, (classes, widths[-1]))
    x = rng.uniform(-1, 1, (batch, widths[0]))
    y = np.eye(classes)[rng.integers(0, classes, batch)]
    omega = rng.normal(size=u.shape)
    phis = [rng.normal(size=w.shape) for w in ws]
    return ws, u, x, y, omega, phis


def test_relu_is_the_vanishing_case_of_the_general_code():
    """One dense code path: for the ReLU the C11 terms are skipped (A'' = 0), and the
    result equals the general formula evaluated with A'' = 0."""
    ws, u, x, y, omega, phis = _net(seed=3)
    fwd = K.forward(ws, u, x, activation="relu")
    _, dfdp, d2fdp2 = K.softmax_cross_entropy(fwd.p, y)
    bwd = K.backward(fwd, ws, u, dfdp)
    zeros = fwd._replace(
        caches=[
            *(c._replace(a2=np.zeros_like(c.a1), vanishes=False) for c in fwd.caches[:-1]),
            None,
        ]
    )
    assert K.directional(fwd, bwd, ws, u, dfdp, d2fdp2, omega, phis) == (
        K.directional(zeros, bwd, ws, u, dfdp, d2fdp2, omega, phis)
    )
    assert K.sgd_curvature(fwd, bwd, ws, u, dfdp, d2fdp2) == (
        K.sgd_curvature(zeros, bwd, ws, u, dfdp, d2fdp2)
    )


def _flat(ws, u):
    return np.concatenate([w.ravel() for w in ws] + [u.ravel()])


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "softplus"])
def test_general_activation_curvature_against_finite_differences(activation):
    """g^T H g (C11) and the SGD version against central differences of the gradient."""
    ws, u, x, y, omega, phis = _net(seed=5)

    def grad_at(step):
        w2 = [w + step * p for w, p in zip(ws, phis, strict=True)]
        u2 = u + step * omega
        _, gu, gw = K.loss_and_gradient(w2, u2, x, y, activation=activation)
        return _flat(gw, gu)

    eps = 1e-5
    fd = (grad_at(eps) - grad_at(-eps)) / (2 * eps) @ _flat(phis, omega)
    fwd = K.forward(ws, u, x, activation=activation)
    _, dfdp, d2fdp2 = K.softmax_cross_entropy(fwd.p, y)
    bwd = K.backward(fwd, ws, u, dfdp)
    gtg, ghg = K.directional(fwd, bwd, ws, u, dfdp, d2fdp2, omega, phis)
    assert abs(ghg - fd) <= 1e-7 * max(1.0, abs(fd))
    assert abs(gtg - grad_at(0.0) @ _flat(phis, omega)) < 1e-12
    # the A'' term matters: C7 alone (the ReLU formula) is wrong here
    no_a2 = fwd._replace(caches=[*(c._replace(vanishes=True) for c in fwd.caches[:-1]), None])
    relu_like = K.directional(no_a2, bwd, ws, u, dfdp, d2fdp2, omega, phis)[1]
    assert abs(relu_like - fd) > 1e-6 * max(1.0, abs(fd))


def test_literal_hessian_equals_contracted_curvature():
    ws, u, x, y, omega, phis = _net(seed=7)
    fwd = K.forward(ws, u, x, activation="tanh")
    _, dfdp, d2fdp2 = K.softmax_cross_entropy(fwd.p, y)
    bwd = K.backward(fwd, ws, u, dfdp)
    ch = K.chains(fwd, ws)
    dense = K.hessian_dense(K.hessian_blocks_general(fwd, ch, ws, u, dfdp, d2fdp2), ws, u)
    g = _flat(phis, omega)
    _, ghg = K.directional(fwd, bwd, ws, u, dfdp, d2fdp2, omega, phis)
    np.testing.assert_allclose(g @ dense @ g, ghg, rtol=1e-12)
    np.testing.assert_allclose(dense, dense.T, atol=1e-13)


def test_per_sample_sgd_curvature_sums_like_the_batch():
    ws, u, x, y, *_ = _net(batch=4, seed=11)
    fwd = K.forward(ws, u, x, activation="softplus")
    _, dfdp, d2fdp2 = K.softmax_cross_entropy(fwd.p, y)
    bwd = K.backward(fwd, ws, u, dfdp)
    gtg, ghg, sq = K.per_sample_sgd_curvature(fwd, bwd, ws, u, dfdp, d2fdp2)
    assert gtg.shape == ghg.shape == sq.shape == (4,)
    np.testing.assert_allclose(gtg, -sq, rtol=1e-12)


def test_generated_kernels_cite_their_equations():
    import importlib

    from verify.kernelset import GENERATED

    for mod in [*(importlib.import_module(m) for m in GENERATED), activations]:
        for name in dir(mod):
            fn = getattr(mod, name)
            if not callable(fn) or getattr(fn, "__module__", "") != mod.__name__:
                continue
            if name.startswith("_") or isinstance(fn, type):
                continue
            assert fn.__doc__, (mod.__name__, name)
            if re.match(r"^(eq\d+|c\d+|l\d|table2)", name):
                first = fn.__doc__.strip().splitlines()[0]
                assert re.match(r"^(Eq \d+|C\d+|L\d|T2\.)", first), (name, first)


# ------------------------------------------------------------------ against JAX
def test_general_activation_against_jax():
    pytest.importorskip("jax")
    from verify.backend import run_settings, select_backend
    from verify.layers import MLPCase, check_mlp

    with run_settings(select_backend("cpu")), np.errstate(all="ignore"):
        unequal = check_mlp(MLPCase((4, 5, 3, 6), 3, 3, "tanh", seed=1))
        equal = check_mlp(MLPCase((3, 3, 3, 3), 3, 2, "softplus", seed=2))
    for ms, _ in (unequal, equal):
        bad = [(m.equation, m.quantity, m.rel_error, m.error) for m in ms if not m.passed]
        assert not bad, bad
    # the printed q < k row: wrong values with equal widths, not evaluable otherwise
    eq = {(e.equation, e.kind): e for e in equal[1]}
    assert eq[("77", "index")].printed_rel_error > 1e-3
    assert eq[("75", "index")].printed_rel_error > 1e-3
    un = {(e.equation, e.kind): e for e in unequal[1]}
    assert un[("77", "dimension")].printed_rel_error is None
    assert un[("80", "batch-average")].printed_rel_error > 1e-3
    assert all(e.corrected_rel_error < 1e-10 for e in [*equal[1], *unequal[1]])


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "softplus", "relu"])
def test_cr_sgd_training_with_any_activation(activation):
    """CR-scaled SGD (Eq 37 along g = -grad F, L1-L4 + C11) through the K API."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6))
    y = np.eye(3)[(x[:, 0] > 0).astype(int) + (x[:, 1] > 0).astype(int)]
    ws = [rng.uniform(-0.5, 0.5, (8, 6)), rng.uniform(-0.5, 0.5, (8, 8))]
    u = rng.uniform(-0.5, 0.5, (3, 8))
    losses = []
    for step in range(40):
        xb, yb = x[(step * 16) % 64 :][:16], y[(step * 16) % 64 :][:16]
        fwd = K.forward(ws, u, xb, activation=activation)
        f, dfdp, d2fdp2 = K.softmax_cross_entropy(fwd.p, yb)
        bwd = K.backward(fwd, ws, u, dfdp)
        gtg, ghg, norm3 = K.sgd_cr_terms(fwd, bwd, ws, u, dfdp, d2fdp2)
        alpha = float(K.cr_step_length(ghg, gtg, 10.0, norm3))
        assert np.isfinite(alpha) and alpha > 0
        ws = [w - alpha * g for w, g in zip(ws, bwd.grads_w, strict=True)]
        u = u - alpha * bwd.grad_u
        losses.append(K.loss_and_gradient(ws, u, x, y, activation=activation)[0])
    assert losses[-1] < 0.95 * losses[0]
