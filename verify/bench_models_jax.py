"""JAX routes for ``lowrank bench --model cnn|rnn``, and a timing of all the model routes
in one run (``python -m verify.bench_models_jax --model cnn``).

Routes (each one jit-compiled step on the same batch as the NumPy routes of
:mod:`numeric.bench_models`):

``<model>-jax-sgd``      JAX's own SGD step: ``jax.grad`` of the model written directly in
                         JAX (:func:`verify.stacks.jax_loss`) and the update;
``<model>-jax-cr-hvp``   the same plus ``g^T H g`` for ``g = -grad F`` by forward-over-
                         reverse (``jax.jvp`` of ``jax.grad``), ``||g||^3`` and Eq 37;
``<model>-jax-gen-sgd``  the generated kernels and the layers' drivers on JAX arrays
                         under ``jax.jit``: forward, adjoint sweep, update;
``<model>-jax-gen-cr``   the same plus :func:`numeric.curvature.sgd_curvature` and Eq 37.

The table gives medians of interleaved rounds and the ratios the issue asks for: CR step /
SGD step of the same code (NumPy, JAX's autodiff, generated kernels on JAX).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable

import numpy as np

__all__ = ["register", "routes", "time_routes", "main"]


def register() -> dict:
    """The JAX routes of ``lowrank bench --model cnn|rnn`` (entry point in the group
    ``lowrank.bench.models``; see ``numeric.commands``)."""
    return {
        "help": "JAX's own SGD and jvp(grad) CR steps of the CNN and RNN",
        "main": routes,
        "requires": ("jax",),
        "extra": "verify",
    }


def routes(net, x, labels, lr: float, sigma: float) -> dict[str, Callable[[], None]]:
    """JAX step functions for ``net`` on ``(x, labels)``; each blocks until it is done."""
    import jax
    import jax.numpy as jnp

    from numeric.bench_models import _model_name
    from numeric.curvature import sgd_curvature
    from numeric.losses import softmax_cross_entropy
    from numeric.network import backward, forward
    from verify.stacks import jax_loss

    dtype = np.asarray(x).dtype
    if dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    name = _model_name(net)
    layers = net.layers
    y = np.eye(net.classes, dtype=dtype)[np.asarray(labels)]
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    params0 = [jnp.asarray(p) for p in net.params]
    loss = jax_loss(layers, xj, yj)
    grad = jax.grad(loss)

    def alpha_of(gtg, ghg):
        c = sigma * (-gtg) ** 1.5
        return -2 * gtg / (ghg + jnp.sqrt(ghg**2 - 2 * gtg * c))

    def vdot(a, b):
        return sum(jnp.vdot(p, q) for p, q in zip(a, b, strict=True))

    @jax.jit
    def sgd(params):
        return [p - lr * g for p, g in zip(params, grad(params), strict=True)]

    @jax.jit
    def cr_hvp(params):
        d = [-g for g in grad(params)]
        _, hd = jax.jvp(grad, (params,), (d,))
        alpha = alpha_of(-vdot(d, d), vdot(d, hd))
        return [p + alpha * e for p, e in zip(params, d, strict=True)]

    def sweeps(params, second):
        tape = forward(layers, params, xj, second)
        _, dfdp, d2fdp2 = softmax_cross_entropy(tape.p, yj, second=second)
        return tape, backward(layers, params, tape, dfdp), dfdp, d2fdp2

    @jax.jit
    def gen_sgd(params):
        _, adj, _, _ = sweeps(params, False)
        return [p - lr * g for p, g in zip(params, adj.grads, strict=True)]

    @jax.jit
    def gen_cr(params):
        tape, adj, dfdp, d2fdp2 = sweeps(params, True)
        gtg, ghg = sgd_curvature(layers, params, tape, adj, dfdp, d2fdp2)
        alpha = alpha_of(gtg, ghg)
        return [p - alpha * g for p, g in zip(params, adj.grads, strict=True)]

    state = {key: params0 for key in ("sgd", "hvp", "gsgd", "gcr")}

    def runner(key: str, fn) -> Callable[[], None]:
        def run() -> None:
            state[key] = jax.block_until_ready(fn(state[key]))

        return run

    return {
        f"{name}-jax-sgd": runner("sgd", sgd),
        f"{name}-jax-cr-hvp": runner("hvp", cr_hvp),
        f"{name}-jax-gen-sgd": runner("gsgd", gen_sgd),
        f"{name}-jax-gen-cr": runner("gcr", gen_cr),
    }


def time_routes(routes_: dict[str, Callable[[], None]], rounds: int, warmup: int, inner: int):
    """Median seconds per call of every route, timed in interleaved rounds."""
    for fn in routes_.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in routes_}
    for _ in range(rounds):
        for name, fn in routes_.items():
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            samples[name].append((time.perf_counter() - t0) / inner)
    return {name: float(np.median(vals)) for name, vals in samples.items()}


RATIOS = (
    ("cr", "sgd", "CR step / SGD step (generated kernels, NumPy)"),
    ("jax-cr-hvp", "jax-sgd", "jvp(grad) CR step / SGD step (JAX autodiff, jit)"),
    ("jax-gen-cr", "jax-gen-sgd", "CR step / SGD step (generated kernels on JAX, jit)"),
    ("sgd", "forward", "NumPy SGD step / forward pass"),
    ("cr", "forward", "NumPy CR step / forward pass"),
)


def main(argv=None) -> int:
    from numeric.bench_models import model_routes, multiply_adds, problem
    from numeric.training.loop import blas_threads

    p = argparse.ArgumentParser(
        prog="python -m verify.bench_models_jax", description=__doc__.splitlines()[0]
    )
    p.add_argument("--model", choices=["cnn", "rnn", "resmlp", "attention"], required=True)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--inner", type=int, default=10, help="calls per route per round")
    p.add_argument("--no-jax", action="store_true", help="the NumPy routes only")
    p.add_argument("--json", help="write the timings and ratios to this file")
    args = p.parse_args(argv)
    net, x, labels = problem(args.model, args.batch, np.dtype(args.dtype))
    with blas_threads(1):
        rs = model_routes(net, x, labels)
        if not args.no_jax:
            rs.update(routes(net, x, labels, 0.01, 100.0))
        med = time_routes(rs, args.rounds, warmup=3, inner=args.inner)
    counts = multiply_adds(net, args.batch)
    print(
        f"{args.model}: {net.num_params} parameters, batch {args.batch}, {args.dtype}, one BLAS "
        f"thread, {args.rounds} rounds x {args.inner} calls"
    )
    for name, sec in med.items():
        print(f"  {name:<20} {sec * 1e3:8.3f} ms")
    ratios = {}
    for a, b, what in RATIOS:
        ka, kb = f"{args.model}-{a}", f"{args.model}-{b}"
        if ka in med and kb in med:
            ratios[f"{a}/{b}"] = med[ka] / med[kb]
            print(f"  {what:<52} {med[ka] / med[kb]:.2f}")
    print(
        f"  multiply-adds per sample: forward {counts['forward']}, SGD step {counts['sgd']}, "
        f"CR adds {counts['cr_extra']}: bound (sgd + cr) / sgd = {counts['ratio']:.2f}"
    )
    if args.json:
        payload = {
            "model": args.model,
            "batch": args.batch,
            "dtype": args.dtype,
            "ms": {k: v * 1e3 for k, v in med.items()},
            "ratios": ratios,
            "multiply_adds": counts,
            "machine": platform.platform(),
        }
        with open(args.json, "w") as fh:
            json.dump(payload, fh, indent=2)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
