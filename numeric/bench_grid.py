"""``lowrank bench --grid``: how the CR step's cost grows with batch and width, per route.

For every cell (model, batch ``B``, width ``w``) four things are timed, interleaved round
by round (:func:`numeric.bench_steps.time_routes`), on one batch of embedded MNIST:

``sgd``          one SGD step (forward, adjoint sweep, update; :func:`numeric.bench_steps.sgd_step`);
``cr``           one CR-SGD step with every layer on the route :mod:`numeric.cost_model`
                 picks for its shape (``routes="auto"``, what training runs);
``gram``         ``d^T H d`` along ``-grad F`` alone, every layer that has them on the
                 low-rank forms (L1-L4) (:func:`numeric.curvature.sgd_curvature`);
``dense``        the same along the formed gradient (C4-C7);
``jax-sgd``, ``jax-cr``
                 with ``jax=True``: the SGD and CR-SGD steps of the generated kernels on
                 the JAX backend under ``jit`` (the same per-layer choice, made when the
                 step is traced).

The report (:func:`format_grid`) gives per cell CR / SGD (measured) beside the
multiply-add floor of the chosen routes (``(sgd + cr) / sgd`` of
:func:`numeric.cost_model.sgd_cost` and :func:`~numeric.cost_model.cr_cost`) and the
chosen routes; per model the growth exponents of each route's time, ``t ~ B^a w^b``
fitted by least squares in log space over the cells, beside the same fit of the model's
counts; and the calibration table: the model's predicted ratio of the two routes'
multiply-adds against the measured ratio of their times.

Models: ``mlp`` (``layers`` hidden layers of ``w``), ``cnn`` (the default conv layers of
:mod:`numeric.architectures`, then a dense layer of ``w``) and ``rnn`` (the default
recurrent layer of 64 units, then a dense layer of ``w``): conv and recurrent layers have
only the dense route, so the choice concerns their dense heads.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from numeric import cost_model
from numeric import curvature as cv
from numeric.bench_models import problem
from numeric.bench_steps import (
    cr_step,
    jax_gen_routes,
    mlp_problem,
    sgd_route,
    sgd_step,
    time_routes,
)
from numeric.losses import softmax_cross_entropy
from numeric.network import Network, backward, forward

__all__ = [
    "BATCHES",
    "MODELS",
    "WIDTHS",
    "Cell",
    "cell_routes",
    "fit_exponents",
    "format_grid",
    "grid_problem",
    "run_grid",
]

BATCHES = (32, 128, 512, 1024)
WIDTHS = (128, 256, 512, 1024)
MODELS = ("mlp", "cnn", "rnn")
ROUTES = ("sgd", "cr", "gram", "dense")


class Cell(NamedTuple):
    """One cell of the grid: its sizes, median times (s) per timed route, the routes the
    cost model chose per layer and the model's multiply-adds."""

    model: str
    batch: int
    width: int
    dtype: str
    seconds: dict
    chosen: tuple
    sgd_madds: int
    gram_madds: int
    dense_madds: int
    auto_madds: int

    @property
    def ratio(self) -> float:
        """Measured CR / SGD (the chosen routes)."""
        return self.seconds["cr"] / self.seconds["sgd"]

    @property
    def jax_ratio(self) -> float:
        """Measured CR / SGD on JAX (``nan`` when not timed)."""
        return self.seconds.get("jax-cr", math.nan) / self.seconds.get("jax-sgd", math.nan)

    @property
    def floor(self) -> float:
        """Multiply-add floor of CR / SGD on the chosen routes."""
        return (self.sgd_madds + self.auto_madds) / self.sgd_madds

    @property
    def predicted(self) -> float:
        """The model's ratio of the two routes' multiply-adds, Gram over dense."""
        return self.gram_madds / self.dense_madds

    @property
    def measured(self) -> float:
        """The measured ratio of the two routes' times, Gram over dense."""
        return self.seconds["gram"] / self.seconds["dense"]


def grid_problem(model: str, batch: int, width: int, layers: int, dtype, seed: int = 0):
    """``(net, x, y)``: the cell's network, a batch shaped for it and one-hot targets."""
    dtype = np.dtype(dtype)
    if model == "mlp":
        net, x, y, _, _ = mlp_problem(layers, width, batch, dtype, seed)
        return net, x, y
    options = {"dense": [width]}
    net, x, labels = problem(model, batch, dtype, seed, options=options)
    return net, x, np.eye(10, dtype=dtype)[labels]


def cell_routes(net: Network, x, y, jax: bool = False) -> dict[str, Callable[[], None]]:
    """The timed functions of a cell (module docstring); ``ImportError`` for ``jax=True``
    without JAX."""
    layers = net.layers
    tape = forward(layers, net.params, x)
    _, dfdp, d2fdp2 = softmax_cross_entropy(tape.p, y)
    adj = backward(layers, net.params, tape, dfdp)

    def along(routes: str) -> Callable[[], None]:
        def run() -> None:
            cv.sgd_curvature(layers, net.params, tape, adj, dfdp, d2fdp2, routes=routes)

        return run

    routes = {
        "sgd": sgd_step(net, x, y),
        "cr": cr_step(net, x, y, sgd_route(layers, "auto")),
        "gram": along("gram"),
        "dense": along("dense"),
    }
    if jax:
        gen = jax_gen_routes(net, x, y)
        routes.update({"jax-sgd": gen["jax-gen-sgd"], "jax-cr": gen["jax-gen-cr"]})
    return routes


