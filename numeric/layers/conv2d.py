"""Convolutional layer ``v = A(z . w)`` (Eqs 45-46 with channels), and :class:`Flatten`.

Parameters: ``[w]`` with ``w`` of shape (O, C, K_h, K_w).  Per sample: input ``x``
(batch, C, H, W), patches ``z`` (batch, C, S, T, K_h, K_w) (Eq 45 corrected:
``z[c, s, t, l, k] = x[c, sigma s + l, tau t + k]``, positions from 0), output ``v``
(batch, O, S, T) with ``S = (H - K_h) // sigma + 1`` and ``T = (W - K_w) // tau + 1``
(a VALID cross-correlation).

Kernels (generated): the pre-activation of Eq 46, the tangent C12, the kernel gradient
C13 and the layer's own second-order term C14.  The patches are a gather along static
index grids (the same entries as the generated entry-wise Eq 45, checked in the tests),
so the layer runs on NumPy and JAX alike.

This layer stands first in a stack (its input is data): the cross term of a conv layer
fed by another layer's tangent is not derived yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np

from numeric.kernels import activations as act
from numeric.kernels import convolution as cv
from numeric.kernels._runtime import namespace
from numeric.layers.activation import get_activation
from numeric.layers.base import Layer

__all__ = ["Conv2D", "ConvCache", "Flatten"]


def output_size(h: int, w: int, kh: int, kw: int, sigma: int, tau: int) -> tuple[int, int]:
    """``(S, T)`` of a VALID convolution; ``ValueError`` when the kernel does not fit."""
    for name, val in (("sigma", sigma), ("tau", tau), ("K_h", kh), ("K_w", kw)):
        if int(val) != val or val < 1:
            raise ValueError(f"{name} must be a positive integer, got {val!r}")
    if kh > h or kw > w:
        raise ValueError(f"a {kh} x {kw} kernel does not fit a {h} x {w} input")
    return (h - kh) // sigma + 1, (w - kw) // tau + 1


class ConvCache(NamedTuple):
    """Patches ``z`` and ``A'``, ``A''`` of the pre-activation (batch, O, S, T)."""

    z: object
    a1: object
    a2: object
    vanishes: bool


class ConvAdjoint(NamedTuple):
    """``delta = df/d(z . w)`` and ``vbar = df/dv``, each (batch, O, S, T)."""

    delta: object
    vbar: object


