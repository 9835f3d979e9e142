"""A convolutional layer stacked on ReLU layers and the softmax output (a
:class:`numeric.network.Network` of Conv2D, Flatten, Dense and Output layers):
``g^T H g`` and ``g^T grad F`` from one adjoint and one tangent sweep (C4-C7 with
C12-C14), against finite differences and against a JAX Hessian-vector product."""

from __future__ import annotations

import numpy as np
import pytest

from derive.selfcheck import run_checks
from numeric.curvature import directional
from numeric.layers import Conv2D, Dense, Flatten, Output
from numeric.losses import softmax_cross_entropy
from numeric.network import Network, backward, forward


def _layers(x, cw, ws, u, sigma, tau, activation):
    conv = Conv2D(x.shape[1:], cw.shape[0], cw.shape[2:], (sigma, tau), activation)
    layers = [conv, Flatten(conv.out_shape)]
    layers += [Dense(w.shape[1], w.shape[0], "relu") for w in ws]
    return [*layers, Output(u.shape[1], u.shape[0])]


def test_stacking_forms_are_proved():
    for row in run_checks(["C12", "C13", "C14"], modes=["symbolic", "rational"]):
        assert row.printed.status == "proved", (row.number, row.mode, row.printed.detail)


def _stack(activation, seed=0):
    rng = np.random.default_rng(seed)
    b, c, o, h, w, kh, kw, sigma, tau = 3, 2, 2, 6, 5, 3, 2, 1, 2
    s, t = (h - kh) // sigma + 1, (w - kw) // tau + 1
    x = rng.uniform(-1, 1, (b, c, h, w))
    cw = rng.uniform(-1, 1, (o, c, kh, kw))
    ws = [rng.uniform(-1, 1, (5, o * s * t)), rng.uniform(-1, 1, (4, 5))]
    u = rng.uniform(-1, 1, (3, 4))
    y = np.eye(3)[rng.integers(0, 3, b)]
    direction = (rng.normal(size=cw.shape), [rng.normal(size=m.shape) for m in ws],
                 rng.normal(size=u.shape))  # fmt: skip
    return x, y, cw, ws, u, sigma, tau, direction


@pytest.mark.parametrize("activation", ["relu", "tanh", "softplus"])
def test_stack_curvature_against_finite_differences(activation):
    x, y, cw, ws, u, sigma, tau, (dcw, dws, du) = _stack(activation, seed=1)

    layers = _layers(x, cw, ws, u, sigma, tau, activation)

    def flat_grad(e):
        params = [cw + e * dcw, *[m + e * d for m, d in zip(ws, dws, strict=True)], u + e * du]
        _, grads = Network(layers, params).loss_and_gradient(x, y)
        return np.concatenate([g.ravel() for g in grads])

    g = np.concatenate([dcw.ravel(), *[d.ravel() for d in dws], du.ravel()])
    eps = 1e-5
    fd = (flat_grad(eps) - flat_grad(-eps)) / (2 * eps) @ g
    params = [cw, *ws, u]
    fwd = forward(layers, params, x)
    _, dfdp, d2fdp2 = softmax_cross_entropy(fwd.p, y)
    bwd = backward(layers, params, fwd, dfdp)
    gtg, ghg = directional(layers, params, fwd, bwd, dfdp, d2fdp2, [dcw, *dws, du])
    assert abs(ghg - fd) <= 1e-7 * max(1.0, abs(fd))
    assert abs(gtg - flat_grad(0.0) @ g) <= 1e-12 * max(1.0, abs(gtg))


def test_stack_against_jax():
    pytest.importorskip("jax")
    from verify.backend import run_settings, select_backend
    from verify.layers import check_stack, stack_cases

    with run_settings(select_backend("cpu")), np.errstate(all="ignore"):
        ms = [m for case in stack_cases(quick=True) for m in check_stack(case)[0]]
    assert {m.equation for m in ms} == {"C12", "C13", "C14"}
    bad = [(m.case, m.quantity, m.rel_error, m.error) for m in ms if not m.passed]
    assert not bad, bad


def test_layer_results_records_match_the_report_schema():
    pytest.importorskip("jax")
    jsonschema = pytest.importorskip("jsonschema")
    from verify.layers import layer_results
    from verify.report import schema

    results, errata = layer_results(quick=True, only=("stack", "rec"))
    defs = schema()["$defs"]
    for r in results:
        jsonschema.validate(r, {**defs["result"], "$defs": defs})
        assert r["status"] == "pass", r
    for e in errata:
        jsonschema.validate(e, {**defs["erratum"], "$defs": defs})
    measured = {e["equation"] for e in errata if e["measured"]}
    assert {"60", "63", "65"} <= measured
    eq63 = next(e for e in errata if e["equation"] == "63")
    assert eq63["printed_rel_error"] > 1e-3 and eq63["corrected_rel_error"] < 1e-10
