"""numeric.adapters: models people write (equinox, flax nnx and flax linen MLPs and
CNNs) on the
generated-kernel fast path of scale_by_cr, checked against jvp(grad) of the model's own
forward pass (float64).  One table of models, BackPACK style: every row is trained both
ways and every logged quantity and update compared."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
eqx = pytest.importorskip("equinox")
nnx = pytest.importorskip("flax.nnx")
linen = pytest.importorskip("flax.linen")

import jax.numpy as jnp  # noqa: E402

import numeric.optax as nopt  # noqa: E402
from numeric import adapters  # noqa: E402
from numeric import jax_backend as jb  # noqa: E402
from numeric.optax import scale_by_cr  # noqa: E402

jb.enable_x64()


def _eqx_mlp(seed):
    return eqx.nn.MLP(6, 3, 5, 2, activation=jax.nn.tanh, key=jax.random.PRNGKey(seed))


def _eqx_cnn(seed):
    k = jax.random.split(jax.random.PRNGKey(seed), 4)
    return eqx.nn.Sequential([
        eqx.nn.Conv2d(2, 3, 3, key=k[0]),
        eqx.nn.Lambda(jax.nn.relu),
        eqx.nn.Conv2d(3, 2, 2, stride=2, key=k[1]),
        eqx.nn.Lambda(jnp.tanh),
        eqx.nn.Lambda(jnp.ravel),
        eqx.nn.Linear(8, 6, key=k[2]),
        eqx.nn.Lambda(jax.nn.softplus),
        eqx.nn.Linear(6, 3, key=k[3]),
    ])  # fmt: skip


def _eqx_cnn_padded(seed):
    """The first conv zero-padded, unevenly: (2, 6, 6) -> (3, 5, 7)."""
    k = jax.random.split(jax.random.PRNGKey(seed), 4)
    return eqx.nn.Sequential([
        eqx.nn.Conv2d(2, 3, 3, padding=((1, 0), (2, 1)), key=k[0]),
        eqx.nn.Lambda(jnp.tanh),
        eqx.nn.Conv2d(3, 2, 2, stride=2, key=k[1]),
        eqx.nn.Lambda(jax.nn.sigmoid),
        eqx.nn.Lambda(jnp.ravel),
        eqx.nn.Linear(12, 6, key=k[2]),
        eqx.nn.Lambda(jnp.tanh),
        eqx.nn.Linear(6, 3, key=k[3]),
    ])  # fmt: skip


def _flax_linear(d_in, d_out, rngs, **kw):
    return nnx.Linear(d_in, d_out, rngs=rngs, param_dtype=jnp.float64, dtype=jnp.float64, **kw)


def _flax_mlp(seed):
    rngs = nnx.Rngs(seed)
    return nnx.Sequential(
        _flax_linear(6, 5, rngs), nnx.tanh,
        _flax_linear(5, 4, rngs, use_bias=False), nnx.sigmoid,
        _flax_linear(4, 3, rngs),
    )  # fmt: skip


def _flax_cnn(seed):
    rngs = nnx.Rngs(seed)
    conv = dict(padding="VALID", rngs=rngs, param_dtype=jnp.float64, dtype=jnp.float64)
    return nnx.Sequential(
        nnx.Conv(2, 3, (3, 3), **conv), nnx.relu,
        nnx.Conv(3, 2, (2, 2), strides=2, **conv), nnx.tanh,
        adapters.flatten,
        _flax_linear(8, 6, rngs), nnx.softplus,
        _flax_linear(6, 3, rngs),
    )  # fmt: skip


class Linen(NamedTuple):
    """A flax linen module with its variables (linen modules hold no arrays)."""

    module: object
    variables: dict


def _flax_cnn_same(seed):
    """flax's default padding="SAME" on the first conv, strided: (6, 6) -> (3, 3), the
    padding (0, 1) on each axis."""
    rngs = nnx.Rngs(seed)
    conv = dict(rngs=rngs, param_dtype=jnp.float64, dtype=jnp.float64)
    return nnx.Sequential(
        nnx.Conv(2, 3, (3, 3), strides=2, **conv), nnx.tanh,
        nnx.Conv(3, 2, (2, 2), padding="VALID", **conv), nnx.softplus,
        adapters.flatten,
        _flax_linear(8, 6, rngs), nnx.tanh,
        _flax_linear(6, 3, rngs),
    )  # fmt: skip


def _linen(layers, in_shape, seed):
    module = linen.Sequential(layers)
    return Linen(module, module.init(jax.random.PRNGKey(seed), jnp.zeros((1, *in_shape))))


def _linen_mlp(seed):
    dense = dict(param_dtype=jnp.float64)
    return _linen([
        linen.Dense(5, **dense), linen.tanh,
        linen.Dense(4, use_bias=False, **dense), linen.sigmoid,
        linen.Dense(3, **dense),
    ], (6,), seed)  # fmt: skip


def _linen_cnn(seed):
    conv = dict(padding="VALID", param_dtype=jnp.float64)
    return _linen([
        linen.Conv(3, (3, 3), **conv), linen.relu,
        linen.Conv(2, (2, 2), strides=2, **conv), linen.tanh,
        adapters.flatten,
        linen.Dense(6, param_dtype=jnp.float64), linen.softplus,
        linen.Dense(3, param_dtype=jnp.float64),
    ], (6, 6, 2), seed)  # fmt: skip


def _linen_cnn_same(seed):
    """linen's default padding="SAME" on the first conv: (6, 6) -> (6, 6)."""
    return _linen([
        linen.Conv(3, (3, 3), param_dtype=jnp.float64), linen.tanh,
        linen.Conv(2, (2, 2), strides=2, padding="VALID", param_dtype=jnp.float64), linen.relu,
        adapters.flatten,
        linen.Dense(6, param_dtype=jnp.float64), linen.sigmoid,
        linen.Dense(3, param_dtype=jnp.float64),
    ], (6, 6, 2), seed)  # fmt: skip


