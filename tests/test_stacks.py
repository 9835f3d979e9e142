"""Whole CNN and RNN stacks (conv, recurrent, dense and output layers, with biases):
``g^T H g``, ``g^T grad F``, the gradient and alpha against JAX's ``jvp(grad)`` in float64,
on random architectures drawn valid by construction (kernels sized from the output side,
ReLU networks built off their kinks; :mod:`verify.stacks`)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from numeric.layers import Conv2D, Dense, Flatten, Output, Recurrent
from numeric.layers.registry import layer_from_description
from numeric.network import Network

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)

from verify.stacks import (  # noqa: E402
    ConvSpec,
    StackSpec,
    check_bias_spec,
    check_stack_spec,
    make_stack,
)

ACTIVATIONS = ("relu", "tanh", "sigmoid", "softplus")
SETTINGS = dict(
    max_examples=8,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def conv_specs(draw, last: bool) -> ConvSpec:
    sigma, tau = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return ConvSpec(
        O=draw(st.integers(1, 3)),
        S=draw(st.integers(1, 3)) if last else 1,
        T=draw(st.integers(1, 3)) if last else 1,
        kh=draw(st.integers(1, 3)),
        kw=draw(st.integers(1, 3)),
        sigma=sigma,
        tau=tau,
        extra=(draw(st.integers(0, sigma - 1)), draw(st.integers(0, tau - 1))),
    )


@st.composite
def cnn_stacks(draw) -> StackSpec:
    """One or two conv layers (S = T = 1 with no extra input: a kernel that just fits),
    then 0-2 dense layers."""
    n = draw(st.integers(1, 2))
    convs = tuple(draw(conv_specs(last=i == n - 1)) for i in range(n))
    activation = draw(st.sampled_from(ACTIVATIONS))
    return StackSpec(
        batch=draw(st.integers(1, 3)),
        activation=activation,
        classes=draw(st.integers(2, 4)),
        C=draw(st.integers(1, 2)),
        convs=convs,
        dense=tuple(draw(st.lists(st.integers(1, 5), max_size=2))),
        bias=True if activation == "relu" else draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )


@st.composite
def rnn_stacks(draw) -> StackSpec:
    """A recurrence of 1-5 steps, first (an input at every step, or the paper's initial-state
    form), after a conv layer (its output read as a sequence) or after dense layers (the
    paper's form); then 0-1 dense layers."""
    activation = draw(st.sampled_from(ACTIVATIONS))
    common = dict(
        batch=draw(st.integers(1, 3)),
        activation=activation,
        classes=draw(st.integers(2, 4)),
        dense=tuple(draw(st.lists(st.integers(1, 4), max_size=1))),
        bias=True if activation == "relu" else draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )
    width = draw(st.integers(1, 5))
    where = draw(st.sampled_from(["first", "after-conv", "after-dense"]))
    if where == "after-conv":
        conv = draw(conv_specs(last=True))
        return StackSpec(C=draw(st.integers(1, 2)), convs=(conv,), rnn=(0, width, 0, True),
                         **common)  # fmt: skip
    steps = draw(st.integers(1, 5))
    if where == "after-dense":
        pre = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=2)))
        return StackSpec(C=draw(st.integers(1, 4)), rnn=(0, 0, steps, False), pre=pre, **common)
    sequence = draw(st.booleans())
    d_in = draw(st.integers(1, 4)) if sequence else width
    return StackSpec(rnn=(d_in, width, steps, sequence), **common)


def _assert_exact(ms):
    bad = [(m.quantity, m.rel_error, m.error) for m in ms if not m.passed]
    assert not bad, bad
    assert ms


@settings(**SETTINGS)
@given(spec=cnn_stacks())
def test_random_cnn_stacks_match_jax(spec):
    _assert_exact(check_stack_spec(spec, jax_backend=False))


@settings(**SETTINGS)
@given(spec=rnn_stacks())
def test_random_rnn_stacks_match_jax(spec):
    _assert_exact(check_stack_spec(spec, jax_backend=False))


@pytest.mark.parametrize(
    "spec",
    [
        StackSpec(2, "softplus", 3, C=2, convs=(ConvSpec(2, 1, 1, 2, 2, 2, 1),
                                                ConvSpec(2, 2, 2, 2, 2, 1, 1)), dense=(3,)),
        StackSpec(2, "relu", 3, rnn=(3, 4, 3, True), dense=(2,), seed=3),
    ],
    ids=["cnn", "rnn"],
)  # fmt: skip
def test_jax_backend_runs_the_same_kernels_exactly(spec):
    ms = check_stack_spec(spec, jax_backend=True)
    _assert_exact(ms)
    assert any("jax kernels" in m.quantity for m in ms)


