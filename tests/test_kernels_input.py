"""Bad input gives a clear ValueError before any contraction runs."""

from __future__ import annotations

import numpy as np
import pytest

from tests.strategies import Architecture, draw_network
from verify.kernelset import default_kernels

K = default_kernels()


@pytest.fixture
def net():
    return draw_network(Architecture((4, 3, 5), 3, 2), seed=0)


def test_mismatched_layer_widths(net):
    ws = [net.ws[0], np.ones((5, 4))]
    with pytest.raises(ValueError, match="layer widths do not match"):
        K.forward(ws, net.u, net.x)


def test_wrong_input_width(net):
    with pytest.raises(ValueError, match=r"ws\[0\] \(layer 1\)"):
        K.forward(net.ws, net.u, np.ones((2, 7)))


def test_input_must_be_2d(net):
    with pytest.raises(ValueError, match="x must have shape"):
        K.forward(net.ws, net.u, np.ones(4))


def test_output_weights_shape(net):
    with pytest.raises(ValueError, match="u must have shape"):
        K.forward(net.ws, np.ones((3, 4)), net.x)


@pytest.mark.parametrize("where", ["x", "w", "u"])
def test_nan_is_rejected(net, where):
    ws, u, x = [w.copy() for w in net.ws], net.u.copy(), net.x.copy()
    {"x": x, "w": ws[1], "u": u}[where][0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        K.forward(ws, u, x)


def test_labels_shape(net):
    with pytest.raises(ValueError, match="y must have shape"):
        K.loss_and_gradient(net.ws, net.u, net.x, np.ones((2, 4)))


def test_direction_shapes(net):
    fwd = K.forward(net.ws, net.u, net.x)
    _, dfdp, d2 = K.softmax_cross_entropy(fwd.p, net.y)
    bwd = K.backward(fwd, net.ws, net.u, dfdp)
    with pytest.raises(ValueError, match="phis"):
        K.directional(fwd, bwd, net.ws, net.u, dfdp, d2, net.u, [net.ws[0], np.ones((2, 2))])
    with pytest.raises(ValueError, match="omega"):
        K.directional(fwd, bwd, net.ws, net.u, dfdp, d2, np.ones((1, 1)), net.ws)


def test_empty_network(net):
    with pytest.raises(ValueError, match="at least one hidden layer"):
        K.forward([], net.u, net.x)


def test_bad_reduce_mode(net):
    fwd = K.forward(net.ws, net.u, net.x)
    _, dfdp, _ = K.softmax_cross_entropy(fwd.p, net.y)
    with pytest.raises(ValueError, match="reduce must be one of"):
        K.eq27_grad_u(dfdp=dfdp, v_n=fwd.vs[-1], reduce="median")
