"""Layers of :class:`numeric.network.Network`: each owns its forward, adjoint, tangent and
second-order terms through generated kernels (interface: :class:`Layer`)."""

from numeric.layers.base import Layer
from numeric.layers.dense import Dense
from numeric.layers.output import Output

__all__ = ["Dense", "Layer", "Output"]
