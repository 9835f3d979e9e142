"""Inputs the network API must refuse or compute exactly (issue: reliability and the CLI).

Each failed on the previous network API (labels broadcast over the batch, integer weights,
a traceback for 1-D weights, and no digit of ``1 - yhat`` left at a saturated softmax).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from numeric.losses import softmax_cross_entropy
from numeric.network import Network
from numeric.training.config import TrainConfig
from numeric.training.methods import build_method


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
        Network.mlp([np.ones(4)], np.ones((2, 4)))


@pytest.mark.parametrize("gap", [18.0, 40.0])
def test_saturated_softmax_derivatives_keep_their_precision(gap):
    """Top-2 logit gap ``gap``: ``1 - yhat`` must come from the other probabilities."""
    c = 10
    p = np.array([[gap] + [0.0] * (c - 1)])
    y = np.eye(c)[[0]]
    _, dfdp, d2fdp2 = softmax_cross_entropy(p, y)
    e = math.exp(-gap)
    rest = (c - 1) * e / (1 + (c - 1) * e)  # 1 - yhat_0, exactly representable terms
    top = 1 / (1 + (c - 1) * e)
    assert dfdp[0, 0] == pytest.approx(-rest, rel=1e-12, abs=0)
    assert d2fdp2[0, 0, 0] == pytest.approx(top * rest, rel=1e-12, abs=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_saturated_softmax_in_both_dtypes_and_the_factor(dtype):
    """float32 too, against an exact reference; and R^T R still equals d2f/dp2."""
    from fractions import Fraction

    from numeric.losses import hessian_factor

    gaps = [0.0, 3.0, 18.0, 25.0]
    p = np.array([[g, 0.5, -1.0, 0.0] for g in gaps], dtype=dtype)
    y = np.eye(4, dtype=dtype)[[0, 0, 1, 0]]
    f, dfdp, d2 = softmax_cross_entropy(p, y)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    for b, row in enumerate(p.astype(np.float64)):
        e = [Fraction(math.exp(v - row.max())) for v in row]
        total = sum(e)
        yhat = [v / total for v in e]
        lab = int(np.argmax(y[b]))
        want = [float(yhat[j] - (1 if j == lab else 0)) for j in range(4)]
        np.testing.assert_allclose(dfdp[b], want, rtol=tol, atol=0)
        diag = [float(v * (1 - v)) for v in yhat]
        np.testing.assert_allclose(np.diag(d2[b]), diag, rtol=tol, atol=0)
    r = hessian_factor(p, d2)
    np.testing.assert_allclose(
        np.einsum("bel,bem->blm", r, r),
        d2,
        rtol=1e-5 if dtype == np.float32 else 1e-12,
        atol=1e-6 * float(np.abs(d2).max()) if dtype == np.float32 else 1e-14,
    )
