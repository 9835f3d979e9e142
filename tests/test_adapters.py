"""numeric.adapters: an equinox MLP and CNN on the generated-kernel fast path of
scale_by_cr, checked against jvp(grad) of the model's own forward pass (float64)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
eqx = pytest.importorskip("equinox")

import jax.numpy as jnp  # noqa: E402

import numeric.optax as nopt  # noqa: E402
from numeric import adapters  # noqa: E402
from numeric import jax_backend as jb  # noqa: E402
from numeric.optax import scale_by_cr  # noqa: E402

jb.enable_x64()


def _mlp(key):
    return eqx.nn.MLP(6, 3, 5, 2, activation=jax.nn.tanh, key=key)


def _cnn(key):
    k = jax.random.split(key, 4)
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


MODELS = {"mlp": (_mlp, (6,)), "cnn": (_cnn, (2, 6, 6))}


def _batch(in_shape, n=10, c=3, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.normal(size=(n, *in_shape))), jnp.asarray(rng.integers(0, c, n))


def _reference(static, x, labels):
    """The model's own loss, written here: vmap(model), log-softmax, mean."""

    def loss(params):
        logits = jax.vmap(eqx.combine(params, static))(x)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], 1))

    return loss


def _train(model, x, labels, fast, steps=4):
    params, static = eqx.partition(model, eqx.is_inexact_array)
    tx = optax.chain(optax.scale_by_adam(), scale_by_cr(100.0, fallback=1e-3))
    ref = _reference(static, x, labels)
    value_fn = adapters.objective(model, x, labels) if fast else ref
    state, rows = tx.init(params), []
    step = jax.jit(lambda p, s: tx.update(jax.grad(ref)(p), s, p, value_fn=value_fn))
    for _ in range(steps):
        updates, state = step(params, state)
        params = optax.apply_updates(params, updates)
        cr = state[1]
        rows.append([float(cr.alpha), float(cr.dgrad), float(cr.dhd), int(cr.flag)])
    return params, np.array(rows), ref


@pytest.mark.parametrize("name", sorted(MODELS))
def test_equinox_model_on_the_fast_path_matches_jvp_grad(name, monkeypatch):
    make, in_shape = MODELS[name]
    model = make(jax.random.PRNGKey(0))
    x, labels = _batch(in_shape)
    objective = adapters.objective(model, x, labels)
    assert isinstance(objective, adapters.ModelObjective)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    ref = _reference(static, x, labels)
    np.testing.assert_allclose(float(objective(params)), float(ref(params)), rtol=1e-12)
    loss, grads = objective.value_and_grad(params)
    for a, b in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(jax.grad(ref)(params)),
                    strict=True):  # fmt: skip
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-14)
    slow_params, slow, _ = _train(model, x, labels, fast=False)

    def no_autodiff(*args, **kwargs):
        raise AssertionError("the fast path used jvp(grad)")

    monkeypatch.setattr(nopt, "AutodiffCurvature", no_autodiff)
    fast_params, fast, _ = _train(model, x, labels, fast=True)
    assert np.all(fast[:, 3] == 0)
    np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-300)
    for a, b in zip(jax.tree_util.tree_leaves(fast_params), jax.tree_util.tree_leaves(slow_params),
                    strict=True):  # fmt: skip
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-14)
    assert ref(fast_params) < ref(params)


def test_unsupported_layer_falls_back_with_one_warning():
    k = jax.random.split(jax.random.PRNGKey(1), 2)
    model = eqx.nn.Sequential([eqx.nn.Linear(6, 5, key=k[0]), eqx.nn.Lambda(jax.nn.gelu),
                               eqx.nn.Linear(5, 3, key=k[1])])  # fmt: skip
    x, labels = _batch((6,))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = adapters.objective(model, x, labels)
        adapters.objective(model, x, labels)
    named = [w for w in caught if "gelu" in str(w.message) and "jvp(grad)" in str(w.message)]
    assert len(named) == 1
    assert not isinstance(first, adapters.ModelObjective)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    np.testing.assert_allclose(float(first(params)), float(_reference(static, x, labels)(params)),
                               rtol=1e-12)  # fmt: skip