@dataclass(frozen=True)
class Conv2D(Layer):
    """``out_channels`` kernels of ``kernel`` over a (channels, height, width) input.

    Parameters
    ----------
    in_shape : tuple (C, H, W)
    out_channels : int
    kernel : tuple (K_h, K_w)
    stride : tuple (sigma, tau), default (1, 1)
    activation : str, default "relu"
    """

    in_shape: tuple
    out_channels: int
    kernel: tuple
    stride: tuple = (1, 1)
    activation: str = "relu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_shape", tuple(int(s) for s in self.in_shape))
        object.__setattr__(self, "kernel", tuple(int(s) for s in self.kernel))
        object.__setattr__(self, "stride", tuple(int(s) for s in self.stride))
        if len(self.in_shape) != 3:
            raise ValueError(f"in_shape must be (C, H, W), got {self.in_shape}")
        get_activation(self.activation)
        if int(self.out_channels) < 1:
            raise ValueError(f"out_channels must be positive, got {self.out_channels}")
        _, h, w = self.in_shape
        output_size(h, w, *self.kernel, *self.stride)

    @property
    def out_shape(self) -> tuple[int, ...]:
        _, h, w = self.in_shape
        return (int(self.out_channels), *output_size(h, w, *self.kernel, *self.stride))

    @property
    def param_shapes(self) -> list[tuple[int, ...]]:
        return [(int(self.out_channels), self.in_shape[0], *self.kernel)]

    @property
    def second_vanishes(self) -> bool:
        return self.activation in act.SECOND_VANISHES

    @cached_property
    def _grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Static row and column index grids of the patches, each (S, T, K_h, K_w)."""
        _, s, t = self.out_shape
        kh, kw = self.kernel
        sigma, tau = self.stride
        rows = sigma * np.arange(s)[:, None, None, None] + np.arange(kh)[None, None, :, None]
        cols = tau * np.arange(t)[None, :, None, None] + np.arange(kw)[None, None, None, :]
        shape = (s, t, kh, kw)
        return np.broadcast_to(rows, shape).copy(), np.broadcast_to(cols, shape).copy()

    def patches(self, x):
        """Patches ``z`` (batch, C, S, T, K_h, K_w) of ``x`` (batch, C, H, W) (Eq 45)."""
        rows, cols = self._grid
        return x[:, :, rows, cols]

    def forward(self, params, x, second=True):
        z = self.patches(x)
        pre = cv.eq46mc_preactivation(mw=params[0], mz=z)
        v, a1, a2 = act.ACTIVATIONS[self.activation](
            pre, second=second and not self.second_vanishes
        )
        return v, ConvCache(z, a1, a2, self.second_vanishes)

    def backward(self, params, x, cache, ybar, need_xbar=True):
        delta = cache.a1 * ybar
        grads = [cv.c13_conv_grad_w(mdelta=delta, mz=cache.z, reduce="mean")]
        xbar = None
        if need_xbar:
            xp = namespace(x)
            rows, cols = self._grid
            contrib = xp.einsum("bost,ocij->bcstij", delta, params[0])
            if xp is np:
                xbar = np.zeros_like(x)
                np.add.at(xbar, (slice(None), slice(None), rows, cols), contrib)
            else:
                xbar = xp.zeros_like(x).at[:, :, rows, cols].add(contrib)
        return xbar, ConvAdjoint(delta, ybar), grads

    def tangent(self, params, x, cache, xdot, dparams):
        zdot = cv.c12_conv_tangent(mphi=dparams[0], mz=cache.z)
        if xdot is not None:
            raise NotImplementedError("a conv layer fed by another layer is not supported yet")
        return cache.a1 * zdot, zdot

    def second_order(self, params, x, cache, adjoint, tangent, reduce):
        if cache.vanishes:
            return None
        return cv.c14_conv_second_order_term(
            mvbar=adjoint.vbar, ma2=cache.a2, mzdot=tangent, reduce=reduce
        )

    def lowrank_tangent(self, params, x, cache, adjoint, xdot, source=None):
        # the per-sample gradient of a conv layer has rank up to S * T: applying the
        # batch-mean gradient as a dense direction is cheaper than its B x (S T) factors
        grad = cv.c13_conv_grad_w(mdelta=adjoint.delta, mz=cache.z, reduce="mean")
        return self.tangent(params, x, cache, xdot, [-grad])

    def lowrank_cross(self, params, x, cache, adjoint, xdot):
        if xdot is not None:
            raise NotImplementedError("a conv layer fed by another layer is not supported yet")
        return None

    def describe(self) -> dict:
        return {
            "type": "conv2d",
            "in_shape": list(self.in_shape),
            "out_channels": int(self.out_channels),
            "kernel": list(self.kernel),
            "stride": list(self.stride),
            "activation": self.activation,
        }


@dataclass(frozen=True)
class Flatten(Layer):
    """Reshape (batch, *in_shape) to (batch, prod(in_shape)) in C order; no parameters."""

    in_shape: tuple

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_shape", tuple(int(s) for s in self.in_shape))

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (int(np.prod(self.in_shape)),)

    @property
    def param_shapes(self) -> list[tuple[int, ...]]:
        return []

    def _flat(self, a):
        return namespace(a).reshape(a, (a.shape[0], -1))

    def forward(self, params, x, second=True):
        return self._flat(x), None

    def backward(self, params, x, cache, ybar, need_xbar=True):
        xbar = namespace(ybar).reshape(ybar, (ybar.shape[0], *self.in_shape)) if need_xbar else None
        return xbar, None, []

    def tangent(self, params, x, cache, xdot, dparams):
        return (None if xdot is None else self._flat(xdot)), None

    def lowrank_tangent(self, params, x, cache, adjoint, xdot, source=None):
        return self.tangent(params, x, cache, xdot, [])

    def propagate(self, params, x, cache, xdots):
        xp = namespace(xdots)
        return xp.reshape(xdots, (*xdots.shape[:2], -1)), [None] * xdots.shape[0]

    def hessian_diagonal(self, params, x, cache, rbar, need_xbar=True, reduce="mean"):
        xp = namespace(rbar)
        xbar = xp.reshape(rbar, (*rbar.shape[:2], *self.in_shape)) if need_xbar else None
        return xbar, []

    def lowrank_cross(self, params, x, cache, adjoint, xdot):
        return None

    def describe(self) -> dict:
        return {"type": "flatten", "in_shape": list(self.in_shape)}
