"""Tests for numeric.network: construction, initialisation, evaluation, storage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from numeric.network import INIT_BOUNDS, Network, as_targets, init_bound


def test_create_shapes_follow_conventions():
    net = Network.create(7, [5, 4, 3], 2, seed=0)
    assert [w.shape for w in net.ws] == [(5, 7), (4, 5), (3, 4)]
    assert net.u.shape == (2, 3)
    assert net.widths == (7, 5, 4, 3)
    assert net.hidden == (5, 4, 3)
    assert net.classes == 2
    assert net.num_params == 35 + 20 + 12 + 6
    assert [p.shape for p in net.params] == [(5, 7), (4, 5), (3, 4), (2, 3)]
    assert net.params[-1] is net.u


@pytest.mark.parametrize("init", ["plateau", "normal", 0.05])
def test_initialisation_is_uniform_in_the_bound(init):
    b = init_bound(init)
    net = Network.create(300, [200, 200], 10, init=init, seed=3)
    allw = np.concatenate([p.ravel() for p in net.params])
    assert np.all(np.abs(allw) <= b)
    assert allw.max() > 0.99 * b and allw.min() < -0.99 * b
    assert abs(allw.mean()) < 0.01 * b
    # variance of U(-b, b) is b^2 / 3
    assert allw.var() == pytest.approx(b * b / 3, rel=0.02)


def test_paper_bounds():
    assert INIT_BOUNDS == {"plateau": 0.1, "normal": 0.2}
    assert init_bound("Plateau") == 0.1
    assert init_bound("0.3") == 0.3
    for bad in ("flat", 0, -0.1, float("nan"), "inf"):
        with pytest.raises(ValueError):
            init_bound(bad)


def test_seeded_and_reproducible():
    a = Network.create(6, [4, 4], 3, seed=11)
    b = Network.create(6, [4, 4], 3, seed=11)
    c = Network.create(6, [4, 4], 3, seed=12)
    for pa, pb in zip(a.params, b.params, strict=True):
        assert np.array_equal(pa, pb)
    assert not np.array_equal(a.u, c.u)


def test_dtype_float32():
    net = Network.create(4, [3], 2, dtype=np.float32)
    assert all(p.dtype == np.float32 for p in net.params)
    assert net.dtype == np.float32


def test_invalid_construction():
    with pytest.raises(ValueError):
        Network.create(4, [], 2)
    with pytest.raises(ValueError):
        Network.create(4, [0], 2)
    with pytest.raises(ValueError):
        Network.mlp([np.zeros((3, 4))], np.zeros((2, 5)))  # u does not take 3 units


def test_loss_at_zero_weights_is_log_classes():
    net = Network.create(5, [4, 4], 7, seed=0)
    net = Network.mlp([np.zeros_like(w) for w in net.ws], np.zeros_like(net.u))
    x = np.random.default_rng(0).normal(size=(6, 5))
    assert net.loss(x, np.arange(6) % 7) == pytest.approx(math.log(7))


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    net = Network.create(4, [5, 3], 3, init=1.0, seed=2)
    x = rng.normal(size=(8, 4))
    labels = rng.integers(0, 3, size=8)
    loss, grads = net.loss_and_gradient(x, labels)
    assert loss == pytest.approx(net.loss(x, labels))
    eps = 1e-6
    for p, g in zip(net.params, grads, strict=True):
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + eps
            up = net.loss(x, labels)
            p[idx] = old - eps
            down = net.loss(x, labels)
            p[idx] = old
            assert g[idx] == pytest.approx((up - down) / (2 * eps), abs=1e-7)


def test_labels_as_indices_or_rows():
    y = as_targets(np.array([2, 0]), 3)
    assert np.array_equal(y, [[0, 0, 1], [1, 0, 0]])
    assert np.array_equal(as_targets(y, 3), y)
    with pytest.raises(ValueError):
        as_targets(np.array([3]), 3)
    with pytest.raises(ValueError):
        as_targets(np.ones((2, 4)), 3)
    net = Network.create(3, [4], 3, seed=0)
    x = np.random.default_rng(0).normal(size=(5, 3))
    labels = np.array([0, 1, 2, 1, 0])
    assert net.loss(x, labels) == net.loss(x, as_targets(labels, 3))


def test_predict_and_accuracy():
    net = Network.create(3, [4], 3, seed=0)
    x = np.random.default_rng(0).normal(size=(5, 3))
    pred = net.predict(x)
    assert pred.shape == (5,) and pred.dtype == np.int64
    assert net.accuracy(x, pred) == 1.0
    assert np.array_equal(np.argmax(net.logits(x), axis=1), pred)


def test_save_load_and_arrays_round_trip(tmp_path):
    net = Network.create(6, [4, 5], 3, seed=5)
    path = tmp_path / "w.npz"
    net.save(path)
    back = Network.load(path)
    for a, b in zip(net.params, back.params, strict=True):
        assert np.array_equal(a, b) and a.dtype == b.dtype
    arrays = net.to_arrays("net/")
    assert sorted(arrays) == ["net/activation", "net/u", "net/w.0", "net/w.1"]
    assert str(arrays["net/activation"]) == "relu"
    again = Network.from_arrays(arrays, "net/")
    assert np.array_equal(again.u, net.u)
    with pytest.raises(ValueError):
        Network.from_arrays(arrays, "other/")


def test_copy_and_from_params_are_independent():
    net = Network.create(3, [2], 2, seed=0)
    cp = net.copy()
    cp.u[0, 0] += 1
    assert cp.u[0, 0] != net.u[0, 0]
    same = Network.from_params(net.params)
    assert same.u is net.u
    assert "hidden=[2] * 1" in repr(net)


def test_activation_is_kept_stored_and_validated(tmp_path):
    net = Network.create(4, [3, 3], 2, seed=1, activation="tanh")
    relu = Network.create(4, [3, 3], 2, seed=1)
    assert net.activation == "tanh" and relu.activation == "relu"
    for a, b in zip(net.params, relu.params, strict=True):
        assert np.array_equal(a, b)  # the activation does not change the draw
    assert net.copy().activation == "tanh"
    assert Network.from_params(net.params, activation="tanh").activation == "tanh"
    assert Network.from_params(net.params).activation == "relu"
    assert "activation='tanh'" in repr(net)
    net.save(tmp_path / "t.npz")
    back = Network.load(tmp_path / "t.npz")
    assert back.activation == "tanh"
    x = np.random.default_rng(0).normal(size=(3, 4))
    assert np.array_equal(back.logits(x), net.logits(x))
    assert not np.allclose(net.logits(x), relu.logits(x))
    with pytest.raises(ValueError, match="unknown activation"):
        Network.create(4, [3], 2, activation="cubic")
    with pytest.raises(ValueError, match="unknown activation"):
        Network.mlp(net.ws, net.u, "Tanh")


def test_arrays_without_an_activation_load_as_relu(tmp_path):
    net = Network.create(5, [4], 3, seed=2)
    arrays = net.to_arrays()
    del arrays["activation"]  # as written before networks had an activation
    np.savez(tmp_path / "old.npz", **arrays)
    back = Network.load(tmp_path / "old.npz")
    assert back.activation == "relu"
    assert np.array_equal(back.u, net.u)