def _objective(model, x, labels):
    """``adapters.objective`` as a user calls it (a linen model's variables passed)."""
    if isinstance(model, Linen):
        return adapters.objective(model.module, x, labels, params=model.variables)
    return adapters.objective(model, x, labels)


def _parameters(model):
    if isinstance(model, Linen):
        return adapters.parameters(model.module, params=model.variables)
    return adapters.parameters(model)


def _linen_split(model, x, labels):
    """The same for flax linen: the variables, module.apply on the batch."""

    def loss(p):
        logits = model.module.apply(p, x)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], 1))

    return model.variables, loss


def _eqx_split(model, x, labels):
    """The parameters and the model's own loss, written here: vmap(model), log-softmax."""
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def loss(p):
        logits = jax.vmap(eqx.combine(p, static))(x)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], 1))

    return params, loss


def _flax_split(model, x, labels):
    """The same for flax: nnx.split, nnx.merge, the model on the batch."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss(p):
        logits = nnx.merge(graphdef, p, rest)(x)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], 1))

    return params, loss


class Case(NamedTuple):
    make: Callable  # seed -> model
    in_shape: tuple
    split: Callable  # (model, x, labels) -> (params, reference loss)


MODELS = {
    "equinox-mlp": Case(_eqx_mlp, (6,), _eqx_split),
    "equinox-cnn": Case(_eqx_cnn, (2, 6, 6), _eqx_split),
    "equinox-cnn-padded": Case(_eqx_cnn_padded, (2, 6, 6), _eqx_split),
    "flax-mlp": Case(_flax_mlp, (6,), _flax_split),
    "flax-cnn": Case(_flax_cnn, (6, 6, 2), _flax_split),  # samples (H, W, C)
    "linen-mlp": Case(_linen_mlp, (6,), _linen_split),
    "linen-cnn": Case(_linen_cnn, (6, 6, 2), _linen_split),
    "flax-cnn-same": Case(_flax_cnn_same, (6, 6, 2), _flax_split),
    "linen-cnn-same": Case(_linen_cnn_same, (6, 6, 2), _linen_split),
}

#: what each step logs, compared row by row
QUANTITIES = ("alpha", "dgrad", "dhd", "dnorm", "lr_eff", "flag")


def _batch(in_shape, n=10, c=3, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.normal(size=(n, *in_shape))), jnp.asarray(rng.integers(0, c, n))


def _train(params, ref, value_fn, tx, steps=4, masked=False):
    """``steps`` jitted steps; the logged quantities and the updates of each."""
    state, rows, updates_seen = tx.init(params), [], []

    def step(p, s):
        kw = {"full_params": p} if masked else {}
        return tx.update(jax.grad(ref)(p), s, p, value_fn=value_fn, **kw)

    step = jax.jit(step)
    for _ in range(steps):
        updates, state = step(params, state)
        params = optax.apply_updates(params, updates)
        cr = nopt.find_cr_state(state)
        if cr is None:  # optax.masked's state
            cr = state.inner_state[1]
        rows.append([float(getattr(cr, q)) for q in QUANTITIES])
        updates_seen.append(updates)
    return params, np.array(rows), updates_seen


def _close_trees(a, b, rtol=1e-10):
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=rtol, atol=1e-14)


@pytest.fixture
def no_autodiff(monkeypatch):
    """Make the jvp(grad) path fail: what runs after this is the generated kernels'."""

    def refuse(*args, **kwargs):
        raise AssertionError("the fast path used jvp(grad)")

    monkeypatch.setattr(nopt, "AutodiffCurvature", refuse)
    return monkeypatch


