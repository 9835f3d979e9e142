"""Literal gradient and Hessian blocks of a ReLU network with biases (B.1 and the bias
rule: Eqs 27.b-36.b), from the generated kernels of :mod:`numeric.kernels.bias`.

For verification and exploration on small networks: the blocks are dense, O(n^2) in the
depth.  The network is ``z^(k) = w^(k) v^(k-1) + b^(k)`` (Eq 10.b), ``p = u v^(n) + c``
(Eq 13.b), a :class:`numeric.network.Network` of biased ``Dense`` layers and a biased
``Output``; its parameters are ordered ``w^(1), b^(1), ..., w^(n), b^(n), u, c``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from numeric.kernels import bias as bk
from numeric.kernels import feedforward as ff
from numeric.literal.feedforward import eta_chains

__all__ = ["gradient_bias", "hessian_blocks_bias", "hessian_dense_bias"]


def gradient_bias(tape, ws, u, dfdp, reduce: str = "mean") -> dict:
    """Gradient blocks by Eqs 27, 28, 27.b and 28.b: keys ``("w", k)``, ``("b", k)``,
    ``("u",)``, ``("c",)``."""
    n = len(ws)
    vs = tape.inputs
    etas = eta_chains(ws, tape.masks)
    out: dict[tuple[str | int, ...], Any] = {
        ("u",): ff.eq27_grad_u(dfdp=dfdp, v_n=vs[n], reduce=reduce)
    }
    out[("c",)] = bk.eq27b_grad_c(dfdp=dfdp, reduce=reduce)
    for k in range(1, n + 1):
        out[("w", k)] = ff.eq28_grad_w(
            dfdp=dfdp, u=u, eta_n_k=etas[(n, k)], v_km1=vs[k - 1], reduce=reduce
        )
        out[("b", k)] = bk.eq28b_grad_b(dfdp=dfdp, eta_n_k=etas[(n, k)], u=u, reduce=reduce)
    return out


def hessian_blocks_bias(tape, ws, u, dfdp, d2fdp2, reduce: str = "mean") -> dict:
    """Every Hessian block of the ReLU network with biases (Eqs 34-36 and 34.b-36.bb).

    Returns
    -------
    dict
        ``(g1, g2) -> array`` with the axes of parameter ``g1`` then ``g2`` (groups
        ``("w", k)``, ``("b", k)``, ``("u",)``, ``("c",)``); one of each symmetric pair.
    """
    n = len(ws)
    vs = tape.inputs
    etas = eta_chains(ws, tape.masks)
    E = {k: etas[(n, k)] for k in range(1, n + 1)}
    rd = {"reduce": reduce}
    U, C = ("u",), ("c",)
    blocks: dict[tuple[tuple[str | int, ...], tuple[str | int, ...]], Any] = {
        (U, U): ff.eq34_hessian_uu(d2fdp2=d2fdp2, v_n=vs[n], **rd),
        (C, U): bk.eq34b_hessian_cu(v_n=vs[n], d2fdp2=d2fdp2, **rd),
        (C, C): bk.eq34bb_hessian_cc(d2fdp2=d2fdp2, **rd),
    }
    for k in range(1, n + 1):
        W, B = ("w", k), ("b", k)
        blocks[(U, W)] = ff.eq35_hessian_uw(
            dfdp=dfdp, eta_n_k=E[k], v_km1=vs[k - 1], d2fdp2=d2fdp2, v_n=vs[n], u=u, **rd
        )
        blocks[(U, B)] = bk.eq35b_hessian_ub(
            dfdp=dfdp, eta_n_k=E[k], v_n=vs[n], d2fdp2=d2fdp2, u=u, **rd
        )
        blocks[(C, W)] = bk.eq35bw_hessian_cw(
            v_km1=vs[k - 1], d2fdp2=d2fdp2, eta_n_k=E[k], u=u, **rd
        )
        blocks[(C, B)] = bk.eq35bb_hessian_cb(d2fdp2=d2fdp2, eta_n_k=E[k], u=u, **rd)
        for r in range(1, n + 1):
            common = dict(d2fdp2=d2fdp2, u=u, eta_n_k=E[k], eta_n_r=E[r], **rd)
            ww = dict(common, v_km1=vs[k - 1], v_rm1=vs[r - 1])
            if r > k:
                blocks[(W, ("w", r))] = ff.eq36_hessian_ww_r_gt_k(
                    dfdp=dfdp, eta_rm1_k=etas[(r - 1, k)], **ww
                )
            elif r == k:
                blocks[(W, ("w", r))] = ff.eq36_hessian_ww_r_eq_k(**ww)
            else:
                blocks[(W, ("w", r))] = ff.eq36_hessian_ww_r_lt_k(
                    dfdp=dfdp, eta_km1_r=etas[(k - 1, r)], **ww
                )
            if r >= k:
                blocks[(W, ("b", r))] = bk.eq36b_hessian_wb_r_ge_k(v_km1=vs[k - 1], **common)
            else:
                blocks[(W, ("b", r))] = bk.eq36b_hessian_wb_r_lt_k(
                    v_km1=vs[k - 1], dfdp=dfdp, eta_km1_r=etas[(k - 1, r)], **common
                )
            blocks[(B, ("b", r))] = bk.eq36bb_hessian_bb(**common)
    return blocks


def hessian_dense_bias(blocks: dict, ws) -> np.ndarray:
    """The blocks as one matrix in the parameter order ``w^(1), b^(1), ..., u, c`` (each
    C order); shape (P, P), or (batch, P, P) for ``reduce="sample"``."""
    n = len(ws)
    order = [g for k in range(1, n + 1) for g in (("w", k), ("b", k))] + [("u",), ("c",)]
    ndim = {g: (2 if g[0] in ("w", "u") else 1) for g in order}
    first = blocks[(("u",), ("u",))]
    lead = first.shape[:-4]
    sizes = {}
    for (g1, g2), blk in blocks.items():
        shp = blk.shape[len(lead) :]
        sizes[g1] = int(np.prod(shp[: ndim[g1]]))
        sizes[g2] = int(np.prod(shp[ndim[g1] :]))
    rows = []
    for a in order:
        row = []
        for b in order:
            if (a, b) in blocks:
                blk = np.asarray(blocks[(a, b)]).reshape(*lead, sizes[a], sizes[b])
            else:
                blk = np.asarray(blocks[(b, a)]).reshape(*lead, sizes[b], sizes[a])
                blk = np.swapaxes(blk, -1, -2)
            row.append(blk)
        rows.append(np.concatenate(row, axis=-1))
    return np.concatenate(rows, axis=-2)
