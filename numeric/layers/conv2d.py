"""Convolutional layer ``v = A(z . w [+ b])`` (Eqs 45-46 with channels), and :class:`Flatten`.

Parameters: ``[w]`` with ``w`` of shape (O, C, K_h, K_w), then ``b`` (O,) when ``bias``.
Per sample: input ``x`` (batch, C, H, W), patches ``z`` (batch, C, S, T, K_h, K_w) (Eq 45
corrected: ``z[c, s, t, l, k] = x[c, sigma s + l, tau t + k]``, positions from 0), output
``v`` (batch, O, S, T) with ``S = (H - K_h) // sigma + 1`` and ``T = (W - K_w) // tau + 1``
(a VALID cross-correlation, no padding).

Kernels (generated): the pre-activation of Eq 46.mc, the tangent C12 (kernels) and C28
(input), the kernel gradient C13, the bias gradient C32, the patch adjoint C30, the cross
term C29 of a layer fed by another layer and the layer's own second-order term C14 (their
sum with the full tangent is C33).  The patches are a gather along static index grids (the
entries of Eq 45), and the input adjoint C31 (Eq 48's selection tensor applied to the patch
adjoint) is its transpose: a scatter-add of the ``K_h K_w`` strided slices of the patch
adjoint, which never forms the (S, T, K_h, K_w, H, W) selection tensor.  Both run on NumPy
and JAX arrays (on JAX as functional ``.at[].add`` updates).

For the SGD direction ``d = -grad F`` the direction is the formed gradient: its rank per
layer is up to ``batch * S * T``, more than its sizes, so the low-rank factors of the dense
layers would cost more than the dense kernel gradient the adjoint sweep has already formed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np

from numeric.kernels import activations as act
from numeric.kernels import convolution as cv
from numeric.kernels import stacking as st
from numeric.kernels._runtime import namespace
from numeric.layers.activation import get_activation
from numeric.layers.base import Layer

__all__ = ["Conv2D", "ConvCache", "Flatten", "output_size"]


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
    """``delta = df/d(z . w)`` and ``vbar = df/dv``, each (batch, O, S, T), and the
    batch-mean gradient (kept for the SGD direction)."""

    delta: object
    vbar: object
    grads: list


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
    bias : bool, default False
        One bias per output channel (initialised to zero).
    """

    in_shape: tuple
    out_channels: int
    kernel: tuple
    stride: tuple = (1, 1)
    activation: str = "relu"
    bias: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_shape", tuple(int(s) for s in self.in_shape))
        object.__setattr__(self, "kernel", tuple(int(s) for s in self.kernel))
        object.__setattr__(self, "stride", tuple(int(s) for s in self.stride))
        if len(self.in_shape) != 3:
            raise ValueError(f"in_shape must be (C, H, W), got {self.in_shape}")
        if len(self.kernel) != 2 or len(self.stride) != 2:
            raise ValueError(f"kernel and stride take two sizes, got {self.kernel}, {self.stride}")
        get_activation(self.activation)
        if int(self.out_channels) < 1 or min(self.in_shape) < 1:
            raise ValueError(
                f"channels and sizes must be positive, got {self.in_shape} -> {self.out_channels}"
            )
        _, h, w = self.in_shape
        output_size(h, w, *self.kernel, *self.stride)

    @property
    def out_shape(self) -> tuple[int, ...]:
        _, h, w = self.in_shape
        return (int(self.out_channels), *output_size(h, w, *self.kernel, *self.stride))

    @property
    def param_shapes(self) -> list[tuple[int, ...]]:
        o = int(self.out_channels)
        return [(o, self.in_shape[0], *self.kernel)] + ([(o,)] if self.bias else [])

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

    def _window(self, l: int, k: int) -> tuple[slice, slice]:  # noqa: E741
        """The strided input rows and columns that kernel position ``(l, k)`` reads."""
        _, s, t = self.out_shape
        sigma, tau = self.stride
        return slice(l, l + sigma * (s - 1) + 1, sigma), slice(k, k + tau * (t - 1) + 1, tau)

    def patches(self, x):
        """Patches ``z`` (batch, C, S, T, K_h, K_w) of ``x`` (batch, C, H, W) (Eq 45)."""
        rows, cols = self._grid
        return x[:, :, rows, cols]

    def fold(self, zbar):
        """The transpose of :meth:`patches` (C31): ``xbar`` (batch, C, H, W) from a patch
        adjoint ``zbar`` (batch, C, S, T, K_h, K_w), one strided add per kernel position."""
        xp = namespace(zbar)
        kh, kw = self.kernel
        shape = (zbar.shape[0], *self.in_shape)
        xbar = xp.zeros(shape, dtype=zbar.dtype)
        for l in range(kh):  # noqa: E741
            for k in range(kw):
                rs, cs = self._window(l, k)
                if xp is np:
                    xbar[:, :, rs, cs] += zbar[..., l, k]
                else:
                    xbar = xbar.at[:, :, rs, cs].add(zbar[..., l, k])
        return xbar

    def _bias(self, b):
        return b[:, None, None]

    # ------------------------------------------------------------------ passes
    def forward(self, params, x, second=True):
        z = self.patches(x)
        pre = cv.eq46mc_preactivation(mw=params[0], mz=z)
        if self.bias:
            pre = pre + self._bias(params[1])  # Eq 46.b
        v, a1, a2 = act.ACTIVATIONS[self.activation](
            pre, second=second and not self.second_vanishes
        )
        return v, ConvCache(z, a1, a2, self.second_vanishes)

    def backward(self, params, x, cache, ybar, need_xbar=True):
        delta = cache.a1 * ybar
        grads = [cv.c13_conv_grad_w(mdelta=delta, mz=cache.z, reduce="mean")]
        if self.bias:
            grads.append(st.c32_conv_grad_bias(mdelta=delta, reduce="mean"))
        xbar = None
        if need_xbar:
            xbar = self.fold(st.c30_conv_patch_adjoint(mdelta=delta, mw=params[0]))
        return xbar, ConvAdjoint(delta, ybar, grads), grads

    def tangent(self, params, x, cache, xdot, dparams):
        zdot = cv.c12_conv_tangent(mphi=dparams[0], mz=cache.z)
        if self.bias:
            zdot = zdot + self._bias(dparams[1])
        if xdot is not None:
            zdot = zdot + st.c28_conv_input_tangent(mw=params[0], mzx=self.patches(xdot))
        return cache.a1 * zdot, zdot

    def cross_term(self, params, x, cache, adjoint, xdot, dparams, reduce):
        if xdot is None:
            return None
        return st.c29_conv_cross_term(
            mdelta=adjoint.delta, mphi=dparams[0], mzx=self.patches(xdot), reduce=reduce
        )

    def second_order(self, params, x, cache, adjoint, tangent, reduce):
        if cache.vanishes:
            return None
        if cache.a2 is None:
            raise ValueError("the forward pass did not keep A''; run it with second=True")
        return cv.c14_conv_second_order_term(
            mvbar=adjoint.vbar, ma2=cache.a2, mzdot=tangent, reduce=reduce
        )

    def lowrank_tangent(self, params, x, cache, adjoint, xdot, source=None):
        return self.tangent(params, x, cache, xdot, [-g for g in adjoint.grads])

    def lowrank_cross(self, params, x, cache, adjoint, xdot):
        if xdot is None:
            return None
        mean = self.cross_term(params, x, cache, adjoint, xdot, [-adjoint.grads[0]], "mean")
        return mean * (adjoint.delta.shape[0] / 2.0)

    def init(self, rng, bound: float, dtype) -> list:
        """Kernels uniform in ``[-bound, bound]`` (Appendix A); the bias zero."""
        w = rng.uniform(-bound, bound, size=self.param_shapes[0]).astype(dtype, copy=False)
        return [w] + ([np.zeros(int(self.out_channels), dtype=dtype)] if self.bias else [])

    def describe(self) -> dict:
        out = {
            "type": "conv2d",
            "in_shape": list(self.in_shape),
            "out_channels": int(self.out_channels),
            "kernel": list(self.kernel),
            "stride": list(self.stride),
            "activation": self.activation,
        }
        if self.bias:
            out["bias"] = True
        return out


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
