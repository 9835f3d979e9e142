"""Fully connected hidden layer ``v = A(w v_in [+ b])`` (Eq 10, Eq 10.b) with any shipped
activation.

Parameters: ``[w]`` with ``w`` of shape (d_out, d_in) (``ws[k-1]`` of
``docs/conventions.md``), then ``b`` (d_out,) when ``bias``.  Per sample: ``x``
(batch, d_in), ``v`` (batch, d_out).

Kernels (all generated): the pre-activation of Eq 10, the adjoint step C10 with
``delta = A'(z) vbar`` (C1-C2), the gradient C3 (= Eq 28), the tangent C4, the cross
term of C7, the B.3 term C11, for the SGD direction the low-rank forms L1 and L3, and
for per-variable CR the factored adjoints C42-C43 and the Hessian diagonal C44.
The ReLU (``A'' = 0``, Eq 29) is the case where :meth:`Dense.second_order` has nothing
to add and ``A''`` is never evaluated: a fast path of the same code.

A bias (derived, :mod:`numeric.kernels.bias`) adds its gradient ``delta`` (C24) and its
direction ``psi`` to the tangent (C25; for ``d = -grad F`` the direction L6); it adds no
cross term (C26).  It is initialised to zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from numeric.kernels import activations as act
from numeric.kernels import bias as bk
from numeric.kernels import contracted as ct
from numeric.kernels import feedforward as ff
from numeric.kernels._runtime import namespace
from numeric.layers.activation import get_activation
from numeric.layers.base import Layer

__all__ = ["Dense", "DenseCache"]


class DenseCache(NamedTuple):
    """``A'(z)`` and ``A''(z)`` (``None`` unless needed), each (batch, d_out), and
    whether ``A''`` vanishes identically (the ReLU: then ``a2`` is never computed)."""

    a1: object
    a2: object
    vanishes: bool


class DenseAdjoint(NamedTuple):
    """``delta = df/dz`` and ``vbar = df/dv`` per sample, each (batch, d_out)."""

    delta: object
    vbar: object


@dataclass(frozen=True)
class Dense(Layer):
    """A hidden layer of ``d_out`` units with an entry-wise ``activation``.

    Parameters
    ----------
    d_in, d_out : int
        Input and output widths.
    activation : str, default "relu"
        A name of :data:`numeric.kernels.activations.ACTIVATIONS`.
    bias : bool, default False
        Add a bias ``b`` (the paper's layers have none).
    """

    d_in: int
    d_out: int
    activation: str = "relu"
    bias: bool = False

    def __post_init__(self) -> None:
        get_activation(self.activation)
        if int(self.d_in) < 1 or int(self.d_out) < 1:
            raise ValueError(f"widths must be positive, got {self.d_in} -> {self.d_out}")

    @property
    def in_shape(self) -> tuple[int, ...]:
        return (self.d_in,)

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.d_out,)

    @property
    def param_shapes(self) -> list[tuple[int, ...]]:
        return [(self.d_out, self.d_in)] + ([(self.d_out,)] if self.bias else [])

    @property
    def second_vanishes(self) -> bool:
        return self.activation in act.SECOND_VANISHES

    # ------------------------------------------------------------------ passes
    def forward(self, params, x, second=True):
        z = ff.eq10_preactivation(w_k=params[0], v_km1=x)
        if self.bias:
            z = z + params[1]  # Eq 10.b
        v, a1, a2 = act.ACTIVATIONS[self.activation](z, second=second and not self.second_vanishes)
        return v, DenseCache(a1, a2, self.second_vanishes)

    def backward(self, params, x, cache, ybar, need_xbar=True):
        delta = cache.a1 * ybar
        grads = [ct.c3_grad_w(delta_k=delta, v_km1=x, reduce="mean")]
        if self.bias:
            grads.append(bk.c24_grad_bias(delta_k=delta, reduce="mean"))
        xbar = ct.c10_adjoint_v_step(delta_kp1=delta, w_kp1=params[0]) if need_xbar else None
        return xbar, DenseAdjoint(delta, ybar), grads

    def tangent(self, params, x, cache, xdot, dparams):
        zdot = ct.c4_tangent_source(phi_k=dparams[0], v_km1=x)
        if self.bias:
            zdot = zdot + dparams[1]  # C25
        if xdot is not None:
            zdot = zdot + ct.c4_tangent_propagate(w_k=params[0], vdot_km1=xdot)
        return cache.a1 * zdot, zdot

    def cross_term(self, params, x, cache, adjoint, xdot, dparams, reduce):
        if xdot is None:
            return None
        return ct.c7_layer_term(
            delta_k=adjoint.delta, phi_k=dparams[0], vdot_km1=xdot, reduce=reduce
        )

    def second_order(self, params, x, cache, adjoint, tangent, reduce):
        if cache.vanishes:
            return None
        if cache.a2 is None:
            raise ValueError("the forward pass did not keep A''; run it with second=True")
        return ct.c11_second_order_term(
            vbar_k=adjoint.vbar, a2_k=cache.a2, zdot_k=tangent, reduce=reduce
        )

    def propagate(self, params, x, cache, xdots):
        xp = namespace(xdots)
        stack, batch = xdots.shape[0], xdots.shape[1]
        zdot = ct.c4_tangent_propagate(
            vdot_km1=xp.reshape(xdots, (stack * batch, self.d_in)), w_k=params[0]
        )
        zdot = xp.reshape(zdot, (stack, batch, self.d_out))
        return cache.a1 * zdot, zdot

    def hessian_diagonal(self, params, x, cache, rbar, need_xbar=True, reduce="mean"):
        if not self.second_vanishes:
            raise NotImplementedError(
                f"the Hessian diagonal needs A'' = 0 (B.1); {self.activation} has A'' != 0"
            )
        rdelta = ct.c43_factored_adjoint_z(a1_k=cache.a1, rvbar_k=rbar)
        diag = [ct.c44_hessian_diag_w(v_km1=x, rdelta_k=rdelta, reduce=reduce)]
        if self.bias:  # the bias rule: C44 with the input 1
            ones = namespace(x).ones((x.shape[0], 1), dtype=x.dtype)
            diag.append(ct.c44_hessian_diag_w(v_km1=ones, rdelta_k=rdelta, reduce=reduce)[:, 0])
        xbar = ct.c42_factored_adjoint_v_step(rdelta_kp1=rdelta, w_kp1=params[0])
        return (xbar if need_xbar else None), diag

    # --------------------------------------------------- SGD direction (low rank)
    def lowrank_tangent(self, params, x, cache, adjoint, xdot, source=None):
        zdot = source
        if zdot is None:
            zdot = ct.l1_lowrank_tangent_source(Db_k=adjoint.delta, Vb_km1=x)
        if self.bias:
            zdot = zdot + bk.l6_lowrank_bias_direction(Db_k=adjoint.delta)
        if xdot is not None:
            zdot = zdot + ct.c4_tangent_propagate(w_k=params[0], vdot_km1=xdot)
        return cache.a1 * zdot, zdot

    def lowrank_cross(self, params, x, cache, adjoint, xdot):
        if xdot is None:
            return None
        return ct.l3_lowrank_curvature(Db_k=adjoint.delta, Vb_km1=x, Vdotb_km1=xdot)

    def stack_key(self):
        return ("dense", self.d_in) if self.d_in == self.d_out else None

    @classmethod
    def stacked_sources(cls, adjoints, inputs):
        xp = namespace(inputs[0])
        return ct.l1_lowrank_tangent_source_stacked(
            Db_k=xp.stack([a.delta for a in adjoints]), Vb_km1=xp.stack(inputs)
        )

    @classmethod
    def stacked_cross(cls, adjoints, inputs, xdots):
        xp = namespace(inputs[0])
        return ct.l3_lowrank_curvature_stacked(
            Db_k=xp.stack([a.delta for a in adjoints]),
            Vb_km1=xp.stack(inputs),
            Vdotb_km1=xp.stack(xdots),
        ).sum()

    def init(self, rng, bound: float, dtype) -> list:
        """Weights uniform in ``[-bound, bound]`` (Appendix A); the bias zero."""
        w = rng.uniform(-bound, bound, size=(self.d_out, self.d_in)).astype(dtype, copy=False)
        return [w] + ([np.zeros(self.d_out, dtype=dtype)] if self.bias else [])

    def describe(self) -> dict:
        out = {
            "type": "dense",
            "d_in": self.d_in,
            "d_out": self.d_out,
            "activation": self.activation,
        }
        if self.bias:
            out["bias"] = True
        return out
