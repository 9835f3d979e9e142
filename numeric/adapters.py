"""Models people write, read as this project's layers: the generated-kernel fast path of
:func:`numeric.optax.scale_by_cr` for an equinox model (this module imports JAX).

:func:`objective` turns an ``equinox.nn.MLP``, or an ``equinox.nn.Sequential`` of
``Linear`` / ``Conv2d`` layers, activations (``Lambda(jax.nn.relu)``, ``tanh``,
``sigmoid``, ``softplus``) and a flatten (``Lambda(jnp.ravel)``), into a
:class:`ModelObjective`: the batch-mean softmax cross-entropy of the model's logits, a
:class:`numeric.optax.NetworkObjective` over the model's OWN parameter pytree.  Passed as
``value_fn``, ``scale_by_cr`` then computes ``d^T grad F`` and ``d^T H d`` with the
generated kernels instead of ``jax.jvp(jax.grad(F))``.

Layouts agree with the project's (``docs/conventions.md``), so no array is copied:
``Linear.weight`` is (out, in) like :class:`~numeric.layers.Dense`'s ``w``;
``Conv2d.weight`` is (O, C, K_h, K_w) and a sample (C, H, W) like
:class:`~numeric.layers.Conv2D`'s; only ``Conv2d.bias`` (O, 1, 1) is reshaped to (O,)
(a view).  The last ``Linear`` (no activation after it) is the :class:`~numeric.layers.Output`
layer.  A model with anything else (padding, dilation, groups, another activation or
layer) gets a plain ``params -> F`` function instead, the ``jvp(grad)`` path, with one
warning naming what was not read.

Example (an equinox MLP)::

    model = eqx.nn.MLP(784, 10, 128, 2, activation=jax.nn.tanh, key=key)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    tx = optax.chain(optax.scale_by_adam(), scale_by_cr(1000.0))
    state = tx.init(params)
    value_fn = numeric.adapters.objective(model, x, labels)       # per batch
    updates, state = tx.update(grads, state, params, value_fn=value_fn)
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from numeric.layers import Conv2D, Dense, Flatten, Output
from numeric.optax import NetworkObjective, floating

__all__ = ["ModelObjective", "UnsupportedLayer", "layers_of", "objective"]


class UnsupportedLayer(ValueError):
    """A part of the model that has no generated kernels (its name is the message)."""


def _activations() -> dict:
    """The activation functions the project derives, by the object a model holds."""
    return {
        jax.nn.relu: "relu",
        jnp.tanh: "tanh",
        jax.nn.tanh: "tanh",
        jax.nn.sigmoid: "sigmoid",
        jax.nn.softplus: "softplus",
    }


def _activation_name(fn) -> str | None:
    for known, name in _activations().items():
        if fn is known:
            return name
    return None


def _is_identity(fn) -> bool:
    import equinox as eqx

    default = inspect.signature(eqx.nn.MLP.__init__).parameters["final_activation"].default
    return fn is default


def _modules(model) -> list:
    """The model as a flat list of parts: ``("linear", m)``, ``("conv", m)``,
    ``("act", name)``, ``("flatten", None)``."""
    import equinox as eqx

    if isinstance(model, eqx.nn.MLP):
        act = _activation_name(model.activation)
        if act is None:
            raise UnsupportedLayer(f"MLP activation {model.activation!r}")
        if not _is_identity(model.final_activation):
            raise UnsupportedLayer(f"MLP final_activation {model.final_activation!r}")
        parts: list = []
        for k, lin in enumerate(model.layers):
            parts.append(("linear", lin))
            if k < len(model.layers) - 1:
                parts.append(("act", act))
        return parts
    if isinstance(model, eqx.nn.Sequential):
        parts = []
        for m in model.layers:
            if isinstance(m, eqx.nn.Linear):
                parts.append(("linear", m))
            elif isinstance(m, eqx.nn.Conv2d):
                if (
                    any(p != (0, 0) for p in m.padding)
                    or tuple(m.dilation) != (1, 1)
                    or (m.groups != 1)
                ):
                    raise UnsupportedLayer("Conv2d with padding, dilation or groups")
                parts.append(("conv", m))
            elif isinstance(m, eqx.nn.Lambda) and _activation_name(m.fn) is not None:
                parts.append(("act", _activation_name(m.fn)))
            elif isinstance(m, eqx.nn.Lambda) and m.fn is jnp.ravel:
                parts.append(("flatten", None))
            else:
                raise UnsupportedLayer(
                    type(m).__name__ + (f"({m.fn!r})" if hasattr(m, "fn") else "")
                )
        return parts
    raise UnsupportedLayer(type(model).__name__)


def layers_of(model, in_shape: Sequence[int]) -> tuple[list, list[tuple[int, ...]]]:
    """The project's layers of ``model`` for samples of ``in_shape``, and the shape of
    each of the model's floating parameter leaves in the project's layout (its order is
    ``jax.tree_util``'s, the layers' parameter order).  Raises
    :class:`UnsupportedLayer` naming what has no generated kernels."""
    parts = _modules(model)
    layers: list = []
    shapes: list[tuple[int, ...]] = []
    shape = tuple(int(s) for s in in_shape)
    i = 0
    while i < len(parts):
        kind, m = parts[i]
        act = parts[i + 1][1] if i + 1 < len(parts) and parts[i + 1][0] == "act" else None
        bias = getattr(m, "bias", None) is not None
        if kind == "flatten":
            layers.append(Flatten(shape))
            shape = layers[-1].out_shape
            i += 1
            continue
        if kind == "act":
            raise UnsupportedLayer(f"activation {m!r} not after a Linear or Conv2d")
        if kind == "linear":
            d_out, d_in = m.weight.shape
            if shape != (d_in,):
                raise UnsupportedLayer(f"Linear of {d_in} inputs on samples of shape {shape}")
            last = i == len(parts) - 1
            if last:
                layers.append(Output(d_in, d_out, bias=bias))
            elif act is None:
                raise UnsupportedLayer("Linear without an activation before the last layer")
            else:
                layers.append(Dense(d_in, d_out, activation=act, bias=bias))
            shapes += [(d_out, d_in)] + ([(d_out,)] if bias else [])
        else:  # conv
            if act is None:
                raise UnsupportedLayer("Conv2d without an activation")
            o, c, kh, kw = m.weight.shape
            layers.append(Conv2D(shape, o, (kh, kw), tuple(m.stride), activation=act, bias=bias))
            shapes += [(o, c, kh, kw)] + ([(o,)] if bias else [])
        shape = layers[-1].out_shape
        i += 2 if act is not None else 1
    if not isinstance(layers[-1], Output):
        raise UnsupportedLayer("a model that does not end with a Linear layer (the logits)")
    return layers, shapes


class ModelObjective(NetworkObjective):
    """``F(params)``: the batch-mean softmax cross-entropy of a model read by
    :func:`layers_of`, as a function of the model's own parameter pytree (the model
    filtered by ``eqx.is_inexact_array``, or the model itself).

    Parameters
    ----------
    layers : the project's layers of the model
    shapes : the project's shape of each floating leaf
    x : array, shape (batch, *in_shape)
    y : array, shape (batch, classes)
    """

    def __init__(self, layers: Sequence, shapes: Sequence, x, y) -> None:
        super().__init__(layers, x, y)
        self.shapes = [tuple(s) for s in shapes]

    def flat(self, leaves: Sequence) -> list:
        """The project's parameter list from the model's floating leaves (reshapes:
        views, no copies)."""
        return [jnp.reshape(a, s) for a, s in zip(leaves, self.shapes, strict=True)]

    def __call__(self, params):
        leaves = [a for a in jax.tree_util.tree_leaves(params) if floating(a)]
        return super().__call__(self.flat(leaves))

    def value_and_grad(self, params):
        """``(F, grad F)`` through the generated adjoint sweep, ``grad F`` as a pytree
        like ``params``."""
        leaves, tree = jax.tree_util.tree_flatten(params)
        keep = [floating(a) for a in leaves]
        loss, grads = super().value_and_grad(self.flat([a for a, k in zip(leaves, keep,
                                                                           strict=True) if k]))  # fmt: skip
        it = iter(grads)
        out = [
            jnp.reshape(next(it), a.shape) if k else None for a, k in zip(leaves, keep, strict=True)
        ]
        return loss, jax.tree_util.tree_unflatten(tree, out)


_WARNED: set[str] = set()


def objective(model, x, y) -> Callable[[Any], Any]:
    """``value_fn`` for :func:`numeric.optax.scale_by_cr` on ``model`` and one batch.

    Parameters
    ----------
    model : equinox.nn.MLP or equinox.nn.Sequential
    x : array, shape (batch, *in_shape)
        (batch, C, H, W) for a conv model, as ``jax.vmap(model)`` takes it.
    y : array, shape (batch,) of int labels, or (batch, classes) label rows

    Returns
    -------
    ModelObjective, or a plain function
        ``params -> F`` (the batch-mean softmax cross-entropy) for ``params`` the model's
        floating leaves as a pytree (``eqx.filter(model, eqx.is_inexact_array)``, or the
        model).  A :class:`ModelObjective` when every layer has generated kernels (the
        fast path); else a plain function of the model (``jvp(grad)``), with a
        one-time warning naming the layer.
    """
    x = jnp.asarray(x)
    y = jnp.asarray(y)
    try:
        layers, shapes = layers_of(model, x.shape[1:])
    except UnsupportedLayer as e:
        if str(e) not in _WARNED:
            _WARNED.add(str(e))
            warnings.warn(f"no generated kernels for {e}: scale_by_cr uses jvp(grad)",
                          stacklevel=2)  # fmt: skip
        return _plain(model, x, y)
    if y.ndim == 1:
        y = jax.nn.one_hot(y, layers[-1].classes, dtype=x.dtype)
    return ModelObjective(layers, shapes, x, y)


def _plain(model, x, y):
    import equinox as eqx

    _, static = eqx.partition(model, eqx.is_inexact_array)

    def value_fn(params):
        m = eqx.combine(eqx.filter(params, eqx.is_inexact_array), static)
        logits = jax.vmap(m)(x)
        rows = jax.nn.one_hot(y, logits.shape[-1], dtype=logits.dtype) if y.ndim == 1 else y
        return -jnp.mean(jnp.sum(rows * jax.nn.log_softmax(logits), axis=-1))

    return value_fn
