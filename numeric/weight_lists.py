"""The paper's network as weight lists: its sweeps and CR quantities in the (ws, u) form.

The layers' curvature terms read the activation's derivatives from the forward pass, so
only :func:`forward` needs the ``activation``.  Thin conveniences over :mod:`numeric.network` and :mod:`numeric.curvature` for code that
holds the weights of Eqs 10-16 as ``ws`` (``ws[k-1]`` of shape (w_k, w_(k-1))) and ``u``
(classes, w_n) and a direction as ``(omega, phis)`` (Eqs 38-40): tests, notebooks and
the verification.  Training goes through :class:`numeric.network.Network`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from numeric import curvature as cv
from numeric.kernels import cubic_regularization as cr
from numeric.kernels._runtime import check_direction, check_labels, check_network, namespace
from numeric.layers import Dense, Output
from numeric.losses import softmax_cross_entropy
from numeric.network import Adjoints, Tape
from numeric.network import backward as _backward
from numeric.network import forward as _forward

__all__ = [
    "backward",
    "directional",
    "forward",
    "layers_for",
    "loss_and_gradient",
    "norm_cubed",
    "per_sample_sgd_curvature",
    "sgd_cr_terms",
    "sgd_curvature",
    "sq_norm",
]


def layers_for(ws: Sequence, u, activation: str = "relu") -> list:
    """The layer stack of a dense network with weights ``ws``, ``u``."""
    layers = [Dense(int(w.shape[1]), int(w.shape[0]), activation) for w in ws]
    return [*layers, Output(int(u.shape[1]), int(u.shape[0]))]


def forward(ws, u, x, activation: str = "relu", check: bool = True, second: bool = True) -> Tape:
    """Forward pass (Eqs 10-13); ``check`` validates shapes and finiteness first."""
    if check and namespace(x) is np:
        check_network(ws, u, x, check_finite=True)
    return _forward(layers_for(ws, u, activation), [*ws, u], x, second)


def backward(fwd: Tape, ws, u, dfdp, activation: str = "relu") -> Adjoints:
    """Adjoint sweep (C10, C1-C2) and batch-mean gradient (Eq 27, C3)."""
    return _backward(layers_for(ws, u, activation), [*ws, u], fwd, dfdp)


def loss_and_gradient(ws, u, x, y, activation: str = "relu", check: bool = True):
    """Batch-mean loss ``F`` (Eq 16) and its gradient ``(grad_u, grads_w)``."""
    fwd = forward(ws, u, x, activation, check=check, second=False)
    if check:
        check_labels(y, x.shape[0], u.shape[0])
    f, dfdp, _ = softmax_cross_entropy(fwd.p, y, second=False)
    bwd = backward(fwd, ws, u, dfdp, activation)
    return f.mean(), bwd.grad_u, bwd.grads_w


def directional(
    fwd, bwd, ws, u, dfdp, d2fdp2, omega, phis, reduce="mean", rfac=None, activation="relu"
):
    """``(g^T grad F, g^T H g)`` along ``g = (omega, phis)`` (C4-C7, C11)."""
    if namespace(omega) is np:
        check_direction(ws, u, omega, phis)
    layers = layers_for(ws, u, activation)
    return cv.directional(
        layers, [*ws, u], fwd, bwd, dfdp, d2fdp2, [*phis, omega], reduce=reduce, rfac=rfac
    )


def sgd_curvature(fwd, bwd, ws, u, dfdp, d2fdp2, rfac=None, activation="relu"):
    """``(g^T grad F, g^T H g)`` for ``g = -grad F`` (L1-L4, C11)."""
    layers = layers_for(ws, u, activation)
    return cv.sgd_curvature(layers, [*ws, u], fwd, bwd, dfdp, d2fdp2, rfac=rfac)


def sgd_cr_terms(fwd, bwd, ws, u, dfdp, d2fdp2, activation="relu"):
    """The three inputs of Eq 37 for ``g = -grad F``: ``(g^T grad F, g^T H g, ||g||^3)``;
    ``||g||^2 = -g^T grad F`` for this direction (Eqs 38, 40)."""
    gtg, ghg = sgd_curvature(fwd, bwd, ws, u, dfdp, d2fdp2, activation=activation)
    xp = namespace(gtg)
    return gtg, ghg, xp.maximum(-gtg, 0.0) ** 1.5


def sq_norm(omega, phis):
    """``||g||^2`` by Eq 40's kernels."""
    total = cr.eq40_u_sq_norm(omega=omega)
    for phi in phis:
        total = total + cr.eq40_w_sq_norm(phi_k=phi)
    return total


def norm_cubed(omega, phis):
    """``||g||^3`` (Eq 40)."""
    return sq_norm(omega, phis) ** 1.5


def per_sample_sgd_curvature(fwd, bwd, ws, u, dfdp, d2fdp2, activation="relu"):
    """Per-sample ``(g_b^T grad f_b, g_b^T H_b g_b, ||g_b||^2)`` for ``g_b = -grad f_b``."""
    layers = layers_for(ws, u, activation)
    return cv.per_sample_sgd_curvature(layers, [*ws, u], fwd, bwd, dfdp, d2fdp2)