def _chain():
    return optax.chain(optax.scale_by_adam(), scale_by_cr(100.0, fallback=1e-3))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_on_the_fast_path_matches_jvp_grad(name, request):
    case = MODELS[name]
    model = case.make(0)
    x, labels = _batch(case.in_shape)
    objective = _objective(model, x, labels)
    assert isinstance(objective, adapters.ModelObjective)
    params, ref = case.split(model, x, labels)
    _close_trees(_parameters(model), params, rtol=0)
    np.testing.assert_allclose(float(objective(params)), float(ref(params)), rtol=1e-12)
    loss, grads = objective.value_and_grad(params)
    np.testing.assert_allclose(float(loss), float(ref(params)), rtol=1e-12)
    _close_trees(grads, jax.grad(ref)(params))
    slow_params, slow, slow_updates = _train(params, ref, ref, _chain())
    request.getfixturevalue("no_autodiff")
    fast_params, fast, fast_updates = _train(params, ref, objective, _chain())
    assert np.all(fast[:, QUANTITIES.index("flag")] == 0)
    np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-300)
    for u, v in zip(fast_updates, slow_updates, strict=True):
        _close_trees(u, v)
    _close_trees(fast_params, slow_params)
    assert ref(fast_params) < ref(params)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_optax_masked_on_the_fast_path_matches_jvp_grad(name, request):
    """``optax.masked``: the kernels see every parameter, CR's direction only the
    masked-in ones; the same steps as jvp(grad) of the loss, the masked-out updates as
    they came."""
    case = MODELS[name]
    model = case.make(1)
    x, labels = _batch(case.in_shape, seed=1)
    params, ref = case.split(model, x, labels)
    paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    last = paths[-1]  # a bias or a weight of the last layer stays out of CR
    mask = jax.tree_util.tree_map_with_path(lambda p, _: p != last, params)
    tx = optax.masked(_chain(), mask)
    slow_params, slow, slow_updates = _train(params, ref, ref, tx, masked=True)
    request.getfixturevalue("no_autodiff")
    fast_params, fast, fast_updates = _train(params, ref, _objective(model, x, labels), tx,
                                             masked=True)  # fmt: skip
    np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-300)
    for u, v in zip(fast_updates, slow_updates, strict=True):
        _close_trees(u, v)
    grads = jax.jit(jax.grad(ref))(params)  # the masked-out leaf: its gradient, as it came
    np.testing.assert_allclose(np.asarray(jax.tree_util.tree_leaves(fast_updates[0])[-1]),
                               np.asarray(jax.tree_util.tree_leaves(grads)[-1]), rtol=1e-14)  # fmt: skip
    _close_trees(fast_params, slow_params)


