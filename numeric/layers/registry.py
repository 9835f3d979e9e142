"""Layer types by name, for networks stored as plain data (checkpoints, configs)."""

from __future__ import annotations

from numeric.layers.attention import Attention
from numeric.layers.base import Layer
from numeric.layers.conv2d import Conv2D, Flatten
from numeric.layers.dense import Dense
from numeric.layers.layernorm import LayerNorm
from numeric.layers.output import Output
from numeric.layers.recurrent import Recurrent
from numeric.layers.reshape import Reshape
from numeric.layers.residual import Residual

__all__ = ["LAYER_TYPES", "layer_from_description"]

#: ``describe()["type"]`` -> layer class
LAYER_TYPES: dict[str, type[Layer]] = {
    "dense": Dense,
    "output": Output,
    "conv2d": Conv2D,
    "flatten": Flatten,
    "recurrent": Recurrent,
    "reshape": Reshape,
    "residual": Residual,
    "layernorm": LayerNorm,
    "attention": Attention,
}


def layer_from_description(spec: dict) -> Layer:
    """The layer a :meth:`~numeric.layers.base.Layer.describe` dict stands for."""
    spec = dict(spec)
    kind = spec.pop("type", None)
    if kind not in LAYER_TYPES:
        raise ValueError(f"unknown layer type {kind!r}; known: {sorted(LAYER_TYPES)}")
    return LAYER_TYPES[kind](**spec)
