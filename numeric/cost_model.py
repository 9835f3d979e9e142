"""Multiply-add model of the two routes to ``d^T H d`` along ``d = -grad F``, per layer.

For the SGD direction every layer with parameters adds two things to the tangent sweep:
its tangent *source* ``(d/dtheta y) d`` and, when a tangent arrives from below, its
*cross term* (C7's layer term, twice the mixed weights-input derivative along ``d``).
Both can be computed two ways, with equal results up to rounding:

``"gram"``
    From the per-sample factors of the mini-batch gradient (L1-L4), contracting sample
    against sample; the gradient is never applied as a matrix.  For a dense layer
    ``d_in -> d_out`` (the output layer: ``d_out`` = classes) on a batch of ``B``:

    * L1 / L2 (source): the Gram ``V V^T`` (``B^2 d_in``), then its product with the
      adjoints (``B^2 d_out``);
    * L3 / L4 (cross term): the Grams ``Delta Delta^T`` (``B^2 d_out``) and
      ``V Vdot^T`` (``B^2 d_in``).

    ``2 B^2 (d_in + d_out)`` multiply-adds in all (``B^2 (d_in + d_out)`` for the first
    layer, which has no cross term).  The kernels run along numpy's greedy contraction
    path, which for ``B`` above the widths contracts the other way (it forms the
    gradient again, ``2 B d_in d_out`` per kernel); a kernel's count is the smaller of
    the two.
``"dense"``
    From the mini-batch gradient the adjoint sweep has already formed (C3, Eq 27),
    applied as a matrix: C4 / C5 for the source (``B d_in d_out``) and C7's layer or
    output term for the cross term (``B d_in d_out``): ``2 B d_in d_out``.

Either way the layer also propagates the incoming tangent (C4 / C5 ``w vdot``,
``B d_in d_out``): the *shared* work.  So the Gram route is the cheaper one exactly when

    B (d_in + d_out) < d_in d_out          (square layers: B < width / 2),

and :func:`choose` picks it there, per layer.  Conv and recurrent layers have only the
dense route (their gradient's rank per layer, ``B S T`` or ``B T``, exceeds their
sizes, so a Gram form would cost more; none is implemented):

* conv (``O`` kernels of ``C x K_h x K_w`` over ``S x T`` positions; ``f = B S T O C K_h
  K_w``): source C12 ``f``, cross term C29 ``f``, shared input tangent C28 ``f``;
* recurrent (width ``h``, ``T`` steps, ``d_in`` features per step; ``i = h d_in`` for
  a sequence, else 0): sources C39 ``B T (h^2 + i)`` and the step-pair terms C41
  ``B T h^2`` (and ``B T i`` for the input term when fed by a layer); shared the
  propagation C40 ``B h^2 (T - 1)`` (``T`` steps for the paper's layer) and the input
  tangent C39 ``B T i`` when fed by a layer.

The SGD step's own work is counted the same way (forward Eq 10 / 13 / 46 / 58.s, the
gradient C3 / Eq 27 / C13 / C35-C36, the input adjoint C10 / C30 / C38 above the first
layer), so ``(sgd + shared + route) / sgd`` is the multiply-add floor of a CR step
against an SGD step.  Entry-wise work (activations, ``A''`` terms, biases) is left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

from numeric.layers import Attention, Conv2D, Dense, Output, Recurrent, Residual

__all__ = [
    "DENSE",
    "GRAM",
    "ROUTES",
    "LayerCost",
    "choose",
    "cr_cost",
    "layer_costs",
    "resolve",
    "sgd_cost",
]

GRAM = "gram"
DENSE = "dense"
#: what ``routes=`` of :func:`numeric.curvature.sgd_curvature` accepts as one word
ROUTES = (GRAM, DENSE, "auto")


class LayerCost(NamedTuple):
    """Multiply-adds of one layer on one batch (module docstring).

    ``gram`` is ``None`` for a layer without a Gram route (conv, recurrent, and layers
    without parameters, whose counts are all zero).
    """

    forward: int
    backward: int
    shared: int
    dense: int
    gram: int | None

    @property
    def sgd(self) -> int:
        """Forward and adjoint sweep: what an SGD step multiplies."""
        return self.forward + self.backward

    def route(self, name: str) -> int:
        """The CR work of this layer on route ``name`` (the dense one where it has no
        Gram route), shared work included."""
        if name == GRAM and self.gram is not None:
            return self.shared + self.gram
        return self.shared + self.dense

    @property
    def cheaper(self) -> str:
        """``"gram"`` where that route exists and costs less than the dense one."""
        return GRAM if self.gram is not None and self.gram < self.dense else DENSE


def _matrix(d_in: int, d_out: int, batch: int, first: bool) -> LayerCost:
    f = batch * d_in * d_out
    gram_source = min(batch * batch * (d_in + d_out), 2 * f)  # L1 / L2
    gram_cross = 0 if first else min(batch * batch * (d_in + d_out), 2 * f)  # L3 / L4
    return LayerCost(
        forward=f,
        backward=f if first else 2 * f,  # C3 / Eq 27, and C10 above the first layer
        shared=0 if first else f,  # C4 / C5 propagation of the incoming tangent
        dense=f if first else 2 * f,  # C4 / C5 source, C7 term
        gram=gram_source + gram_cross,
    )


def _layer(layer, batch: int, first: bool) -> LayerCost:
    if isinstance(layer, Dense):
        return _matrix(layer.d_in, layer.d_out, batch, first)
    if isinstance(layer, Output):
        return _matrix(layer.d_in, layer.classes, batch, first)
    if isinstance(layer, Conv2D):
        o, s, t = layer.out_shape
        f = batch * o * s * t * layer.in_shape[0] * layer.kernel[0] * layer.kernel[1]
        return LayerCost(
            forward=f,  # Eq 46.mc
            backward=f if first else 2 * f,  # C13, and C30 above the first layer
            shared=0 if first else f,  # C28
            dense=f if first else 2 * f,  # C12, C29
            gram=None,
        )
    if isinstance(layer, Recurrent):
        h, steps = layer.width, layer.steps
        inp = h * layer.d_in if layer.sequence else 0
        ww = h * h * (steps - 1 if layer.sequence else steps)
        fed = 0 if first else steps * inp
        return LayerCost(
            forward=batch * (steps * inp + ww),  # C34, Eq 10 per step
            backward=batch * (steps * (h * h + inp) + ww + fed),  # C35-C36, C10, C38
            shared=batch * (ww + fed),  # C40, C39's input tangent
            dense=batch * (steps * (h * h + inp) + steps * h * h + fed),  # C39, C41
            gram=None,
        )
    if isinstance(layer, Residual):
        f = batch * layer.d * layer.d
        return LayerCost(
            forward=f,  # z = w v + b
            backward=f if first else 2 * f,  # A.residual.wbar (and .vbar)
            shared=0 if first else f,  # A.residual.zdot's w vdot
            dense=f if first else 2 * f,  # A.residual.zdot's phi v, .curvature's cross term
            gram=None,
        )
    if isinstance(layer, Attention):
        t, d, k = layer.tokens, layer.d, layer.d_k
        proj, score = batch * 3 * t * d * k, batch * 2 * t * t * k  # q, key, val; s, p val
        return LayerCost(
            forward=proj + score,
            # A.attention.{pbar,valbar,keybar,qbar}, the three gradients (and .xbar)
            backward=2 * score + proj + (0 if first else proj),
            shared=0 if first else proj,  # the tangents' w xdot
            # the tangents' phi x, sdot and ydot, .curvature's bilinear terms
            dense=proj + 3 * score + (0 if first else proj),
            gram=None,
        )
    # no parameters (flatten, reshape) or entry-wise work only (LayerNorm's scale, shift)
    return LayerCost(0, 0, 0, 0, None)


def layer_costs(layers: Sequence, batch: int) -> list[LayerCost]:
    """One :class:`LayerCost` per layer for a batch of ``batch``; the first layer with
    parameters (no tangent arrives from below) has no cross term, shared work or input
    adjoint."""
    out, first = [], True
    for layer in layers:
        out.append(_layer(layer, int(batch), first))
        first = first and not layer.n_params
    return out


def choose(layers: Sequence, batch: int) -> tuple[str, ...]:
    """The cheaper route of every layer (``"gram"`` or ``"dense"``)."""
    return tuple(c.cheaper for c in layer_costs(layers, int(batch)))


def resolve(layers: Sequence, batch: int, routes: str | Sequence[str]) -> tuple[str, ...]:
    """One route per layer from ``routes``: ``"gram"`` (every layer that has it),
    ``"dense"``, ``"auto"`` (:func:`choose`) or a sequence of one route per layer.

    A layer without a Gram route runs the dense one whatever is asked.  Cached per
    (layers, batch, routes): a training step asks once per shape.
    """
    key = routes if isinstance(routes, str) else tuple(routes)
    return _resolve(tuple(layers), int(batch), key)


@lru_cache(maxsize=256)
def _resolve(layers: tuple, batch: int, routes: str | tuple) -> tuple[str, ...]:
    if isinstance(routes, str):
        if routes not in ROUTES:
            raise ValueError(f"routes must be one of {', '.join(ROUTES)}, got {routes!r}")
        if routes == "auto":
            return choose(layers, batch)
        routes = (routes,) * len(layers)
    if len(routes) != len(layers):
        raise ValueError(f"routes has {len(routes)} entries, the network {len(layers)} layers")
    bad = sorted({r for r in routes if r not in (GRAM, DENSE)})
    if bad:
        raise ValueError(f"a layer's route must be 'gram' or 'dense', got {', '.join(bad)}")
    costs = layer_costs(layers, batch)
    return tuple(GRAM if r == GRAM and c.gram is not None else DENSE
                 for r, c in zip(routes, costs, strict=True))  # fmt: skip


def sgd_cost(layers: Sequence, batch: int) -> int:
    """Multiply-adds of an SGD step's forward and adjoint sweeps on one batch."""
    return sum(c.sgd for c in layer_costs(layers, batch))


def cr_cost(layers: Sequence, batch: int, routes: str | Sequence[str] = "auto") -> int:
    """Multiply-adds CR adds to an SGD step along ``d = -grad F`` on ``routes``
    (as :func:`resolve`): the tangent sweep with each layer's source and cross term."""
    chosen = resolve(layers, batch, routes)
    return sum(c.route(r) for c, r in zip(layer_costs(layers, batch), chosen, strict=True))
