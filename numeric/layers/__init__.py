"""Layers of :class:`numeric.network.Network`: each owns its forward, adjoint, tangent and
second-order terms through generated kernels (interface: :class:`Layer`)."""

from numeric.layers.activation import SECOND_VANISHES, activation_names, get_activation
from numeric.layers.attention import Attention
from numeric.layers.base import Layer
from numeric.layers.conv2d import Conv2D, Flatten
from numeric.layers.dense import Dense
from numeric.layers.layernorm import LayerNorm
from numeric.layers.output import Output
from numeric.layers.recurrent import Recurrent
from numeric.layers.reshape import Reshape
from numeric.layers.residual import Residual

__all__ = [
    "SECOND_VANISHES",
    "Attention",
    "Conv2D",
    "Dense",
    "Flatten",
    "Layer",
    "LayerNorm",
    "Output",
    "Recurrent",
    "Reshape",
    "Residual",
    "activation_names",
    "get_activation",
]
