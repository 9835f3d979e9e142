"""Tests for numeric.cr: Eq 37 against brute force, the exact directional quantities,
the three averaging options of Section 3.1, and the defined edge cases."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numeric.cr import (
    CR,
    FLAGS,
    Baseline,
    cubic_model,
    step_length,
    step_lengths,
)
from numeric.network import Network, as_targets
from numeric.optimizers import SGD, Adadelta, Adagrad, Adam, Optimizer, apply
from verify.kernelset import default_kernels

K = default_kernels()
per_sample_sgd_curvature = K.per_sample_sgd_curvature

# ------------------------------------------------------------------ brute force on Eq 8


def brute_force_minimiser(gtg: float, ghg: float, sigma: float, norm3: float) -> float:
    """argmin over alpha >= 0 of the cubic model, without Eq 37.

    With gtg < 0 the derivative of the model is a convex quadratic that is negative at
    0, so the model decreases and then increases on [0, inf): a grid brackets the
    minimiser and a ternary search refines it.
    """
    c = sigma * norm3
    # the minimiser lies below the larger root of c/2 a^2 - |h| a - |d| = 0
    upper = 2.0 * (abs(ghg) + math.sqrt(ghg * ghg + 2.0 * c * abs(gtg))) / c
    grid = np.linspace(0.0, upper, 4001)
    i = int(np.argmin(cubic_model(grid, gtg, ghg, sigma, norm3)))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    for _ in range(200):
        m1, m2 = lo + (hi - lo) / 3, hi - (hi - lo) / 3
        if cubic_model(m1, gtg, ghg, sigma, norm3) < cubic_model(m2, gtg, ghg, sigma, norm3):
            hi = m2
        else:
            lo = m1
    return 0.5 * (lo + hi)


def log_uniform(lo: float, hi: float):
    return st.floats(math.log10(lo), math.log10(hi)).map(lambda e: 10.0**e)


@settings(max_examples=300, deadline=None)
@given(
    gtg=log_uniform(1e-8, 1e3).map(lambda v: -v),
    ghg=st.one_of(log_uniform(1e-8, 1e4), log_uniform(1e-8, 1e4).map(lambda v: -v)),
    sigma=log_uniform(1e-1, 1e4),
    norm3=log_uniform(1e-9, 1e3),
)
def test_alpha_is_the_minimiser_of_the_cubic_model(gtg, ghg, sigma, norm3):
    alpha, flag = step_length(gtg, ghg, sigma, norm3, fallback=0.5)
    assert flag == ""
    assert alpha > 0 and math.isfinite(alpha)
    best = brute_force_minimiser(gtg, ghg, sigma, norm3)
    assert alpha == pytest.approx(best, rel=1e-6, abs=1e-12 * best)
    m_alpha = cubic_model(alpha, gtg, ghg, sigma, norm3)
    assert m_alpha <= cubic_model(best, gtg, ghg, sigma, norm3) + 1e-12 * abs(m_alpha)
    # and a stationary point: dm/dalpha = gtg + alpha ghg + sigma/2 alpha^2 norm3 = 0
    slope = gtg + alpha * ghg + 0.5 * sigma * alpha**2 * norm3
    scale = abs(gtg) + abs(alpha * ghg) + 0.5 * sigma * alpha**2 * norm3
    assert abs(slope) <= 1e-9 * scale


def test_alpha_equals_eq37_as_printed_where_that_is_well_conditioned():
    gtg, ghg, sigma, norm3 = -0.3, 2.0, 100.0, 0.02
    printed = (-ghg + math.sqrt(ghg**2 - 2 * gtg * sigma * norm3)) / (sigma * norm3)
    assert step_length(gtg, ghg, sigma, norm3, 0.1)[0] == pytest.approx(printed, rel=1e-12)


def test_limiting_cases_of_eq41():
    # strong positive curvature: alpha ~ |gtg| / ghg (a Newton step along d)
    alpha, _ = step_length(-1e-3, 10.0, 1.0, 1e-6, 0.1)
    assert alpha == pytest.approx(1e-4, rel=1e-6)
    # flat (ghg ~ 0): alpha ~ sqrt(2 |gtg| / (sigma ||g||^3))
    alpha, _ = step_length(-2.0, 0.0, 100.0, 1.0, 0.1)
    assert alpha == pytest.approx(math.sqrt(4.0 / 100.0), rel=1e-12)


def test_non_descent_zero_and_nonfinite_steps_are_defined():
    assert step_length(0.5, 1.0, 100.0, 1.0, fallback=0.01) == (0.01, "nondescent")
    assert step_length(0.0, 1.0, 100.0, 1.0, fallback=0.01) == (0.01, "nondescent")
    assert step_length(0.5, 1.0, 100.0, 1.0, 0.01, nondescent="skip") == (0.0, "nondescent")
    assert step_length(0.0, 0.0, 100.0, 0.0, fallback=0.01) == (0.0, "zero")
    # underflow of 2 |d| sigma ||d||^3 leaves Eq 37 undefined: the base step, flagged
    assert step_length(-1e-300, 0.0, 1.0, 1e-320, fallback=0.01) == (0.01, "nonfinite")
    for bad in (math.nan, math.inf, -math.inf):
        assert step_length(bad, 1.0, 1.0, 1.0, 0.01) == (0.01, "nonfinite")
        assert step_length(-1.0, bad, 1.0, 1.0, 0.01) == (0.01, "nonfinite")
        assert step_length(-1.0, 1.0, 1.0, bad, 0.01) == (0.01, "nonfinite")


@settings(max_examples=300, deadline=None)
@given(
    gtg=st.floats(allow_nan=True, allow_infinity=True),
    ghg=st.floats(allow_nan=True, allow_infinity=True),
    sigma=st.floats(1e-3, 1e6),
    norm3=st.one_of(st.floats(min_value=0.0), st.just(math.nan)),
)
def test_step_length_is_never_nan_and_vectorised_form_agrees(gtg, ghg, sigma, norm3):
    alpha, flag = step_length(gtg, ghg, sigma, norm3, 0.02)
    assert math.isfinite(alpha) and alpha >= 0 and flag in FLAGS
    va, vf = step_lengths(np.array([gtg]), np.array([ghg]), sigma, np.array([norm3]), 0.02)
    assert va[0] == alpha and FLAGS[vf[0]] == flag


# --------------------------------------------------------------- tiny exact problem


def tiny_problem(seed=0, batch=5, widths=(4, 5, 3, 4), classes=3, bound=0.8):
    rng = np.random.default_rng(seed)
    net = Network.create(widths[0], widths[1:], classes, init=bound, seed=seed)
    x = rng.normal(size=(batch, widths[0]))
    labels = rng.integers(0, classes, size=batch)
    return net, x, labels


def flat(arrays):
    return np.concatenate([a.ravel() for a in arrays])


def dense(net, x, labels, reduce="mean"):
    """Gradient and Hessian of F (or of each f_b) from the literal Eqs 27-28, 34-36."""
    y = as_targets(labels, net.classes)
    fwd = K.forward(net.ws, net.u, x)
    _, dfdp, d2 = K.softmax_cross_entropy(fwd.p, y)
    etas = K.eta_chains(net.ws, fwd.masks)
    gu, gw = K.gradient_literal(fwd, etas, net.ws, net.u, dfdp, reduce=reduce)
    H = K.hessian_dense(
        K.hessian_blocks(fwd, etas, net.ws, net.u, dfdp, d2, reduce=reduce), net.ws, net.u
    )
    if reduce == "sample":
        g = np.concatenate([a.reshape(a.shape[0], -1) for a in [*gw, gu]], axis=1)
    else:
        g = flat([*gw, gu])
    return g, H


@pytest.mark.parametrize("opt", [SGD(), Adagrad(), Adadelta(), Adam()], ids=lambda o: o.name)
def test_cr_step_uses_exact_directional_derivatives(opt):
    net, x, labels = tiny_problem(seed=1)
    method = CR(opt, sigma=10.0, lr=0.05)
    state = method.init(net)
    # a few base steps first so that adaptive accumulators are non-trivial
    for _ in range(3):
        _, g = net.loss_and_gradient(x, labels)
        _, state.opt = opt.direction(g, state.opt, 0.01)
    _, g_now = net.loss_and_gradient(x, labels)
    unit, _ = opt.direction(g_now, state.opt, 1.0)
    new, new_state, info = method.step(net, state, x, labels)

    g, H = dense(net, x, labels)
    d = flat(unit)
    assert info.loss == pytest.approx(net.loss(x, labels), rel=1e-14)
    assert info.dgrad == pytest.approx(d @ g, rel=1e-10)
    assert info.dhd == pytest.approx(d @ H @ d, rel=1e-9, abs=1e-14)
    assert info.dnorm == pytest.approx(np.linalg.norm(d), rel=1e-12)
    expected, flag = step_length(d @ g, d @ H @ d, 10.0, np.linalg.norm(d) ** 3, 0.05)
    assert info.flag == flag
    assert info.alpha == pytest.approx(expected, rel=1e-9)
    assert info.lr_eff == info.alpha and info.lr == 0.05
    step = flat(new.params) - flat(net.params)
    assert np.allclose(step, info.alpha * d, rtol=1e-12, atol=1e-15)
    assert new_state.step == 1


def test_lowrank_sgd_path_equals_the_tangent_path():
    net, x, labels = tiny_problem(seed=4)

    @dataclass(frozen=True)
    class PlainGD(Optimizer):  # SGD's rule, but not recognised as SGD: tangent sweep path
        name: ClassVar[str] = "plain"

        def _unit(self, grads, state):
            return [-g for g in grads], {}

    a = CR(SGD(), sigma=100.0).step(net, CR(SGD(), 100.0).init(net), x, labels)[2]
    b = CR(PlainGD(), sigma=100.0, lr=0.0).step(net, CR(PlainGD(), 100.0).init(net), x, labels)[2]
    assert a.alpha == pytest.approx(b.alpha, rel=1e-12)
    assert a.dhd == pytest.approx(b.dhd, rel=1e-12)


def test_per_sample_curvature_against_dense_per_sample_hessians():
    net, x, labels = tiny_problem(seed=2, batch=6)
    y = as_targets(labels, net.classes)
    fwd = K.forward(net.ws, net.u, x)
    _, dfdp, d2 = K.softmax_cross_entropy(fwd.p, y)
    bwd = K.backward(fwd, net.ws, net.u, dfdp)
    gtg, ghg, sq = per_sample_sgd_curvature(fwd, bwd, net.ws, net.u, dfdp, d2)
    g_b, H_b = dense(net, x, labels, reduce="sample")
    for b in range(x.shape[0]):
        d = -g_b[b]
        assert gtg[b] == pytest.approx(-(g_b[b] @ g_b[b]), rel=1e-10)
        assert sq[b] == pytest.approx(g_b[b] @ g_b[b], rel=1e-12)
        assert ghg[b] == pytest.approx(d @ H_b[b] @ d, rel=1e-9, abs=1e-13)


def per_sample_alphas(net, x, labels, sigma, lr):
    out, grads = [], []
    for b in range(x.shape[0]):
        g, H = dense(net, x[b : b + 1], labels[b : b + 1])
        out.append(step_length(-(g @ g), g @ H @ g, sigma, (g @ g) ** 1.5, lr)[0])
        grads.append(g)
    return np.array(out), np.array(grads)


def test_mean_alpha_option_is_e_alpha_times_e_g():
    net, x, labels = tiny_problem(seed=3, batch=4)
    method = CR(SGD(), sigma=30.0, averaging="mean-alpha", lr=0.1)
    new, _, info = method.step(net, method.init(net), x, labels)
    alphas, grads = per_sample_alphas(net, x, labels, 30.0, 0.1)
    assert info.alpha == pytest.approx(alphas.mean(), rel=1e-9)
    expected = -alphas.mean() * grads.mean(axis=0)
    assert np.allclose(flat(new.params) - flat(net.params), expected, rtol=1e-9, atol=1e-14)
    assert info.lr_eff == info.alpha


def test_alpha_g_option_is_e_of_alpha_g():
    net, x, labels = tiny_problem(seed=5, batch=4)
    method = CR(SGD(), sigma=30.0, averaging="alpha-g", lr=0.1)
    new, _, info = method.step(net, method.init(net), x, labels)
    alphas, grads = per_sample_alphas(net, x, labels, 30.0, 0.1)
    expected = -(alphas[:, None] * grads).mean(axis=0)
    step = flat(new.params) - flat(net.params)
    assert np.allclose(step, expected, rtol=1e-9, atol=1e-14)
    d = -grads.mean(axis=0)
    assert info.lr_eff == pytest.approx(step @ d / (d @ d), rel=1e-9)
    assert info.alpha == pytest.approx(alphas.mean(), rel=1e-9)


def test_per_sample_options_need_sgd_and_parameters_are_checked():
    with pytest.raises(ValueError, match="only for SGD"):
        CR(Adagrad(), sigma=10.0, averaging="mean-alpha")
    with pytest.raises(ValueError):
        CR(SGD(), sigma=0.0)
    with pytest.raises(ValueError):
        CR(SGD(), sigma=1.0, averaging="median")
    with pytest.raises(ValueError):
        CR(SGD(), sigma=1.0, nondescent="ignore")
    with pytest.raises(TypeError):
        CR("sgd", sigma=1.0)
    with pytest.raises(ValueError, match="learning rate"):
        Baseline(SGD())


@dataclass(frozen=True)
class Ascent(Optimizer):
    """Proposes +grad: never a descent direction."""

    name: ClassVar[str] = "ascent"

    def _unit(self, grads, state):
        return [g.copy() for g in grads], {}


def test_non_descent_direction_takes_the_base_step_and_is_flagged():
    net, x, labels = tiny_problem(seed=6)
    method = CR(Ascent(), sigma=100.0, lr=0.03)
    new, _, info = method.step(net, method.init(net), x, labels)
    assert info.flag == "nondescent" and info.dgrad > 0
    assert info.alpha == 0.03 and info.lr_eff == 0.03
    _, g = net.loss_and_gradient(x, labels)
    assert np.allclose(flat(new.params), flat(net.params) + 0.03 * flat(g), rtol=0, atol=1e-15)
    skip = CR(Ascent(), sigma=100.0, lr=0.03, nondescent="skip")
    new, _, info = skip.step(net, skip.init(net), x, labels)
    assert info.alpha == 0.0 and info.flag == "nondescent"
    assert np.array_equal(flat(new.params), flat(net.params))


def test_zero_gradient_gives_zero_step_not_nan():
    net, _, labels = tiny_problem(seed=7)
    x = np.zeros((5, 4))  # every activation is zero, so is every gradient
    for averaging in ("model", "mean-alpha", "alpha-g"):
        method = CR(SGD(), sigma=100.0, averaging=averaging, lr=0.02)
        new, _, info = method.step(net, method.init(net), x, labels)
        assert info.flag == "zero" and info.alpha == 0.0 and info.lr_eff == 0.0
        assert np.array_equal(flat(new.params), flat(net.params))


def test_baseline_step_is_the_optimizer_update():
    net, x, labels = tiny_problem(seed=8)
    for opt in (SGD(), Adagrad(), Adadelta(), Adam()):
        method = Baseline(opt, lr=0.07, curvature=True)
        state = method.init(net)
        new, state, info = method.step(net, state, x, labels)
        _, g = net.loss_and_gradient(x, labels)
        expected, _ = opt.update(net.params, g, opt.init(net.params), 0.07)
        assert np.allclose(flat(new.params), flat(expected), rtol=0, atol=1e-15)
        assert info.alpha == info.lr == info.lr_eff == 0.07
        assert math.isfinite(info.dhd) and info.flag == ""
    plain = Baseline(SGD(), lr=0.07)
    info = plain.step(net, plain.init(net), x, labels)[2]
    assert math.isnan(info.dhd) and info.dgrad < 0


def test_schedule_drives_the_base_learning_rate():
    from numeric.schedules import ExponentialDecay

    net, x, labels = tiny_problem(seed=9)
    method = Baseline(SGD(), lr=ExponentialDecay(0.1))
    state = method.init(net)
    state.step = 100
    _, state, info = method.step(net, state, x, labels)
    assert info.lr == pytest.approx(0.095) and state.step == 101


def test_python_api_reads_naturally():
    net = Network.create(4, [6, 6], 3, init="plateau", seed=0)
    method = CR(SGD(), sigma=100.0, lr=0.02)
    state = method.init(net)
    rng = np.random.default_rng(0)
    x, labels = rng.normal(size=(8, 4)), rng.integers(0, 3, size=8)
    losses = []
    for _ in range(5):
        net, state, info = method.step(net, state, x, labels)
        losses.append(info.loss)
    assert state.step == 5 and all(math.isfinite(v) for v in losses)
    unchanged = apply(net.params, [np.zeros_like(p) for p in net.params])
    assert np.array_equal(flat(unchanged), flat(net.params))


def test_non_finite_weights_raise_diverged_before_any_update():
    from numeric.cr import Diverged

    net, x, labels = tiny_problem(seed=10)
    method = CR(SGD(), sigma=10.0)
    state = method.init(net)
    net.u[0, 0] = np.inf
    for check in (True, False):
        with pytest.raises(Diverged):
            method.step(net, state, x, labels, check=check)
    assert state.step == 0
    with pytest.raises(ValueError, match="x contains"):
        method.step(tiny_problem(seed=10)[0], state, np.full_like(x, np.nan), labels)
