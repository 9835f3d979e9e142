"""Generated kernels against central finite differences of the loss (float64)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from tests.strategies import Architecture, Network, draw_network, networks
from verify.kernelset import default_kernels

K = default_kernels()

EPS = 1e-6


def _loss(net: Network, theta: np.ndarray) -> float:
    ws, u = net.unflat(theta)
    fwd = K.forward(ws, u, net.x, check=False)
    f, _, _ = K.softmax_cross_entropy(fwd.p, net.y, second=False)
    return float(f.mean())


def _grad(net: Network, theta: np.ndarray) -> np.ndarray:
    ws, u = net.unflat(theta)
    fwd = K.forward(ws, u, net.x, check=False)
    _, dfdp, _ = K.softmax_cross_entropy(fwd.p, net.y, second=False)
    bwd = K.backward(fwd, ws, u, dfdp)
    return np.concatenate([g.ravel() for g in bwd.grads_w] + [bwd.grad_u.ravel()])


def _fd_grad(net: Network) -> np.ndarray:
    theta = net.flat()
    eye = np.eye(theta.size)
    return np.array(
        [(_loss(net, theta + EPS * e) - _loss(net, theta - EPS * e)) / (2 * EPS) for e in eye]
    )


def _fd_hessian(net: Network) -> np.ndarray:
    theta = net.flat()
    eye = np.eye(theta.size)
    cols = [(_grad(net, theta + EPS * e) - _grad(net, theta - EPS * e)) / (2 * EPS) for e in eye]
    return np.array(cols)


def _state(net: Network):
    fwd = K.forward(net.ws, net.u, net.x)
    _, dfdp, d2fdp2 = K.softmax_cross_entropy(fwd.p, net.y)
    bwd = K.backward(fwd, net.ws, net.u, dfdp)
    etas = K.eta_chains(net.ws, fwd.masks)
    return fwd, dfdp, d2fdp2, bwd, etas


def _close(a, b, rtol=1e-6):
    scale = max(np.max(np.abs(b)), 1e-8)
    assert np.max(np.abs(np.asarray(a) - np.asarray(b))) <= rtol * scale


FIXED = [
    Architecture((3, 4, 2), 3, 5),
    Architecture((2, 3, 5, 2, 4), 2, 4),
    Architecture((4, 1, 3), 3, 2),
]


@pytest.mark.parametrize("arch", FIXED, ids=str)
def test_gradient_blocks_eqs_27_28(arch):
    net = draw_network(arch, seed=1)
    fwd, dfdp, _, bwd, etas = _state(net)
    fd = _fd_grad(net)
    fast = np.concatenate([g.ravel() for g in bwd.grads_w] + [bwd.grad_u.ravel()])
    gu, gws = K.gradient_literal(fwd, etas, net.ws, net.u, dfdp)
    literal = np.concatenate([g.ravel() for g in gws] + [gu.ravel()])
    _close(fast, fd)
    _close(literal, fd)


@pytest.mark.parametrize("arch", FIXED, ids=str)
def test_hessian_blocks_eqs_34_36_and_diagonal(arch):
    net = draw_network(arch, seed=2)
    fwd, dfdp, d2fdp2, _, etas = _state(net)
    blocks = K.hessian_blocks(fwd, etas, net.ws, net.u, dfdp, d2fdp2)
    dense = K.hessian_dense(blocks, net.ws, net.u)
    fd = _fd_hessian(net)
    _close(dense, fd, rtol=1e-5)
    np.testing.assert_allclose(dense, dense.T, atol=1e-12)
    du, dws = K.hessian_diagonal(fwd, etas, net.ws, net.u, d2fdp2)
    _close(np.concatenate([d.ravel() for d in dws] + [du.ravel()]), np.diag(dense))
    # per-sample blocks average to the batch-mean blocks
    per = K.hessian_blocks(fwd, etas, net.ws, net.u, dfdp, d2fdp2, reduce="sample")
    _close(K.hessian_dense(per, net.ws, net.u).mean(axis=0), dense)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks(max_depth=4, max_width=6, max_classes=5, max_batch=6))
def test_directional_quantities_eqs_38_40_and_contracted_forms(net):
    fwd, dfdp, d2fdp2, bwd, etas = _state(net)
    rng = np.random.default_rng(0)
    omega = rng.normal(size=net.u.shape)
    phis = [rng.normal(size=w.shape) for w in net.ws]
    g = np.concatenate([p.ravel() for p in phis] + [omega.ravel()])
    grad = np.concatenate([q.ravel() for q in bwd.grads_w] + [bwd.grad_u.ravel()])
    dense = K.hessian_dense(K.hessian_blocks(fwd, etas, net.ws, net.u, dfdp, d2fdp2), net.ws, net.u)
    gtg, ghg = K.directional(fwd, bwd, net.ws, net.u, dfdp, d2fdp2, omega, phis)
    lgtg, lghg = K.directional_literal(fwd, etas, net.ws, net.u, dfdp, d2fdp2, omega, phis)
    _close(gtg, g @ grad, 1e-10)
    _close(ghg, g @ dense @ g, 1e-10)
    _close(lgtg, gtg, 1e-10)
    _close(lghg, ghg, 1e-10)
    _close(K.norm_cubed(omega, phis), np.linalg.norm(g) ** 3, 1e-12)
    # SGD direction through the rank-batch factors (L1-L4)
    sgtg, sghg = K.sgd_curvature(fwd, bwd, net.ws, net.u, dfdp, d2fdp2)
    _close(sgtg, -(grad @ grad), 1e-10)
    _close(sghg, grad @ dense @ grad, 1e-10)
    _, _, norm3 = K.sgd_cr_terms(fwd, bwd, net.ws, net.u, dfdp, d2fdp2)
    _close(norm3, np.linalg.norm(grad) ** 3, 1e-10)


def test_sgd_curvature_stacked_layers_match_dense():
    """Equal hidden widths take the layer-batched path."""
    net = draw_network(Architecture((5, 4, 4, 4, 4), 3, 6), seed=3)
    fwd, dfdp, d2fdp2, bwd, etas = _state(net)
    grad = np.concatenate([q.ravel() for q in bwd.grads_w] + [bwd.grad_u.ravel()])
    dense = K.hessian_dense(K.hessian_blocks(fwd, etas, net.ws, net.u, dfdp, d2fdp2), net.ws, net.u)
    _, sghg = K.sgd_curvature(fwd, bwd, net.ws, net.u, dfdp, d2fdp2)
    _close(sghg, grad @ dense @ grad, 1e-10)


def test_cr_step_length_eq_37_minimises_the_cubic_model():
    rng = np.random.default_rng(4)
    for _ in range(50):
        h, d, c = rng.normal(), -abs(rng.normal()), abs(rng.normal()) + 1e-3
        alpha = K.cr_step_length(h, d, c, 1.0)
        grid = np.linspace(0, 10 * alpha + 10, 200001)
        model = grid * d + grid**2 * h / 2 + c * grid**3 / 6
        best = grid[np.argmin(model)]
        assert abs(alpha - best) <= 1e-3 * max(1.0, best)
        assert np.isclose(alpha, K.cr_step_length_printed(h, d, c, 1.0), rtol=1e-9)


def test_step_length_negative_curvature_no_cancellation():
    """h < 0 with h^2 >> |d| c: the rationalized branch would cancel; C8 switches."""
    h, d, sigma, norm3 = -10.0, -1e-4, 0.1, 1e-9
    alpha = K.cr_step_length(h, d, sigma, norm3)
    assert np.isfinite(alpha)
    assert np.isclose(alpha, K.cr_step_length_printed(h, d, sigma, norm3), rtol=1e-12)
    assert np.isfinite(K.cr_step_length(1e200, -1.0, 1.0, 1.0))  # no overflow in h^2


def test_stable_step_length_avoids_cancellation():
    """Away from plateaus h^2 >> |d| c: the printed form (Eq 37) cancels in float32."""
    h, d, c = np.float32(1e3), np.float32(-1e-3), np.float32(1e-3)
    exact = -2 * float(d) / (float(h) + np.sqrt(float(h) ** 2 - 2 * float(d) * float(c)))
    stable = K.cr_step_length(h, d, c, np.float32(1.0))
    printed = K.cr_step_length_printed(h, d, c, np.float32(1.0))
    assert abs(stable - exact) / exact < 1e-6
    assert abs(printed - exact) / exact > 1e-2


def test_width_one_networks_are_drawn_away_from_the_kinks():
    """Every architecture gives a network, including all-width-1 ones (which a redraw
    loop could not find often enough); every pre-activation is at least the margin away
    from zero."""
    for seed in range(200):
        net = draw_network(Architecture((1, 1, 1, 1, 1), 3, 4), seed=seed)
        v = net.x
        for w in net.ws:
            z = v @ w.T
            assert np.min(np.abs(z)) >= 1e-3
            v = np.maximum(z, 0)
