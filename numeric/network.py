"""A network as a stack of layers with a softmax cross-entropy output (Eqs 10-16).

:class:`Network` is plain data: a tuple of layer objects (:mod:`numeric.layers`; the
last one produces the logits) and a flat list of parameter arrays, layer by layer.
Optimizers and CR see only that list.  The drivers here run the three sweeps of the
contracted forms over the stack, calling each layer's methods in turn:

* :func:`forward` (Eqs 10-13): per-layer inputs and caches, and the logits ``p``;
* :func:`backward` (C1-C3, C10): per-layer adjoints and the batch-mean gradient;
* :func:`tangent` (C4-C5): derivatives of every layer's output along a direction.

They run on NumPy or JAX arrays alike (the kernels dispatch on the array type), and
under ``jax.jit`` (the layer stack is static data).  Shapes: ``x`` (batch, *in_shape),
``p`` (batch, classes); per-layer arrays (batch, *layer shape).

The paper's network (Eqs 10-16) is a stack of :class:`~numeric.layers.Dense` hidden
layers and an :class:`~numeric.layers.Output` layer; ``Network.create`` builds it with the
uniform initialisation of Appendix A (``b = 0.1`` for the plateau start, ``b = 0.2`` for
the normal start, :data:`INIT_BOUNDS`).  The other architectures of ``lowrank train
--model`` are built in :mod:`numeric.architectures`; the same sweeps on weight lists
``(ws, u)`` are in :mod:`numeric.weight_lists`.

Example
-------
>>> net = Network.create(784, [128] * 12, 10, init="plateau", seed=0)
>>> net.widths[:3], net.classes, net.num_params
((784, 128, 128), 10, 281856)
>>> Network.create(4, [3], 2, activation="tanh").activation
'tanh'
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from numeric.kernels._runtime import namespace
from numeric.layers import Dense, Output
from numeric.layers.base import Layer
from numeric.losses import softmax_cross_entropy

__all__ = [
    "INIT_BOUNDS",
    "Adjoints",
    "Network",
    "Tape",
    "Tangents",
    "as_targets",
    "backward",
    "float_dtype",
    "forward",
    "init_bound",
    "split_params",
    "tangent",
]


class Tape(NamedTuple):
    """The forward pass: what the other sweeps read.

    Attributes
    ----------
    inputs : list
        ``inputs[i]`` is the input of layer ``i``; ``inputs[-1]`` is the input of the
        output layer.  For a dense stack these are ``v^(0) = x, v^(1), ..., v^(n)``.
    caches : list
        Each layer's cache (e.g. ``A'(z)`` and ``A''(z)``).
    p : array, shape (batch, classes)
        Logits (Eq 13).
    """

    inputs: list
    caches: list
    p: Any

    @property
    def vs(self) -> list:
        """``[v^(0), ..., v^(n)]`` (the layer inputs; dense stacks)."""
        return self.inputs

    @property
    def masks(self) -> list:
        """``A'(z^(k))`` of the hidden layers, ``k = 1..n`` (dense stacks)."""
        return [c.a1 for c in self.caches[:-1]]

    @property
    def a2s(self) -> list:
        """``A''(z^(k))`` of the hidden layers (``None`` where not computed)."""
        return [c.a2 for c in self.caches[:-1]]


class Adjoints(NamedTuple):
    """The adjoint sweep.

    Attributes
    ----------
    adjoints : list
        Each layer's adjoint record (for dense layers ``delta = df/dz`` and
        ``vbar = df/dv`` per sample; for the output layer ``df/dp``).
    grads : list
        Batch-mean gradient, one array per parameter, in the network's order.
    """

    adjoints: list
    grads: list

    @property
    def deltas(self) -> list:
        """``delta^(k)`` of the hidden layers (dense stacks)."""
        return [a.delta for a in self.adjoints[:-1]]

    @property
    def vbars(self) -> list:
        """``vbar^(k) = df/dv^(k)`` of the hidden layers (dense stacks)."""
        return [a.vbar for a in self.adjoints[:-1]]

    @property
    def grad_u(self):
        """Gradient of the output weights ``u`` (Eq 27)."""
        return self.grads[-1]

    @property
    def grads_w(self) -> list:
        """Gradients of the hidden weights (Eq 28; dense stacks)."""
        return self.grads[:-1]


