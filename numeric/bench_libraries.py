"""``lowrank bench``'s routes for models people write (this module imports JAX).

The bench's network (its own weights) as an ``equinox.nn.MLP`` and as a
``flax.nnx.Sequential`` of ``nnx.Linear`` layers, each trained three ways, all jitted:

``<lib>-sgd``       ``jax.value_and_grad`` of the model's own forward pass + ``optax.sgd``.
``<lib>-cr-fast``   ``chain(identity(), scale_by_cr(...))`` with the model read by
                    :func:`numeric.adapters.objective`: gradient and ``d^T H d`` from the
                    generated kernels (low-rank L1-L4).
``<lib>-cr-jvp``    the same with ``d^T H d`` from ``jvp(grad)`` of the model's forward.

``<lib>`` is ``equinox`` or ``flax``; a library that is not installed is left out with a
note.  Ratios are to ``<lib>-sgd`` of the same run; a note gives XLA's FLOP count of each
compiled step beside them (a ratio the machine's load does not change).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from numeric import adapters
from numeric.network import Network

__all__ = ["LIBRARIES", "equinox_mlp", "flax_mlp", "flops", "library_routes"]


def _sizes(net: Network) -> tuple[int, int, int, int]:
    """``(d_in, classes, width, depth)`` of a dense bias-free ReLU network of equal widths."""
    widths = {int(w.shape[0]) for w in net.ws}
    if len(widths) != 1 or any(getattr(layer, "bias", False) for layer in net.layers):
        raise ValueError("the library routes take a bias-free network of equal widths")
    return int(net.ws[0].shape[1]), int(net.u.shape[0]), widths.pop(), len(net.ws)


def equinox_mlp(net: Network):
    """``equinox.nn.MLP`` with ``net``'s weights (``Linear.weight`` (out, in): as they are)."""
    import equinox as eqx

    d_in, classes, width, depth = _sizes(net)
    dtype = jnp.asarray(net.u).dtype
    model = eqx.nn.MLP(d_in, classes, width, depth, activation=jax.nn.relu, use_bias=False,
                       use_final_bias=False, dtype=dtype, key=jax.random.PRNGKey(0))  # fmt: skip
    weights = [jnp.asarray(w) for w in net.ws] + [jnp.asarray(net.u)]
    return eqx.tree_at(lambda m: [lin.weight for lin in m.layers], model, weights)


def flax_mlp(net: Network):
    """``flax.nnx.Sequential`` of ``nnx.Linear`` and ``nnx.relu`` with ``net``'s weights
    (``Linear.kernel`` (in, out): the transposes)."""
    from flax import nnx

    _sizes(net)
    dtype = jnp.asarray(net.u).dtype
    rngs = nnx.Rngs(0)
    parts: list = []
    for w in [*net.ws, net.u]:
        kernel = jnp.asarray(w, dtype).T

        def init(key, shape, dtype=dtype, kernel=kernel):
            return kernel

        lin = nnx.Linear(int(w.shape[1]), int(w.shape[0]), use_bias=False, dtype=dtype,
                         param_dtype=dtype, kernel_init=init, rngs=rngs)  # fmt: skip
        parts += [lin, nnx.relu]
    return nnx.Sequential(*parts[:-1])


#: ``name -> model factory``; each is left out when its library is not installed
LIBRARIES: dict[str, Callable] = {"equinox": equinox_mlp, "flax": flax_mlp}


def library_routes(net: Network, x, y, lr: float, sigma: float
                   ) -> tuple[dict[str, Callable[[], None]], list[str]]:  # fmt: skip
    """``<lib>-sgd``, ``<lib>-cr-fast``, ``<lib>-cr-jvp`` step functions (each runs one
    step and waits for it), and a note for each library not installed."""
    from numeric import jax_backend as jb
    from numeric.optax_methods import bench_steps

    if np.asarray(x).dtype == np.float64:
        jb.enable_x64()
    xj, yj = jb.device_array(x), jb.device_array(y)
    routes: dict[str, Callable[[], None]] = {}
    notes = []
    for name, make in LIBRARIES.items():
        try:
            model = make(net)
        except ImportError:
            notes.append(f"the {name} routes skipped: {name} is not installed")
            continue
        objective = adapters.objective(model, xj, yj)
        if not isinstance(objective, adapters.ModelObjective):
            raise AssertionError(f"the {name} model is not on the fast path")
        plain = adapters.plain_objective(model, xj, yj)
        params = adapters.parameters(model)
        steps = bench_steps(objective, lr, sigma, plain=plain, prefix=name)
        for route, fn in steps.items():
            routes[route] = jb.timed_step(fn, params)
        counts = {route: flops(tx, step, params) for route, (tx, step) in steps.items()}
        if all(counts.values()):
            sgd = counts[f"{name}-sgd"]
            notes.append(
                f"{name}: XLA's FLOP count of the compiled steps (load-independent): "
                + ", ".join(f"{r} {c / 1e6:.1f} M ({c / sgd:.2f})" for r, c in counts.items())
            )
    return routes, notes


def flops(tx, step, params) -> float:
    """The FLOP count XLA's cost analysis gives the compiled ``step(params, state)`` (0
    where the backend reports none)."""
    analysis = step.lower(params, tx.init(params)).compile().cost_analysis()
    if isinstance(analysis, list):  # older JAX: one entry per computation
        analysis = analysis[0] if analysis else {}
    return float((analysis or {}).get("flops", 0.0))
