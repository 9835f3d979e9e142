"""``lowrank bench``: cost of the CR step length relative to an SGD step, in one run.

Every route is timed in the same run, interleaved round by round so that they share
whatever else the machine is doing; the table reports medians and their ratio to the SGD
step of the same code.  Routes (12 hidden layers of 128, batch 32, MNIST-sized input by
default; each route updates its own copy of the weights):

``sgd``             forward + backward + update through the generated kernels.
``cr-lowrank``      the same plus ``g^T H g`` for ``g = -grad F`` through the rank-``batch``
                    factors of the mini-batch gradient (L1-L4), ``||g||^3`` and alpha
                    (Eq 37 / C8).
``cr-tangent``      the same with a dense tangent sweep reusing the adjoints (C4-C7), as
                    for any direction (Adagrad, Adam...).
``cr-auto``         ``cr-lowrank`` with each layer on the cheaper route for its shape (the
                    low-rank factors or the formed gradient, :mod:`numeric.cost_model`):
                    what training runs.
``cr-literal``      the literal forms: per-sample eta^(k,l) chains (Eqs 19-23) and Eqs
                    38-39 term by term; O(n^2) width-cubed products.
``sgd@opt_einsum``, ``cr-lowrank@opt_einsum``
                    ``sgd`` and ``cr-lowrank`` with ``opt_einsum``'s cached
                    ``contract_expression`` in place of the hand-written NumPy planner of
                    ``numeric/kernels/_runtime.py``.
``train-sgd``, ``train-cr``
                    full training iterations (``lowrank train``'s per-step work: batch
                    gathering from the dataset, ``Method.step``, metric bookkeeping).
``train-adam``, ``train-cr-adam``, ``train-cr-<variant>[-adam]``, ``*-every4``
                    the same for Adam and the CR variants (adaptive: one extra forward
                    pass at the trial point; scale-invariant over Adam; per-layer;
                    per-variable: ``classes`` factored adjoint sweeps); ``*-every4``
                    computes the step length every 4 iterations (time per iteration,
                    amortised).
``jax-gen-sgd``, ``jax-gen-cr``
                    with JAX installed: the same generated kernels and drivers on the JAX
                    backend under ``jit`` (ratios to ``jax-sgd``).
``optax-sgd``, ``optax-cr-fast``, ``optax-cr-jvp``
                    with optax installed: a jit-compiled optax SGD step
                    (``jax.value_and_grad`` + ``optax.sgd``), and
                    ``chain(identity(), scale_by_cr(...))`` with ``d^T H d`` from the
                    generated kernels (``NetworkObjective``, low-rank L1-L4) or from
                    ``jvp(grad)`` of the loss (ratios to ``optax-sgd``).
``equinox-sgd``, ``equinox-cr-fast``, ``equinox-cr-jvp``, ``flax-*``
                    with equinox (flax) installed: the same network as an
                    ``equinox.nn.MLP`` (a ``flax.nnx.Sequential``), an optax SGD step on
                    its own forward pass, and ``scale_by_cr`` with the model read by
                    ``numeric.adapters`` (fast) or by ``jvp(grad)``
                    (:mod:`numeric.bench_libraries`; ratios to ``<library>-sgd``; timed
                    interleaved with the ``optax-*`` routes).
``jax-*``, ``kfac-jax``
                    other JAX routes registered under the ``lowrank.bench`` entry point
                    (the verify layer's JAX SGD step and its ``jvp(grad)`` and nested
                    forward-mode CR steps, written from the network's definition; one step
                    of kfac-jax's optimizer when it is installed; ratios to ``jax-sgd``).

Peak memory of one CR step and of one SGD step (``tracemalloc``, NumPy routes) is
reported beside the times.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

from numeric import curvature as cv
from numeric import weight_lists
from numeric.bench_steps import (
    CLOCKS,
    LR,
    SIGMA,
    STATISTICS,
    clock,
    cr_step,
    jax_gen_routes,
    mlp_problem,
    set_clock,
    set_statistic,
    sgd_route,
    sgd_step,
    statistic,
    time_routes,
)
from numeric.cr import CR, Baseline
from numeric.kernels import _runtime
from numeric.literal import feedforward as lit
from numeric.network import Network
from numeric.optimizers import SGD

__all__ = ["busy_warning", "main", "run_benchmark", "numpy_routes", "train_routes"]


def numpy_routes(net: Network, x, y) -> dict[str, Callable[[], None]]:
    """One step per route through the drivers; each route updates its own weights."""
    layers = net.layers

    def tangent(params, tape, adj, dfdp, d2fdp2):
        d = [-g for g in adj.grads]
        gtg, ghg = cv.directional(layers, params, tape, adj, dfdp, d2fdp2, d)
        return gtg, ghg, cv.sq_norm(d) ** 1.5

    def literal(params, tape, adj, dfdp, d2fdp2):
        ws, u = params[:-1], params[-1]
        etas = lit.eta_chains(ws, tape.masks)
        omega, phis = -adj.grads[-1], [-g for g in adj.grads[:-1]]
        gtg, ghg = lit.directional_literal(tape, etas, ws, u, dfdp, d2fdp2, omega, phis)
        return gtg, ghg, weight_lists.norm_cubed(omega, phis)

    return {
        "sgd": sgd_step(net, x, y),
        "cr-lowrank": cr_step(net, x, y, sgd_route(layers, "gram")),
        "cr-tangent": cr_step(net, x, y, tangent),
        "cr-auto": cr_step(net, x, y, sgd_route(layers, "auto")),
        "cr-literal": cr_step(net, x, y, literal),
    }


def _with_planner(name: str, fn: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        old = _runtime.set_planner(name)
        try:
            fn()
        finally:
            _runtime.set_planner(old)

    return run


#: step-length reuse routes run this many iterations per call (the amortised cost)
EVERY = 4


def train_routes(net: Network, data, batch: int, seed: int) -> dict[str, Callable[[], None]]:
    """Full training iterations, as ``lowrank train`` runs them: SGD, Adam, the paper's CR
    and the CR variants (:mod:`numeric.rules`).  The ``*-every4`` routes run
    :data:`EVERY` iterations per call (one computes the step length, the others reuse
    it); :func:`run_benchmark` divides their time by :data:`EVERY`."""
    from numeric.data import BatchSampler
    from numeric.optimizers import Adam
    from numeric.training.iteration import iteration_runner

    xs, labels = data
    routes: dict[str, Callable[[], None]] = {}
    methods = [
        ("train-sgd", Baseline(SGD(), lr=LR)),
        ("train-cr", CR(SGD(), sigma=SIGMA, lr=LR)),
        ("train-adam", Baseline(Adam(), lr=1e-3)),
        ("train-cr-adam", CR(Adam(), sigma=1000.0, lr=1e-3)),
        ("train-cr-adaptive", CR(SGD(), sigma=SIGMA, lr=LR, variant="adaptive")),
        ("train-cr-adaptive-adam", CR(Adam(), 1000.0, lr=1e-3, variant="adaptive")),
        ("train-cr-scale-invariant-adam", CR(Adam(), 1e6, lr=1e-3, variant="scale-invariant")),
        ("train-cr-per-layer", CR(SGD(), sigma=SIGMA, lr=LR, variant="per-layer")),
        ("train-cr-per-variable", CR(SGD(), sigma=SIGMA, lr=LR, variant="per-variable")),
        (f"train-cr-adaptive-adam-every{EVERY}",
         CR(Adam(), 1000.0, lr=1e-3, variant="adaptive", every=EVERY)),
        (f"train-cr-per-layer-every{EVERY}",
         CR(SGD(), sigma=SIGMA, lr=LR, variant="per-layer", every=EVERY)),
        (f"train-cr-per-variable-every{EVERY}",
         CR(SGD(), sigma=SIGMA, lr=LR, variant="per-variable", every=EVERY)),
    ]  # fmt: skip
    for name, method in methods:

        def make(method=method) -> Callable[[], None]:
            return iteration_runner(method, net, xs, labels, BatchSampler(len(labels), batch, seed))

        run = _restarting(make)
        if name.endswith(f"-every{EVERY}"):

            def run_k(run=run) -> None:
                for _ in range(EVERY):
                    run()

            routes[name] = run_k
        else:
            routes[name] = run
    return routes


def _restarting(make: Callable[[], Callable[[], None]]) -> Callable[[], None]:
    """An iteration runner that starts a fresh run when its run diverges (per-variable CR
    reusing its lengths does, within a few steps): the bench times steps, not a run."""
    from numeric.stepping import Diverged

    box = {"run": make()}

    def run() -> None:
        try:
            box["run"]()
        except Diverged:
            box["run"] = make()
            box["run"]()

    return run


def _optax_routes(net: Network, x, y) -> dict[str, Callable[[], None]]:
    from numeric import jax_backend as jb
    from numeric import optax as nopt
    from numeric import optax_methods

    jnet = jb.to_jax(net)
    xj, yj = jb.device_array(x), jb.device_array(y)
    objective = nopt.NetworkObjective(net.layers, xj, yj)
    return {
        name: jb.timed_step(fn, list(jnet.params))
        for name, fn in optax_methods.bench_steps(objective, LR, SIGMA).items()
    }


def _plugin_routes(net: Network, x, y) -> tuple[dict[str, Callable[[], None]], list[str]]:
    """Routes registered in the ``lowrank.bench`` entry points (JAX's own steps), with a
    note for each one that cannot run here."""
    from numeric.commands import BENCH_GROUP, discover

    routes: dict[str, Callable[[], None]] = {}
    notes = []
    for name, plugin in discover(BENCH_GROUP).items():
        why = plugin.unavailable(f"the {name} routes")
        if why is not None:
            notes.append(why)
            continue
        try:
            routes.update(plugin.main(net.ws, net.u, x, y, LR, SIGMA))
        except ImportError as exc:
            notes.append(f"the {name} routes cannot run ({exc})")
    return routes, notes


def _peak_bytes(fn: Callable[[], None]) -> int:
    fn()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def run_benchmark(
    depth: int = 12,
    width: int = 128,
    batch: int = 32,
    dtypes: tuple[str, ...] = ("float32", "float64"),
    rounds: int = 200,
    seed: int = 0,
    jax: bool = True,
    literal: bool = True,
    progress: bool = False,
) -> dict:
    """Time every route; return a JSON-ready dict of medians (s), ratios and notes."""
    out: dict = {
        "config": {
            "depth": depth,
            "width": width,
            "batch": batch,
            "rounds": rounds,
            "statistic": statistic(),
            "clock": clock(),
            "sigma": SIGMA,
            "seed": seed,
        },
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "processor": platform.machine(),
            "cpus": os.cpu_count(),
        },
        "routes": {},
        "memory": {},
        "notes": [],
    }
    for dtype in dtypes:
        net, x, y, data, source = mlp_problem(depth, width, batch, np.dtype(dtype), seed)
        out["config"]["data"] = source
        routes = numpy_routes(net, x, y)
        if not literal:
            routes.pop("cr-literal")
        for name in ("sgd", "cr-lowrank"):
            routes[f"{name}@opt_einsum"] = _with_planner("opt_einsum", routes[name])
        routes.update(train_routes(net, data, batch, seed))
        times = time_routes(routes, rounds, warmup=5, slow={"cr-literal"})
        for name in times:
            if name.endswith(f"-every{EVERY}"):
                times[name] /= EVERY  # per iteration, amortised
        base = times["sgd"]
        for name, t in times.items():
            out["routes"].setdefault(name, {})[dtype] = {"seconds": t, "ratio": t / base}
        sgd_peak = _peak_bytes(routes["sgd"])
        cr_peak = _peak_bytes(routes["cr-lowrank"])
        out["memory"][dtype] = {
            "sgd_peak_bytes": sgd_peak,
            "cr_peak_bytes": cr_peak,
            "ratio": cr_peak / sgd_peak if sgd_peak else math.nan,
        }
        if jax:
            try:
                jroutes = jax_gen_routes(net, x, y)
            except ImportError:
                out["notes"].append(
                    "JAX routes skipped: JAX is not installed (pip install '.[jax]')"
                )
                jax = False
            else:
                plugins, notes = _plugin_routes(net, x, y)
                out["notes"] += notes
                jroutes = {**plugins, **jroutes}
                try:
                    oroutes = _optax_routes(net, x, y)
                except ImportError:
                    out["notes"].append("optax routes skipped: optax is not installed")
                    oroutes = {}
                else:
                    from numeric.bench_libraries import library_routes

                    lroutes, notes = library_routes(net, x, y, LR, SIGMA)
                    oroutes.update(lroutes)
                    out["notes"] += notes
                jtimes = time_routes(jroutes, rounds, warmup=5, slow=set())
                jbase = jtimes.get("jax-sgd", jtimes["jax-gen-sgd"])
                for name, t in jtimes.items():
                    out["routes"].setdefault(name, {})[dtype] = {"seconds": t, "ratio": t / jbase}
                if oroutes:
                    otimes = time_routes(oroutes, rounds, warmup=5, slow=set())
                    for name, t in otimes.items():  # to the SGD step of its family
                        out["routes"].setdefault(name, {})[dtype] = {
                            "seconds": t,
                            "ratio": t / otimes[name.split("-")[0] + "-sgd"],
                        }
    return out


def run_model_benchmark(
    model: str, batch: int, dtypes: tuple[str, ...], rounds: int, seed: int, jax: bool
) -> dict:
    """Routes of the CNN, RNN or ResMLP (:mod:`numeric.bench_models`, and JAX's through the
    ``lowrank.bench.models`` entry points), with the multiply-add count bounding them."""
    from numeric.bench_models import model_routes, multiply_adds, problem
    from numeric.commands import BENCH_MODELS_GROUP, discover

    out: dict = {
        "config": {
            "model": model,
            "batch": batch,
            "rounds": rounds,
            "seed": seed,
            "statistic": statistic(),
            "clock": clock(),
        },
        "machine": {"python": platform.python_version(), "numpy": np.__version__},
        "routes": {},
        "multiply_adds": {},
        "notes": [],
    }
    for dtype in dtypes:
        net, x, labels = problem(model, batch, np.dtype(dtype), seed)
        out["multiply_adds"] = multiply_adds(net, batch)
        times = time_routes(model_routes(net, x, labels), rounds, warmup=5, slow=set())
        base = times[f"{model}-sgd"]
        for name, t in times.items():
            out["routes"].setdefault(name, {})[dtype] = {"seconds": t, "ratio": t / base}
        if not jax:
            continue
        for name, plugin in discover(BENCH_MODELS_GROUP).items():
            why = plugin.unavailable(f"the {name} routes")
            if why is not None:
                out["notes"].append(why)
                continue
            jroutes = plugin.main(net, x, labels, LR, SIGMA)
            jtimes = time_routes(jroutes, rounds, warmup=5, slow=set())
            for kind in ("jax", "jax-gen"):
                sgd = jtimes.get(f"{model}-{kind}-sgd")
                for name_, t in jtimes.items():
                    if name_.startswith(f"{model}-{kind}-") and sgd:
                        out["routes"].setdefault(name_, {})[dtype] = {
                            "seconds": t,
                            "ratio": t / sgd,
                        }
    m = out["multiply_adds"]
    out["notes"].append(
        f"multiply-adds per sample: SGD step {m['sgd']:,}, CR adds {m['cr_extra']:,}; "
        f"(SGD + CR) / SGD = {m['ratio']:.2f} bounds the CR / SGD ratio where products dominate"
    )
    return out


def _stat(cfg: dict) -> str:
    word = "minima" if cfg.get("statistic") == "min" else "medians"
    return f"{word} (CPU time)" if cfg.get("clock") == "cpu" else word


def format_table(result: dict) -> str:
    """The benchmark as a Markdown table."""
    dtypes = sorted({d for r in result["routes"].values() for d in r})
    head = "| route | " + " | ".join(f"{d} ms | {d} ratio" for d in dtypes) + " |"
    sep = "|---|" + "---:|---:|" * len(dtypes)
    lines = [head, sep]
    for name, per in result["routes"].items():
        cells = []
        for d in dtypes:
            if d in per:
                cells += [f"{per[d]['seconds'] * 1e3:.3f}", f"{per[d]['ratio']:.2f}"]
            else:
                cells += ["-", "-"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    cfg = result["config"]
    lines.append("")
    if "model" in cfg:
        lines.append(
            f"{cfg['model']} (numeric.architectures defaults), batch {cfg['batch']}, {_stat(cfg)} of "
            f"{cfg['rounds']} interleaved rounds; ratios to the SGD step of the same code "
            "(NumPy, JAX's autodiff, generated kernels on JAX)."
        )
        return "\n".join(lines + result.get("notes", []))
    lines.append(
        f"{cfg['depth']}x{cfg['width']} (layers x width) ReLU net, batch {cfg['batch']}, "
        f"{cfg['data']}, BLAS threads {cfg.get('blas_threads', 'default')}; {_stat(cfg)} of "
        f"{cfg['rounds']} interleaved rounds; ratios to the SGD step of the same code "
        "(jax-* to the JAX SGD step)."
    )
    for d, mem in result.get("memory", {}).items():
        lines.append(
            f"Peak memory, {d}: CR step {mem['cr_peak_bytes'] / 1e6:.2f} MB, SGD step "
            f"{mem['sgd_peak_bytes'] / 1e6:.2f} MB ({mem['ratio']:.2f}x)."
        )
    lines += result.get("notes", [])
    return "\n".join(lines)


def derived_ratios(result: dict, dtype: str = "float32") -> dict[str, float]:
    """The issue's target ratios from one run (``nan`` where a route is missing)."""

    def t(name):
        return result["routes"].get(name, {}).get(dtype, {}).get("seconds", math.nan)

    best = min(t("cr-lowrank"), t("cr-tangent"))  # the better of the two whole routes
    return {
        "cr-lowrank/sgd": t("cr-lowrank") / t("sgd"),
        "cr-tangent/sgd": t("cr-tangent") / t("sgd"),
        "cr-auto/sgd": t("cr-auto") / t("sgd"),
        "best-cr/sgd": best / t("sgd"),
        "train-cr/best-cr": t("train-cr") / best,
        "train-cr/sgd": t("train-cr") / t("sgd"),
        "train-cr/cr-lowrank": t("train-cr") / t("cr-lowrank"),
        "train-sgd/sgd": t("train-sgd") / t("sgd"),
        "jax-gen-cr/jax-sgd": t("jax-gen-cr") / t("jax-sgd"),
        "jax-gen-cr/jax-gen-sgd": t("jax-gen-cr") / t("jax-gen-sgd"),
        "jax-cr-hvp/jax-sgd": t("jax-cr-hvp") / t("jax-sgd"),
        "optax-cr-fast/optax-sgd": t("optax-cr-fast") / t("optax-sgd"),
        "optax-cr-jvp/optax-sgd": t("optax-cr-jvp") / t("optax-sgd"),
        **{
            f"{lib}-cr-{path}/{lib}-sgd": t(f"{lib}-cr-{path}") / t(f"{lib}-sgd")
            for lib in ("equinox", "flax")
            for path in ("fast", "jvp")
        },
        "kfac-jax/jax-sgd": t("kfac-jax") / t("jax-sgd"),
        **{
            f"{name}/train-sgd": t(name) / t("train-sgd")
            for name in (
                "train-cr",
                "train-adam",
                "train-cr-adam",
                "train-cr-adaptive",
                "train-cr-adaptive-adam",
                "train-cr-scale-invariant-adam",
                "train-cr-per-layer",
                "train-cr-per-variable",
                f"train-cr-adaptive-adam-every{EVERY}",
                f"train-cr-per-layer-every{EVERY}",
                f"train-cr-per-variable-every{EVERY}",
            )
        },
        "opt_einsum/runtime (sgd)": t("sgd@opt_einsum") / t("sgd"),
        "opt_einsum/runtime (cr-lowrank)": t("cr-lowrank@opt_einsum") / t("cr-lowrank"),
    }


def busy_warning() -> tuple[float | None, str | None]:
    """The 1-minute load average, and a warning when it exceeds the CPU count (other
    processes then take time from the timed routes); ``(None, None)`` where the system
    reports no load average."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every system
        return None, None
    cpus = os.cpu_count() or 1
    if load <= cpus:
        return load, None
    return load, (
        f"the 1-minute load average is {load:.2f}, above the {cpus} CPU cores: other "
        "processes compete for them and the timings are slower and noisier than on an idle "
        "machine"
    )


def _record_load(result: dict, load: float | None, busy: str | None) -> None:
    """The load average at the start in ``result["machine"]``, the warning in its notes."""
    result["machine"]["load_1min"] = load
    if busy is not None:
        result["notes"].append(busy)


def main(argv: list[str] | None = None) -> int:
    from numeric.outputs import OutputPathError, check_output_file
    from numeric.sizes import nonnegative_int, positive_int, positive_int_list, seed_int

    parser = argparse.ArgumentParser(
        prog="lowrank bench",
        description="Cost of the CR step length relative to an SGD step: every route "
        "timed in the same run, interleaved round by round (numeric/bench.py lists them).",
    )
    parser.add_argument(
        "--model",
        choices=["mlp", "cnn", "rnn", "resmlp", "attention"],
        default="mlp",
        help="mlp: the paper's network (sized by --layers, --width); cnn, rnn, resmlp, attention: the "
        "models of lowrank train --model at their defaults (default: mlp)",
    )
    parser.add_argument(
        "--layers", type=positive_int, default=12, help="hidden layers (default: 12)"
    )
    parser.add_argument(
        "--width", type=positive_int, default=128, help="width of every hidden layer (default: 128)"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=32, help="mini-batch size (default: 32)"
    )
    parser.add_argument(
        "--rounds", type=positive_int, default=None,
        help="timed rounds (default: 200; 5 with --grid)",
    )  # fmt: skip
    parser.add_argument(
        "--dtype",
        choices=["float32", "float64", "both"],
        default=None,
        help="floating-point type (default: both; float32 with --grid)",
    )
    parser.add_argument(
        "--clock", choices=CLOCKS, default="wall",
        help="wall time, or the process's CPU time (steadier on a machine shared with "
        "other jobs; all its threads count) (default: wall)",
    )  # fmt: skip
    grid = parser.add_argument_group(
        "grid", "--grid: CR / SGD over batch and width per route (numeric/bench_grid.py)"
    )
    grid.add_argument(
        "--grid", action="store_true",
        help="time the grid of --grid-models x --grid-batches x --grid-widths instead "
        "(default: the single network of --layers, --width and --batch-size)",
    )  # fmt: skip
    grid.add_argument(
        "--grid-models", default="mlp,cnn,rnn",
        help="comma-separated models of the grid (default: mlp,cnn,rnn)",
    )  # fmt: skip
    grid.add_argument(
        "--grid-batches", type=positive_int_list, default=[32, 128, 512, 1024],
        help="comma-separated batch sizes (default: 32,128,512,1024)",
    )  # fmt: skip
    grid.add_argument(
        "--grid-widths", type=positive_int_list, default=[128, 256, 512, 1024],
        help="comma-separated widths: the MLP's hidden layers, the dense head of the CNN "
        "and RNN (default: 128,256,512,1024)",
    )  # fmt: skip
    grid.add_argument(
        "--grid-layers", type=positive_int, default=3,
        help="hidden layers of the grid's MLP (default: 3)",
    )  # fmt: skip
    parser.add_argument(
        "--no-jax", action="store_true", help="skip the JAX routes (default: time them)"
    )
    parser.add_argument(
        "--no-literal",
        action="store_true",
        help="skip the literal route (default: time it, every tenth round)",
    )
    parser.add_argument(
        "--seed", type=seed_int, default=0, help="seed of weights and inputs (default: 0)"
    )
    parser.add_argument(
        "--stat", choices=STATISTICS, default="median",
        help="per route, the median over the rounds or their minimum (the least disturbed "
        "round: steadier on a loaded machine) (default: median)",
    )  # fmt: skip
    parser.add_argument(
        "--json",
        help="also write the measurements to this file, creating its directory "
        "(default: print only)",
    )
    parser.add_argument(
        "--threads",
        type=nonnegative_int,
        default=1,
        help="BLAS threads; on small matrices more threads mostly add synchronisation; 0 "
        "leaves the library default (default: 1, as training uses)",
    )
    args = parser.parse_args(argv)
    if args.json:
        try:  # before minutes of timing, not after
            check_output_file(args.json, "measurements", create_parents=True)
        except OutputPathError as exc:
            parser.error(str(exc))
    if args.dtype is None:
        args.dtype = "float32" if args.grid else "both"
    if args.rounds is None:
        args.rounds = 5 if args.grid else 200
    dtypes = ("float32", "float64") if args.dtype == "both" else (args.dtype,)
    models = [m.strip() for m in args.grid_models.split(",") if m.strip()]
    bad = sorted(set(models) - {"mlp", "cnn", "rnn"})
    if args.grid and (bad or not models):
        parser.error(f"--grid-models takes mlp, cnn, rnn; got {args.grid_models!r}")
    set_statistic(args.stat)
    set_clock(args.clock)
    load, busy = busy_warning()
    if busy is not None:
        print(f"warning: {busy}", file=sys.stderr, flush=True)
    limit = contextlib.nullcontext()
    if args.threads > 0:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            print("threadpoolctl is not installed: BLAS keeps its default thread count")
        else:
            limit = threadpool_limits(limits=args.threads, user_api="blas")
    if args.grid:
        from numeric import bench_grid

        jax = not args.no_jax

        with limit:
            cells = [c for d in dtypes for c in bench_grid.run_grid(
                models, args.grid_batches, args.grid_widths, args.grid_layers, d,
                args.rounds, args.seed, jax=jax)]  # fmt: skip
        print(bench_grid.format_grid(cells, load))
        cfg = {"statistic": args.stat, "clock": args.clock}
        print(f"Times: {_stat(cfg)} of {args.rounds} interleaved rounds.")
        if busy is not None:
            print(f"warning: {busy}")
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            rows = [{**c._asdict(), "ratio": c.ratio, "floor": c.floor,
                     "jax_ratio": c.jax_ratio if math.isfinite(c.jax_ratio) else None}
                    for c in cells]  # fmt: skip
            Path(args.json).write_text(
                json.dumps({"load_1min": load, **cfg, "cells": rows}, indent=2)
            )
        return 0
    if args.model != "mlp":
        with limit:
            result = run_model_benchmark(
                args.model, args.batch_size, dtypes, args.rounds, args.seed, not args.no_jax
            )
        _record_load(result, load, busy)
        print(format_table(result))
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(result, indent=2))
        return 0
    with limit:
        result = run_benchmark(
            args.layers,
            args.width,
            args.batch_size,
            dtypes,
            args.rounds,
            args.seed,
            jax=not args.no_jax,
            literal=not args.no_literal,
        )
    result["config"]["blas_threads"] = args.threads or "default"
    _record_load(result, load, busy)
    result["derived"] = {d: derived_ratios(result, d) for d in dtypes}
    print(format_table(result))
    for d, ratios in result["derived"].items():
        shown = ", ".join(f"{k} {v:.2f}" for k, v in ratios.items() if math.isfinite(v))
        print(f"{d}: {shown}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0
