"""The JAX backend: the same layers, generated kernels and CR rules under ``jax.jit``.

Nothing here is a second implementation.  The kernels dispatch on the array type
(:func:`numeric.kernels._runtime.einsum`), the layer and curvature drivers are written
in the arrays' namespace, and a training step is :meth:`numeric.cr.Method.update_arrays`
traced once per (method, network structure, shapes) and compiled by XLA for the CPU or a
GPU.  ``Method.step`` hands a network whose parameters are JAX arrays to :func:`step`.

Data parallelism: :func:`batch_sharding` places a batch over a 1-D mesh of devices
(``NamedSharding`` with a ``"batch"`` axis); the parameters stay replicated.  Every
quantity of the step is an exact function of the whole batch (means of per-sample
products, Gram matrices of per-sample factors), so XLA inserts the collectives and the
result equals the single-device one up to rounding.

This module imports JAX; ``import numeric`` does not import it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from numeric.network import Network
from numeric.stepping import FLAGS, Diverged, MethodState, StepInfo, evaluate

__all__ = [
    "batch_sharding",
    "device_array",
    "enable_x64",
    "replicate",
    "step",
    "timed_step",
    "to_jax",
    "to_numpy",
]


def enable_x64() -> None:
    """Let JAX compute in float64 (off by default in JAX)."""
    jax.config.update("jax_enable_x64", True)


def to_jax(network: Network, device=None) -> Network:
    """The network with its parameters as JAX arrays (on ``device`` or the default)."""
    dtype = network.dtype
    if dtype == np.float64 and not jax.config.read("jax_enable_x64"):
        raise ValueError("float64 on the JAX backend needs enable_x64() first")
    params = [jax.device_put(jnp.asarray(p, dtype=dtype), device) for p in network.params]
    return network.with_params(params)


def device_array(a, sharding=None):
    """``a`` as a JAX array on the default device (or split over ``sharding``)."""
    a = jnp.asarray(a)
    return a if sharding is None else jax.device_put(a, sharding)


def to_numpy(network: Network) -> Network:
    """The network with its parameters as NumPy arrays."""
    return network.with_params([np.asarray(p) for p in network.params])


def local_device_count() -> int:
    """The number of local JAX devices."""
    return len(jax.local_devices())


def batch_sharding(devices: int | Sequence | None = None):
    """``NamedSharding`` that splits axis 0 over ``devices`` (a count, a list, or all).

    Returns ``None`` for a single device (no sharding needed).
    """
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    if devices is None:
        devs = jax.local_devices()
    elif isinstance(devices, int):
        avail = jax.local_devices()
        if devices < 1 or devices > len(avail):
            raise ValueError(f"--devices must be 1..{len(avail)} here, got {devices}")
        devs = avail[:devices]
    else:
        devs = list(devices)
    if len(devs) == 1:
        return None
    mesh = Mesh(np.array(devs), ("batch",))
    return NamedSharding(mesh, PartitionSpec("batch"))


def replicate(network: Network, sharding) -> Network:
    """Parameters replicated over the mesh of ``sharding`` (no-op without one)."""
    if sharding is None:
        return network
    from jax.sharding import NamedSharding, PartitionSpec

    rep = NamedSharding(sharding.mesh, PartitionSpec())
    return network.with_params([jax.device_put(p, rep) for p in network.params])


def _step_impl(method, layers, recompute, params, accs, mstate, opt_step, x, y, lr):
    ev = evaluate(layers, params, x, y, method._needs_second and recompute)
    state = {"step": opt_step, "shapes": None, **accs}
    unit, new_state = method.optimizer.unit(ev.grads, state)
    metric = method.metric(state, new_state)
    update, info, mstate = method.update_arrays(
        layers, params, ev, unit, lr, mstate, recompute, metric
    )
    new_params = [p + jnp.asarray(s, dtype=p.dtype) for p, s in zip(params, update, strict=True)]
    new_accs = {k: new_state[k] for k in accs}
    # one vector (the fields of StepInfo), one transfer to the host per step
    dtype = jnp.result_type(float)
    info = jnp.stack([jnp.asarray(v, dtype=dtype) for v in info])
    return new_params, new_accs, mstate, info


_COMPILED: dict[tuple, Any] = {}


def _compiled(method, layers, recompute: bool = True):
    key = (id(method), tuple(layers), bool(recompute))
    fn = _COMPILED.get(key)
    if fn is None or fn[0] is not method:
        fn = (method, jax.jit(partial(_step_impl, method, tuple(layers), bool(recompute))))
        _COMPILED[key] = fn
    return fn[1]


def _method_entries(opt: dict) -> dict:
    """The method's own state entries (``cr_*``) as JAX arrays."""
    out = {}
    for k, v in opt.items():
        if k.startswith("cr_"):
            out[k] = [jnp.asarray(a) for a in v] if isinstance(v, list) else jnp.asarray(v)
    return out


