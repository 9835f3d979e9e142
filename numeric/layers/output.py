"""The output layer of logits ``p = u v^(n) [+ c]`` (Eq 13, Eq 13.b), followed by the softmax.

Parameters: ``[u]`` with ``u`` of shape (classes, d_in), then ``c`` (classes,) when
``bias``.  Per sample: ``x = v^(n)`` (batch, d_in), ``p`` (batch, classes).

Kernels (generated): Eq 13, the adjoint C10 (``u^T df/dp``), the gradient Eq 27, the
tangent C5, the output term of C7 and, for the SGD direction, L2 and L4.  The layer is
linear, so it has no second-order term of its own.  A bias adds its gradient ``df/dp``
(Eq 27.b) and its direction to ``pdot`` (L7 for ``d = -grad F``), and no cross term.
For per-variable CR: the ``u`` diagonal C21 and the top of the factored adjoint sweep.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from numeric.kernels import bias as bk
from numeric.kernels import contracted as ct
from numeric.kernels import feedforward as ff
from numeric.kernels._runtime import namespace
from numeric.layers.base import Layer

__all__ = ["Output"]


class OutputAdjoint(NamedTuple):
    """``df/dp`` per sample, (batch, classes)."""

    dfdp: object


@dataclass(frozen=True)
class Output(Layer):
    """Logits of ``classes`` classes from ``d_in`` features (no activation; a bias when
    ``bias``)."""

    d_in: int
    classes: int
    bias: bool = False

    def __post_init__(self) -> None:
        if int(self.d_in) < 1 or int(self.classes) < 1:
            raise ValueError(f"widths must be positive, got {self.d_in} -> {self.classes}")

    @property
    def in_shape(self) -> tuple[int, ...]:
        return (self.d_in,)

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.classes,)

    @property
    def param_shapes(self) -> list[tuple[int, ...]]:
        return [(self.classes, self.d_in)] + ([(self.classes,)] if self.bias else [])

    def forward(self, params, x, second=True):
        p = ff.eq13_logits(u=params[0], v_n=x)
        return (p + params[1] if self.bias else p), None  # Eq 13.b

    def backward(self, params, x, cache, ybar, need_xbar=True):
        grads = [ff.eq27_grad_u(dfdp=ybar, v_n=x, reduce="mean")]
        if self.bias:
            grads.append(bk.eq27b_grad_c(dfdp=ybar, reduce="mean"))
        xbar = ct.c10_adjoint_v_top(dfdp=ybar, u=params[0]) if need_xbar else None
        return xbar, OutputAdjoint(ybar), grads

    def tangent(self, params, x, cache, xdot, dparams):
        pdot = ct.c5_omega_term(omega=dparams[0], v_n=x)
        if self.bias:
            pdot = pdot + dparams[1]
        if xdot is not None:
            pdot = pdot + ct.c5_u_term(u=params[0], vdot_n=xdot)
        return pdot, None

    def cross_term(self, params, x, cache, adjoint, xdot, dparams, reduce):
        if xdot is None:
            return None
        return ct.c7_output_term(dfdp=adjoint.dfdp, omega=dparams[0], vdot_n=xdot, reduce=reduce)

    def propagate(self, params, x, cache, xdots):
        xp = namespace(xdots)
        stack, batch = xdots.shape[0], xdots.shape[1]
        pdot = ct.c5_u_term(vdot_n=xp.reshape(xdots, (stack * batch, self.d_in)), u=params[0])
        return xp.reshape(pdot, (stack, batch, self.classes)), [None] * stack

    def hessian_diagonal(self, params, x, cache, rbar, need_xbar=True, reduce="mean"):
        diag = [ct.c21_hessian_diag_u(v_n=x, rfac=rbar, reduce=reduce)]
        if self.bias:  # the bias rule: C21 with the input 1
            ones = namespace(x).ones((x.shape[0], 1), dtype=x.dtype)
            diag.append(ct.c21_hessian_diag_u(v_n=ones, rfac=rbar, reduce=reduce)[:, 0])
        xbar = ct.c42_factored_adjoint_v_top(rfac=rbar, u=params[0]) if need_xbar else None
        return xbar, diag

    def lowrank_tangent(self, params, x, cache, adjoint, xdot, source=None):
        pdot = ct.l2_lowrank_output_source(Pb=adjoint.dfdp, Vb_n=x)
        if self.bias:
            pdot = pdot + bk.l7_lowrank_output_bias_direction(Pb=adjoint.dfdp)
        if xdot is not None:
            pdot = pdot + ct.c5_u_term(u=params[0], vdot_n=xdot)
        return pdot, None

    def lowrank_cross(self, params, x, cache, adjoint, xdot):
        if xdot is None:
            return None
        return ct.l4_lowrank_output_curvature(Pb=adjoint.dfdp, Vb_n=x, Vdotb_n=xdot)

    def init(self, rng, bound: float, dtype) -> list:
        """Weights uniform in ``[-bound, bound]`` (Appendix A); the bias zero."""
        u = rng.uniform(-bound, bound, size=(self.classes, self.d_in)).astype(dtype, copy=False)
        return [u] + ([np.zeros(self.classes, dtype=dtype)] if self.bias else [])

    def describe(self) -> dict:
        out = {"type": "output", "d_in": self.d_in, "classes": self.classes}
        if self.bias:
            out["bias"] = True
        return out