def test_flax_per_layer_matches_the_same_equinox_model(no_autodiff):
    """Per-layer CR's blocks are the layers; flax's leaves come in another order (bias
    before kernel) and layout (kernel transposed): the same network as an equinox MLP
    takes the same per-layer steps."""
    rngs = nnx.Rngs(3)
    flax_model = nnx.Sequential(_flax_linear(6, 5, rngs), nnx.tanh, _flax_linear(5, 3, rngs))
    eqx_model = eqx.nn.MLP(6, 3, 5, 1, activation=jnp.tanh, key=jax.random.PRNGKey(0))
    for k in (0, 2):
        lin = flax_model.layers[k]
        eqx_model = eqx.tree_at(lambda m, k=k: (m.layers[k // 2].weight, m.layers[k // 2].bias),
                                eqx_model, (lin.kernel[...].T, lin.bias[...]))  # fmt: skip
    x, labels = _batch((6,), seed=2)
    out = {}
    for lib, model, split in (("flax", flax_model, _flax_split), ("eqx", eqx_model, _eqx_split)):
        params, ref = split(model, x, labels)
        np.testing.assert_allclose(float(ref(params)), float(_eqx_split(eqx_model, x, labels)[1](
            eqx.filter(eqx_model, eqx.is_inexact_array))), rtol=1e-12)  # fmt: skip
        tx = optax.chain(optax.scale_by_adam(), scale_by_cr(100.0, variant="per-layer"))
        out[lib] = _train(params, ref, adapters.objective(model, x, labels), tx)
    np.testing.assert_allclose(out["flax"][1], out["eqx"][1], rtol=1e-10)
    for fu, eu in zip(out["flax"][2], out["eqx"][2], strict=True):
        flat_f = {tuple(adapters._path_key(e) for e in p)[:3]: a
                  for p, a in jax.tree_util.tree_flatten_with_path(fu)[0]}  # fmt: skip
        np.testing.assert_allclose(np.asarray(eu.layers[0].weight),
                                   np.asarray(flat_f[("layers", 0, "kernel")]).T, rtol=1e-10)  # fmt: skip
        np.testing.assert_allclose(np.asarray(eu.layers[1].bias),
                                   np.asarray(flat_f[("layers", 2, "bias")]), rtol=1e-10)  # fmt: skip


@pytest.mark.parametrize("lib", ["equinox", "flax", "linen"])
def test_unsupported_layer_falls_back_with_one_warning(lib):
    if lib == "equinox":
        k = jax.random.split(jax.random.PRNGKey(1), 2)
        model = eqx.nn.Sequential([eqx.nn.Linear(6, 5, key=k[0]), eqx.nn.Lambda(jax.nn.gelu),
                                   eqx.nn.Linear(5, 3, key=k[1])])  # fmt: skip
        split = _eqx_split
    elif lib == "flax":
        rngs = nnx.Rngs(1)
        model = nnx.Sequential(_flax_linear(6, 5, rngs), nnx.gelu, _flax_linear(5, 3, rngs))
        split = _flax_split
    else:
        dense = dict(param_dtype=jnp.float64)
        model = _linen([linen.Dense(5, **dense), linen.gelu, linen.Dense(3, **dense)], (6,), 1)
        split = _linen_split
    x, labels = _batch((6,))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = _objective(model, x, labels)
        _objective(model, x, labels)
    named = [w for w in caught if "gelu" in str(w.message) and "jvp(grad)" in str(w.message)]
    assert len(named) == 1
    assert not isinstance(first, adapters.ModelObjective)
    params, ref = split(model, x, labels)
    np.testing.assert_allclose(float(first(params)), float(ref(params)), rtol=1e-12)


def test_linen_needs_its_variables_and_only_linen_takes_them():
    model = _linen_mlp(0)
    x, labels = _batch((6,))
    with pytest.raises(TypeError, match="params=model.init"):
        adapters.objective(model.module, x, labels)
    with pytest.raises(TypeError, match="params= is for flax linen"):
        adapters.objective(_eqx_mlp(0), x, labels, params=model.variables)


def test_padded_conv_after_the_first_layer_falls_back_naming_it():
    """Only the first conv's padding is read (as zero-padded samples); a later one falls
    back, with the warning naming it."""
    model = _linen([linen.Conv(3, (3, 3), padding="VALID", param_dtype=jnp.float64), linen.tanh,
                    linen.Conv(2, (2, 2), param_dtype=jnp.float64), linen.tanh, adapters.flatten,
                    linen.Dense(3, param_dtype=jnp.float64)], (6, 6, 2), 4)  # fmt: skip
    x, labels = _batch((6, 6, 2), seed=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = _objective(model, x, labels)
    assert any("after the first layer" in str(w.message) for w in caught)
    assert not isinstance(first, adapters.ModelObjective)
    params, ref = _linen_split(model, x, labels)
    np.testing.assert_allclose(float(first(params)), float(ref(params)), rtol=1e-12)
