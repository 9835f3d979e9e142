"""The networks ``lowrank train --model`` builds: the paper's MLP, a small CNN and an RNN.

* ``mlp``: Eqs 10-16, dense hidden layers (``hidden``, default 12 x 128) and the softmax
  output; no biases unless ``bias`` (the paper's network has none).
* ``cnn``: conv layers of ``channels`` (default 8, 16) with ``kernel`` x ``kernel``
  kernels (3) and stride ``stride`` (2), no padding, then dense layers ``dense`` (64) and
  the output.  On a 28 x 28 image: 28 -> 13 -> 6, so 16 * 6 * 6 = 576 features.
* ``rnn``: a recurrent layer of ``width`` units (64) reading the image row by row (28
  steps of 28 pixels: ``z_(t) = w v_(t-1) + U x_(t) + b``, Eq 58.s), then dense layers
  ``dense`` (none) and the output: the readout is the output layer on the last state.
* ``resmlp``: a dense layer of ``width`` units (64) on the flattened image, then
  ``blocks`` (2) residual blocks ``v + A(w v + b)``, each after a layer normalisation when
  ``norm`` (default on), then the output.  The blocks and the normalisation are layers
  derived from their forward rules (:mod:`numeric.layers.derived`).
* ``attention``: single-head softmax self-attention reading an (H, W) image as H tokens
  of W features (MNIST: 28 rows of 28 pixels) into ``d_k`` (16) features per token,
  flattened into the output layer; derived from its forward rule too.

Every layer uses the same ``activation``; the CNN and RNN have biases by default.  Model
sizes are plain data (``options``), filled with the defaults by :func:`model_options`, so a
training config stores them all.

Example
-------
>>> net = build("cnn", (28, 28), 10, seed=0)
>>> [type(layer).__name__ for layer in net.layers]
['Conv2D', 'Conv2D', 'Flatten', 'Dense', 'Output']
>>> net.layers[2].out_shape, net.num_params
((576,), 38826)
>>> build("rnn", (28, 28), 10).layers[0].in_shape
(28, 28)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from numeric.layers import (
    Attention,
    Conv2D,
    Dense,
    Flatten,
    LayerNorm,
    Output,
    Recurrent,
    Residual,
)
from numeric.layers.base import Layer
from numeric.network import Network, float_dtype

__all__ = [
    "MODELS",
    "attention",
    "DEFAULTS",
    "build",
    "cnn",
    "layers_for",
    "mlp",
    "model_arch",
    "model_options",
    "network_for",
    "resmlp",
    "rnn",
]

MODELS = ("mlp", "cnn", "rnn", "resmlp", "attention")

#: default sizes of each model (the MLP's are the paper's)
DEFAULTS: dict[str, dict] = {
    "mlp": {"hidden": [128] * 12},
    "cnn": {"channels": [8, 16], "kernel": 3, "stride": 2, "dense": [64]},
    "rnn": {"width": 64, "dense": []},
    "resmlp": {"width": 64, "blocks": 2, "norm": True},
    "attention": {"d_k": 16},
}


def _ints(name: str, value, allow_empty: bool = True) -> list[int]:
    vals = [value] if isinstance(value, int | np.integer) else list(value)
    out = []
    for v in vals:
        if isinstance(v, bool) or int(v) != v or int(v) < 1:
            raise ValueError(f"{name} must be positive integers, got {value!r}")
        out.append(int(v))
    if not out and not allow_empty:
        raise ValueError(f"{name} must not be empty")
    return out


def model_options(model: str, options: dict | None = None) -> dict:
    """The sizes of ``model`` with the defaults filled in; a ``ValueError`` for an unknown
    model, an unknown option or a bad size."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    options = dict(options or {})
    unknown = sorted(set(options) - set(DEFAULTS[model]))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for the {model} model; it takes {sorted(DEFAULTS[model])}"
        )
    out = {**DEFAULTS[model], **options}
    if model == "mlp":
        out["hidden"] = _ints("hidden", out["hidden"], allow_empty=False)
    elif model == "cnn":
        out["channels"] = _ints("channels", out["channels"], allow_empty=False)
        out["kernel"] = _ints("kernel", out["kernel"])[0]
        out["stride"] = _ints("stride", out["stride"])[0]
        out["dense"] = _ints("dense", out["dense"])
    elif model == "rnn":
        out["width"] = _ints("width", out["width"])[0]
        out["dense"] = _ints("dense", out["dense"])
    elif model == "attention":
        out["d_k"] = _ints("d_k", out["d_k"])[0]
    else:
        out["width"] = _ints("width", out["width"])[0]
        blocks = out["blocks"]
        if isinstance(blocks, bool) or int(blocks) != blocks or int(blocks) < 0:
            raise ValueError(f"blocks must be a non-negative integer, got {blocks!r}")
        out["blocks"] = int(blocks)
        if not isinstance(out["norm"], bool):
            raise ValueError(f"norm must be true or false, got {out['norm']!r}")
    return out


