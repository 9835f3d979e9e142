"""CR training with the general activations of Appendix B.3 through the numeric API:
gradients and CR's curvature against finite differences, the per-sample averaging
options against literal per-sample Hessians, and the loss going down."""

from __future__ import annotations

import math

import numpy as np
import pytest

from numeric.cr import CR, step_length
from numeric.layers import Dense
from numeric.network import Network, as_targets
from numeric.optimizers import SGD, Adagrad, Adam
from verify.kernelset import default_kernels

G = default_kernels()
per_sample_sgd_curvature = G.per_sample_sgd_curvature

SMOOTH = ["tanh", "sigmoid", "softplus"]


def problem(activation, seed=0, batch=6, widths=(4, 5, 3, 4), classes=3, bound=0.8):
    rng = np.random.default_rng(seed)
    net = Network.create(
        widths[0], widths[1:], classes, init=bound, seed=seed, activation=activation
    )
    x = rng.normal(size=(batch, widths[0]))
    labels = rng.integers(0, classes, size=batch)
    return net, x, labels


def flat(arrays):
    return np.concatenate([np.ravel(a) for a in arrays])


def moved(net, direction, step):
    params = [p + step * d for p, d in zip(net.params, direction, strict=True)]
    return Network.from_params(params, activation=net.activation)


def fd_curvature(net, x, labels, direction, eps=1e-5):
    """``d^T H d`` as a central difference of the gradient along ``d``."""
    up = flat(moved(net, direction, eps).loss_and_gradient(x, labels)[1])
    down = flat(moved(net, direction, -eps).loss_and_gradient(x, labels)[1])
    return float((up - down) / (2 * eps) @ flat(direction))


def test_layers_follow_the_activation():
    """One dense layer type for every activation; A'' is kept only where it is not 0."""
    with pytest.raises(ValueError, match="tanh"):
        Dense(3, 4, "cubic")
    net, x, _ = problem("tanh")
    assert all(layer.activation == "tanh" for layer in net.layers[:-1])
    fwd = net.forward(net.inputs(x))
    assert fwd.a2s[0] is not None
    relu = problem("relu")[0]
    fwd = relu.forward(relu.inputs(x))
    assert fwd.a2s[0] is None and all(c.vanishes for c in fwd.caches[:-1])
    assert np.array_equal(fwd.p, G.forward(relu.ws, relu.u, x, activation="relu").p)


@pytest.mark.parametrize("activation", SMOOTH)
def test_gradient_matches_finite_differences(activation):
    net, x, labels = problem(activation, seed=1)
    loss, grads = net.loss_and_gradient(x, labels)
    assert loss == pytest.approx(net.loss(x, labels), rel=1e-14)
    eps = 1e-6
    for p, g in zip(net.params, grads, strict=True):
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + eps
            up = net.loss(x, labels)
            p[idx] = old - eps
            down = net.loss(x, labels)
            p[idx] = old
            assert g[idx] == pytest.approx((up - down) / (2 * eps), abs=1e-8)
    # the activation is what the network evaluates: a ReLU network differs
    relu = Network.mlp([w.copy() for w in net.ws], net.u.copy())
    assert abs(relu.loss(x, labels) - loss) > 1e-3


@pytest.mark.parametrize("opt", [SGD(), Adagrad(), Adam()], ids=lambda o: o.name)
@pytest.mark.parametrize("activation", SMOOTH)
def test_cr_step_uses_the_b3_curvature(activation, opt):
    net, x, labels = problem(activation, seed=2)
    method = CR(opt, sigma=10.0, lr=0.05)
    state = method.init(net)
    for _ in range(2):  # non-trivial accumulators for the adaptive optimizers
        _, state.opt = opt.direction(net.loss_and_gradient(x, labels)[1], state.opt, 0.01)
    _, grads = net.loss_and_gradient(x, labels)
    unit, _ = opt.direction(grads, state.opt, 1.0)
    new, _, info = method.step(net, state, x, labels)

    fd = fd_curvature(net, x, labels, unit)
    sq = float(flat(unit) @ flat(unit))
    assert info.dhd == pytest.approx(fd, rel=1e-8, abs=1e-10 * sq)
    assert info.dgrad == pytest.approx(float(flat(unit) @ flat(grads)), rel=1e-12)
    expected, flag = step_length(info.dgrad, fd, 10.0, sq**1.5, 0.05)
    assert info.flag == flag == ""
    assert info.alpha == pytest.approx(expected, rel=1e-8)
    step = flat(new.params) - flat(net.params)
    assert np.allclose(step, info.alpha * flat(unit), rtol=1e-12, atol=1e-15)
    assert new.activation == activation

    # without the B.3 term (A'' = 0, the B.1 formula with A' in place of the mask)
    # the curvature is wrong for this activation
    y = as_targets(labels, net.classes)
    fwd = G.forward(net.ws, net.u, x, activation=activation)
    _, dfdp, d2fdp2 = G.softmax_cross_entropy(fwd.p, y)
    bwd = G.backward(fwd, net.ws, net.u, dfdp)
    b1 = fwd._replace(caches=[*(c._replace(vanishes=True) for c in fwd.caches[:-1]), None])
    _, ghg_b1 = G.directional(b1, bwd, net.ws, net.u, dfdp, d2fdp2, unit[-1], unit[:-1])
    assert abs(ghg_b1 - fd) > 1e-4 * abs(fd)


