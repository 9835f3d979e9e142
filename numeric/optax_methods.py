"""optax methods as training methods of ``lowrank train`` (this module imports JAX and optax).

:class:`OptaxMethod` runs any optax transformation (CR chains of
:func:`numeric.optax.scale_by_cr`, and the optax baselines of :data:`BASELINES`: Prodigy,
D-Adaptation, DoG, Schedule-Free, Momo, backtracking line search, Sophia) as a
:class:`numeric.cr.Method` on the JAX backend, so ``lowrank train`` records them like its
own methods; :func:`bench_steps` gives ``lowrank bench`` its optax routes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from optax.tree_utils import tree_vdot

from numeric.cr import FLAGS, Diverged, MethodState, StepInfo
from numeric.network import Network
from numeric.optax import NetworkObjective, find_cr_state, scale_by_cr

__all__ = ["BASELINES", "OptaxMethod", "baseline", "bench_steps", "plain_sgd"]


def _linesearch(lr: float):
    return optax.chain(
        optax.sgd(learning_rate=lr),
        optax.scale_by_backtracking_linesearch(max_backtracking_steps=15, store_grad=True),
    )


_STANDARD = ("value", "grad", "value_fn")

#: optax's learning-rate-free and second-order methods, by ``lowrank train`` name:
#: ``name -> (factory(lr) -> GradientTransformation, default lr, extra arguments)``
BASELINES: dict[str, tuple[Callable[[float], Any], float, tuple[str, ...]]] = {
    "prodigy": (lambda lr: optax.contrib.prodigy(learning_rate=lr), 1.0, _STANDARD),
    "dadapt_adamw": (lambda lr: optax.contrib.dadapt_adamw(learning_rate=lr), 1.0, _STANDARD),
    "dog": (lambda lr: optax.contrib.dog(learning_rate=lr), 1.0, _STANDARD),
    "schedule_free_adamw": (
        lambda lr: optax.contrib.schedule_free_adamw(learning_rate=lr),
        0.0025,
        _STANDARD,
    ),
    "schedule_free_sgd": (
        lambda lr: optax.contrib.schedule_free_sgd(learning_rate=lr),
        1.0,
        _STANDARD,
    ),
    "momo": (lambda lr: optax.contrib.momo(learning_rate=lr), 1.0, _STANDARD),
    "linesearch": (_linesearch, 1.0, _STANDARD),
    "sophia": (lambda lr: optax.contrib.sophia(learning_rate=lr), 0.001, ("obj_fn",)),
}


def plain_sgd(lr: float) -> OptaxMethod:
    """``optax.sgd`` at the constant rate ``lr``: the JAX backend's SGD step, the
    reference that JAX methods' step costs are divided by."""
    return OptaxMethod(optax.sgd(learning_rate=lr), "sgd")


def baseline(name: str, lr: float | None = None) -> OptaxMethod:
    """The optax method ``name`` of :data:`BASELINES` (its default learning rate if none),
    ready for ``lowrank train``.

    Returns
    -------
    OptaxMethod

    Examples
    --------
    >>> baseline("prodigy")
    OptaxMethod(prodigy)
    """
    if name not in BASELINES:
        raise ValueError(f"unknown optax method {name!r}; choose one of {sorted(BASELINES)}")
    factory, default, extra = BASELINES[name]
    return OptaxMethod(factory(default if lr is None else float(lr)), name, extra)


