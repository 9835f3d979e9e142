"""The route choice for ``d = -grad F``: both routes agree to rounding, and the choice
flips where the multiply-add model says (numeric/cost_model.py)."""

from __future__ import annotations

import numpy as np
import pytest

from numeric import cost_model
from numeric import curvature as cv
from numeric.architectures import build
from numeric.layers import Dense, Output
from numeric.network import Network
from numeric.rules import KernelCurvature
from numeric.stepping import evaluate

CLASSES = 3


def _mlp(activation: str) -> Network:
    return Network.create(12, [32, 32, 32], CLASSES, init="normal", seed=1,
                          activation=activation)  # fmt: skip


def _cnn(activation: str) -> Network:
    options = {"channels": [2, 3], "kernel": 3, "stride": 2, "dense": [64]}
    return build("cnn", (12, 12), CLASSES, activation=activation, options=options,
                 init="plateau", seed=2)  # fmt: skip


def _rnn(activation: str) -> Network:
    return build("rnn", (6, 5), CLASSES, activation=activation,
                 options={"width": 5, "dense": [64]}, init="plateau", seed=3)  # fmt: skip


def _batch(net: Network, batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (batch, *net.layers[0].in_shape))
    y = np.eye(CLASSES)[rng.integers(0, CLASSES, batch)]
    return evaluate(net.layers, net.params, x, y, second=True)


def _sgd(net, ev, routes):
    return cv.sgd_curvature(net.layers, net.params, ev.tape, ev.adj, ev.dfdp, ev.d2fdp2,
                            routes=routes)  # fmt: skip


def _directional(net, ev):
    d = [-g for g in ev.grads]
    return cv.directional(net.layers, net.params, ev.tape, ev.adj, ev.dfdp, ev.d2fdp2, d)


def _close(a, b, rtol=1e-10):
    assert abs(float(a) - float(b)) <= rtol * max(abs(float(a)), abs(float(b)), 1e-300), (a, b)


# (model, batch) -> the routes the model must choose for the dense layers (hidden, output)
CASES = [
    (_mlp, 4, "gggd"),  # 4 * (32 + 32) < 32 * 32: Gram; the output layer 4 * 35 > 96: dense
    (_mlp, 2, "gggg"),  # 2 * 35 < 96: the output layer too
    (_mlp, 16, "dddd"),  # 16 * 64 = 32 * 32: dense from here (ties go dense)
    (_cnn, 4, "ddgd"),  # conv layers dense; the dense head 12 -> 64: 4 * 76 < 768
    (_cnn, 16, "dddd"),
    (_rnn, 4, "dgd"),  # recurrent dense; 5 -> 64: 4 * 69 < 320
    (_rnn, 8, "ddd"),
]


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize(("make", "batch", "expected"), CASES)
def test_routes_agree_where_each_is_chosen(make, batch, expected, activation):
    net = make(activation)
    ev = _batch(net, batch)
    chosen = cost_model.choose(net.layers, batch)
    assert "".join(r[0] for r, lay in zip(chosen, net.layers, strict=True)
                   if lay.n_params) == expected  # fmt: skip
    ref = _directional(net, ev)
    mixed = tuple("gram" if i % 2 else "dense" for i in range(len(net.layers)))
    for routes in ("gram", "dense", "auto", mixed):
        gtg, ghg = _sgd(net, ev, routes)
        _close(gtg, ref[0])
        _close(ghg, ref[1])
    # the step quantities training logs come from the chosen routes
    gtg, ghg, sq = KernelCurvature(net.layers, net.params, ev, sgd=True).along(None)
    _close(ghg, ref[1])
    _close(sq, cv.sq_norm(ev.grads))


@pytest.mark.parametrize("make", [_mlp, _cnn, _rnn])
def test_per_layer_blocks_agree_on_both_routes(make):
    net = make("tanh")
    ev = _batch(net, 4)
    args = (net.layers, net.params, ev.tape, ev.adj, ev.dfdp, ev.d2fdp2)
    gram = cv.block_curvature(*args, routes="gram")
    dense = cv.block_curvature(*args, routes="dense")
    formed = cv.block_curvature(*args, direction=[-g for g in ev.grads])
    for a, b, c in zip(gram, dense, formed, strict=True):
        np.testing.assert_allclose(a, c, rtol=1e-10)
        np.testing.assert_allclose(b, c, rtol=1e-10)