def _host_entries(mstate: dict) -> dict:
    """Scalars of the method's state back on the host (what checkpoints store)."""
    out: dict[str, Any] = {}
    for k, v in mstate.items():
        if isinstance(v, list):
            out[k] = v
        elif k == "cr_age":
            out[k] = int(v)
        else:
            out[k] = float(v)
    return out


def step(method, network: Network, state, x, labels, sharding=None):
    """One training step of ``method`` on the JAX backend (see ``Method.step``).

    ``x`` and ``labels`` may be NumPy arrays; they are placed on the device (split over
    ``sharding`` when given).  Raises :class:`numeric.cr.Diverged` when the loss or the
    direction is not finite; the parameters are then not updated.
    """
    dtype = network.dtype
    xs = np.asarray(x, dtype=dtype) if isinstance(x, np.ndarray) else x
    if xs.ndim == 2 and len(network.in_shape) > 1:
        xs = xs.reshape(xs.shape[0], *network.in_shape)
    if isinstance(labels, jax.Array) and labels.ndim == 2 and labels.dtype == dtype:
        if labels.shape != (xs.shape[0], network.classes):
            raise ValueError(
                f"label rows must have shape ({xs.shape[0]}, {network.classes}); got "
                f"{tuple(labels.shape)}"
            )
        ys = labels  # label rows already on the device
    else:
        ys = network.targets(np.asarray(labels), xs.shape[0])
    if sharding is not None:
        if xs.shape[0] % sharding.mesh.size:
            raise ValueError(
                f"a batch of {xs.shape[0]} does not split over {sharding.mesh.size} devices"
            )
        xs, ys = jax.device_put(xs, sharding), jax.device_put(ys, sharding)
    accs = {
        k: v
        for k, v in state.opt.items()
        if k not in ("step", "shapes") and not k.startswith("cr_")
    }
    lr = float(method.schedule(state.step))
    fn = _compiled(method, network.layers, method.recompute(state))
    new_params, new_accs, mstate, info = fn(
        network.params, accs, _method_entries(state.opt), int(state.opt["step"]), xs, ys, lr
    )
    values: dict[str, Any] = dict(
        zip(StepInfo._fields, (float(v) for v in np.asarray(info)), strict=True)
    )
    values["flag"] = FLAGS[int(values["flag"])]
    step_info = StepInfo(**values)
    if not math.isfinite(step_info.loss):
        raise Diverged(f"the mini-batch loss is {step_info.loss} before step {state.step}")
    if not math.isfinite(step_info.dnorm):
        raise Diverged(f"the gradient is not finite at step {state.step}")
    opt = {"step": int(state.opt["step"]) + 1, "shapes": state.opt["shapes"], **new_accs}
    opt.update(_host_entries(mstate))
    return network.with_params(new_params), MethodState(state.step + 1, opt), step_info


def timed_step(tx_and_step, params) -> Callable[[], None]:
    """A zero-argument callable running ``step(params, state)`` once and waiting for it
    (``tx_and_step`` is ``(optax transformation, jitted step)``; for benchmarks)."""
    tx, fn = tx_and_step
    state = {"params": params, "opt": tx.init(params)}

    def run() -> None:
        state["params"], state["opt"] = jax.block_until_ready(fn(state["params"], state["opt"]))

    return run