def literal_per_sample(net, x, labels):
    """Per-sample gradients and Hessians from the literal Eqs 27-28, 78-80."""
    y = as_targets(labels, net.classes)
    fwd = G.forward(net.ws, net.u, x, activation=net.activation)
    _, dfdp, d2 = G.softmax_cross_entropy(fwd.p, y)
    ch = G.chains(fwd, net.ws)
    gu, gw = G.gradient_literal(fwd, ch.etas, net.ws, net.u, dfdp, reduce="sample")
    blocks = G.hessian_blocks_general(fwd, ch, net.ws, net.u, dfdp, d2, reduce="sample")
    g = np.concatenate([a.reshape(a.shape[0], -1) for a in [*gw, gu]], axis=1)
    return g, G.hessian_dense(blocks, net.ws, net.u)


@pytest.mark.parametrize("activation", SMOOTH)
def test_per_sample_options_use_per_sample_b3_curvature(activation):
    net, x, labels = problem(activation, seed=3, batch=4)
    y = as_targets(labels, net.classes)
    fwd = G.forward(net.ws, net.u, x, activation=activation)
    _, dfdp, d2 = G.softmax_cross_entropy(fwd.p, y)
    bwd = G.backward(fwd, net.ws, net.u, dfdp)
    gtg, ghg, sq = per_sample_sgd_curvature(fwd, bwd, net.ws, net.u, dfdp, d2)
    g_b, H_b = literal_per_sample(net, x, labels)
    alphas = []
    for b in range(x.shape[0]):
        gg = g_b[b] @ g_b[b]
        assert gtg[b] == pytest.approx(-gg, rel=1e-10)
        assert sq[b] == pytest.approx(gg, rel=1e-12)
        assert ghg[b] == pytest.approx(g_b[b] @ H_b[b] @ g_b[b], rel=1e-9, abs=1e-13)
        alphas.append(step_length(-gg, g_b[b] @ H_b[b] @ g_b[b], 30.0, gg**1.5, 0.1)[0])
    alphas = np.array(alphas)

    mean_alpha = CR(SGD(), sigma=30.0, averaging="mean-alpha", lr=0.1)
    new, _, info = mean_alpha.step(net, mean_alpha.init(net), x, labels)
    assert info.alpha == pytest.approx(alphas.mean(), rel=1e-9)
    expected = -alphas.mean() * g_b.mean(axis=0)
    assert np.allclose(flat(new.params) - flat(net.params), expected, rtol=1e-9, atol=1e-14)

    alpha_g = CR(SGD(), sigma=30.0, averaging="alpha-g", lr=0.1)
    new, _, info = alpha_g.step(net, alpha_g.init(net), x, labels)
    expected = -(alphas[:, None] * g_b).mean(axis=0)
    assert np.allclose(flat(new.params) - flat(net.params), expected, rtol=1e-9, atol=1e-14)
    assert new.activation == activation


@pytest.mark.parametrize("averaging", ["model", "mean-alpha", "alpha-g"])
@pytest.mark.parametrize("activation", SMOOTH)
def test_cr_sgd_decreases_the_loss(activation, averaging):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6))
    labels = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0).astype(int)
    net = Network.create(6, [8, 8], 3, init=0.5, seed=0, activation=activation)
    method = CR(SGD(), sigma=10.0, averaging=averaging)
    state = method.init(net)
    start = net.loss(x, labels)
    for step in range(40):
        rows = slice((step * 16) % 64, (step * 16) % 64 + 16)
        net, state, info = method.step(net, state, x[rows], labels[rows], check=step == 0)
        assert info.flag == "" and math.isfinite(info.alpha) and info.alpha > 0
        assert math.isfinite(info.dhd)
    assert net.activation == activation
    assert net.loss(x, labels) < 0.95 * start


def test_relu_steps_agree_with_the_curvature_drivers():
    """A CR step's inputs are the low-rank SGD quantities of the network's sweeps."""
    net, x, labels = problem("relu", seed=4)
    info = CR(SGD(), sigma=10.0).step(net, CR(SGD(), 10.0).init(net), x, labels)[2]
    y = as_targets(labels, net.classes)
    fwd = G.forward(net.ws, net.u, x, activation="relu")
    _, dfdp, d2 = G.softmax_cross_entropy(fwd.p, y)
    bwd = G.backward(fwd, net.ws, net.u, dfdp)
    gtg, ghg = G.sgd_curvature(fwd, bwd, net.ws, net.u, dfdp, d2)
    assert info.dgrad == pytest.approx(gtg, rel=1e-12)
    assert info.dhd == pytest.approx(ghg, rel=1e-12)
    direction = [*(-g for g in bwd.grads_w), -bwd.grad_u]
    assert info.dhd == pytest.approx(fd_curvature(net, x, labels, direction), rel=1e-6)