@pytest.mark.parametrize(("d_in", "d_out"), [(128, 128), (784, 128), (128, 10), (64, 256)])
def test_the_choice_flips_where_the_model_says(d_in, d_out):
    """Gram iff B (d_in + d_out) < d_in d_out, for a hidden and for a first layer."""
    flip = -(-d_in * d_out // (d_in + d_out))  # the smallest B with B (d_in + d_out) >= d_in d_out
    for first in (True, False):
        stack = [Dense(d_in, d_in), Dense(d_in, d_out)] if not first else [Dense(d_in, d_out)]
        layers = [*stack, Output(d_out, 10)]
        at = len(stack) - 1
        below = cost_model.choose(layers, flip - 1)[at] if flip > 1 else "gram"
        assert below == "gram"
        assert cost_model.choose(layers, flip)[at] == "dense"
        cost = cost_model.layer_costs(layers, flip - 1)[at]
        assert cost.gram is not None and cost.gram < cost.dense


def test_square_layers_flip_at_half_the_width():
    for width in (128, 256, 512, 1024):
        layers = [Dense(784, width), Dense(width, width), Output(width, 10)]
        assert cost_model.choose(layers, width // 2 - 1)[1] == "gram"
        assert cost_model.choose(layers, width // 2)[1] == "dense"


def test_counts_follow_the_shapes():
    layers = [Dense(784, 128), Dense(128, 128), Output(128, 10)]
    first, hidden, out = cost_model.layer_costs(layers, 32)
    assert first.forward == 32 * 784 * 128 and first.shared == 0
    assert first.gram == 32 * 32 * (784 + 128) and first.dense == 32 * 784 * 128
    assert hidden.gram == 2 * 32 * 32 * 256 and hidden.dense == 2 * 32 * 128 * 128
    assert hidden.shared == 32 * 128 * 128 and hidden.backward == 2 * 32 * 128 * 128
    assert out.gram == min(2 * 32 * 32 * 138, 4 * 32 * 1280)
    total = cost_model.cr_cost(layers, 32, "auto")
    assert total == first.gram + hidden.shared + hidden.gram + out.shared + out.dense
    assert cost_model.cr_cost(layers, 32, "gram") > total < cost_model.cr_cost(layers, 32, "dense")
    # the planner's order at large batch: a Gram kernel costs at most the formed gradient's
    big = cost_model.layer_costs(layers, 4096)[1]
    assert big.gram == 2 * big.dense


def test_conv_and_recurrent_layers_have_one_route():
    net = _cnn("relu")
    costs = cost_model.layer_costs(net.layers, 4)
    assert costs[0].gram is None and costs[0].dense > 0
    assert cost_model.resolve(net.layers, 4, "gram")[:2] == ("dense", "dense")
    rnn = _rnn("relu")
    assert cost_model.layer_costs(rnn.layers, 4)[0].gram is None


def test_bad_routes_are_refused():
    net = _mlp("relu")
    with pytest.raises(ValueError, match="routes must be one of gram, dense, auto"):
        cost_model.resolve(net.layers, 4, "fast")
    with pytest.raises(ValueError, match="routes has 2 entries, the network 4 layers"):
        cost_model.resolve(net.layers, 4, ["gram", "dense"])
    with pytest.raises(ValueError, match="'gram' or 'dense', got low"):
        cost_model.resolve(net.layers, 4, ["low"] * 4)


def test_routes_agree_on_jax():
    pytest.importorskip("jax")
    from numeric import jax_backend as jb

    jb.enable_x64()
    net = _mlp("tanh")
    ev_np = _batch(net, 4)
    jnet = jb.to_jax(net)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 1.0, (4, *net.layers[0].in_shape))
    y = np.eye(CLASSES)[rng.integers(0, CLASSES, 4)]
    ev = evaluate(jnet.layers, jnet.params, jb.device_array(x), jb.device_array(y), True)
    ref = _sgd(net, ev_np, "gram")
    for routes in ("gram", "dense", "auto"):
        gtg, ghg = _sgd(jnet, ev, routes)
        _close(gtg, ref[0])
        _close(ghg, ref[1])
