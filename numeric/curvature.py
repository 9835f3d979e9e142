"""Directional derivatives of ``F`` for CR: ``d^T grad F``, ``d^T H d`` and ``||d||^2``.

For any direction ``d`` (one array per parameter, like the gradient),
:func:`directional` runs one tangent sweep over the layer stack and adds up (in the term
order of Eq 39, output layer first)::

    d^T grad F = E[df/dp . pdot]                                           (C6 = Eq 38)
    d^T H d    = E[pdot^T d2f/dp2 pdot] + sum over layers of their cross terms
                 + sum over layers of vbar . A''(z) zdot^2          (C7, C11 = Eqs 39, 80)

For the SGD direction ``d = -grad F``, :func:`sgd_curvature` reuses the adjoint sweep:
each layer applies the mini-batch gradient either through its ``batch`` per-sample outer
products (the paper's low-rank structure, L1-L4; runs of equal square dense layers in
one batched call per quantity) or as the matrix the sweep has formed (C4-C7), whichever
the multiply-add model of :mod:`numeric.cost_model` finds cheaper for the layer's shape
(``routes="auto"``; the training step's choice).  :func:`per_sample_sgd_curvature` gives the
same quantities per sample along each sample's own gradient (dense stacks).

For the CR variants: :func:`block_curvature` gives the same three quantities per layer,
each from the layer's own diagonal block of the Hessian (C45-C46; per-layer CR), and
:func:`hessian_diagonal` the diagonal of the Hessian (C21, C42-C44; per-variable CR).

Everything runs on NumPy or JAX arrays; ``reduce="mean"`` gives the derivatives of
``F = E[f]`` and ``reduce="sample"`` those of each ``f``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from numeric import cost_model
from numeric.cost_model import DENSE, GRAM
from numeric.kernels import contracted as ct
from numeric.kernels._runtime import namespace
from numeric.layers.base import Layer
from numeric.network import Adjoints, Tape, split_params, tangent

__all__ = [
    "block_curvature",
    "blocks",
    "check_hessian_diagonal",
    "directional",
    "hessian_diagonal",
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


def _second_order(layers, per_layer, tape: Tape, adj: Adjoints, tangents, reduce):
    """The sum over layers of each layer's second-order term (``A'' != 0``; ``0.0`` when
    no layer has one): what ``d^T H d`` adds to the cross terms."""
    second = 0.0
    for i, layer in enumerate(layers):
        term = layer.second_order(
            per_layer[i], tape.inputs[i], tape.caches[i], adj.adjoints[i], tangents[i], reduce
        )
        second = _add(second, term)
    return second


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
    with_pdot: bool = False,
):
    """``(d^T grad F, d^T H d)`` for any direction (C4-C7, C11); with ``with_pdot`` also
    the output tangent ``pdot = J d``, shape (batch, classes) (C4-C5).

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
    ghg = ghg + _second_order(layers, per_layer, tape, adj, tan.tangents, reduce)
    return (gtg, ghg, pdot) if with_pdot else (gtg, ghg)


def _stack_groups(layers: Sequence[Layer], routes: Sequence[str]) -> dict[int, tuple[int, int]]:
    """Runs ``[start, stop)`` of two or more consecutive layers (after the first) on the
    Gram route whose low-rank terms can be evaluated as one stack, keyed by their first
    index."""
    groups: dict[int, tuple[int, int]] = {}
    i = 1
    while i < len(layers):
        key = layers[i].stack_key() if routes[i] == GRAM else None
        j = i + 1
        while (key is not None and j < len(layers) and routes[j] == GRAM
               and layers[j].stack_key() == key):  # fmt: skip
            j += 1
        if key is not None and j - i >= 2:
            groups[i] = (i, j)
        i = j
    return groups


