"""A second-order peer for ``lowrank reproduce compare``: kfac-jax's optimizer.

K-FAC with ``use_adaptive_learning_rate`` and ``use_adaptive_momentum`` picks its step
(learning rate and momentum) from the exact quadratic model along its update directions,
with Gauss-Newton-vector products: the closest existing method to a CR step length.
Here it trains the same network as the ``numeric`` methods: :class:`KfacMethod` writes
the network's dense layers (weights, and biases where the layers have them) as a JAX
function with kfac-jax's layer tags (``register_dense``) and the softmax cross-entropy
tag, from the same initial weights, and hands the weights back after every step.

kfac-jax is an optional dependency (the ``[peers]`` extra); ``numeric`` never imports
it: the compare driver finds :func:`peers` through the ``lowrank.bench`` entry point of
this layer (:mod:`verify.bench_jax`).

Its state (kfac-jax's, the weights and the random key) round-trips through named arrays
(:meth:`KfacMethod.state_to_arrays`, :meth:`KfacMethod.state_from_arrays`, each leaf with
its saved dtype): an interrupted run continues bit for bit.

Compatibility: kfac-jax 0.0.8 evaluates jaxpr equations with the ``get_bind_params``
protocol of JAX before 0.7 (a ``(subfuns, params)`` pair); newer JAX returns the params
alone.  :func:`_patch_kfac` replaces that one helper with the current protocol, as
``jax.core.eval_jaxpr`` does.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["KfacMethod", "kfac_reason", "peers"]


def kfac_reason(layers=None) -> str | None:
    """Why kfac-jax cannot train here (one line), or None."""
    try:
        import kfac_jax  # noqa: F401
    except ImportError:
        return "kfac-jax is not installed (pip install kfac-jax, or the [peers] extra)"
    if layers is not None:
        from numeric.layers import Dense, Output

        other = sorted({type(la).__name__ for la in layers if not isinstance(la, Dense | Output)})
        if other:
            return f"the kfac-jax peer registers dense layers only, not {', '.join(other)}"
    return None


_PATCHED = False


def _patch_kfac() -> None:
    global _PATCHED
    if _PATCHED:
        return
    import jax.extend as jex
    from kfac_jax._src import tag_graph_matcher as tgm

    def eval_jaxpr_eqn(eqn, in_values):
        params = eqn.primitive.get_bind_params(eqn.params)
        if isinstance(params, tuple):  # JAX < 0.7: (subfuns, params)
            subfuns, params = params
            in_values = [*subfuns, *in_values]
        with jex.source_info_util.user_context(eqn.source_info.traceback):
            out = eqn.primitive.bind(*in_values, **params)
        return list(out) if eqn.primitive.multiple_results else [out]

    tgm.eval_jaxpr_eqn = eval_jaxpr_eqn
    _PATCHED = True


class KfacMethod:
    """kfac-jax's optimizer (adaptive learning rate and momentum, fixed damping) as a
    training method with the signature of :meth:`numeric.cr.Method.step`.

    Parameters
    ----------
    layers : sequence of Layer
        Dense hidden layers and the output layer (with or without biases).
    seed : int
        Seed of kfac-jax's random key (its curvature estimator samples); the key is
        part of the state, so a restored state draws the samples it would have drawn.
    damping : float
        The damping (fixed: kfac-jax's adaptive damping diverged on this network).
    """

    name = "kfac"

    def __init__(self, layers, seed: int = 0, damping: float = 1.0) -> None:
        why = kfac_reason(layers)
        if why is not None:
            raise ValueError(why)
        import jax
        import jax.numpy as jnp
        import kfac_jax

        _patch_kfac()
        damping = float(damping)
        self.layers = tuple(layers)
        self._bias = [bool(getattr(la, "bias", False)) for la in self.layers]
        self._act = [getattr(la, "activation", None) for la in self.layers]
        acts = {"relu": jax.nn.relu, "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid,
                "softplus": jax.nn.softplus}  # fmt: skip

        def loss_fn(params, batch):
            x, y = batch
            v = x
            for i, (w, b) in enumerate(params):
                z = v @ w
                z = kfac_jax.register_dense(z, v, w) if b is None else kfac_jax.register_dense(
                    z + b, v, w, b
                )  # fmt: skip
                v = z if i == len(params) - 1 else acts[self._act[i]](z)
            kfac_jax.register_softmax_cross_entropy_loss(v, y)
            return -jnp.mean(jnp.sum(y * jax.nn.log_softmax(v, axis=1), axis=1))

        self._loss = loss_fn
        self._opt = kfac_jax.Optimizer(
            value_and_grad_func=jax.value_and_grad(loss_fn),
            l2_reg=0.0,
            use_adaptive_learning_rate=True,
            use_adaptive_momentum=True,
            # adaptive damping diverged on this network from both starts (float32 and
            # float64; also with a damping floor of 1e-3 or 1e-2, l2 1e-5, or exact
            # Gauss-Newton curvature): the damping is held fixed
            use_adaptive_damping=False,
            damping_schedule=lambda step: damping,
            multi_device=False,
            num_burnin_steps=0,
            use_automatic_registration=False,
        )
        self._seed = int(seed)

    # ------------------------------------------------------------ weights
    def _to_jax(self, network):
        import jax.numpy as jnp

        params, i = [], 0
        for has_bias in self._bias:
            w = jnp.asarray(np.asarray(network.params[i]).T)
            b = jnp.asarray(np.asarray(network.params[i + 1])) if has_bias else None
            params.append((w, b))
            i += 2 if has_bias else 1
        return params

    def _to_network(self, network, params):
        out = []
        for w, b in params:
            out.append(np.asarray(w).T.astype(network.dtype))
            if b is not None:
                out.append(np.asarray(b).astype(network.dtype))
        return network.with_params(out)

    # ------------------------------------------------------------ the method
    def init(self, network):
        """The state before the first step: kfac-jax's own state is made on the first
        batch (``"kfac"`` is None until then)."""
        import jax

        from numeric.stepping import MethodState

        key = jax.random.PRNGKey(self._seed)
        return MethodState(0, {"step": 0, "kfac": None, "params": self._to_jax(network),
                               "key": key})  # fmt: skip

    def state_to_arrays(self, state) -> dict[str, np.ndarray]:
        """``state`` as ``{"leaf.<i>": array}`` for ``np.savez``
        (:func:`numeric.optax_state.state_to_arrays`)."""
        from numeric.optax_state import state_to_arrays

        return state_to_arrays(state.opt)

    def state_from_arrays(self, arrays, network, batch_size: int):
        """Inverse of :meth:`state_to_arrays`: each leaf with its saved dtype and shape.

        Parameters
        ----------
        arrays : mapping ``"leaf.<i>" -> array``
        network : Network
            Of the run (its shapes and dtype make the template).
        batch_size : int
            Rows of the run's batches (kfac-jax traces its state on a batch of that size;
            the values of that batch are not used).

        Raises
        ------
        ValueError
            The arrays are not a state of this network.
        """
        import jax
        import jax.numpy as jnp

        from numeric.optax_state import state_from_arrays
        from numeric.stepping import MethodState

        template = self.init(network).opt
        if len(arrays) != len(jax.tree_util.tree_leaves(template)):  # kfac-jax's state was made
            xs = jnp.zeros((int(batch_size), math.prod(network.in_shape)), network.dtype)
            ys = jnp.zeros((int(batch_size), network.classes), network.dtype)
            template["kfac"] = self._opt.init(template["params"], template["key"], (xs, ys))
        opt = state_from_arrays(arrays, template)
        return MethodState(int(opt["step"]), opt)

    def step(self, network, state, x, labels, *, check: bool = True):
        import jax
        import jax.numpy as jnp

        from numeric.stepping import Diverged, MethodState, StepInfo

        dtype = network.dtype
        xs = jnp.asarray(np.asarray(x, dtype=dtype).reshape(len(x), -1))
        ys = jnp.asarray(network.targets(np.asarray(labels), xs.shape[0]))
        params = state.opt["params"]
        kstate = state.opt["kfac"]
        following, key = jax.random.split(state.opt["key"])
        if kstate is None:
            kstate = self._opt.init(params, key, (xs, ys))
        params, kstate, stats = self._opt.step(
            params, kstate, key, batch=(xs, ys), global_step_int=state.step
        )
        loss = float(stats["loss"])
        if not math.isfinite(loss):
            raise Diverged(f"the mini-batch loss is {loss} before step {state.step}")
        lr = float(stats["learning_rate"])
        if not math.isfinite(lr):
            raise Diverged(f"kfac-jax's learning rate is {lr} at step {state.step}")
        info = StepInfo(loss, lr, lr, lr, math.nan, math.nan, math.nan, "")
        opt = {"step": state.step + 1, "kfac": kstate, "params": params, "key": following}
        return self._to_network(network, params), MethodState(state.step + 1, opt), info


def peers() -> dict[str, Any]:
    """Peer methods for ``lowrank reproduce compare``: ``name -> (factory(layers, seed)
    or None, reason it cannot run or None)``."""
    why = kfac_reason()
    return {"kfac": (None if why else KfacMethod, why)}


def kfac_bench_route(ws, u, x, y) -> dict:
    """A timed kfac-jax step on the paper's network (``lowrank bench`` route ``kfac-jax``)."""
    from numeric.network import Network

    net = Network.mlp([np.asarray(w) for w in ws], np.asarray(u))
    method = KfacMethod(net.layers)
    labels = np.asarray(y)
    box = {"net": net, "state": method.init(net)}

    def run() -> None:
        box["net"], box["state"], _ = method.step(box["net"], box["state"], x, labels)

    run()  # compile
    return {"kfac-jax": run}
