"""The output layer of logits ``p = u v^(n)`` (Eq 13), followed by the softmax.

Parameters: ``[u]`` with ``u`` of shape (classes, d_in).  Per sample: ``x = v^(n)``
(batch, d_in), ``p`` (batch, classes).

Kernels (generated): Eq 13, the adjoint C10 (``u^T df/dp``), the gradient Eq 27, the
tangent C5, the output term of C7, for the SGD direction L2 and L4, and for
per-variable CR the u diagonal C21 and the top of the factored adjoint sweep C24.  The layer is
linear, so it has no second-order term of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

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
    """Logits of ``classes`` classes from ``d_in`` features (no activation, no bias)."""

    d_in: int
    classes: int

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
        return [(self.classes, self.d_in)]

    def forward(self, params, x, second=True):
        return ff.eq13_logits(u=params[0], v_n=x), None

    def backward(self, params, x, cache, ybar, need_xbar=True):
        grads = [ff.eq27_grad_u(dfdp=ybar, v_n=x, reduce="mean")]
        xbar = ct.c10_adjoint_v_top(dfdp=ybar, u=params[0]) if need_xbar else None
        return xbar, OutputAdjoint(ybar), grads

    def tangent(self, params, x, cache, xdot, dparams):
        pdot = ct.c5_omega_term(omega=dparams[0], v_n=x)
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
        xbar = ct.c24_factored_adjoint_v_top(rfac=rbar, u=params[0]) if need_xbar else None
        return xbar, diag

    def lowrank_tangent(self, params, x, cache, adjoint, xdot, source=None):
        pdot = ct.l2_lowrank_output_source(Pb=adjoint.dfdp, Vb_n=x)
        if xdot is not None:
            pdot = pdot + ct.c5_u_term(u=params[0], vdot_n=xdot)
        return pdot, None

    def lowrank_cross(self, params, x, cache, adjoint, xdot):
        if xdot is None:
            return None
        return ct.l4_lowrank_output_curvature(Pb=adjoint.dfdp, Vb_n=x, Vdotb_n=xdot)

    def describe(self) -> dict:
        return {"type": "output", "d_in": self.d_in, "classes": self.classes}