def sgd_curvature(
    layers: Sequence[Layer],
    params: Sequence,
    tape: Tape,
    adj: Adjoints,
    dfdp,
    d2fdp2,
    rfac=None,
    routes: str | Sequence[str] = GRAM,
    with_pdot: bool = False,
):
    """``(d^T grad F, d^T H d)`` for the SGD direction ``d = -grad F`` (L1-L4, C11); with
    ``with_pdot`` also its output tangent ``pdot = J d``, shape (batch, classes).

    ``rfac`` as in :func:`directional`.  Each layer's tangent source and cross term take
    one of two routes (:mod:`numeric.cost_model`), with equal results up to rounding:

    ``"gram"``
        The mini-batch gradient is never applied: the terms come from its per-sample
        factors, contracting sample against sample (L1-L4); runs of equal square dense
        layers on this route (all hidden layers after the first in the paper's 12x128
        network) are evaluated in one batched call each on NumPy.
    ``"dense"``
        The gradient the adjoint sweep formed (C3), negated, is the layer's direction
        of C4 / C5 and C7 (conv and recurrent layers always take this route).

    ``routes`` is ``"gram"`` (the default: every layer that has the per-sample forms),
    ``"dense"``, ``"auto"`` (the cheaper per layer by the multiply-add model,
    :func:`numeric.cost_model.choose`; what training uses) or one route per layer.
    """
    per_layer = split_params(layers, params)
    n = len(layers)
    batch = dfdp.shape[0]
    chosen = cost_model.resolve(layers, batch, routes)
    dirs: list = [None] * n
    if DENSE in chosen:
        per_grad = split_params(layers, adj.grads)
        dirs = [
            None if r == GRAM else [-g for g in gs] for r, gs in zip(chosen, per_grad, strict=True)
        ]
    # stacked calls help NumPy (fewer, larger BLAS calls); under XLA the copies into a
    # stack cost more than separate contractions, which the compiler schedules anyway
    groups = _stack_groups(layers, chosen) if namespace(dfdp) is np else {}
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
        d = dirs[i]
        if d is None:
            xdot, tan = layer.lowrank_tangent(
                per_layer[i],
                tape.inputs[i],
                tape.caches[i],
                adj.adjoints[i],
                xdot,
                source=sources.get(i),
            )
        else:
            xdot, tan = layer.tangent(per_layer[i], tape.inputs[i], tape.caches[i], xdot, d)
        outputs.append(xdot)
        tangents.append(tan)
    curvature = 0.0  # Gram-route cross terms, without their factor 2 / batch
    dense = 0.0  # dense-route cross terms (batch means)
    i = 0
    while i < n:
        if i in groups:
            lo, hi = groups[i]
            curvature = curvature + type(layers[lo]).stacked_cross(
                [adj.adjoints[j] for j in range(lo, hi)],
                [tape.inputs[j] for j in range(lo, hi)],
                [outputs[j - 1] for j in range(lo, hi)],
            )
            i = hi
            continue
        xin = outputs[i - 1] if i > 0 else None
        args = (per_layer[i], tape.inputs[i], tape.caches[i], adj.adjoints[i], xin)
        d = dirs[i]
        if d is None:
            curvature = _add(curvature, layers[i].lowrank_cross(*args))
        else:
            dense = _add(dense, layers[i].cross_term(*args, d, "mean"))
        i += 1
    pdot = outputs[-1]
    ghg = pdot_term(pdot, d2fdp2, rfac, "mean") + (2.0 / batch) * curvature + dense
    ghg = ghg + _second_order(layers, per_layer, tape, adj, tangents, "mean")
    gtg = ct.c6_g_dot_grad(dfdp=dfdp, pdot=pdot, reduce="mean")
    return (gtg, ghg, pdot) if with_pdot else (gtg, ghg)


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
    if not dense or any(getattr(lay, "bias", False) for lay in layers):
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


# ----------------------------------------------------------------- CR variants


def blocks(layers: Sequence[Layer]) -> list[int]:
    """For each parameter array, the index of its block (its layer among the layers
    that have parameters), in the network's order."""
    out, block = [], 0
    for layer in layers:
        if layer.n_params:
            out.extend([block] * layer.n_params)
            block += 1
    return out


