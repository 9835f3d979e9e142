"""What a sharded training step sends between devices: the collectives XLA compiles.

The issue of data parallelism for CR is what crosses devices.  ``d^T H d`` for the global
batch needs the cross-sample Gram blocks of the low-rank forms, so each device needs the
other devices' per-sample factors (batch x width per layer), not their gradients.  This
module compiles one step of :func:`numeric.jax_backend.step` for a batch split over the
local devices and counts the collectives in the optimized HLO, with the number of array
elements each moves.

Run with several devices, for example on a CPU::

    XLA_FLAGS=--xla_force_host_platform_device_count=4 python -m verify.collectives

Every data-parallel step all-reduces the gradient (the replicated weights need the
whole-batch update); what CR adds on top of the SGD step is what this measures.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Collectives", "count_collectives", "main", "step_collectives"]

_KINDS = ("all-gather", "all-reduce", "reduce-scatter", "all-to-all", "collective-permute")
_SHAPE = re.compile(r"[a-z]+\d*\[([\d,]*)\]")


@dataclass(frozen=True)
class Collectives:
    """Counts and moved elements (summed over operands) per collective kind."""

    ops: dict[str, int]
    elements: dict[str, int]

    def total(self, kind: str) -> int:
        return self.elements.get(kind, 0)


def count_collectives(hlo_text: str) -> Collectives:
    """The collectives of an optimized HLO module's text (async ``-start`` halves counted
    once; tuple-shaped results summed over their operands)."""
    ops: dict[str, int] = {}
    elements: dict[str, int] = {}
    for line in hlo_text.splitlines():
        if "=" not in line:
            continue
        lhs, rhs = line.split("=", 1)
        for kind in _KINDS:
            match = re.search(rf"\s{kind}(-start)?\(", rhs)
            if match is None:
                continue
            result_type = rhs[: match.start()]
            n = 0
            for dims in _SHAPE.findall(result_type):
                n += int(np.prod([int(d) for d in dims.split(",") if d])) if dims else 1
            if match.group(1):  # an async start returns (operands, results): count half
                n //= 2
            ops[kind] = ops.get(kind, 0) + 1
            elements[kind] = elements.get(kind, 0) + n
            break
    return Collectives(ops, elements)


METHODS = ("sgd", "cr-sgd", "cr-adam")


def step_collectives(
    method: str = "cr-sgd",
    devices: int | None = None,
    widths: Sequence[int] = (128,) * 12,
    batch: int = 32,
) -> tuple[Collectives, int]:
    """Compile one step of ``method`` (one of :data:`METHODS`) for a 784-input,
    10-class network with hidden ``widths`` and a batch split over ``devices`` (default
    all local devices); returns its collectives and the number of weights."""
    import jax
    import jax.numpy as jnp

    from numeric import jax_backend as jb
    from numeric.cr import CR, Baseline
    from numeric.network import Network
    from numeric.optimizers import SGD, Adam

    sharding = jb.batch_sharding(devices)
    if sharding is None:
        raise ValueError(
            "one device: nothing to split (set --xla_force_host_platform_device_count)"
        )
    net = Network.create(784, list(widths), 10, seed=0, dtype=np.float32)
    net = jb.replicate(jb.to_jax(net), sharding)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "sgd":
        rule = Baseline(SGD(), lr=0.02)
    else:
        rule = CR({"cr-sgd": SGD, "cr-adam": Adam}[method](), sigma=100.0, lr=0.02)
    state = rule.init(net)
    rng = np.random.default_rng(0)
    x = rng.random((batch, 784)).astype(np.float32)
    labels = rng.integers(0, 10, batch)
    accs = {k: v for k, v in state.opt.items() if k not in ("step", "shapes")}
    xs = jax.device_put(jnp.asarray(x), sharding)
    ys = jax.device_put(net.targets(labels, batch), sharding)
    fn = jb._compiled(rule, net.layers, True)
    text = fn.lower(net.params, accs, {}, 0, xs, ys, 0.02).compile().as_text()
    return count_collectives(text), sum(int(np.prod(p.shape)) for p in net.params)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m verify.collectives", description=__doc__.splitlines()[0]
    )
    p.add_argument("--devices", type=int, default=None, help="devices (default: all local)")
    args = p.parse_args(argv)
    print("12x128 ReLU MLP, batch 32, float32; elements moved per step by each collective")
    found = {}
    for method in METHODS:
        found[method], weights = step_collectives(method, args.devices)
        parts = ", ".join(
            f"{found[method].ops[k]} {k} ({found[method].elements[k]:,} elements)"
            for k in sorted(found[method].ops)
        )
        print(f"{method}: {parts or 'none'}")
    moved = {m: sum(f.elements.values()) for m, f in found.items()}
    print(
        f"the network has {weights:,} weights; CR-SGD moves {moved['cr-sgd'] - moved['sgd']:,} "
        f"elements more than the SGD step ({moved['cr-sgd'] / moved['sgd']:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
