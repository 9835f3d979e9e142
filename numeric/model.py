"""The network of Eqs 10-16: construction, initialisation and evaluation.

A :class:`Network` holds the hidden weights ``ws`` and output weights ``u`` of the
feedforward network with a softmax output and categorical cross-entropy, and the name of
its entry-wise hidden activation: the ReLU of Appendix B.1 (default) or any activation of
:mod:`numeric.kernels.activations` (Appendix B.3; ``"tanh"``, ``"sigmoid"``,
``"softplus"``).  Array conventions are those of ``docs/conventions.md``: ``ws[k-1]`` has
shape ``(w_k, w_{k-1})``, ``u`` has shape ``(classes, w_n)``, no biases.

Initialisation follows Appendix A: every weight uniform in ``[-b, b]``, with
``b = 0.1`` for the plateau start and ``b = 0.2`` for the normal start.

Example
-------
>>> net = Network.create(784, [128] * 12, 10, init="plateau", seed=0)
>>> net.widths[:3], net.classes, net.num_params
((784, 128, 128), 10, 281856)
>>> Network.create(4, [3], 2, activation="tanh").activation
'tanh'
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from numeric.kernels import activations
from numeric.kernels import general_mlp as G
from numeric.kernels import relu_mlp as R

__all__ = [
    "INIT_BOUNDS",
    "Network",
    "as_inputs",
    "as_targets",
    "forward",
    "init_bound",
    "kernels_for",
]

#: Named initialisations of Appendix A: half-width ``b`` of the uniform distribution.
INIT_BOUNDS: dict[str, float] = {"plateau": 0.1, "normal": 0.2}


def init_bound(init: str | float) -> float:
    """Half-width ``b`` of the uniform initialisation.

    Parameters
    ----------
    init : {"plateau", "normal"} or float
        A name of :data:`INIT_BOUNDS` or a positive number.

    Returns
    -------
    float
        ``b > 0``.

    Raises
    ------
    ValueError
        For an unknown name or a non-positive bound.
    """
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
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"the initialisation bound must be positive and finite, got {init!r}")
    return value


def kernels_for(activation: str):
    """The generated kernel module that evaluates a network with ``activation``.

    :mod:`numeric.kernels.relu_mlp` for the ReLU (the B.1 kernels: faster than the
    general ones, and the results of ReLU runs stay bit for bit those of the B.1 code),
    :mod:`numeric.kernels.general_mlp` for every other activation (B.3).  Both have the
    same drivers (``softmax_cross_entropy``, ``backward``, ``directional``,
    ``sgd_curvature``, ...); their forward passes differ in signature, see
    :func:`forward`.
    """
    activations.get(activation)
    return R if activation == "relu" else G


def forward(ws, u, x, activation: str = "relu", *, check: bool = True, second: bool = True):
    """Forward pass (Eqs 10-13) with the kernels of :func:`kernels_for`.

    Parameters
    ----------
    ws, u, x
        As for :func:`numeric.kernels.general_mlp.forward`.
    activation : str
    check : bool
        Validate shapes and finiteness first.
    second : bool
        Also keep ``A''(z^(k))`` (needed for curvature unless ``A'' = 0``).

    Returns
    -------
    Forward
        ``relu_mlp.Forward`` for the ReLU, else ``general_mlp.Forward``.
    """
    if kernels_for(activation) is R:
        return R.forward(ws, u, x, check=check)
    return G.forward(ws, u, x, activation=activation, check=check, second=second)


def as_inputs(x: np.ndarray, dtype: np.dtype | type = np.float64) -> np.ndarray:
    """Inputs as a C-contiguous ``(batch, d_in)`` array of ``dtype``."""
    return np.ascontiguousarray(x, dtype=dtype)


def as_targets(labels: np.ndarray, classes: int, dtype: np.dtype | type = np.float64) -> np.ndarray:
    """Label rows ``y`` of shape ``(batch, classes)`` from class indices or one-hot rows.

    Parameters
    ----------
    labels : np.ndarray, shape (batch,) int or (batch, classes)
        Class indices, or rows that sum to one (returned as ``dtype``).
    classes : int
    dtype : numpy dtype

    Returns
    -------
    np.ndarray, shape (batch, classes)
    """
    lab = np.asarray(labels)
    if lab.ndim == 2:
        if lab.shape[1] != classes:
            raise ValueError(f"label rows must have {classes} columns, got shape {lab.shape}")
        return np.ascontiguousarray(lab, dtype=dtype)
    if lab.ndim != 1 or not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(
            f"labels must be class indices (batch,) or rows (batch, {classes}); got "
            f"shape {lab.shape}, dtype {lab.dtype}"
        )
    if lab.size and (lab.min() < 0 or lab.max() >= classes):
        raise ValueError(f"labels must lie in [0, {classes})")
    out = np.zeros((lab.shape[0], classes), dtype=dtype)
    out[np.arange(lab.shape[0]), lab] = 1
    return out


@dataclass(eq=False)
class Network:
    """Weights and activation of the network of Eqs 10-16 (no biases).

    Parameters
    ----------
    ws : list of np.ndarray
        Hidden weights; ``ws[k-1]`` has shape ``(w_k, w_{k-1})`` (``k = 1..n``).
    u : np.ndarray, shape (classes, w_n)
        Output (softmax) weights.
    activation : str, default "relu"
        Hidden activation, a name of :func:`numeric.kernels.activations.names`.

    Notes
    -----
    :attr:`params` lists the arrays in the optimizers' order ``[*ws, u]`` (the
    flattening order of ``docs/conventions.md``); :meth:`from_params` inverts it.
    """

    ws: list[np.ndarray]
    u: np.ndarray
    activation: str = "relu"

    def __post_init__(self) -> None:
        self.ws = [np.asarray(w) for w in self.ws]
        self.u = np.asarray(self.u)
        if not isinstance(self.activation, str):
            raise TypeError(f"activation must be a name, got {self.activation!r}")
        activations.get(self.activation)
        dims = self.ws[0].shape[1] if self.ws else 0
        G.check_network(self.ws, self.u, np.zeros((1, dims), dtype=self.u.dtype))

    # ---------------------------------------------------------------- construction

    @classmethod
    def create(
        cls,
        d_in: int,
        hidden: Sequence[int],
        classes: int,
        *,
        init: str | float = "normal",
        seed: int = 0,
        dtype: np.dtype | type = np.float64,
        activation: str = "relu",
    ) -> Network:
        """A freshly initialised network.

        Parameters
        ----------
        d_in : int
            Input width (784 for MNIST, 3072 for CIFAR-10).
        hidden : sequence of int
            Hidden widths ``(w_1, ..., w_n)``, ``n >= 1``; the paper uses ``[128] * 12``.
        classes : int
            Number of classes ``c``.
        init : {"plateau", "normal"} or float, default "normal"
            Uniform initialisation in ``[-b, b]``: ``b = 0.1`` (plateau start),
            ``b = 0.2`` (normal start), or the given ``b``.
        seed : int, default 0
            Seed of ``np.random.default_rng``; weights are drawn layer by layer in the
            order ``ws[0], ..., ws[n-1], u``.
        dtype : numpy floating dtype, default float64
        activation : str, default "relu"
            Hidden activation (:func:`numeric.kernels.activations.names`); it does not
            change the weights drawn.

        Returns
        -------
        Network
        """
        widths = [int(d_in), *(int(h) for h in hidden)]
        if len(widths) < 2:
            raise ValueError("the network needs at least one hidden layer")
        if min(widths) < 1 or int(classes) < 1:
            raise ValueError(f"widths and classes must be positive, got {widths}, {classes}")
        b = init_bound(init)
        rng = np.random.default_rng(int(seed))
        ws = [
            rng.uniform(-b, b, size=(widths[k + 1], widths[k])).astype(dtype, copy=False)
            for k in range(len(widths) - 1)
        ]
        u = rng.uniform(-b, b, size=(int(classes), widths[-1])).astype(dtype, copy=False)
        return cls(ws, u, activation)

    @classmethod
    def from_params(
        cls, params: Sequence[np.ndarray], *, check: bool = True, activation: str = "relu"
    ) -> Network:
        """Inverse of :attr:`params`: ``[*ws, u]`` to a network (arrays not copied).

        ``check=False`` skips the validation of shapes, finiteness and the activation's
        name (for training loops that build a network from arrays they computed
        themselves and the activation of a network that was checked).
        """
        params = list(params)
        if len(params) < 2:
            raise ValueError("params must hold at least one hidden layer and u")
        if check:
            return cls(params[:-1], params[-1], activation)
        net = object.__new__(cls)
        net.ws = params[:-1]
        net.u = params[-1]
        net.activation = activation
        return net

    # ------------------------------------------------------------------ properties

    @property
    def params(self) -> list[np.ndarray]:
        """``[*ws, u]``: the parameter list handed to the optimizers."""
        return [*self.ws, self.u]

    @property
    def widths(self) -> tuple[int, ...]:
        """``(d_in, w_1, ..., w_n)``."""
        return (int(self.ws[0].shape[1]), *(int(w.shape[0]) for w in self.ws))

    @property
    def hidden(self) -> tuple[int, ...]:
        """Hidden widths ``(w_1, ..., w_n)``."""
        return self.widths[1:]

    @property
    def classes(self) -> int:
        """Number of classes ``c``."""
        return int(self.u.shape[0])

    @property
    def dtype(self) -> np.dtype:
        """Floating dtype of the weights."""
        return self.u.dtype

    @property
    def num_params(self) -> int:
        """Number of weights."""
        return int(sum(p.size for p in self.params))

    def copy(self) -> Network:
        """A deep copy."""
        return Network([w.copy() for w in self.ws], self.u.copy(), self.activation)

    # ------------------------------------------------------------------ evaluation

    def _xy(self, x: np.ndarray, labels: np.ndarray | None):
        xs = as_inputs(x, self.dtype)
        ys = None if labels is None else as_targets(labels, self.classes, self.dtype)
        return xs, ys

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Logits ``p`` (Eq 13), shape ``(batch, classes)``."""
        xs, _ = self._xy(x, None)
        return forward(self.ws, self.u, xs, self.activation, second=False).p

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted class per row, shape ``(batch,)`` int64."""
        return np.argmax(self.logits(x), axis=1).astype(np.int64)

    def loss(self, x: np.ndarray, labels: np.ndarray) -> float:
        """Batch objective ``F = E[f]`` (Eqs 14-16).

        Parameters
        ----------
        x : np.ndarray, shape (batch, d_in)
        labels : np.ndarray, shape (batch,) int or (batch, classes)
        """
        xs, ys = self._xy(x, labels)
        fwd = forward(self.ws, self.u, xs, self.activation, second=False)
        K = kernels_for(self.activation)
        f, _, _ = K.softmax_cross_entropy(fwd.p, ys, second=False)
        return float(f.mean())

    def loss_and_gradient(
        self, x: np.ndarray, labels: np.ndarray
    ) -> tuple[float, list[np.ndarray]]:
        """``F`` and its gradient in the order of :attr:`params` (Eqs 27-28)."""
        xs, ys = self._xy(x, labels)
        if kernels_for(self.activation) is R:
            loss, grad_u, grads_w = R.loss_and_gradient(self.ws, self.u, xs, ys)
        else:
            loss, grad_u, grads_w = G.loss_and_gradient(
                self.ws, self.u, xs, ys, activation=self.activation
            )
        return float(loss), [*grads_w, grad_u]

    def accuracy(self, x: np.ndarray, labels: np.ndarray) -> float:
        """Fraction of rows whose predicted class equals the label."""
        lab = np.asarray(labels)
        if lab.ndim == 2:
            lab = np.argmax(lab, axis=1)
        return float(np.mean(self.predict(x) == lab))

    # ---------------------------------------------------------------------- storage

    def to_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        """``{prefix + "w.0": ws[0], ..., prefix + "u": u, prefix + "activation": name}``.

        The weights are copies; the activation is a 0-d string array (no pickles).
        """
        out = {f"{prefix}w.{k}": np.array(w, copy=True) for k, w in enumerate(self.ws)}
        out[f"{prefix}u"] = np.array(self.u, copy=True)
        out[f"{prefix}activation"] = np.array(self.activation)
        return out

    @classmethod
    def from_arrays(cls, arrays, prefix: str = "") -> Network:
        """Inverse of :meth:`to_arrays` (accepts the mapping ``np.load`` returns).

        Arrays without an activation entry (written before networks had one) are ReLU
        networks.
        """
        n = 0
        while f"{prefix}w.{n}" in arrays:
            n += 1
        if n == 0 or f"{prefix}u" not in arrays:
            raise ValueError(f"no network weights under prefix {prefix!r}")
        ws = [np.array(arrays[f"{prefix}w.{k}"]) for k in range(n)]
        key = f"{prefix}activation"
        activation = str(np.asarray(arrays[key])[()]) if key in arrays else "relu"
        return cls(ws, np.array(arrays[f"{prefix}u"]), activation)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the weights and the activation's name to an uncompressed ``.npz`` file."""
        np.savez(path, **self.to_arrays())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Network:
        """Read a network written by :meth:`save` (no pickles are loaded)."""
        with np.load(path, allow_pickle=False) as data:
            return cls.from_arrays({k: data[k] for k in data.files})

    def __repr__(self) -> str:
        hid = self.hidden
        shown = f"[{hid[0]}] * {len(hid)}" if len(set(hid)) == 1 else str(list(hid))
        return (
            f"Network(d_in={self.widths[0]}, hidden={shown}, classes={self.classes}, "
            f"activation={self.activation!r}, dtype={self.dtype}, params={self.num_params})"
        )