def _short(chosen: Sequence[str], layers) -> str:
    """The chosen routes of the layers with parameters, as ``g``/``d`` letters."""
    return "".join(r[0] for r, lay in zip(chosen, layers, strict=True) if lay.n_params)


def run_grid(
    models: Sequence[str] = MODELS,
    batches: Sequence[int] = BATCHES,
    widths: Sequence[int] = WIDTHS,
    layers: int = 3,
    dtype: str = "float32",
    rounds: int = 5,
    seed: int = 0,
    progress: bool = True,
    jax: bool = False,
) -> list[Cell]:
    """Time every cell; one :class:`Cell` each, in order (``jax``: also the JAX steps)."""
    cells = []
    total = len(models) * len(batches) * len(widths)
    for model in models:
        for width in widths:
            for batch in batches:
                net, x, y = grid_problem(model, batch, width, layers, dtype, seed)
                try:
                    routes = cell_routes(net, x, y, jax)
                except ImportError:  # no JAX: the NumPy routes only
                    if not jax:
                        raise
                    print("JAX is not installed: the grid times NumPy only", file=sys.stderr)
                    jax = False
                    routes = cell_routes(net, x, y, jax)
                times = time_routes(routes, rounds, warmup=2 if jax else 1, slow=set())
                chosen = cost_model.choose(net.layers, batch)
                cells.append(
                    Cell(
                        model,
                        batch,
                        width,
                        dtype,
                        times,
                        tuple(_short(chosen, net.layers)),
                        cost_model.sgd_cost(net.layers, batch),
                        cost_model.cr_cost(net.layers, batch, "gram"),
                        cost_model.cr_cost(net.layers, batch, "dense"),
                        cost_model.cr_cost(net.layers, batch, "auto"),
                    )
                )
                if progress:
                    print(f"grid {len(cells)}/{total}: {model} B={batch} w={width} "
                          f"CR/SGD {cells[-1].ratio:.2f}", file=sys.stderr, flush=True)  # fmt: skip
    return cells


def fit_exponents(batches: Sequence[float], widths: Sequence[float],
                  values: Sequence[float]) -> tuple[float, float]:  # fmt: skip
    """``(a, b)`` of ``value ~ c B^a w^b``, least squares in log space (``nan`` where
    fewer than three cells or no spread in an axis)."""
    b = np.log(np.asarray(batches, dtype=float))
    w = np.log(np.asarray(widths, dtype=float))
    v = np.log(np.asarray(values, dtype=float))
    if len(v) < 3 or np.ptp(b) == 0 or np.ptp(w) == 0:
        return math.nan, math.nan
    design = np.stack([np.ones_like(b), b, w], axis=1)
    coef = np.linalg.lstsq(design, v, rcond=None)[0]
    return float(coef[1]), float(coef[2])


def format_grid(cells: Sequence[Cell], load: float | None = None) -> str:
    """The three Markdown tables of the module docstring."""
    jax = any("jax-cr" in c.seconds for c in cells)
    lines = [
        "| model | batch | width | SGD ms | CR ms | CR / SGD | floor | routes | "
        "gram ms | dense ms |" + (" JAX SGD ms | JAX CR / SGD |" if jax else ""),
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|" + ("---:|---:|" if jax else ""),
    ]
    for c in cells:
        s = c.seconds
        row = (
            f"| {c.model} | {c.batch} | {c.width} | {s['sgd'] * 1e3:.2f} | {s['cr'] * 1e3:.2f} "
            f"| {c.ratio:.2f} | {c.floor:.2f} | {''.join(c.chosen)} | {s['gram'] * 1e3:.2f} "
            f"| {s['dense'] * 1e3:.2f} |"
        )
        if jax:
            row += f" {s.get('jax-sgd', math.nan) * 1e3:.2f} | {c.jax_ratio:.2f} |"
        lines.append(row)
    lines += [
        "",
        "routes: one letter per layer with parameters, g = low-rank factors (L1-L4), "
        "d = the formed gradient (C4-C7); floor = (SGD + CR) / SGD multiply-adds of the "
        "chosen routes (numeric.cost_model); gram, dense = d^T H d alone on one route.",
        "",
        "| model | route | time: a (batch) | time: b (width) | model: a | model: b |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for model in dict.fromkeys(c.model for c in cells):
        mine = [c for c in cells if c.model == model]
        bs, ws = [c.batch for c in mine], [c.width for c in mine]
        for route, madds in (("gram", "gram_madds"), ("dense", "dense_madds")):
            ta, tb = fit_exponents(bs, ws, [c.seconds[route] for c in mine])
            ma, mb = fit_exponents(bs, ws, [getattr(c, madds) for c in mine])
            lines.append(f"| {model} | {route} | {ta:.2f} | {tb:.2f} | {ma:.2f} | {mb:.2f} |")
    lines += [
        "",
        "Growth exponents of t ~ B^a w^b, least squares in log space over the cells of a "
        "model: the measured times of each route, and the model's multiply-adds.",
        "",
        "| model | batch | width | predicted gram / dense | measured gram / dense | "
        "measured / predicted |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for c in cells:
        lines.append(
            f"| {c.model} | {c.batch} | {c.width} | {c.predicted:.2f} | {c.measured:.2f} "
            f"| {c.measured / c.predicted:.2f} |"
        )
    lines += ["", "Calibration: the model's multiply-add ratio of the two routes against "
              "their measured time ratio (d^T H d alone)."]  # fmt: skip
    if load is not None:
        lines.append(f"1-minute load average at the start: {load:.2f}.")
    return "\n".join(lines)