class OptaxMethod:
    """An optax transformation as a training method on the JAX backend.

    ``step(network, state, x, labels)`` has the signature of
    :meth:`numeric.cr.Method.step`: the loss and the gradient come from the generated
    kernels; ``value``, ``grad``, ``value_fn`` and ``obj_fn`` are passed to the
    transformation as extra arguments (a :class:`NetworkObjective` of the batch), so line
    searches, Momo and Sophia work.  When the chain contains :func:`scale_by_cr`, the
    logged ``alpha``, ``dgrad``, ``dhd`` and flag are CR's; otherwise ``alpha`` is the
    effective SGD learning rate ``-<update, grad> / ||grad||^2``.

    Parameters
    ----------
    tx : optax.GradientTransformation
    name : str
        For ``repr`` and the run's config.
    extra_args : tuple of str
        Which of ``value``, ``grad``, ``value_fn`` and ``obj_fn`` the transformation is
        given (a line search hands every unknown one on to ``value_fn``).
    """

    def __init__(self, tx, name: str = "optax", extra_args: tuple[str, ...] = _STANDARD) -> None:
        unknown = set(extra_args) - {"value", "grad", "value_fn", "obj_fn"}
        if unknown:
            raise ValueError(f"unknown extra arguments {sorted(unknown)}")
        self.tx = tx
        self.name = name
        self.extra_args = tuple(extra_args)
        self._compiled: dict[tuple, Any] = {}

    def init(self, network: Network) -> MethodState:
        return MethodState(0, self.tx.init(list(network.params)))

    def eval_network(self, network: Network, state: MethodState) -> Network:
        """The network at the weights to evaluate: a schedule-free method's average
        ``x`` (:func:`optax.contrib.schedule_free_eval_params`), not its iterate ``y``;
        every other transformation's iterate."""
        sf = _find_schedule_free_state(state.opt)
        if sf is None:
            return network
        params = optax.contrib.schedule_free_eval_params(sf, list(network.params))
        return network.with_params(list(params))

    def _impl(self, layers, params, opt_state, x, y):
        objective = NetworkObjective(layers, x, y)
        loss, grads = objective.value_and_grad(params)
        offered = {"value": loss, "grad": grads, "value_fn": objective, "obj_fn": objective}
        extra = {k: offered[k] for k in self.extra_args}
        updates, new_state = self.tx.update(grads, opt_state, params, **extra)
        new_params = optax.apply_updates(params, updates)
        cr = find_cr_state(new_state)
        if cr is not None:
            info = StepInfo(loss=loss, alpha=cr.alpha, lr=jnp.nan, lr_eff=cr.lr_eff,
                            dgrad=cr.dgrad, dhd=cr.dhd, dnorm=cr.dnorm, flag=cr.flag)  # fmt: skip
        else:
            gg = tree_vdot(grads, grads)
            ug = tree_vdot(updates, grads)
            lr_eff = jnp.where(gg > 0, -ug / gg, 0.0)
            info = StepInfo(loss=loss, alpha=lr_eff, lr=jnp.nan, lr_eff=lr_eff, dgrad=ug,
                            dhd=jnp.nan, dnorm=jnp.sqrt(tree_vdot(updates, updates)),
                            flag=0)  # fmt: skip
        return new_params, new_state, StepInfo(*(jnp.asarray(v) for v in info))

    def step(self, network: Network, state: MethodState, x, labels, *, check: bool = True,
             sharding=None):  # fmt: skip
        from numeric import jax_backend as jb

        dtype = network.dtype
        xs = np.asarray(x, dtype=dtype) if isinstance(x, np.ndarray) else x
        if xs.ndim == 2 and len(network.in_shape) > 1:
            xs = xs.reshape(xs.shape[0], *network.in_shape)
        ys = network.targets(np.asarray(labels) if isinstance(labels, np.ndarray) else labels,
                             xs.shape[0])  # fmt: skip
        if sharding is not None:
            xs, ys = jb.device_array(xs, sharding), jb.device_array(ys, sharding)
        key = tuple(network.layers)
        fn = self._compiled.get(key)
        if fn is None:
            fn = jax.jit(partial(self._impl, key))
            self._compiled[key] = fn
        new_params, new_state, info = fn(list(network.params), state.opt, xs, ys)
        values: dict[str, Any] = {k: float(v) for k, v in jax.device_get(info)._asdict().items()}
        values["flag"] = FLAGS[int(values["flag"])]
        info = StepInfo(**values)
        if not math.isfinite(info.loss):
            raise Diverged(f"the mini-batch loss is {info.loss} before step {state.step}")
        if not math.isfinite(info.dnorm):
            raise Diverged(f"the update is not finite at step {state.step}")
        return network.with_params(new_params), MethodState(state.step + 1, new_state), info

    def __repr__(self) -> str:
        return f"OptaxMethod({self.name})"


def _find_schedule_free_state(state):
    """The ``ScheduleFreeState`` inside an optax state (a chain's tuple), or ``None``."""
    if hasattr(state, "z") and hasattr(state, "b1"):
        return state
    if isinstance(state, tuple):
        for part in state:
            found = _find_schedule_free_state(part)
            if found is not None:
                return found
    return None


def bench_steps(
    objective: NetworkObjective,
    lr: float,
    sigma: float,
    plain: Callable | None = None,
    prefix: str = "optax",
) -> dict[str, tuple[Any, Callable]]:
    """Jit-compiled steps ``params -> params`` for ``lowrank bench``: an optax SGD step and
    the CR step of :func:`scale_by_cr` on the SGD direction, with ``d^T H d`` from the
    generated kernels (``<prefix>-cr-fast``) or from ``jvp(grad)`` (``<prefix>-cr-jvp``).

    ``plain`` is the loss the SGD and ``jvp(grad)`` steps differentiate (a model's own
    forward pass, :func:`numeric.adapters.plain_objective`; default: ``objective``
    itself); the fast step takes ``objective``'s generated adjoint sweep for its
    gradient.

    Returns
    -------
    dict
        ``name -> (transformation, jitted step(params, state) -> (params, state))``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from numeric.network import Network
    >>> net = Network.create(4, [3], 2, seed=0)
    >>> objective = NetworkObjective(net.layers, jnp.ones((5, 4)), jnp.eye(2)[jnp.arange(5) % 2])
    >>> sorted(bench_steps(objective, lr=0.1, sigma=10.0))
    ['optax-cr-fast', 'optax-cr-jvp', 'optax-sgd']
    """
    if plain is None:

        def plain(params):
            return objective(params)

    sgd = optax.sgd(lr)
    cr_fast = optax.chain(optax.identity(), scale_by_cr(sigma, fallback=lr, direction="sgd"))
    cr_jvp = optax.chain(optax.identity(), scale_by_cr(sigma, fallback=lr))

    def make(tx, grad_fn, value_fn):
        @jax.jit
        def step(params, state):
            _, grads = grad_fn(params)
            updates, state = tx.update(grads, state, params, value_fn=value_fn)
            return optax.apply_updates(params, updates), state

        return tx, step

    return {
        f"{prefix}-sgd": make(sgd, jax.value_and_grad(plain), plain),
        f"{prefix}-cr-fast": make(cr_fast, objective.value_and_grad, objective),
        f"{prefix}-cr-jvp": make(cr_jvp, jax.value_and_grad(plain), plain),
    }
