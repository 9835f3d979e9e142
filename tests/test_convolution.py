"""Appendix B.2.1 (one convolutional layer): derive checks of Eqs 44-57 and their
channel versions, the generated kernels against finite differences and against JAX."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from derive.indexform import IndexFormError
from derive.layer_checks import evaluate_entrywise
from derive.selfcheck import run_checks
from numeric.literal import convolution as conv2d

CONV = [str(n) for n in range(44, 58)] + ["46.mc", "47.mc", "49.mc", "50.mc", "51.mc", "52.mc"]


@pytest.fixture(scope="module")
def rows():
    return run_checks(CONV, modes=["symbolic", "rational"])


def test_conv_forms_used_by_kernels_are_proved(rows):
    for row in rows:
        used = row.corrected if row.corrected is not None else row.printed
        assert used.status == "proved", (row.number, row.mode, used.detail)


@pytest.mark.parametrize("number", ["44", "45", "47", "48"])
def test_free_index_errata_cannot_be_evaluated(rows, number):
    for row in (r for r in rows if r.number == number):
        assert row.printed.status == "disproved"
        assert "cannot be evaluated" in row.printed.detail
        assert "neither free" in row.printed.detail


@pytest.mark.parametrize("number", ["54", "57"])
def test_missing_kernel_bound_reads_outside_the_kernel(rows, number):
    for row in (r for r in rows if r.number == number):
        assert row.printed.status == "disproved"
        assert "reads cw" in row.printed.detail and "outside" in row.printed.detail


def test_eq56_case_logic_is_wrong_even_where_the_kernel_just_fits(rows):
    for row in (r for r in rows if r.number == "56"):
        # the first case of each mode is a kernel that just fits: no out-of-kernel reads,
        # so the failure is the value of an entry in row p or column q of the window
        assert row.printed.status == "disproved"
        assert "'case': 0" in row.printed.detail and "!=" in row.printed.detail


def test_entrywise_evaluator():
    s, t = sp.symbols("s t", integer=True)
    w = sp.IndexedBase("cw")
    arr = np.array([[sp.Integer(1), sp.Integer(2)]], dtype=object)
    expr = sp.Piecewise((w[0, s + t], s + t < 2), (0, True))
    out = evaluate_entrywise(expr, ("s", "t"), (2, 2), {"cw": arr})
    assert out.tolist() == [[1, 2], [2, 0]]
    with pytest.raises(IndexFormError, match="outside"):
        evaluate_entrywise(w[0, s + t], ("s", "t"), (2, 2), {"cw": arr})
    with pytest.raises(IndexFormError, match="neither free"):
        evaluate_entrywise(w[0, s], ("t",), (2,), {"cw": arr})


# ------------------------------------------------------------------ numeric, NumPy only
def test_output_size_and_bad_shapes():
    assert conv2d.output_size(7, 5, 3, 2, 2, 3) == (3, 2)
    assert conv2d.output_size(4, 4, 4, 4, 3, 3) == (1, 1)
    with pytest.raises(ValueError, match="does not fit"):
        conv2d.output_size(3, 3, 4, 1, 1, 1)
    with pytest.raises(ValueError, match="sigma"):
        conv2d.output_size(3, 3, 2, 2, 0, 1)
    with pytest.raises(ValueError, match="same C"):
        conv2d.forward(np.ones((1, 2, 2, 2)), np.ones((1, 3, 4, 4)))


def _direct_conv(x, w, sigma, tau):
    b, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    s_, t_ = (h - kh) // sigma + 1, (wd - kw) // tau + 1
    out = np.zeros((b, o, s_, t_))
    for si in range(s_):
        for ti in range(t_):
            win = x[:, :, sigma * si : sigma * si + kh, tau * ti : tau * ti + kw]
            out[:, :, si, ti] = np.einsum("bclk,oclk->bo", win, w)
    return out


@pytest.mark.parametrize(
    "cfg",
    [(2, 3, 6, 5, 2, 3, 3, 1), (1, 1, 4, 4, 4, 4, 1, 1), (1, 2, 7, 6, 3, 2, 2, 3)],
)
def test_conv_derivatives_against_finite_differences(cfg):
    c, o, h, wd, kh, kw, sigma, tau = cfg
    rng = np.random.default_rng(sum(cfg))
    x = rng.uniform(-1, 1, (2, c, h, wd))
    w = rng.uniform(-1, 1, (o, c, kh, kw))
    fwd = conv2d.forward(w, x, sigma, tau, "tanh")
    np.testing.assert_allclose(fwd.v, np.tanh(_direct_conv(x, w, sigma, tau)), rtol=1e-13)
    eps = 1e-6
    dx = rng.normal(size=x.shape)
    dw = rng.normal(size=w.shape)

    def v_at(e):
        return np.tanh(_direct_conv(x + e * dx, w + e * dw, sigma, tau))

    first = (v_at(eps) - v_at(-eps)) / (2 * eps)
    jx = np.einsum("bostcij,bcij->bost", conv2d.jacobian_x(fwd, w), dx)
    jw = np.einsum("bostxclk,xclk->bost", conv2d.jacobian_w(fwd), dw)
    np.testing.assert_allclose(jx + jw, first, atol=1e-8)
    eps2 = 1e-4
    second = (v_at(eps2) - 2 * v_at(0.0) + v_at(-eps2)) / eps2**2
    hxx = np.einsum("bostcijdpq,bcij,bdpq->bost", conv2d.hessian_xx(fwd, w), dx, dx)
    hww = np.einsum("bostxclkyemn,xclk,yemn->bost", conv2d.hessian_ww(fwd), dw, dw)
    hwx = np.einsum("bostxclkeij,xclk,beij->bost", conv2d.hessian_wx(fwd, w), dw, dx)
    np.testing.assert_allclose(hxx + hww + 2 * hwx, second, atol=1e-5)


def test_single_channel_forms_agree_with_the_channel_forms():
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, (2, 1, 6, 5))
    w = rng.uniform(-1, 1, (1, 1, 3, 2))
    fwd = conv2d.forward(w, x, 2, 3, "sigmoid")
    got = conv2d.single_channel(fwd, w)
    jx = conv2d.jacobian_x(fwd, w)[:, 0, :, :, 0]
    hwx = conv2d.hessian_wx(fwd, w)[:, 0, :, :, 0, 0, :, :, 0]
    for number in ("47", "54"):
        np.testing.assert_allclose(got[number], jx, atol=1e-15)
    for number in ("51", "56"):
        np.testing.assert_allclose(got[number], hwx, atol=1e-15)
    printed = conv2d.single_channel(fwd, w, "printed")
    assert np.isnan(printed["54"]).any()  # reads the kernel outside its 3 x 2 extent


# ------------------------------------------------------------------ against JAX
CASES = [
    # (C, O, H, W, kh, kw, sigma, tau, activation): strides 1-3, kernels 1-4,
    # non-square inputs, kernels that just fit
    (1, 1, 5, 6, 3, 2, 2, 3, "tanh"),
    (1, 1, 4, 4, 4, 4, 1, 1, "sigmoid"),
    (1, 1, 7, 5, 1, 1, 3, 2, "softplus"),
    (1, 1, 5, 4, 4, 2, 1, 2, "relu"),
    (2, 3, 6, 5, 2, 3, 3, 1, "tanh"),
    (3, 2, 4, 7, 4, 3, 2, 2, "softplus"),
]


@pytest.fixture(scope="module")
def jax_results():
    pytest.importorskip("jax")
    from verify.backend import run_settings, select_backend
    from verify.layers import ConvCase, check_conv

    out = []
    with run_settings(select_backend("cpu")), np.errstate(all="ignore"):
        for i, (*cfg, act) in enumerate(CASES):
            out.append(check_conv(ConvCase(2, *cfg, act, seed=i)))
    return out


def test_conv_kernels_against_jax(jax_results):
    for ms, _ in jax_results:
        bad = [(m.case, m.equation, m.quantity, m.rel_error, m.error) for m in ms if not m.passed]
        assert not bad, bad
    numbers = {m.equation for ms, _ in jax_results for m in ms}
    assert {"45", "48", "46.mc", "47.mc", "49.mc", "50.mc", "51.mc", "52.mc"} <= numbers
    assert {str(n) for n in range(47, 58)} <= numbers


def test_conv_errata_measured_against_jax(jax_results):
    errata = [e for _, es in jax_results for e in es]
    just_fits = [e for e in errata if "just fits" in e.quantity]
    smaller = [e for e in errata if "smaller" in e.quantity]
    by = {(e.equation, e.case): e for e in just_fits}
    assert any(e.equation == "56" and e.printed_rel_error > 1e-3 for e in by.values())
    assert all(e.printed_rel_error < 1e-10 for e in just_fits if e.equation in ("54", "57"))
    assert smaller and all(e.printed_rel_error is None for e in smaller)
    assert all(e.corrected_rel_error < 1e-10 for e in errata)