def test_bias_hessian_blocks_match_jax():
    _assert_exact(check_bias_spec(StackSpec(3, "relu", 3, C=4, dense=(5, 3), seed=5)))


def test_relu_cases_are_off_the_kinks():
    """No ReLU pre-activation within 1e-9 (relative to the layer's largest) of the kink:
    seven orders of magnitude above float64 rounding."""
    from numeric.network import forward, split_params

    for spec in (
        StackSpec(4, "relu", 3, C=2, convs=(ConvSpec(3, 2, 3, 2, 2, 2, 1),), dense=(4, 3)),
        StackSpec(4, "relu", 3, rnn=(3, 5, 4, True), dense=(4,)),
        StackSpec(4, "relu", 3, rnn=(4, 4, 3, False), bias=False),
    ):
        layers, params, x, _, _ = make_stack(spec)
        tape = forward(layers, params, x)
        for layer, ps, xin in zip(layers, split_params(layers, params), tape.inputs, strict=True):
            if isinstance(layer, Dense | Conv2D | Recurrent):
                z = np.abs(_preactivations(layer, ps, xin))
                assert z.min() > 1e-9 * z.max(), (spec.name, type(layer).__name__)


def _preactivations(layer, ps, x):
    if isinstance(layer, Dense):
        return x @ ps[0].T + (ps[1] if layer.bias else 0.0)
    if isinstance(layer, Conv2D):
        z = np.einsum("bcstlk,oclk->bost", layer.patches(x), ps[0])
        return z + (ps[1][:, None, None] if layer.bias else 0.0)
    w, *rest = ps
    u = rest[0] if layer.sequence else None
    b = rest[-1] if layer.bias else 0.0
    v = np.zeros((x.shape[0], layer.width)) if layer.sequence else x
    zs = []
    for t in range(layer.steps):
        z = v @ w.T + (x[:, t] @ u.T if layer.sequence else 0.0) + b
        zs.append(z)
        v = np.maximum(z, 0)
    return np.stack(zs)


def test_layers_round_trip_through_their_descriptions(tmp_path):
    conv = Conv2D((1, 9, 9), 2, (3, 3), (2, 2), "tanh", bias=True)
    layers = [
        conv,
        Conv2D(conv.out_shape, 3, (2, 2), (1, 1), "tanh", bias=True),
        Flatten((3, 3, 3)),
        Dense(27, 4, "tanh", bias=True),
        Output(4, 3, bias=True),
    ]
    for layer in layers:
        assert layer_from_description(layer.describe()) == layer
    rec = Recurrent(5, 6, 7, "sigmoid", bias=True)
    assert layer_from_description(rec.describe()) == rec
    paper = Recurrent(4, 4, 2, sequence=False)
    assert layer_from_description(paper.describe()) == paper
    net = Network.initialise(layers, init="plateau", seed=3)
    net.save(tmp_path / "net.npz")
    back = Network.load(tmp_path / "net.npz")
    assert back.layers == net.layers
    for a, b in zip(back.params, net.params, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not net.is_dense
    assert not Network.create(4, [3], 2, bias=True).is_dense
    assert Network.create(4, [3], 2).is_dense


def test_biases_start_at_zero_and_leave_the_weights_alone():
    plain = Network.create(6, [5, 4], 3, seed=1)
    biased = Network.create(6, [5, 4], 3, seed=1, bias=True)
    np.testing.assert_array_equal(biased.params[0], plain.params[0])
    np.testing.assert_array_equal(biased.params[2], plain.params[1])
    assert not np.any(biased.params[1]) and not np.any(biased.params[-1])


def test_conv_fold_is_the_transpose_of_the_patches():
    layer = Conv2D((2, 7, 6), 3, (3, 2), (2, 3))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 2, 7, 6))
    zbar = rng.normal(size=layer.patches(x).shape)
    lhs = np.sum(layer.patches(x) * zbar)
    rhs = np.sum(x * layer.fold(zbar))
    assert abs(lhs - rhs) < 1e-12 * max(1.0, abs(lhs))
    rows, cols = layer._grid
    ref = np.zeros_like(x)
    np.add.at(ref, (slice(None), slice(None), rows, cols), zbar)
    np.testing.assert_allclose(layer.fold(zbar), ref, rtol=0, atol=1e-14)


def test_layer_argument_errors():
    with pytest.raises(ValueError, match="does not fit"):
        Conv2D((1, 3, 3), 2, (4, 2))
    with pytest.raises(ValueError, match="d_in must equal width"):
        Recurrent(3, 4, 2, sequence=False)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        Recurrent(3, 4, 0)
    with pytest.raises(ValueError, match="unknown activation"):
        Recurrent(3, 4, 2, activation="gelu")
