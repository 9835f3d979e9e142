"""Models people write, read as this project's layers: the generated-kernel fast path of
:func:`numeric.optax.scale_by_cr` for an equinox or flax model (this module imports JAX).

:func:`objective` turns a model into a :class:`ModelObjective`: the batch-mean softmax
cross-entropy of the model's logits, a :class:`numeric.optax.NetworkObjective` over the
model's OWN parameter pytree.  Passed as ``value_fn``, ``scale_by_cr`` then computes
``d^T grad F`` and ``d^T H d`` with the generated kernels instead of
``jax.jvp(jax.grad(F))``.  Models read:

* equinox: ``equinox.nn.MLP``, and ``equinox.nn.Sequential`` of ``Linear`` / ``Conv2d``
  layers, activations (``Lambda(jax.nn.relu)``, ``tanh``, ``sigmoid``, ``softplus``)
  and a flatten (``Lambda(jnp.ravel)``); parameters
  ``eqx.filter(model, eqx.is_inexact_array)``;
* flax: ``flax.nnx.Sequential`` of ``nnx.Linear`` and ``nnx.Conv`` (2-d) layers, those activations (``nnx.relu``, ``nnx.tanh``,
  ``nnx.sigmoid``, ``nnx.softplus``) and :func:`flatten`; parameters
  ``nnx.state(model, nnx.Param)`` (``nnx.split(model, nnx.Param, ...)``'s);
* flax linen: ``flax.linen.Sequential`` of ``nn.Dense`` and ``nn.Conv`` (the same
  options), the same activations and :func:`flatten`; linen modules hold no arrays, so
  their variables are passed too, ``objective(model, x, y, params=variables)`` with
  ``variables = model.init(key, x)`` (the pytree the function then takes, key paths
  ``("params", "layers_<k>", "kernel")``).

One mechanism, two thin front ends: each front end lists the model's parts
(:class:`Part`) and where each of the project's parameter arrays lives among the model's
leaves (:class:`Leaf`, found by the leaf's key path, not its position); :func:`layers_of`
and :class:`ModelObjective` do the rest for both.  No array is copied: equinox's layouts
are the project's (``docs/conventions.md``): ``Linear.weight`` (out, in) like
:class:`~numeric.layers.Dense`'s ``w``, ``Conv2d.weight`` (O, C, K_h, K_w) on samples
(C, H, W) like :class:`~numeric.layers.Conv2D`'s; ``Conv2d.bias`` (O, 1, 1) is reshaped to
(O,) (a view).  flax's layouts differ, so its leaves are read through transposes (under
``jit`` XLA folds them into the products that read them; gradients and directions undo
them on the way back): ``Linear.kernel`` (in, out) as ``kernel.T``; ``Conv.kernel``
(K_h, K_w, C, O) as (O, C, K_h, K_w); a flax conv model's samples (H, W, C) are
transposed to (C, H, W) once per batch (a copy of the input), and the ``Linear`` after
:func:`flatten` has its rows in (H, W, C) order, read as (C, H, W).  The last ``Linear``
(no activation after it) is the :class:`~numeric.layers.Output` layer.  The first conv
may be zero-padded (flax's ``"SAME"``, explicit pads, equinox ``Conv2d(padding=...)``):
its samples are padded once per batch (a copy), which is that conv exactly.  A model with
anything else (a padded conv after the first layer, dilation, groups, another activation
or layer) gets a plain ``params -> F`` function instead, the ``jvp(grad)`` path, with
one warning naming what was not read.

Example (an equinox MLP)::

    model = eqx.nn.MLP(784, 10, 128, 2, activation=jax.nn.tanh, key=key)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    tx = optax.chain(optax.scale_by_adam(), scale_by_cr(1000.0))
    state = tx.init(params)
    value_fn = numeric.adapters.objective(model, x, labels)       # per batch
    updates, state = tx.update(grads, state, params, value_fn=value_fn)

(flax nnx: ``graphdef, params, rest = nnx.split(model, nnx.Param, ...)``, the rest
alike; flax linen: ``params = model.init(key, x)`` and ``objective(model, x, labels,
params=params)``.)
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from numeric.layers import Conv2D, Dense, Flatten, Output
from numeric.optax import NetworkObjective, floating

__all__ = [
    "Leaf",
    "ModelObjective",
    "Part",
    "UnsupportedLayer",
    "layers_of",
    "objective",
    "parameters",
    "flatten",
    "plain_objective",
]


class UnsupportedLayer(ValueError):
    """A part of the model that has no generated kernels (its name is the message)."""


class Leaf(NamedTuple):
    """Where one of the project's parameter arrays lives in a model's parameter pytree.

    ``path``: the leaf's key path (names and indices, as ``jax.tree_util`` spells them);
    the leaf is viewed as ``view`` (``None``: its own shape), its axes taken in the
    project's order ``perm`` (``None``: as they are; else a transpose), then reshaped to
    ``shape`` (a view).
    """

    path: tuple
    shape: tuple[int, ...]
    perm: tuple[int, ...] | None = None
    view: tuple[int, ...] | None = None


class Part(NamedTuple):
    """One part of a model, as a front end reads it: ``kind`` is ``"linear"``,
    ``"conv"``, ``"act"`` (``activation`` its name) or ``"flatten"``; ``weight`` and
    ``bias`` the :class:`Leaf` of a linear or conv part (``bias`` ``None``: no bias);
    ``stride`` a conv's; ``channels_last``: a conv's maps, and so a flatten's order, are
    (H, W, C) (flax) instead of the project's (C, H, W); ``padding`` a conv's zero
    padding, ``"SAME"`` / ``"SAME_LOWER"`` (as ``jax.lax`` reads them) or explicit
    ``((lo, hi), (lo, hi))`` pairs (rows, columns)."""

    kind: str
    weight: Leaf | None = None
    bias: Leaf | None = None
    stride: tuple[int, ...] = (1, 1)
    activation: str | None = None
    channels_last: bool = False
    padding: Any = ((0, 0), (0, 0))


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


def _path_key(entry) -> Any:
    """One entry of a ``jax.tree_util`` key path as a plain name or index."""
    for attr in ("name", "key", "idx"):
        if hasattr(entry, attr):
            return getattr(entry, attr)
    return str(entry)


def _paths(tree) -> list[tuple]:
    """The key path of each floating leaf of ``tree`` (``jax.tree_util`` order), with a
    trailing ``value`` (a flax ``Variable``'s own field) dropped."""
    out = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if floating(leaf):
            keys = tuple(_path_key(e) for e in path)
            out.append(keys[:-1] if keys and keys[-1] in ("value", "raw_value") else keys)
    return out


# ------------------------------------------------------------------ front end: equinox


def _is_eqx(model) -> bool:
    try:
        import equinox as eqx
    except ImportError:
        return False
    return isinstance(model, eqx.Module)


def _eqx_identity(fn) -> bool:
    import equinox as eqx

    default = inspect.signature(eqx.nn.MLP.__init__).parameters["final_activation"].default
    return fn is default


def _eqx_linear(m, path: tuple) -> Part:
    bias = None if m.bias is None else Leaf(path + ("bias",), tuple(m.bias.shape))
    return Part("linear", Leaf(path + ("weight",), tuple(m.weight.shape)), bias)


def _eqx_parts(model) -> list[Part]:
    import equinox as eqx

    if isinstance(model, eqx.nn.MLP):
        act = _activation_name(model.activation)
        if act is None:
            raise UnsupportedLayer(f"MLP activation {model.activation!r}")
        if not _eqx_identity(model.final_activation):
            raise UnsupportedLayer(f"MLP final_activation {model.final_activation!r}")
        parts: list[Part] = []
        for k, lin in enumerate(model.layers):
            parts.append(_eqx_linear(lin, ("layers", k)))
            if k < len(model.layers) - 1:
                parts.append(Part("act", activation=act))
        return parts
    if not isinstance(model, eqx.nn.Sequential):
        raise UnsupportedLayer(type(model).__name__)
    parts = []
    for k, m in enumerate(model.layers):
        path = ("layers", k)
        if isinstance(m, eqx.nn.Linear):
            parts.append(_eqx_linear(m, path))
        elif isinstance(m, eqx.nn.Conv2d):
            zeros = getattr(m, "padding_mode", "ZEROS") == "ZEROS"
            if not zeros or tuple(m.dilation) != (1, 1) or m.groups != 1:
                raise UnsupportedLayer(
                    "Conv2d with padding_mode other than ZEROS, dilation or groups"
                )
            o = m.weight.shape[0]
            bias = None if m.bias is None else Leaf(path + ("bias",), (o,))  # (O, 1, 1): a view
            weight = Leaf(path + ("weight",), tuple(m.weight.shape))
            pad = m.padding if isinstance(m.padding, str) else tuple(tuple(p) for p in m.padding)
            parts.append(Part("conv", weight, bias, tuple(m.stride), padding=pad))
        elif isinstance(m, eqx.nn.Lambda) and _activation_name(m.fn) is not None:
            parts.append(Part("act", activation=_activation_name(m.fn)))
        elif isinstance(m, eqx.nn.Lambda) and m.fn is jnp.ravel:
            parts.append(Part("flatten"))
        else:
            raise UnsupportedLayer(type(m).__name__ + (f"({m.fn!r})" if hasattr(m, "fn") else ""))
    return parts


def _eqx_params(model):
    import equinox as eqx

    return eqx.filter(model, eqx.is_inexact_array)


def _eqx_plain(model, x, y):
    import equinox as eqx

    _, static = eqx.partition(model, eqx.is_inexact_array)

    def logits(params):
        return jax.vmap(eqx.combine(eqx.filter(params, eqx.is_inexact_array), static))(x)

    return _cross_entropy(logits, y)


# --------------------------------------------------------------------- front end: flax


def _is_nnx(model) -> bool:
    try:
        from flax import nnx
    except ImportError:
        return False
    return isinstance(model, nnx.Module)


def _nnx_parts(model) -> list[Part]:
    from flax import nnx

    if not isinstance(model, nnx.Sequential):
        raise UnsupportedLayer(f"flax {type(model).__name__}")
    parts: list[Part] = []
    for k, m in enumerate(model.layers):
        path = ("layers", k)
        if isinstance(m, nnx.Linear):
            parts.append(_flax_linear(path, tuple(m.kernel.shape), m.bias is not None))
        elif isinstance(m, nnx.Conv):
            parts.append(_flax_conv(m, path, tuple(m.kernel.shape), m.bias is not None))
        else:
            parts.append(_flax_other(m, "flax"))
    return parts


def _flax_linear(path: tuple, kernel: tuple[int, ...], bias: bool) -> Part:
    """A flax ``Linear`` / ``Dense`` at ``path`` (either API): ``kernel`` (in, out) is
    the project's ``w`` (out, in) transposed."""
    d_in, d_out = kernel
    weight = Leaf(path + ("kernel",), (d_out, d_in), perm=(1, 0))
    return Part("linear", weight, Leaf(path + ("bias",), (d_out,)) if bias else None)


def _flax_other(m, api: str) -> Part:
    """A flax layer that is not a Linear or Conv: :func:`flatten` or an activation."""
    if m is flatten:
        return Part("flatten", channels_last=True)
    if callable(m) and _activation_name(m) is not None:
        return Part("act", activation=_activation_name(m))
    raise UnsupportedLayer(f"{api} {getattr(m, '__name__', type(m).__name__)}")


def _pair(v) -> tuple[int, ...]:
    return (int(v),) * 2 if isinstance(v, int) else tuple(int(a) for a in v)


def _flax_conv(m, path: tuple, kernel: tuple[int, ...], bias: bool) -> Part:
    """A flax ``Conv`` at ``path`` (either API; ``kernel`` its shape (K_h, K_w, C, O),
    the project's (O, C, K_h, K_w) transposed)."""
    from flax.linen.linear import canonicalize_padding

    plain = all(_pair(d) == (1, 1) for d in (m.input_dilation, m.kernel_dilation))
    if not (plain and m.feature_group_count == 1 and len(kernel) == 4):
        raise UnsupportedLayer("flax Conv other than 2-d, no dilation or groups")
    spec = canonicalize_padding(m.padding, 2)  # "SAME", "VALID", ... or (lo, hi) pairs
    if isinstance(spec, str) and spec not in ("SAME", "VALID"):
        raise UnsupportedLayer(f"flax Conv padding={spec!r}")
    pad: Any = spec
    if spec == "VALID":
        pad = ((0, 0), (0, 0))
    elif not isinstance(spec, str):
        pad = tuple(tuple(int(a) for a in p) for p in spec)
    kh, kw, c, o = kernel
    weight = Leaf(path + ("kernel",), (o, c, kh, kw), perm=(3, 2, 0, 1))
    bias_leaf = Leaf(path + ("bias",), (o,)) if bias else None
    return Part("conv", weight, bias_leaf, _pair(m.strides), channels_last=True, padding=pad)


def flatten(x):
    """``x.reshape(len(x), -1)``: the flatten of a flax ``nnx.Sequential`` that
    :func:`objective` reads (place this function itself in the model).

    Returns
    -------
    array, shape (batch, H * W * C)
    """
    return x.reshape(x.shape[0], -1)


def _nnx_params(model):
    from flax import nnx

    return nnx.state(model, nnx.Param)


def _nnx_plain(model, x, y):
    from flax import nnx

    graphdef, _, rest = nnx.split(model, nnx.Param, ...)

    def logits(params):
        return nnx.merge(graphdef, params, rest)(x)

    return _cross_entropy(logits, y)


class _Linen(NamedTuple):
    """A flax linen module with its variables (``model.init``'s dict): linen modules
    hold no arrays, so the front end reads the two together."""

    module: Any
    variables: Any


def _is_linen(model) -> bool:
    try:
        import flax.linen as nn
    except ImportError:
        return False
    return isinstance(model, nn.Module)


def _linen_parts(bound: _Linen) -> list[Part]:
    import flax.linen as nn

    model, variables = bound
    if not isinstance(model, nn.Sequential):
        raise UnsupportedLayer(f"flax linen {type(model).__name__}")
    params = variables.get("params", {}) if hasattr(variables, "get") else {}
    parts: list[Part] = []
    for k, m in enumerate(model.layers):
        name = f"layers_{k}"  # linen's name of the k-th submodule of a Sequential
        path = ("params", name)
        if isinstance(m, nn.Dense | nn.Conv):
            if name not in params or "kernel" not in params[name]:
                raise UnsupportedLayer(f"flax linen {name}: no params['{name}']['kernel']")
            kernel = tuple(params[name]["kernel"].shape)
            if isinstance(m, nn.Dense):
                parts.append(_flax_linear(path, kernel, bool(m.use_bias)))
            else:
                parts.append(_flax_conv(m, path, kernel, bool(m.use_bias)))
        else:
            parts.append(_flax_other(m, "flax linen"))
    return parts


def _linen_params(bound: _Linen):
    return bound.variables


def _linen_plain(bound: _Linen, x, y):
    def logits(variables):
        return bound.module.apply(variables, x)

    return _cross_entropy(logits, y)


def _cross_entropy(logits_of: Callable, y) -> Callable:
    def value_fn(params):
        logits = logits_of(params)
        rows = jax.nn.one_hot(y, logits.shape[-1], dtype=logits.dtype) if y.ndim == 1 else y
        return -jnp.mean(jnp.sum(rows * jax.nn.log_softmax(logits), axis=-1))

    return value_fn


class _FrontEnd(NamedTuple):
    parts: Callable[[Any], list[Part]]
    params: Callable[[Any], Any]
    plain: Callable[[Any, Any, Any], Callable]


def _front_end(model) -> _FrontEnd:
    if isinstance(model, _Linen):
        return _FrontEnd(_linen_parts, _linen_params, _linen_plain)
    if _is_eqx(model):
        return _FrontEnd(_eqx_parts, _eqx_params, _eqx_plain)
    if _is_nnx(model):
        return _FrontEnd(_nnx_parts, _nnx_params, _nnx_plain)
    raise TypeError(
        f"numeric.adapters reads equinox and flax (nnx, linen) models, got {type(model).__name__}"
    )


def _bound(model, params) -> Any:
    """``model`` as the front ends read it: a flax linen module with its ``params``
    (required: linen modules hold no arrays); any other model as it is (``params`` not
    taken: the model holds its own)."""
    if _is_linen(model):
        if params is None:
            raise TypeError(
                "a flax linen model holds no arrays: pass its variables, params=model.init(key, x)"
            )
        return _Linen(model, params)
    if params is not None:
        raise TypeError(
            f"params= is for flax linen models; a {type(model).__name__} holds its own arrays"
        )
    return model


def parameters(model, params=None) -> Any:
    """The parameter pytree of ``model`` that :func:`objective`'s function takes:
    ``eqx.filter(model, eqx.is_inexact_array)`` for equinox, ``nnx.state(model,
    nnx.Param)`` for flax nnx, ``params`` itself (``model.init``'s variables) for flax
    linen.

    Returns
    -------
    pytree
    """
    model = _bound(model, params)
    return _front_end(model).params(model)


# ---------------------------------------------------------------------- one mechanism


def _input_padding(parts: Sequence[Part], shape: tuple[int, ...]):
    """The zero padding ``((lo, hi), (lo, hi))`` of the first layer's (C, H, W) samples
    when that layer is a padded conv (``None`` otherwise): a conv on zero-padded samples
    without padding is the padded conv exactly, and the samples are data, so no
    derivative changes.  The project's :class:`~numeric.layers.Conv2D` has no padding of
    its own, so a padded conv after the first layer is not read."""
    if not parts or parts[0].kind != "conv" or len(shape) != 3:
        return None
    part = parts[0]
    assert part.weight is not None
    pad = part.padding
    if isinstance(pad, str):
        pad = jax.lax.padtype_to_pads(shape[1:], part.weight.shape[2:], part.stride, pad)
    pad = tuple(tuple(int(a) for a in p) for p in pad)
    return None if all(p == (0, 0) for p in pad) else pad


def _padded(shape: tuple[int, ...], pad) -> tuple[int, ...]:
    if pad is None:
        return shape
    (t, b), (lft, r) = pad
    return (shape[0], shape[1] + t + b, shape[2] + lft + r)


def layers_of(model, in_shape: Sequence[int], params=None) -> tuple[list, list[Leaf]]:
    """The project's layers of ``model`` for samples of ``in_shape``, and the
    :class:`Leaf` of each of the layers' parameter arrays (their order).  ``params``:
    a flax linen model's variables (only there).  Raises :class:`UnsupportedLayer`
    naming what has no generated kernels."""
    model = _bound(model, params)
    parts = _front_end(model).parts(model)
    layers: list = []
    leaves: list[Leaf] = []
    shape = tuple(int(s) for s in in_shape)
    if parts and parts[0].channels_last and len(shape) == 3:  # samples (H, W, C)
        shape = (shape[2], shape[0], shape[1])
    shape = _padded(shape, _input_padding(parts, shape))
    rows: tuple[int, ...] | None = None
    i = 0
    while i < len(parts):
        part = parts[i]
        nxt = parts[i + 1] if i + 1 < len(parts) else None
        act = nxt.activation if nxt is not None and nxt.kind == "act" else None
        if part.kind == "flatten":
            layers.append(Flatten(shape))
            if part.channels_last:  # the next Linear's inputs come in (H, W, C) order
                rows = (shape[1], shape[2], shape[0])
            shape = layers[-1].out_shape
            i += 1
            continue
        if part.kind == "act":
            raise UnsupportedLayer(f"activation {part.activation} not after a Linear or Conv")
        assert part.weight is not None
        bias = part.bias is not None
        weight = part.weight
        if part.kind == "linear":
            d_out, d_in = weight.shape
            if rows is not None:  # kernel (H*W*C, out) -> (out, C, H, W) -> (out, C*H*W)
                assert weight.perm == (1, 0)
                weight = weight._replace(view=(*rows, d_out), perm=(3, 2, 0, 1))
                rows = None
            if shape != (d_in,):
                raise UnsupportedLayer(f"Linear of {d_in} inputs on samples of shape {shape}")
            if i == len(parts) - 1:
                layers.append(Output(d_in, d_out, bias=bias))
            elif act is None:
                raise UnsupportedLayer("Linear without an activation before the last layer")
            else:
                layers.append(Dense(d_in, d_out, activation=act, bias=bias))
        else:  # conv
            if act is None:
                raise UnsupportedLayer("Conv2d without an activation")
            if layers and part.padding not in ("VALID", ((0, 0), (0, 0))):
                raise UnsupportedLayer(f"Conv padding={part.padding!r} after the first layer")
            o, _, kh, kw = part.weight.shape
            layers.append(Conv2D(shape, o, (kh, kw), part.stride, activation=act, bias=bias))
        leaves += [weight] + ([part.bias] if part.bias is not None else [])
        shape = layers[-1].out_shape
        i += 2 if act is not None else 1
    if not layers or not isinstance(layers[-1], Output):
        raise UnsupportedLayer("a model that does not end with a Linear layer (the logits)")
    return layers, leaves


class ModelObjective(NetworkObjective):
    """``F(params)``: the batch-mean softmax cross-entropy of a model read by
    :func:`layers_of`, as a function of the model's own parameter pytree
    (:func:`parameters`).

    Parameters
    ----------
    layers : the project's layers of the model
    leaves : the :class:`Leaf` of each of the layers' parameter arrays
    paths : the key path of each floating leaf of the model's parameter pytree
    x : array, shape (batch, *in_shape)
    y : array, shape (batch, classes)
    """

    def __init__(self, layers: Sequence, leaves: Sequence[Leaf], paths: Sequence[tuple], x,
                 y) -> None:  # fmt: skip
        super().__init__(layers, x, y)
        self.leaves = list(leaves)
        self.n_leaves = len(paths)
        where = {p: k for k, p in enumerate(paths)}
        missing = [leaf.path for leaf in self.leaves if leaf.path not in where]
        if missing:
            raise UnsupportedLayer(f"parameters not found in the model's pytree: {missing}")
        #: for each of the project's arrays, the index of its leaf among the floating leaves
        self.order = [where[leaf.path] for leaf in self.leaves]
        self.leaf_of = self.order
        unused = sorted(set(range(self.n_leaves)) - set(self.order))
        if unused:
            raise UnsupportedLayer(f"floating parameters outside the layers read: "
                                   f"{[paths[k] for k in unused]}")  # fmt: skip

    def _check(self, leaves: Sequence) -> None:
        if len(leaves) != self.n_leaves:
            raise ValueError(
                f"params has {len(leaves)} floating leaves, the model {self.n_leaves}: pass "
                "numeric.adapters.parameters(model) (or a pytree of its structure)"
            )

    def flat(self, leaves: Sequence) -> list:
        """The project's parameter list from the model's floating leaves (a transpose
        where the layouts differ, reshapes: views, no copies)."""
        self._check(leaves)
        out = []
        for leaf, k in zip(self.leaves, self.order, strict=True):
            a = leaves[k]
            if leaf.view is not None:
                a = jnp.reshape(a, leaf.view)
            if leaf.perm is not None:
                a = jnp.transpose(a, leaf.perm)
            out.append(jnp.reshape(a, leaf.shape))
        return out

    def unflat(self, arrays: Sequence, like: Sequence) -> list:
        """The inverse of :meth:`flat`: arrays in the project's layout back in the
        layout and order of the model's floating leaves ``like``."""
        self._check(like)
        out: list = [None] * self.n_leaves
        for a, leaf, k in zip(arrays, self.leaves, self.order, strict=True):
            shape = tuple(like[k].shape)
            if leaf.perm is not None:
                view = leaf.view if leaf.view is not None else shape
                a = jnp.reshape(a, tuple(view[j] for j in leaf.perm))
                a = jnp.transpose(a, tuple(int(j) for j in np.argsort(leaf.perm)))
            out[k] = jnp.reshape(a, shape)
        return out

    def __call__(self, params):
        leaves = [a for a in jax.tree_util.tree_leaves(params) if floating(a)]
        return super().__call__(self.flat(leaves))

    def value_and_grad(self, params):
        """``(F, grad F)`` through the generated adjoint sweep, ``grad F`` as a pytree
        like ``params`` (``None`` at leaves that are not floating)."""
        leaves, tree = jax.tree_util.tree_flatten(params)
        keep = [floating(a) for a in leaves]
        sub = [a for a, k in zip(leaves, keep, strict=True) if k]
        _, ev = self.sweeps(sub)
        loss, grads = ev.loss, ev.grads
        it = iter(self.unflat(grads, sub))
        out = [next(it) if k else None for k in keep]
        return loss, jax.tree_util.tree_unflatten(tree, out)


def plain_objective(model, x, y, params=None) -> Callable[[Any], Any]:
    """``params -> F`` through the model's own forward pass (the batch-mean softmax
    cross-entropy, as :func:`objective` computes it): what ``jax.grad`` and the
    ``jvp(grad)`` path differentiate.

    Returns
    -------
    callable
        A plain function of :func:`parameters` ``(model)``.
    """
    model = _bound(model, params)
    return _front_end(model).plain(model, jnp.asarray(x), jnp.asarray(y))


_WARNED: set[str] = set()


def objective(model, x, y, params=None) -> Callable[[Any], Any]:
    """``value_fn`` for :func:`numeric.optax.scale_by_cr` on ``model`` and one batch.

    Parameters
    ----------
    model : equinox.nn.MLP, equinox.nn.Sequential, flax.nnx.Sequential or
        flax.linen.Sequential
    x : array, shape (batch, *in_shape)
        (batch, C, H, W) for an equinox conv model, as ``jax.vmap(model)`` takes it;
        (batch, H, W, C) for a flax one.
    y : array, shape (batch,) of int labels, or (batch, classes) label rows
    params : pytree, only for a flax linen model
        Its variables, ``model.init(key, x)`` (linen modules hold no arrays; their
        shapes are read from here).  The function returned takes this pytree (or one
        of its structure) each step.

    Returns
    -------
    ModelObjective, or a plain function
        ``params -> F`` (the batch-mean softmax cross-entropy) for ``params`` the
        model's parameter pytree (:func:`parameters`; for equinox also the model
        itself).  A :class:`ModelObjective` when every layer has generated kernels (the
        fast path); else a plain function of the parameters (``jvp(grad)``), with a
        one-time warning naming the layer.
    """
    x = jnp.asarray(x)
    y = jnp.asarray(y)
    model = _bound(model, params)
    front = _front_end(model)
    try:
        layers, leaves = layers_of(model, x.shape[1:])
        if y.ndim == 1:
            y = jax.nn.one_hot(y, layers[-1].classes, dtype=x.dtype)
        parts = front.parts(model)
        if parts[0].kind == "conv" and parts[0].channels_last:  # (batch, H, W, C): one copy
            x = jnp.transpose(x, (0, 3, 1, 2))
        pad = _input_padding(parts, tuple(x.shape[1:]))
        if pad is not None:  # a padded first conv: its zero-padded samples (one copy)
            x = jnp.pad(x, ((0, 0), (0, 0), *pad))
        return ModelObjective(layers, leaves, _paths(front.params(model)), x, y)
    except UnsupportedLayer as e:
        if str(e) not in _WARNED:
            _WARNED.add(str(e))
            warnings.warn(f"no generated kernels for {e}: scale_by_cr uses jvp(grad)",
                          stacklevel=2)  # fmt: skip
        return front.plain(model, x, y)