def _dense_head(width: int, dense: Sequence[int], classes: int, activation: str, bias: bool):
    layers: list[Layer] = []
    for d in dense:
        layers.append(Dense(width, int(d), activation, bias))
        width = int(d)
    layers.append(Output(width, int(classes), bias))
    return layers


def mlp(d_in: int, hidden: Sequence[int], classes: int, activation: str = "relu",
        bias: bool = False) -> list[Layer]:  # fmt: skip
    """The paper's network (Eqs 10-16): dense layers ``hidden`` on ``d_in`` features."""
    if not hidden:
        raise ValueError("the MLP needs at least one hidden layer")
    return _dense_head(int(d_in), hidden, classes, activation, bias)


def cnn(image_shape: Sequence[int], classes: int, channels: Sequence[int] = (8, 16),
        kernel: int = 3, stride: int = 2, dense: Sequence[int] = (64,),
        activation: str = "relu", bias: bool = True) -> list[Layer]:  # fmt: skip
    """Conv layers (VALID, ``kernel`` x ``kernel``, stride ``stride``), then dense layers.

    ``image_shape`` is (H, W) or (C, H, W).  ``ValueError`` when a kernel no longer fits.
    """
    shape = tuple(int(s) for s in image_shape)
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3:
        raise ValueError(f"a CNN takes (H, W) or (C, H, W) images, got {image_shape}")
    layers: list[Layer] = []
    for c in channels:
        try:
            conv = Conv2D(shape, int(c), (kernel, kernel), (stride, stride), activation, bias)
        except ValueError as exc:
            raise ValueError(f"conv layer {len(layers) + 1} on a {shape} input: {exc}") from None
        layers.append(conv)
        shape = conv.out_shape
    layers.append(Flatten(shape))
    return layers + _dense_head(int(np.prod(shape)), dense, classes, activation, bias)


def rnn(image_shape: Sequence[int], classes: int, width: int = 64, dense: Sequence[int] = (),
        activation: str = "relu", bias: bool = True) -> list[Layer]:  # fmt: skip
    """A recurrent layer reading an (H, W) image as H steps of W pixels, then dense layers."""
    shape = tuple(int(s) for s in image_shape)
    if len(shape) == 3 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != 2:
        raise ValueError(
            f"the RNN reads grey (H, W) images row by row; got images of shape {image_shape}"
        )
    steps, d_in = shape
    layers: list[Layer] = [Recurrent(d_in, int(width), steps, activation, bias)]
    return layers + _dense_head(int(width), dense, classes, activation, bias)