def block_curvature(
    layers: Sequence[Layer],
    params: Sequence,
    tape: Tape,
    adj: Adjoints,
    dfdp,
    d2fdp2,
    direction: Sequence | None = None,
    rfac=None,
    routes: str | Sequence[str] = GRAM,
):
    """Per-layer ``(d_k^T grad_k F, d_k^T H_kk d_k, ||d_k||^2)``: each layer's own block.

    ``d_k`` is the direction restricted to layer ``k`` (zero elsewhere), so
    ``d_k^T H_kk d_k`` is C7/C11 along it: the tangent its parameters start at layer
    ``k`` is carried up the stack (:meth:`~numeric.layers.base.Layer.propagate`) to the
    logits, and the cross terms of C7 vanish (no other layer moves).  For the ReLU this
    is C45 (C46 for the output layer), Eq 39's ``r = k`` Gauss-Newton term; with
    ``A'' != 0`` the C11 terms of layer ``k`` and the layers above it are added.  All
    blocks travel up together as one stack (one call per layer).

    Parameters
    ----------
    layers, params, tape, adj, dfdp, d2fdp2
        As :func:`directional`.
    direction : list of arrays, optional
        Shaped like ``params``; ``None`` for the SGD direction ``-grad F``, whose
        per-layer tangents come from the low-rank forms (L1, L2).
    rfac : array, optional
        Factor ``R`` of ``d2fdp2`` (C17, C23).
    routes : str or sequence of str
        For the SGD direction, the route of each layer's tangent source, as in
        :func:`sgd_curvature` (``"gram"``: L1, L2; ``"dense"``: C4, C5 along the
        formed gradient; ``"auto"``: the cheaper).

    Returns
    -------
    gtg, ghg, sq : arrays, shape (blocks,)
        One entry per layer with parameters, in order (see :func:`blocks`).
    """
    xp = namespace(dfdp)
    per_layer = split_params(layers, params)
    grads = split_params(layers, adj.grads)
    per_dir = split_params(layers, direction) if direction is not None else None
    chosen = cost_model.resolve(layers, dfdp.shape[0], routes)
    stack = None
    second: list = []
    for i, layer in enumerate(layers):
        x, cache = tape.inputs[i], tape.caches[i]
        parts, tans = [], []
        if stack is not None:
            ydots, ptans = layer.propagate(per_layer[i], x, cache, stack)
            parts.append(ydots)
            tans.extend(ptans)
        if layer.n_params:
            if per_dir is None and chosen[i] == GRAM:
                ydot, tan = layer.lowrank_tangent(per_layer[i], x, cache, adj.adjoints[i], None)
            elif per_dir is None:
                ydot, tan = layer.tangent(per_layer[i], x, cache, None, [-g for g in grads[i]])
            else:
                ydot, tan = layer.tangent(per_layer[i], x, cache, None, per_dir[i])
            parts.append(ydot[None])
            tans.append(tan)
            second.append(0.0)
        stack = parts[0] if len(parts) == 1 else xp.concatenate(parts, axis=0)
        if not layer.second_vanishes:
            for b, tan in enumerate(tans):
                term = layer.second_order(per_layer[i], x, cache, adj.adjoints[i], tan, "mean")
                second[b] = _add(second[b], term)
    assert stack is not None, "a network with parameters carries a tangent stack"
    ghg = [pdot_term(stack[b], d2fdp2, rfac, "mean") + second[b] for b in range(len(second))]
    gtg, sq = [], []
    for i, layer in enumerate(layers):
        if not layer.n_params:
            continue
        g = grads[i]
        if per_dir is None:
            norm = sq_norm(g)
            gtg.append(-norm)
            sq.append(norm)
        else:
            gtg.append(dot(per_dir[i], g))
            sq.append(sq_norm(per_dir[i]))
    if xp is np:
        return tuple(np.asarray(v, dtype=np.float64) for v in (gtg, ghg, sq))
    return tuple(xp.stack([xp.asarray(a) for a in v]) for v in (gtg, ghg, sq))


def check_hessian_diagonal(layers: Sequence[Layer]) -> None:
    """``ValueError`` unless :func:`hessian_diagonal` is derived for every layer: ``A'' = 0``
    throughout (B.1) and layers that implement the factored sweep (dense, output,
    reshaping layers; not conv or recurrent layers)."""
    smooth = [type(layer).__name__ for layer in layers if not layer.second_vanishes]
    if smooth:
        raise ValueError(
            "the exact Hessian diagonal is derived for A'' = 0 (ReLU) networks; "
            f"this one has layers with A'' != 0 ({', '.join(smooth)})"
        )
    missing = sorted(
        {type(layer).__name__ for layer in layers
         if type(layer).hessian_diagonal is Layer.hessian_diagonal}
    )  # fmt: skip
    if missing:
        raise ValueError(
            f"the Hessian diagonal is not derived for {', '.join(missing)} layers "
            "(per-variable CR needs dense layers)"
        )


def hessian_diagonal(layers: Sequence[Layer], params: Sequence, tape: Tape, rfac,
                     reduce: str = "mean") -> list:  # fmt: skip
    """Diagonal of the Hessian of ``F``, one array per parameter (Table 2 corrected).

    The rows of the factor ``R`` of ``d2f/dp2`` (C15; ``rfac`` of shape (batch, classes,
    classes), :func:`numeric.losses.hessian_factor`) run down the layer stack together
    as one factored adjoint sweep (C42-C43: ``classes`` adjoint sweeps' work), and each
    layer squares its rows against its inputs (C44, and C21 for ``u``).  Exact for
    networks whose activations have ``A'' = 0`` (the ReLU of B.1: the diagonal blocks
    of Eq 36 have no curvature term then).

    Raises
    ------
    ValueError
        When a layer has ``A'' != 0`` (its exact diagonal needs the B.3 terms, not
        derived here).
    """
    check_hessian_diagonal(layers)
    per_layer = split_params(layers, params)
    diags: list = [None] * len(layers)
    rbar = rfac
    for i in range(len(layers) - 1, -1, -1):
        rbar, diags[i] = layers[i].hessian_diagonal(
            per_layer[i], tape.inputs[i], tape.caches[i], rbar, need_xbar=i > 0, reduce=reduce
        )
    return [d for ds in diags for d in ds]