class Tangents(NamedTuple):
    """The tangent sweep along one direction.

    Attributes
    ----------
    outputs : list
        ``outputs[i]`` is the derivative of layer ``i``'s output (``vdot``; the last
        one is ``pdot``).
    tangents : list
        Each layer's tangent record (``zdot`` for dense layers).
    """

    outputs: list
    tangents: list

    @property
    def pdot(self):
        return self.outputs[-1]

    @property
    def vdots(self) -> list:
        return self.outputs[:-1]


def split_params(layers: Sequence[Layer], params: Sequence) -> list[list]:
    """``params`` cut into one list per layer."""
    out, start = [], 0
    for layer in layers:
        stop = start + layer.n_params
        out.append(list(params[start:stop]))
        start = stop
    if start != len(params):
        raise ValueError(f"the layers take {start} parameter arrays, got {len(params)}")
    return out


def forward(layers: Sequence[Layer], params: Sequence, x, second: bool = True) -> Tape:
    """Forward pass (Eqs 10-13): layer inputs, caches and logits."""
    inputs, caches = [], []
    v = x
    for layer, ps in zip(layers, split_params(layers, params), strict=True):
        inputs.append(v)
        v, cache = layer.forward(ps, v, second)
        caches.append(cache)
    return Tape(inputs, caches, v)


def backward(layers: Sequence[Layer], params: Sequence, tape: Tape, dfdp) -> Adjoints:
    """Adjoint sweep from ``df/dp`` (C10, C1-C2) and the batch-mean gradient (C3, Eq 27)."""
    per_layer = split_params(layers, params)
    n = len(layers)
    adjoints: list = [None] * n
    grads: list = [None] * n
    ybar = dfdp
    for i in range(n - 1, -1, -1):
        ybar, adjoints[i], grads[i] = layers[i].backward(
            per_layer[i], tape.inputs[i], tape.caches[i], ybar, need_xbar=i > 0
        )
    return Adjoints(adjoints, [g for gs in grads for g in gs])


def tangent(layers: Sequence[Layer], params: Sequence, tape: Tape, direction: Sequence) -> Tangents:
    """Tangent sweep along ``direction`` (one array per parameter; C4, C5)."""
    per_layer = split_params(layers, params)
    per_dir = split_params(layers, direction)
    outputs, tangents = [], []
    xdot = None
    for i, layer in enumerate(layers):
        xdot, tan = layer.tangent(per_layer[i], tape.inputs[i], tape.caches[i], xdot, per_dir[i])
        outputs.append(xdot)
        tangents.append(tan)
    return Tangents(outputs, tangents)


#: Named initialisations of Appendix A: half-width ``b`` of the uniform distribution.
INIT_BOUNDS: dict[str, float] = {"plateau": 0.1, "normal": 0.2}
#: Largest bound ``b``: the weights, drawn uniform in ``[-b, b]``, must be finite in float32
#: (a larger ``b`` also overflows NumPy's ``uniform``, whose range ``2 b`` exceeds float64).
MAX_INIT_BOUND = float(np.finfo(np.float32).max)


def init_bound(init: str | float) -> float:
    """Half-width ``b > 0`` of the uniform initialisation (``"plateau"``: 0.1,
    ``"normal"``: 0.2, or a positive number); ``ValueError`` otherwise."""
    if isinstance(init, str):
        key = init.strip().lower()
        if key in INIT_BOUNDS:
            return INIT_BOUNDS[key]
        try:
            value = float(key)
        except ValueError:
            raise ValueError(
                f"unknown init {init!r}; use one of {sorted(INIT_BOUNDS)} or a positive number"
            ) from None
    else:
        value = float(init)
    if not (0 < value <= MAX_INIT_BOUND):  # also refuses nan and inf
        raise ValueError(
            "the initialisation bound must be positive and at most "
            f"{MAX_INIT_BOUND:.2g} (the largest float32), got {init!r}"
        )
    return value


