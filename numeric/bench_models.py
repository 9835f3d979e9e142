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
shapes (:mod:`numeric.cost_model`, on the routes training takes); ``(sgd + cr) / sgd`` bounds the ratio of a CR
step to an SGD step when the matrix products dominate.  The JAX routes for the same model
(JAX's own ``jvp(grad)``, and the generated kernels under ``jax.jit``) are in
``verify/bench_models_jax.py``, which also times all routes together.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from numeric import cost_model
from numeric.architectures import build
from numeric.cr import CR, Baseline
from numeric.layers import Attention, Conv2D, Recurrent, Residual
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


def multiply_adds(net: Network, batch: int = 32, routes: str = "auto") -> dict:
    """Multiply-adds per sample of the forward pass, of an SGD step (forward and adjoint
    sweep) and of what CR adds (tangent sweep, cross and second-order terms) on
    ``routes`` (:func:`numeric.cost_model.resolve`; default the routes training takes),
    counted from the layer shapes by :mod:`numeric.cost_model`; entry-wise work
    (activations, A'' terms) is left out.

    Returns
    -------
    dict
        ``forward``, ``sgd``, ``cr_extra``, ``ratio = (sgd + cr_extra) / sgd`` and
        ``routes`` (one per layer).
    """
    costs = cost_model.layer_costs(net.layers, batch)
    fwd = sum(c.forward for c in costs) // batch
    sgd = cost_model.sgd_cost(net.layers, batch) // batch
    extra = cost_model.cr_cost(net.layers, batch, routes) // batch
    return {
        "forward": fwd,
        "sgd": sgd,
        "cr_extra": extra,
        "ratio": (sgd + extra) / sgd,
        "routes": list(cost_model.resolve(net.layers, batch, routes)),
    }
