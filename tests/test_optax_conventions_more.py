"""scale_by_cr in optax's conventions: inject_hyperparams under jit, int and bool leaves,
``has_aux``, extra arguments of ``value_fn``, ``optax.masked``.  Each is checked against
scale_by_cr on the equivalent plain problem (a closure over the constants)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")

import jax.numpy as jnp  # noqa: E402

from numeric import jax_backend as jb  # noqa: E402
from numeric.optax import scale_by_cr  # noqa: E402
from tests.tiny_models import tanh_mlp_data, tanh_mlp_loss  # noqa: E402

jb.enable_x64()


_data, _loss = tanh_mlp_data, tanh_mlp_loss


def _run(tx, params, value_fn, steps=4, jit=True, grad_fn=None, **kw):
    grad_fn = grad_fn or jax.grad(value_fn)

    def step(p, state):
        updates, state = tx.update(grad_fn(p), state, p, value_fn=value_fn, **kw)
        return optax.apply_updates(p, updates), state

    step = jax.jit(step) if jit else step
    state = tx.init(params)
    for _ in range(steps):
        params, state = step(params, state)
    return params, state


def _close(a, b):
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("variant", ["paper", "adaptive", "per-layer"])
def test_inject_hyperparams_under_jit(variant):
    """sigma and fallback as injected hyperparameters: the same steps as the constants,
    and a changed sigma in the state changes the step."""
    params, x, y = _data()
    loss = lambda p: _loss(p, x, y)  # noqa: E731
    injected = optax.inject_hyperparams(scale_by_cr, static_args=("variant",))(
        sigma=50.0, fallback=0.01, variant=variant
    )
    p_inj, s_inj = _run(optax.chain(optax.scale_by_adam(), injected), params, loss)
    p_ref, _ = _run(optax.chain(optax.scale_by_adam(),
                                scale_by_cr(50.0, fallback=0.01, variant=variant)),
                    params, loss)  # fmt: skip
    _close(p_inj, p_ref)
    assert loss(p_inj) < loss(params)
    s_inj[1].hyperparams["sigma"] = jnp.asarray(5000.0)
    step = jax.jit(lambda p, s: optax.chain(optax.scale_by_adam(), injected).update(
        jax.grad(loss)(p), s, p, value_fn=loss))  # fmt: skip
    big, _ = step(p_inj, s_inj)
    s_inj[1].hyperparams["sigma"] = jnp.asarray(50.0)
    small, _ = step(p_inj, s_inj)
    norm = lambda t: float(optax.tree_utils.tree_norm(t))  # noqa: E731
    if variant == "adaptive":  # the injected sigma is the initial one; the state's rules
        assert norm(big) == norm(small)
    else:  # a larger cubic weight takes a shorter step
        assert norm(big) < norm(small)


def test_int_and_bool_leaves_pass_through():
    """An int step counter and a bool switch in the parameters: zero updates of their own
    dtype, and the float leaves move as on the problem without them."""
    params, x, y = _data()
    full = {**params, "count": jnp.asarray(3, jnp.int32), "on": jnp.asarray([True, False])}

    def loss_full(p):
        return _loss(p, x, y) * jnp.where(p["on"][0], 1.0, 0.0) + 0.0 * p["count"]

    def grad_full(p):  # what optax.sgd would see: ints passed through as zeros
        g = jax.grad(lambda q: loss_full({**p, **q}))(params_of(p))
        return {**g, "count": jnp.zeros((), jnp.int32), "on": jnp.zeros(2, bool)}

    def params_of(p):
        return {k: p[k] for k in params}

    tx = optax.chain(optax.scale_by_adam(), scale_by_cr(100.0))
    out, state = _run(tx, full, loss_full, grad_fn=grad_full)
    ref, _ = _run(tx, params, lambda p: _loss(p, x, y))
    _close(params_of(out), ref)
    assert out["count"].dtype == jnp.int32 and int(out["count"]) == 3
    assert out["on"].dtype == bool and out["on"].tolist() == [True, False]
    assert int(state[1].flag) == 0


def test_has_aux_and_extra_arguments():
    """``value_fn(params, x, y) -> (loss, aux)`` with ``x=``, ``y=`` passed to update, as
    optax's line search takes them: the same steps as the closure."""
    params, x, y = _data()

    def loss_aux(p, x, y):
        return _loss(p, x, y), {"logits_norm": jnp.sum(p["w2"] ** 2)}

    tx_aux = optax.chain(optax.scale_by_adam(), scale_by_cr(100.0, has_aux=True))
    out, state = _run(tx_aux, params, loss_aux, grad_fn=lambda p: jax.grad(_loss)(p, x, y),
                      x=x, y=y)  # fmt: skip
    tx = optax.chain(optax.scale_by_adam(), scale_by_cr(100.0))
    ref, ref_state = _run(tx, params, lambda p: _loss(p, x, y))
    _close(out, ref)
    np.testing.assert_allclose(float(state[1].dhd), float(ref_state[1].dhd), rtol=1e-12)


def test_optax_masked():
    """``optax.masked(scale_by_cr(...), mask)``: masked-out updates pass through as they
    came; the masked-in leaves take CR's step of the problem in them alone (the others
    constants)."""
    params, x, y = _data()
    loss = lambda p: _loss(p, x, y)  # noqa: E731
    mask = {"w1": True, "b1": False, "w2": True}
    tx = optax.masked(scale_by_cr(100.0), mask)
    grads = jax.grad(loss)(params)
    updates, state = jax.jit(lambda g, s, p: tx.update(g, s, p, value_fn=loss, full_params=p))(
        grads, tx.init(params), params
    )
    np.testing.assert_array_equal(np.asarray(updates["b1"]), np.asarray(grads["b1"]))
    sub = {"w1": params["w1"], "w2": params["w2"]}

    def sub_loss(q):
        return loss({**q, "b1": params["b1"]})

    ref_tx = scale_by_cr(100.0)
    ref, ref_state = ref_tx.update(jax.grad(sub_loss)(sub), ref_tx.init(sub), sub,
                                   value_fn=sub_loss)  # fmt: skip
    _close({"w1": updates["w1"], "w2": updates["w2"]}, ref)
    np.testing.assert_allclose(float(state.inner_state.dhd), float(ref_state.dhd), rtol=1e-12)
    with pytest.raises(ValueError, match="full_params=params"):
        tx.update(grads, tx.init(params), params, value_fn=loss)


def test_per_variable_on_the_jvp_path_warns_of_its_cost(monkeypatch):
    import numeric.optax as nopt

    params, x, y = _data()
    loss = lambda p: _loss(p, x, y)  # noqa: E731
    n = sum(int(np.size(a)) for a in jax.tree_util.tree_leaves(params))
    tx = scale_by_cr(100.0, variant="per-variable")
    monkeypatch.setattr(nopt, "PER_VARIABLE_LIMIT", n - 1)
    with pytest.warns(UserWarning, match=f"{n} products"):
        tx.update(jax.grad(loss)(params), tx.init(params), params, value_fn=loss)
    monkeypatch.setattr(nopt, "PER_VARIABLE_LIMIT", n)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tx.update(jax.grad(loss)(params), tx.init(params), params, value_fn=loss)