def float_dtype(dtype) -> np.dtype:
    """``dtype`` as a NumPy floating dtype; ``ValueError`` for anything else."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be a floating dtype, got {dtype!r}") from None
    if not np.issubdtype(dt, np.floating):
        raise ValueError(f"dtype must be a floating dtype (float32 or float64), got {dt}")
    return dt


def as_targets(labels, classes: int, batch: int | None = None, dtype=np.float64):
    """Label rows ``y`` of shape ``(batch, classes)`` from class indices or rows.

    Parameters
    ----------
    labels : array, shape (batch,) int or (batch, classes)
        Class indices, or label rows (e.g. one-hot).
    classes : int
    batch : int, optional
        The number of samples the labels must match (no broadcasting).
    dtype : floating dtype of the rows

    Raises
    ------
    ValueError
        For a wrong shape, a batch mismatch, non-integer indices or indices out of range.
    """
    xp = namespace(labels)
    lab = labels if xp is not np else np.asarray(labels)
    if lab.ndim == 2:
        if lab.shape[1] != classes:
            raise ValueError(f"label rows must have {classes} columns, got shape {lab.shape}")
        rows = xp.asarray(lab, dtype=dtype)
    elif lab.ndim == 1:
        if xp is np and not np.issubdtype(lab.dtype, np.integer):
            raise ValueError(
                f"labels must be class indices (batch,) or rows (batch, {classes}); got "
                f"shape {lab.shape}, dtype {lab.dtype}"
            )
        if xp is np and lab.size and (lab.min() < 0 or lab.max() >= classes):
            raise ValueError(f"labels must lie in [0, {classes})")
        if xp is np:
            rows = np.zeros((lab.shape[0], classes), dtype=dtype)
            rows[np.arange(lab.shape[0]), lab] = 1
        else:
            rows = xp.asarray(lab[:, None] == xp.arange(classes)[None, :], dtype=dtype)
    else:
        raise ValueError(
            f"labels must be class indices (batch,) or rows (batch, {classes}); got "
            f"shape {lab.shape}"
        )
    if batch is not None and rows.shape[0] != batch:
        raise ValueError(f"got {rows.shape[0]} labels for a batch of {batch} samples")
    return rows


@dataclass(eq=False)
class Network:
    """Layers and their parameters: the network of Eqs 10-16 and its generalisations.

    Parameters
    ----------
    layers : sequence of Layer
        Hidden layers in order, then the output layer (logits).
    params : list of arrays
        Every layer's parameters, layer by layer, in each layer's
        :attr:`~numeric.layers.base.Layer.param_shapes` order.  For the paper's network
        this is ``[*ws, u]`` (``docs/conventions.md``).

    Examples
    --------
    >>> net = Network.create(784, [128] * 12, 10, init="plateau", seed=0)
    >>> net.widths[:3], net.classes, net.num_params
    ((784, 128, 128), 10, 281856)
    """

    layers: tuple
    params: list

    def __post_init__(self) -> None:
        self.layers = tuple(self.layers)
        self.params = list(self.params)
        if not self.layers or not all(isinstance(layer, Layer) for layer in self.layers):
            raise ValueError("layers must be a non-empty sequence of numeric.layers.Layer")
        shapes = [s for layer in self.layers for s in layer.param_shapes]
        if len(shapes) != len(self.params):
            raise ValueError(
                f"the layers take {len(shapes)} parameter arrays, got {len(self.params)}"
            )
        for i, (p, s) in enumerate(zip(self.params, shapes, strict=True)):
            if getattr(p, "ndim", None) is None:
                raise ValueError(f"params[{i}] is not an array")
            if tuple(p.shape) != tuple(s):
                raise ValueError(f"params[{i}] has shape {tuple(p.shape)}, expected {tuple(s)}")
        float_dtype(self.params[0].dtype)
        for i in range(len(self.layers) - 1):
            if self.layers[i].out_shape != self.layers[i + 1].in_shape:
                raise ValueError(
                    f"layer {i} gives {self.layers[i].out_shape} but layer {i + 1} takes "
                    f"{self.layers[i + 1].in_shape}"
                )

    # ---------------------------------------------------------------- construction
    @classmethod
    def mlp(cls, ws: Sequence, u, activation: str = "relu") -> Network:
        """The paper's network from its weights: ``ws[k-1]`` (w_k, w_(k-1)), ``u``
        (classes, w_n); no biases.  Validates shapes and finiteness."""
        ws = list(ws)
        if not ws:
            raise ValueError("the network needs at least one hidden layer (ws is empty)")
        for k, w in enumerate([*ws, u]):
            name = f"ws[{k}]" if k < len(ws) else "u"
            if getattr(w, "ndim", None) != 2:
                raise ValueError(f"{name} must be a 2-D array (out, in); got shape {np.shape(w)}")
        layers: list[Layer] = []
        for k, w in enumerate(ws):
            if k and w.shape[1] != ws[k - 1].shape[0]:
                raise ValueError(
                    f"layer widths do not match: ws[{k}] (layer {k + 1}) has shape "
                    f"{tuple(w.shape)}, expected ({w.shape[0]}, {ws[k - 1].shape[0]}) to take "
                    f"the {ws[k - 1].shape[0]} outputs of layer {k}"
                )
            layers.append(Dense(int(w.shape[1]), int(w.shape[0]), activation))
        if u.shape[1] != ws[-1].shape[0]:
            raise ValueError(f"u must have shape (classes, {ws[-1].shape[0]}); got {u.shape}")
        layers.append(Output(int(u.shape[1]), int(u.shape[0])))
        net = cls(tuple(layers), [*ws, u])
        net.check_finite()
        return net

    @classmethod
    def create(
        cls,
        d_in: int,
        hidden: Sequence[int],
        classes: int,
        *,
        init: str | float = "normal",
        seed: int = 0,
        dtype=np.float64,
        activation: str = "relu",
        bias: bool = False,
    ) -> Network:
        """A freshly initialised dense network (Appendix A).

        Parameters
        ----------
        d_in : int
            Input width (784 for MNIST, 3072 for CIFAR-10).
        hidden : sequence of int
            Hidden widths ``(w_1, ..., w_n)``, ``n >= 1``; the paper uses ``[128] * 12``.
        classes : int
        init : {"plateau", "normal"} or float, default "normal"
            Uniform in ``[-b, b]`` with ``b = 0.1`` (plateau), ``0.2`` (normal) or given.
        seed : int
            Seed of ``np.random.default_rng``; weights are drawn layer by layer in the
            order ``ws[0], ..., ws[n-1], u``.
        dtype : float32 or float64
        activation : str
            Hidden activation; it does not change the weights drawn.
        bias : bool, default False
            Biases on every layer, initialised to zero (the paper's network has none); the
            weights drawn are the same.
        """
        widths = [int(d_in), *(int(h) for h in hidden)]
        if len(widths) < 2:
            raise ValueError("the network needs at least one hidden layer")
        if min(widths) < 1 or int(classes) < 1:
            raise ValueError(f"widths and classes must be positive, got {widths}, {classes}")
        dtype = float_dtype(dtype)
        layers: list[Layer] = [
            Dense(widths[k], widths[k + 1], activation, bias) for k in range(len(widths) - 1)
        ]
        layers.append(Output(widths[-1], int(classes), bias))
        return cls.initialise(layers, init=init, seed=seed, dtype=dtype)

    @classmethod
    def initialise(
        cls, layers: Sequence[Layer], *, init="normal", seed: int = 0, dtype=np.float64
    ) -> Network:
        """Parameters for ``layers`` drawn uniform in ``[-b, b]``, layer by layer."""
        b = init_bound(init)
        dtype = float_dtype(dtype)
        rng = np.random.default_rng(int(seed))
        params = [p for layer in layers for p in layer.init(rng, b, dtype)]
        return cls(tuple(layers), params)

    def with_params(self, params: Sequence) -> Network:
        """The same layers with other parameters (not validated; for training loops)."""
        net = object.__new__(type(self))
        net.layers = self.layers
        net.params = list(params)
        return net

    @classmethod
    def from_params(cls, params: Sequence, *, check: bool = True, activation: str = "relu"):
        """A dense network from ``[*ws, u]`` (arrays not copied)."""
        params = list(params)
        if len(params) < 2:
            raise ValueError("params must hold at least one hidden layer and u")
        if check:
            return cls.mlp(params[:-1], params[-1], activation)
        layers: list[Layer] = [
            Dense(int(w.shape[1]), int(w.shape[0]), activation) for w in params[:-1]
        ]
        layers.append(Output(int(params[-1].shape[1]), int(params[-1].shape[0])))
        net = object.__new__(cls)
        net.layers = tuple(layers)
        net.params = params
        return net

    def check_finite(self) -> None:
        """``ValueError`` naming the first parameter with NaN or infinite entries."""
        for i, p in enumerate(self.params):
            if namespace(p) is np and not np.all(np.isfinite(p)):
                bad = int(p.size - np.count_nonzero(np.isfinite(p)))
                raise ValueError(f"params[{i}] contains {bad} NaN or infinite entries")

    # ------------------------------------------------------------------ properties
    @property
    def is_dense(self) -> bool:
        """Whether this is the paper's network: bias-free dense hidden layers and output."""
        return all(isinstance(layer, Dense) and not layer.bias for layer in self.layers[:-1]) and (
            isinstance(self.layers[-1], Output) and not self.layers[-1].bias
        )

    @property
    def ws(self) -> list:
        """Hidden weights ``ws[k-1]`` (w_k, w_(k-1)) of a dense network."""
        return self.params[:-1]

    @property
    def u(self):
        """Output weights (classes, w_n)."""
        return self.params[-1]

    @property
    def activation(self) -> str:
        """The hidden activation (of the first hidden layer that has one)."""
        for layer in self.layers:
            if hasattr(layer, "activation"):
                return layer.activation
        return "identity"

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self.layers[0].in_shape

    @property
    def widths(self) -> tuple[int, ...]:
        """``(d_in, w_1, ..., w_n)`` of a dense network."""
        return (
            int(np.prod(self.layers[0].in_shape)),
            *(int(np.prod(layer.out_shape)) for layer in self.layers[:-1]),
        )

    @property
    def hidden(self) -> tuple[int, ...]:
        return self.widths[1:]

    @property
    def classes(self) -> int:
        return int(self.layers[-1].out_shape[0])

    @property
    def dtype(self) -> np.dtype:
        return self.params[-1].dtype

    @property
    def num_params(self) -> int:
        return int(sum(int(np.prod(p.shape)) for p in self.params))

    def copy(self) -> Network:
        """A deep copy."""
        return type(self)(self.layers, [p.copy() for p in self.params])

    # ------------------------------------------------------------------ evaluation
    def inputs(self, x):
        """``x`` checked and converted: (batch, *in_shape) in the network's dtype."""
        xp = namespace(x, self.params[0])
        x = (
            xp.asarray(x, dtype=self.dtype)
            if xp is not np
            else np.ascontiguousarray(x, dtype=self.dtype)
        )
        shape = self.in_shape
        if x.ndim == 2 and len(shape) > 1 and x.shape[1] == int(np.prod(shape)):
            x = xp.reshape(x, (x.shape[0], *shape))
        if x.ndim != 1 + len(shape) or tuple(x.shape[1:]) != tuple(shape):
            raise ValueError(
                f"x must have shape (batch, {', '.join(map(str, shape))}); got {tuple(x.shape)}"
            )
        if x.shape[0] == 0:
            raise ValueError("x holds no samples (batch size 0)")
        return x

    def targets(self, labels, batch: int):
        """Label rows (batch, classes) in the network's dtype (see :func:`as_targets`)."""
        return as_targets(labels, self.classes, batch, self.dtype)

    def forward(self, x, second: bool = True) -> Tape:
        """Forward pass on checked inputs (:func:`forward`)."""
        return forward(self.layers, self.params, x, second)

    def logits(self, x):
        """Logits ``p`` (Eq 13), shape (batch, classes)."""
        return self.forward(self.inputs(x), second=False).p

    def predict(self, x):
        """Predicted class per row, shape (batch,) int64."""
        xp = namespace(self.params[0])
        return np.asarray(xp.argmax(self.logits(x), axis=1)).astype(np.int64)

    def loss(self, x, labels) -> float:
        """Batch objective ``F = E[f]`` (Eqs 14-16)."""
        xs = self.inputs(x)
        ys = self.targets(labels, xs.shape[0])
        f, _, _ = softmax_cross_entropy(self.forward(xs, second=False).p, ys, second=False)
        return float(f.mean())

    def loss_and_gradient(self, x, labels) -> tuple[float, list]:
        """``F`` and its gradient in the order of :attr:`params` (Eqs 27-28)."""
        xs = self.inputs(x)
        ys = self.targets(labels, xs.shape[0])
        tape = self.forward(xs, second=False)
        f, dfdp, _ = softmax_cross_entropy(tape.p, ys, second=False)
        return float(f.mean()), backward(self.layers, self.params, tape, dfdp).grads

    def accuracy(self, x, labels) -> float:
        """Fraction of rows whose predicted class equals the label."""
        lab = np.asarray(labels)
        if lab.ndim == 2:
            lab = np.argmax(lab, axis=1)
        pred = np.asarray(self.predict(x))
        if pred.shape != lab.shape:
            raise ValueError(f"got {lab.shape[0]} labels for {pred.shape[0]} samples")
        return float(np.mean(pred == lab))

    # ---------------------------------------------------------------------- storage
    def to_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Plain arrays for ``np.savez`` (no pickles).

        Dense networks keep the layout ``w.0 .. w.{n-1}``, ``u`` and ``activation``;
        other stacks store ``layers`` (JSON text) and ``param.0 ..``.
        """
        if self.is_dense:
            out = {f"{prefix}w.{k}": np.array(w, copy=True) for k, w in enumerate(self.ws)}
            out[f"{prefix}u"] = np.array(self.u, copy=True)
            out[f"{prefix}activation"] = np.array(self.activation)
            return out
        out = {f"{prefix}param.{i}": np.array(p, copy=True) for i, p in enumerate(self.params)}
        out[f"{prefix}layers"] = np.array(json.dumps([layer.describe() for layer in self.layers]))
        return out

    @classmethod
    def from_arrays(cls, arrays, prefix: str = "") -> Network:
        """Inverse of :meth:`to_arrays` (accepts the mapping ``np.load`` returns).

        Dense arrays without an activation entry are ReLU networks.
        """
        if f"{prefix}layers" in arrays:
            from numeric.layers.registry import layer_from_description

            specs = json.loads(str(np.asarray(arrays[f"{prefix}layers"])[()]))
            layers = [layer_from_description(s) for s in specs]
            count = sum(layer.n_params for layer in layers)
            params = [np.array(arrays[f"{prefix}param.{i}"]) for i in range(count)]
            return cls(tuple(layers), params)
        n = 0
        while f"{prefix}w.{n}" in arrays:
            n += 1
        if n == 0 or f"{prefix}u" not in arrays:
            raise ValueError(f"no network weights under prefix {prefix!r}")
        ws = [np.array(arrays[f"{prefix}w.{k}"]) for k in range(n)]
        key = f"{prefix}activation"
        activation = str(np.asarray(arrays[key])[()]) if key in arrays else "relu"
        return cls.mlp(ws, np.array(arrays[f"{prefix}u"]), activation)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the network to an uncompressed ``.npz`` file."""
        arrays: dict[str, Any] = (
            self.to_arrays()
        )  # Any: savez's stub reads **kwds as allow_pickle too
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Network:
        """Read a network written by :meth:`save` (no pickles are loaded)."""
        with np.load(path, allow_pickle=False) as data:
            return cls.from_arrays({k: data[k] for k in data.files})

    def __repr__(self) -> str:
        if self.is_dense:
            hid = self.hidden
            shown = f"[{hid[0]}] * {len(hid)}" if len(set(hid)) == 1 else str(list(hid))
            return (
                f"Network(d_in={self.widths[0]}, hidden={shown}, classes={self.classes}, "
                f"activation={self.activation!r}, dtype={self.dtype}, params={self.num_params})"
            )
        kinds = ", ".join(type(layer).__name__ for layer in self.layers)
        return f"Network(layers=[{kinds}], dtype={self.dtype}, params={self.num_params})"
