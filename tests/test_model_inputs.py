"""Inputs the network API must refuse or compute exactly (issue: reliability and the CLI).

These are fixed by the rework of the network and kernel modules; until then they are
expected failures (strict: each must fail today, and the marker must go when it passes).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from numeric.kernels import relu_mlp as K
from numeric.model import Network
from numeric.training import TrainConfig, build_method

pytestmark = pytest.mark.xfail(strict=True, reason="fixed by the architecture change")


def _net():
    return Network.create(4, [3], 2, seed=0)


def test_step_refuses_labels_that_do_not_match_the_batch():
    net = _net()
    method = build_method(TrainConfig(hidden=(3,)))
    x = np.ones((4, 4))
    with pytest.raises(ValueError, match="label"):
        method.step(net, method.init(net), x, np.eye(2)[[1]], check=True)


def test_loss_refuses_labels_that_do_not_match_the_batch():
    with pytest.raises(ValueError, match="label"):
        _net().loss(np.ones((4, 4)), np.array([1]))


def test_create_accepts_only_float_dtypes():
    with pytest.raises((TypeError, ValueError), match="float"):
        Network.create(4, [3], 2, dtype=np.int64)


def test_one_dimensional_weights_are_a_clear_error():
    with pytest.raises(ValueError, match="2-D|shape"):
        Network([np.ones(4)], np.ones((2, 4)))


@pytest.mark.parametrize("gap", [18.0, 40.0])
def test_saturated_softmax_derivatives_keep_their_precision(gap):
    """Top-2 logit gap ``gap``: ``1 - yhat`` must come from the other probabilities."""
    c = 10
    p = np.array([[gap] + [0.0] * (c - 1)])
    y = np.eye(c)[[0]]
    _, dfdp, d2fdp2 = K.softmax_cross_entropy(p, y)
    e = math.exp(-gap)
    rest = (c - 1) * e / (1 + (c - 1) * e)  # 1 - yhat_0, exactly representable terms
    top = 1 / (1 + (c - 1) * e)
    assert dfdp[0, 0] == pytest.approx(-rest, rel=1e-12, abs=0)
    assert d2fdp2[0, 0, 0] == pytest.approx(top * rest, rel=1e-12, abs=0)
