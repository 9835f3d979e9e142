"""JAX routes for ``lowrank bench``: JAX's own SGD step and two autodiff ways to get
``g^T H g`` for the SGD direction, written from the definition of the network
(Eqs 10-16), independent of the generated kernels.

``jax-sgd``            jit-compiled forward + ``jax.grad`` + update.
``jax-cr-hvp``         the same plus ``g^T H g`` by forward-over-reverse
                       (``jax.jvp`` of ``jax.grad``), ``||g||^3`` and alpha (Eq 37).
``jax-cr-forward``     ``g^T H g`` by nested forward mode: the second derivative of
                       ``t -> F(theta + t g)`` (``jax.jvp`` of ``jax.jvp``).
``kfac-jax``           one step of kfac-jax's optimizer (adaptive learning rate and
                       momentum) on the same network, when kfac-jax is installed
                       (:mod:`verify.peers`).

:func:`register` also offers the peers of ``lowrank reproduce compare``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["register", "routes"]


def routes(ws, u, x, y, lr: float, sigma: float) -> dict[str, Callable[[], None]]:
    """Step functions for the benchmark; each blocks until its result is ready."""
    import jax
    import jax.numpy as jnp

    if np.asarray(x).dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    dtype = np.asarray(x).dtype
    params0 = ([jnp.asarray(w, dtype) for w in ws], jnp.asarray(u, dtype))
    xj, yj = jnp.asarray(x, dtype), jnp.asarray(y, dtype)

    def loss(params):
        hidden, out = params
        v = xj
        for w in hidden:
            v = jax.nn.relu(v @ w.T)
        logp = jax.nn.log_softmax(v @ out.T, axis=1)
        return -jnp.mean(jnp.sum(yj * logp, axis=1))

    grad = jax.grad(loss)

    def cr_alpha(params, g, ghg):
        gtg = -sum(jnp.vdot(a, a) for a in jax.tree_util.tree_leaves(g))
        norm3 = (-gtg) ** 1.5
        c = sigma * norm3
        return -2 * gtg / (ghg + jnp.sqrt(ghg**2 - 2 * gtg * c))

    @jax.jit
    def sgd_step(params):
        g = grad(params)
        return jax.tree_util.tree_map(lambda p, d: p - lr * d, params, g)

    @jax.jit
    def hvp_step(params):
        g = jax.tree_util.tree_map(lambda a: -a, grad(params))
        _, hg = jax.jvp(grad, (params,), (g,))
        ghg = sum(
            jnp.vdot(a, b)
            for a, b in zip(
                jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(hg), strict=True
            )
        )
        alpha = cr_alpha(params, g, ghg)
        return jax.tree_util.tree_map(lambda p, d: p + alpha * d, params, g)

    @jax.jit
    def forward_step(params):
        g = jax.tree_util.tree_map(lambda a: -a, grad(params))

        def along(t):
            return loss(jax.tree_util.tree_map(lambda p, d: p + t * d, params, g))

        def first(t):
            return jax.jvp(along, (t,), (jnp.ones_like(t),))[1]

        ghg = jax.jvp(first, (jnp.zeros((), dtype),), (jnp.ones((), dtype),))[1]
        alpha = cr_alpha(params, g, ghg)
        return jax.tree_util.tree_map(lambda p, d: p + alpha * d, params, g)

    state = {"sgd": params0, "hvp": params0, "fwd": params0}

    def runner(key: str, fn) -> Callable[[], None]:
        def run() -> None:
            state[key] = jax.block_until_ready(fn(state[key]))

        return run

    out = {
        "jax-sgd": runner("sgd", sgd_step),
        "jax-cr-hvp": runner("hvp", hvp_step),
        "jax-cr-forward": runner("fwd", forward_step),
    }
    from verify.peers import kfac_bench_route, kfac_reason

    if kfac_reason() is None:  # kfac-jax's optimizer, adaptive lr and momentum
        out.update(kfac_bench_route(ws, u, x, y))
    return out


def register() -> dict:
    """The JAX routes of ``lowrank bench`` (entry point in the group ``lowrank.bench``;
    see ``numeric.commands``).  JAX is imported only when :func:`routes` runs."""
    from verify.peers import peers

    return {
        "help": "JAX's own SGD and CR steps, and kfac-jax's step",
        "main": routes,
        "requires": ("jax",),
        "extra": "verify",
        # second-order peers for ``lowrank reproduce compare`` (numeric.compare)
        "peers": peers,
    }
