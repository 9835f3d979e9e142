"""Directional derivatives of ``F`` for CR: ``d^T grad F``, ``d^T H d`` and ``||d||^2``.

For any direction ``d`` (one array per parameter, like the gradient),
:func:`directional` runs one tangent sweep over the layer stack and adds up (in the term
order of Eq 39, output layer first)::

    d^T grad F = E[df/dp . pdot]                                           (C6 = Eq 38)
    d^T H d    = E[pdot^T d2f/dp2 pdot] + sum over layers of their cross terms
                 + sum over layers of vbar . A''(z) zdot^2          (C7, C11 = Eqs 39, 80)

For the SGD direction ``d = -grad F``, :func:`sgd_curvature` never forms the direction:
each layer applies the mini-batch gradient through its ``batch`` per-sample outer
products (the paper's low-rank structure, L1-L4), and runs of equal square dense layers
are handled in one batched call per quantity.  :func:`per_sample_sgd_curvature` gives the
same quantities per sample along each sample's own gradient (dense stacks).

Everything runs on NumPy or JAX arrays; ``reduce="mean"`` gives the derivatives of
``F = E[f]`` and ``reduce="sample"`` those of each ``f``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from numeric.kernels import contracted as ct
from numeric.kernels._runtime import namespace
from numeric.layers.base import Layer
from numeric.network import Adjoints, Tape, split_params, tangent

__all__ = [
    "directional",
    "dot",
    "per_sample_sgd_curvature",
    "pdot_term",
    "sgd_curvature",
    "sq_norm",
]


def dot(a: Sequence, b: Sequence):
    """``sum_i <a_i, b_i>`` over two lists of arrays, accumulated in double precision
    (a Python float for NumPy; an array for JAX)."""
    total = 0.0
    for x, y in zip(a, b, strict=True):
        xp = namespace(x)
        v = xp.vdot(xp.reshape(x, (-1,)), xp.reshape(y, (-1,)))
        total = total + (np.float64(v) if xp is np else v)
    return float(total) if isinstance(total, np.floating | float) else total


def sq_norm(d: Sequence):
    """``||d||^2`` (the base of Eq 40)."""
    return dot(d, d)


def pdot_term(pdot, d2fdp2, rfac=None, reduce: str = "mean"):
    """``pdot^T d2f/dp2 pdot``: C23 through a factor ``R`` of ``d2f/dp2`` (C17), else C7."""
    if rfac is None:
        return ct.c7_pdot_term(pdot=pdot, d2fdp2=d2fdp2, reduce=reduce)
    return ct.c23_pdot_term(rpdot=ct.c17_factored_tangent(pdot=pdot, rfac=rfac), reduce=reduce)


def _add(total, term):
    return total if term is None else total + term


def directional(
    layers: Sequence[Layer],
    params: Sequence,
    tape: Tape,
    adj: Adjoints,
    dfdp,
    d2fdp2,
    direction: Sequence,
    reduce: str = "mean",
    rfac=None,
):
    """``(d^T grad F, d^T H d)`` for any direction (C4-C7, C11).

    Parameters
    ----------
    layers, params
        The network.
    tape, adj
        Its forward and adjoint sweeps on the batch (``tape`` with ``second=True``
        when an activation has ``A'' != 0``).
    dfdp : array, shape (batch, classes)
    d2fdp2 : array, shape (batch, classes, classes)
    direction : list of arrays
        Shaped like ``params``.
    reduce : {"mean", "sample"}
    rfac : array, optional
        Factor ``R`` of ``d2fdp2`` (:func:`numeric.losses.hessian_factor`): the
        Gauss-Newton term as ``||R pdot||^2`` (C17, C23).
    """
    if len(direction) != len(params):
        raise ValueError(f"direction has {len(direction)} arrays, the network {len(params)}")
    for i, (d, p) in enumerate(zip(direction, params, strict=True)):
        if tuple(d.shape) != tuple(p.shape):
            raise ValueError(
                f"direction[{i}] must have the shape of params[{i}] {tuple(p.shape)}; "
                f"got {tuple(d.shape)}"
            )
    tan = tangent(layers, params, tape, direction)
    pdot = tan.outputs[-1]
    gtg = ct.c6_g_dot_grad(dfdp=dfdp, pdot=pdot, reduce=reduce)
    per_layer = split_params(layers, params)
    per_dir = split_params(layers, direction)
    n = len(layers)

    def cross(i):
        xdot = tan.outputs[i - 1] if i > 0 else None
        return layers[i].cross_term(
            per_layer[i], tape.inputs[i], tape.caches[i], adj.adjoints[i], xdot, per_dir[i], reduce
        )

    ghg = _add(pdot_term(pdot, d2fdp2, rfac, reduce), cross(n - 1))
    for i in range(n - 1):
        ghg = _add(ghg, cross(i))
    second = 0.0
    for i in range(n):
        second = _add(
            second,
            layers[i].second_order(
                per_layer[i],
                tape.inputs[i],
                tape.caches[i],
                adj.adjoints[i],
                tan.tangents[i],
                reduce,
            ),
        )
    return gtg, ghg + second


def _stack_groups(layers: Sequence[Layer]) -> dict[int, tuple[int, int]]:
    """Runs ``[start, stop)`` of two or more consecutive layers (after the first) whose
    low-rank terms can be evaluated as one stack, keyed by their first index."""
    groups: dict[int, tuple[int, int]] = {}
    i = 1
    while i < len(layers):
        key = layers[i].stack_key()
        j = i + 1
        while key is not None and j < len(layers) and layers[j].stack_key() == key:
            j += 1
        if key is not None and j - i >= 2:
            groups[i] = (i, j)
        i = j
    return groups


def sgd_curvature(
    layers: Sequence[Layer], params: Sequence, tape: Tape, adj: Adjoints, dfdp, d2fdp2, rfac=None
):
    """``(d^T grad F, d^T H d)`` for the SGD direction ``d = -grad F`` (L1-L4, C11).

    ``rfac`` as in :func:`directional`.  The mini-batch gradient is never formed: each
    layer's tangent source and cross term come from its per-sample factors, contracting
    sample against sample; runs of equal square dense layers (all hidden layers after
    the first in the paper's 12x128 network) are evaluated in one batched call each.
    """
    per_layer = split_params(layers, params)
    n = len(layers)
    batch = dfdp.shape[0]
    # stacked calls help NumPy (fewer, larger BLAS calls); under XLA the copies into a
    # stack cost more than separate contractions, which the compiler schedules anyway
    groups = _stack_groups(layers) if namespace(dfdp) is np else {}
    sources: dict[int, object] = {}
    for _start, (lo, hi) in groups.items():
        stacked = type(layers[lo]).stacked_sources(
            [adj.adjoints[i] for i in range(lo, hi)], [tape.inputs[i] for i in range(lo, hi)]
        )
        for j, i in enumerate(range(lo, hi)):
            sources[i] = stacked[j]
    outputs, tangents = [], []
    xdot = None
    for i, layer in enumerate(layers):
        xdot, tan = layer.lowrank_tangent(
            per_layer[i],
            tape.inputs[i],
            tape.caches[i],
            adj.adjoints[i],
            xdot,
            source=sources.get(i),
        )
        outputs.append(xdot)
        tangents.append(tan)
    curvature = 0.0
    i = 0
    while i < n - 1:
        if i in groups:
            lo, hi = groups[i]
            curvature = curvature + type(layers[lo]).stacked_cross(
                [adj.adjoints[j] for j in range(lo, hi)],
                [tape.inputs[j] for j in range(lo, hi)],
                [outputs[j - 1] for j in range(lo, hi)],
            )
            i = hi
            continue
        curvature = _add(
            curvature,
            layers[i].lowrank_cross(
                per_layer[i],
                tape.inputs[i],
                tape.caches[i],
                adj.adjoints[i],
                outputs[i - 1] if i > 0 else None,
            ),
        )
        i += 1
    out_cross = layers[-1].lowrank_cross(
        per_layer[-1],
        tape.inputs[-1],
        tape.caches[-1],
        adj.adjoints[-1],
        outputs[-2] if n > 1 else None,
    )
    pdot = outputs[-1]
    ghg = pdot_term(pdot, d2fdp2, rfac, "mean") + (2.0 / batch) * _add(curvature, out_cross)
    second = 0.0
    for i in range(n):
        second = _add(
            second,
            layers[i].second_order(
                per_layer[i],
                tape.inputs[i],
                tape.caches[i],
                adj.adjoints[i],
                tangents[i],
                "mean",
            ),
        )
    ghg = ghg + second
    gtg = ct.c6_g_dot_grad(dfdp=dfdp, pdot=pdot, reduce="mean")
    return gtg, ghg


def per_sample_sgd_curvature(
    layers: Sequence[Layer], params: Sequence, tape: Tape, adj: Adjoints, dfdp, d2fdp2
):
    """Per-sample ``g_b^T grad f_b``, ``g_b^T H_b g_b`` and ``||g_b||^2`` for ``g_b = -grad f_b``.

    Dense stacks only.  Each sample's gradient is rank one per layer (Eqs 27-28:
    ``dfdp_b v_b^(n)^T`` and ``delta_b^(k) v_b^(k-1)^T``), so the tangent sweep along it
    has the sources ``-delta_b^(k) |v_b^(k-1)|^2`` and ``-dfdp_b |v_b^(n)|^2``; the
    cross terms of C7 reduce to ``-2 |delta_b^(k)|^2 (v_b^(k-1) . vdot_b^(k-1))`` and
    ``-2 |dfdp_b|^2 (v_b^(n) . vdot_b^(n))``, plus C11's ``vbar A'' zdot^2``.  All
    samples at once, O(batch * weights).

    Returns
    -------
    gtg, ghg, sqnorm : arrays, shape (batch,)
    """
    from numeric.layers.dense import Dense
    from numeric.layers.output import Output

    dense = all(isinstance(lay, Dense) for lay in layers[:-1]) and isinstance(layers[-1], Output)
    if not dense or any(lay.bias for lay in layers):
        raise ValueError("per-sample curvature is implemented for bias-free dense networks only")
    xp = namespace(dfdp)
    ws, u = list(params[:-1]), params[-1]
    n = len(ws)
    vs, masks, deltas = tape.inputs, tape.masks, adj.deltas
    vv = [xp.einsum("bi,bi->b", v, v) for v in vs]
    dd = [xp.einsum("bi,bi->b", d, d) for d in deltas]
    pp = xp.einsum("bi,bi->b", dfdp, dfdp)
    sqnorm = pp * vv[n]
    for k in range(1, n + 1):
        sqnorm = sqnorm + dd[k - 1] * vv[k - 1]
    zdot = -deltas[0] * vv[0][:, None]
    vdot = masks[0] * zdot
    zdots = [zdot]
    curv = xp.zeros_like(pp)
    for k in range(2, n + 1):
        curv = curv - 2.0 * dd[k - 1] * xp.einsum("bi,bi->b", vs[k - 1], vdot)
        zdot = -deltas[k - 1] * vv[k - 1][:, None] + vdot @ ws[k - 1].T
        vdot = masks[k - 1] * zdot
        zdots.append(zdot)
    pdot = -dfdp * vv[n][:, None] + vdot @ u.T
    curv = curv - 2.0 * pp * xp.einsum("bi,bi->b", vs[n], vdot)
    ghg = xp.einsum("bi,bij,bj->b", pdot, d2fdp2, pdot) + curv
    per_layer = split_params(layers, params)
    for k in range(n):
        term = layers[k].second_order(
            per_layer[k], vs[k], tape.caches[k], adj.adjoints[k], zdots[k], "sample"
        )
        ghg = _add(ghg, term)
    gtg = xp.einsum("bi,bi->b", dfdp, pdot)
    return gtg, ghg, sqnorm
