"""The interface every layer of a :class:`numeric.network.Network` implements.

A layer is plain, immutable data (its sizes and activation); its weights live in the
network's flat parameter list, and every method receives this layer's slice of it.
Each layer is the one place that knows its derivatives (BackPACK's "one small part per
quantity and layer"): the network's drivers only call the methods below, in order, and
never branch on the layer's type or activation.

Per-sample arrays carry a leading batch axis.  The directional quantities along a
direction ``d`` (one array per parameter, like the gradient) are assembled from

* the forward pass: ``forward(params, x) -> (y, cache)``;
* the adjoint sweep: ``backward(params, x, cache, ybar) -> (xbar, adjoint, grads)``
  with ``ybar = df/dy`` per sample and ``grads`` the batch-mean gradient;
* the tangent sweep: ``tangent(params, x, cache, xdot, dparams) -> (ydot, tangent)``,
  the derivative of the output along ``d`` (``xdot`` is ``None`` for the first layer);
* the layer's own second-order terms of ``d^T H d``: ``cross_term`` (twice the
  mixed derivative of the layer map, weights against input) and ``second_order``
  (``A''`` of its activation; zero for the ReLU);
* for the CR variants: ``propagate`` (a stack of input tangents carried through the
  layer, per-layer CR) and ``hessian_diagonal`` (the factored adjoint sweep C42-C43 and
  the layer's Hessian diagonal C21/C44, per-variable CR).

``d^T H d = pdot^T (d2f/dp2) pdot + sum over layers (cross_term + second_order)``
(Eqs 39 and 80 contracted: C6, C7, C11).  For the SGD direction ``d = -grad F`` the
``lowrank_*`` methods apply the mini-batch gradient through its per-sample factors
(L1-L4) instead of forming it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from numeric.kernels._runtime import namespace

__all__ = ["Layer"]


class Layer(ABC):
    """One layer: sizes and activation as plain data, derivatives as methods."""

    if TYPE_CHECKING:  # a dataclass field in some layers, a property in others

        @property
        def in_shape(self) -> tuple[int, ...]:
            """Input shape of one sample, e.g. ``(784,)`` or ``(1, 28, 28)``."""

        @property
        def out_shape(self) -> tuple[int, ...]:
            """Output shape of one sample, e.g. ``(10,)``."""

    @property
    @abstractmethod
    def param_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of this layer's parameter arrays, in the network's order."""

    @property
    def n_params(self) -> int:
        """Number of parameter arrays."""
        return len(self.param_shapes)

    @property
    def second_vanishes(self) -> bool:
        """Whether ``A'' = 0`` (no :meth:`second_order` term)."""
        return True

    @abstractmethod
    def forward(self, params: list, x, second: bool = True) -> tuple[Any, Any]:
        """Output ``y`` (batch, *out_shape) and a cache for the other methods."""

    @abstractmethod
    def backward(self, params: list, x, cache, ybar, need_xbar: bool = True):
        """``(xbar, adjoint, grads)``: ``df/dx`` per sample (``None`` when not needed),
        what :meth:`cross_term`/:meth:`second_order` read, and the batch-mean gradient
        of this layer's parameters."""

    @abstractmethod
    def tangent(self, params: list, x, cache, xdot, dparams: list):
        """``(ydot, tangent)``: the derivative of ``y`` along ``(xdot, dparams)``."""

    def cross_term(self, params, x, cache, adjoint, xdot, dparams, reduce: str):
        """Twice the mixed (weights, input) second derivative along the direction."""
        return None

    def second_order(self, params, x, cache, adjoint, tangent, reduce: str):
        """``ybar . A''(z) zdot^2`` (C11); ``None`` when ``A'' = 0``."""
        return None

    @abstractmethod
    def lowrank_tangent(self, params: list, x, cache, adjoint, xdot, source=None):
        """``(ydot, tangent)`` along ``d = -grad F`` of this layer (L1, L2); ``source``
        is this layer's precomputed tangent source (from :meth:`stacked_sources`)."""

    @abstractmethod
    def lowrank_cross(self, params: list, x, cache, adjoint, xdot):
        """Cross term along ``d = -grad F`` without the factor ``2 / batch`` (L3, L4)."""

    def propagate(self, params: list, x, cache, xdots):
        """``(ydots, tangents)``: derivatives of ``y`` along input tangents alone (no
        parameter direction), for a stack of them.

        ``xdots`` has shape (stack, batch, *in_shape); ``ydots`` (stack, batch,
        *out_shape); ``tangents[s]`` is the tangent record of entry ``s`` (what
        :meth:`second_order` reads).  Per-layer CR carries each layer's own tangent up
        the stack with it.  The default runs :meth:`tangent` once per entry with a
        zero parameter direction; layers override it with one batched call.
        """
        xp = namespace(xdots)
        zero = [xp.zeros_like(p) for p in params]
        outs = [self.tangent(params, x, cache, xdots[s], zero) for s in range(xdots.shape[0])]
        return xp.stack([o[0] for o in outs]), [o[1] for o in outs]

    def hessian_diagonal(self, params: list, x, cache, rbar, need_xbar: bool = True,
                         reduce: str = "mean"):  # fmt: skip
        """``(xbar_rows, diagonals)``: the factored adjoint sweep (C42-C43) one layer down
        and the diagonal of the Hessian for this layer's parameters (C21, C44).

        ``rbar`` (batch, rows, *out_shape) is ``R dp/dy`` of this layer's output, one
        row per row of the factor ``R`` of ``d2f/dp2`` (C15); ``xbar_rows`` the same for
        its input (``None`` when not needed).  Exact when no layer of the network has
        ``A'' != 0`` (the Gauss-Newton diagonal otherwise, which callers refuse).
        """
        raise NotImplementedError(
            f"the Hessian diagonal is not derived for {type(self).__name__} layers"
        )

    def stack_key(self):
        """Layers with equal non-``None`` keys may be evaluated as one stack by
        :meth:`stacked_sources` and :meth:`stacked_cross` (the low-rank SGD terms)."""
        return None

    @classmethod
    def stacked_sources(cls, adjoints: list, inputs: list):
        """Low-rank tangent sources of a stack of layers, stacked on a leading axis."""
        raise NotImplementedError

    @classmethod
    def stacked_cross(cls, adjoints: list, inputs: list, xdots: list):
        """Sum of the low-rank cross terms of a stack of layers."""
        raise NotImplementedError

    def init(self, rng, bound: float, dtype) -> list:
        """Parameters drawn uniform in ``[-bound, bound]`` (Appendix A), in order."""
        return [
            rng.uniform(-bound, bound, size=s).astype(dtype, copy=False) for s in self.param_shapes
        ]

    def describe(self) -> dict:
        """Plain-data description (stored in checkpoints and configs)."""
        raise NotImplementedError
