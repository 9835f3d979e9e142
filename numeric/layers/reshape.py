"""A parameter-free change of a sample's shape (C order), e.g. the (O, S, T) output of a
conv layer read as S * O steps of T features by a :class:`~numeric.layers.Recurrent` layer.

Its derivatives are the same reshape: adjoint and tangent are reshaped back and forth; it
has no curvature terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from numeric.kernels._runtime import namespace
from numeric.layers.base import Layer

__all__ = ["Reshape"]


@dataclass(frozen=True)
class Reshape(Layer):
    """Reshape (batch, *in_shape) to (batch, *out_shape); the sizes must agree."""

    in_shape: tuple
    out_shape: tuple

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_shape", tuple(int(s) for s in self.in_shape))
        object.__setattr__(self, "out_shape", tuple(int(s) for s in self.out_shape))
        if int(np.prod(self.in_shape)) != int(np.prod(self.out_shape)):
            raise ValueError(f"cannot reshape {self.in_shape} to {self.out_shape}")

    @property
    def param_shapes(self) -> list[tuple[int, ...]]:
        return []

    def _to(self, a, shape):
        return None if a is None else namespace(a).reshape(a, (a.shape[0], *shape))

    def forward(self, params, x, second=True):
        return self._to(x, self.out_shape), None

    def backward(self, params, x, cache, ybar, need_xbar=True):
        return (self._to(ybar, self.in_shape) if need_xbar else None), None, []

    def tangent(self, params, x, cache, xdot, dparams):
        return self._to(xdot, self.out_shape), None

    def lowrank_tangent(self, params, x, cache, adjoint, xdot, source=None):
        return self.tangent(params, x, cache, xdot, [])

    def propagate(self, params, x, cache, xdots):
        xp = namespace(xdots)
        return xp.reshape(xdots, (*xdots.shape[:2], *self.out_shape)), [None] * xdots.shape[0]

    def hessian_diagonal(self, params, x, cache, rbar, need_xbar=True, reduce="mean"):
        xp = namespace(rbar)
        xbar = xp.reshape(rbar, (*rbar.shape[:2], *self.in_shape)) if need_xbar else None
        return xbar, []

    def lowrank_cross(self, params, x, cache, adjoint, xdot):
        return None

    def describe(self) -> dict:
        return {
            "type": "reshape",
            "in_shape": list(self.in_shape),
            "out_shape": list(self.out_shape),
        }