def resmlp(d_in: int, classes: int, width: int = 64, blocks: int = 2, norm: bool = True,
           activation: str = "relu", bias: bool = True) -> list[Layer]:  # fmt: skip
    """A dense layer of ``width`` units, ``blocks`` residual blocks ``v + A(w v + b)``
    (each after a layer normalisation when ``norm``), then the output layer."""
    layers: list[Layer] = [Dense(int(d_in), int(width), activation, bias)]
    for _ in range(int(blocks)):
        if norm:
            layers.append(LayerNorm(int(width)))
        layers.append(Residual(int(width), activation))
    return layers + [Output(int(width), int(classes), bias)]


def attention(image_shape: Sequence[int], classes: int, d_k: int = 16,
              bias: bool = True) -> list[Layer]:  # fmt: skip
    """Self-attention over the H rows of an (H, W) image (H tokens of W features) into
    ``d_k`` features per token, flattened into the output layer."""
    shape = tuple(int(s) for s in image_shape)
    if len(shape) == 3 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != 2:
        raise ValueError(
            f"attention reads grey (H, W) images as H tokens; got images of shape {image_shape}"
        )
    att = Attention(shape[0], shape[1], int(d_k))
    return [att, Flatten(att.out_shape), Output(shape[0] * int(d_k), int(classes), bias)]


def layers_for(model: str, image_shape: Sequence[int], classes: int, *,
               activation: str = "relu", bias: bool | None = None,
               options: dict | None = None) -> list[Layer]:  # fmt: skip
    """The layer stack of ``model`` (``bias`` None: off for the MLP, on for the others;
    the residual blocks of ``resmlp`` always have theirs)."""
    opts = model_options(model, options)
    bias = (model != "mlp") if bias is None else bool(bias)
    if model == "mlp":
        d_in = int(np.prod(tuple(image_shape)))
        return mlp(d_in, opts["hidden"], classes, activation, bias)
    if model == "cnn":
        return cnn(image_shape, classes, activation=activation, bias=bias, **opts)
    if model == "resmlp":
        d_in = int(np.prod(tuple(image_shape)))
        return resmlp(d_in, classes, activation=activation, bias=bias, **opts)
    if model == "attention":
        return attention(image_shape, classes, bias=bias, **opts)
    return rnn(image_shape, classes, activation=activation, bias=bias, **opts)


def build(model: str, image_shape: Sequence[int], classes: int, *,
          activation: str = "relu", bias: bool | None = None, options: dict | None = None,
          init: str | float = "normal", seed: int = 0, dtype=np.float64) -> Network:  # fmt: skip
    """A freshly initialised network of ``model`` (Appendix A: weights uniform in
    ``[-b, b]``; biases zero).  For the MLP the weights equal :meth:`Network.create`'s."""
    layers = layers_for(model, image_shape, classes, activation=activation, bias=bias,
                        options=options)  # fmt: skip
    return Network.initialise(layers, init=init, seed=seed, dtype=float_dtype(dtype))


def model_arch(model: str, arch: dict | None) -> dict:
    """A training config's ``arch`` for ``model``: the CNN's, RNN's or ResMLP's sizes with defaults
    filled in; empty for the MLP (sized by ``hidden``)."""
    model = str(model).lower()
    if model == "mlp":
        if arch:
            raise ValueError(f"the mlp is sized by hidden, not by {sorted(arch)}")
        return {}
    return model_options(model, arch)


def network_for(config, data) -> Network:
    """The initial network of a training config (:class:`numeric.training.config.TrainConfig`) on
    ``data`` (a :class:`numeric.data.Dataset`)."""
    if config.model == "mlp":
        return Network.create(
            data.dim,
            config.hidden,
            data.classes,
            init=config.init,
            seed=config.seed,
            dtype=np.dtype(config.dtype),
            activation=config.activation,
            bias=bool(config.bias),
        )
    return build(
        config.model,
        data.image_shape,
        data.classes,
        activation=config.activation,
        bias=bool(config.bias),
        options=config.arch,
        init=config.init,
        seed=config.seed,
        dtype=np.dtype(config.dtype),
    )
