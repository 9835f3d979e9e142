"""Cost of a CR step for the CNN, RNN and ResMLP models, next to their SGD step (routes
for ``lowrank bench --model cnn|rnn|resmlp|attention``).

:func:`model_routes` returns zero-argument step functions (each updates its own copy of
the weights, so repeated calls train on), all on the same batch of images:

``<model>-forward``  the forward pass alone (the unit of the counts below);
``<model>-sgd``      one SGD step: forward, adjoint sweep, update
                     (:class:`numeric.cr.Baseline`), what ``lowrank train`` runs;
``<model>-cr``       one CR-SGD step: the same plus ``d^T grad F`` and ``d^T H d`` for
                     ``d = -grad F`` (:func:`numeric.curvature.sgd_curvature`: the
                     tangent sweep and each layer's own terms), ``||d||^3`` and Eq 37.

:func:`multiply_adds` counts the multiply-adds of each part per sample from the layer
shapes, following what the layers compute; ``(sgd + cr) / sgd`` bounds the ratio of a CR
step to an SGD step when the matrix products dominate.  The JAX routes for the same model
(JAX's own ``jvp(grad)``, and the generated kernels under ``jax.jit``) are in
``verify/bench_models_jax.py``, which also times all routes together.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from numeric.architectures import build
from numeric.cr import CR, Baseline
from numeric.layers import Attention, Conv2D, Dense, Output, Recurrent, Residual
from numeric.network import Network, forward
from numeric.optimizers import SGD

__all__ = ["LR", "SIGMA", "batch_of_images", "model_routes", "multiply_adds", "problem"]

LR = 0.01
SIGMA = 100.0


def batch_of_images(batch: int, dtype, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``batch`` images of the embedded MNIST subset (28 x 28) and their labels."""
    from numeric.data import load_dataset

    data = load_dataset("mnist-embedded")
    idx = np.random.default_rng(seed).choice(len(data.labels), size=batch, replace=False)
    return np.asarray(data.x[idx], dtype=dtype), data.labels[idx]


def problem(model: str, batch: int = 32, dtype=np.float64, seed: int = 0,
            options: dict | None = None) -> tuple[Network, np.ndarray, np.ndarray]:  # fmt: skip
    """The model at its plateau start (Appendix A, +-0.1) and a batch shaped for it."""
    net = build(model, (28, 28), 10, init="plateau", seed=seed, dtype=dtype, options=options)
    x, labels = batch_of_images(batch, dtype, seed)
    return net, net.inputs(x), labels


def model_routes(net: Network, x, labels) -> dict[str, Callable[[], None]]:
    """Step functions of the NumPy routes for ``net`` on ``(x, labels)`` (already shaped)."""
    name = _model_name(net)
    routes: dict[str, Callable[[], None]] = {}

    def forward_only() -> None:
        forward(net.layers, net.params, x, second=False)

    routes[f"{name}-forward"] = forward_only
    for key, method in (("sgd", Baseline(SGD(), LR)), ("cr", CR(SGD(), SIGMA, lr=LR))):
        state: dict[str, Any] = {"net": net.with_params([p.copy() for p in net.params])}
        state["opt"] = method.init(state["net"])

        def step(method=method, state=state) -> None:
            state["net"], state["opt"], _ = method.step(
                state["net"], state["opt"], x, labels, check=False
            )

        routes[f"{name}-{key}"] = step
    return routes


def _model_name(net: Network) -> str:
    kinds = {type(layer) for layer in net.layers}
    if Recurrent in kinds:
        return "rnn"
    if Residual in kinds:
        return "resmlp"
    if Attention in kinds:
        return "attention"
    return "cnn" if Conv2D in kinds else "mlp"


def multiply_adds(net: Network, batch: int = 32) -> dict[str, float]:
    """Multiply-adds per sample of the forward pass, of an SGD step (forward and adjoint
    sweep) and of what CR adds (tangent sweep, cross and second-order terms), counted from
    the layer shapes the way the layers compute them (low-rank Gram factors for dense
    layers, the formed gradient as the direction for conv, recurrent and residual layers);
    entry-wise work (activations, A'' terms, layer normalisation) is left out.

    Returns
    -------
    dict
        ``forward``, ``sgd``, ``cr_extra`` and ``ratio = (sgd + cr_extra) / sgd``.
    """
    fwd = bwd = extra = 0
    for i, layer in enumerate(net.layers):
        first = i == 0
        if isinstance(layer, Dense | Output):
            d_in = layer.d_in
            d_out = layer.d_out if isinstance(layer, Dense) else layer.classes
            f = d_in * d_out
            fwd += f
            bwd += f + (0 if first else f)
            # L1/L2 source (Gram V V^T and its product with the adjoints), L3/L4 cross
            extra += batch * (d_in + d_out)
            if not first:
                extra += f + batch * (d_in + d_out)
        elif isinstance(layer, Conv2D):
            o, s, t = layer.out_shape
            f = o * s * t * layer.in_shape[0] * layer.kernel[0] * layer.kernel[1]
            fwd += f
            bwd += f + (0 if first else f)  # C13 (and C30)
            extra += f + (0 if first else 2 * f)  # C12 (and C28, C29)
        elif isinstance(layer, Recurrent):
            h, T = layer.width, layer.steps
            inp = h * layer.d_in if layer.sequence else 0
            ww = h * h * (T - 1 if layer.sequence else T)
            fwd += T * inp + ww  # C34 and Eq 10 per step
            bwd += T * (h * h + inp) + ww + (0 if first else T * inp)  # C35-C36, C10, C38
            extra += T * (h * h + inp) + ww + T * h * h  # C39, C40, C41's state term
            if not first:
                extra += 2 * T * inp  # C39's input tangent, C41's input term
        elif isinstance(layer, Residual):
            f = layer.d * layer.d
            fwd += f  # z = w v + b
            bwd += f + (0 if first else f)  # A.residual.wbar (and .vbar)
            # A.residual.zdot (phi v, and w vdot) and the cross term of .curvature
            extra += f + (0 if first else 2 * f)
        elif isinstance(layer, Attention):
            t, d, k = layer.tokens, layer.d, layer.d_k
            proj, score = 3 * t * d * k, 2 * t * t * k  # q, key, val; s and p val
            fwd += proj + score
            # A.attention.{pbar,valbar,keybar,qbar} and the three gradients (and .xbar)
            bwd += 2 * score + proj + (0 if first else proj)
            # the tangents (phi x, and w xdot), sdot and ydot; the bilinear terms of
            # .curvature (s and y, and phi against xdot)
            extra += proj + 2 * score + score + (0 if first else 2 * proj)
    sgd = fwd + bwd
    return {"forward": fwd, "sgd": sgd, "cr_extra": extra, "ratio": (sgd + extra) / sgd}
