"""scale_by_cr's sign conventions: where CR goes in an optax chain, and the clear error
(or, under jit, the state's flag) when the updates are in the other convention."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")


from numeric import jax_backend as jb  # noqa: E402
from numeric.optax import ConventionError, check_convention, scale_by_cr  # noqa: E402
from tests.tiny_models import tanh_mlp_data, tanh_mlp_loss  # noqa: E402

jb.enable_x64()

LR = 0.1


def _model(seed=0):
    """Someone's tanh MLP with dict parameters, and its batch-mean cross-entropy."""
    params, x, y = tanh_mlp_data(seed)
    return params, lambda p: tanh_mlp_loss(p, x, y)


def _train(tx, params, loss, steps=10, jit=False):
    def step(p, state):
        updates, state = tx.update(jax.grad(loss)(p), state, p, value_fn=loss)
        return optax.apply_updates(p, updates), state

    step = jax.jit(step) if jit else step
    state = tx.init(params)
    for _ in range(steps):
        params, state = step(params, state)
    return params, state


@pytest.mark.parametrize("jit", [False, True])
def test_descent_convention_after_sgd_trains_downhill(jit):
    """``chain(sgd(lr), scale_by_cr(updates="descent"))`` takes regular CR steps, and the
    same steps as ``chain(identity(), scale_by_cr())`` (Eq 37 is invariant to the length
    of ``d``): only ``alpha`` is rescaled, by ``1 / lr``."""
    params, loss = _model()
    right = optax.chain(optax.sgd(LR), scale_by_cr(100.0, updates="descent"))
    plain = optax.chain(optax.identity(), scale_by_cr(100.0))
    p_right, s_right = _train(right, params, loss, jit=jit)
    p_plain, s_plain = _train(plain, params, loss, jit=jit)
    assert loss(p_right) < loss(params)
    assert int(s_right[1].flag) == 0 and not bool(s_right[1].convention_error)
    for a, b in zip(_leaves(p_right), _leaves(p_plain), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(float(s_right[1].alpha) * LR, float(s_plain[1].alpha), rtol=1e-10)
    check_convention(s_right)  # nothing recorded: no error


def test_gradient_convention_after_a_scale_by_base_trains_downhill():
    params, loss = _model()
    p, state = _train(optax.chain(optax.scale_by_adam(), scale_by_cr(1000.0)), params, loss)
    assert loss(p) < loss(params) and int(state[1].flag) == 0
    check_convention(state)


@pytest.mark.parametrize(
    ("base", "convention", "says"),
    [
        (lambda: optax.sgd(LR), "gradient", "updates='descent'"),
        (
            lambda: optax.chain(optax.scale_by_adam(), optax.scale_by_learning_rate(LR)),
            "gradient",
            "already a descent step",
        ),
        (lambda: optax.identity(), "descent", "use updates='gradient'"),
    ],
)
def test_wrong_convention_raises_at_the_first_step(base, convention, says):
    params, loss = _model()
    tx = optax.chain(base(), scale_by_cr(100.0, updates=convention))
    with pytest.raises(ConventionError, match=says):
        tx.update(jax.grad(loss)(params), tx.init(params), params, value_fn=loss)


def test_wrong_convention_under_jit_is_recorded_and_warned():
    params, loss = _model()
    tx = optax.chain(optax.sgd(LR), scale_by_cr(100.0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p, state = _train(tx, params, loss, steps=3, jit=True)
        jax.effects_barrier()
    assert bool(state[1].convention_error)
    assert any("updates='descent'" in str(w.message) for w in caught)
    with pytest.raises(ConventionError, match="other sign convention"):
        check_convention(state)
    # what the flag guards against: no step at all (fallback 0) ...
    np.testing.assert_array_equal(_flat(p), _flat(params))


def test_sgd_direction_needs_the_gradient_convention():
    with pytest.raises(ValueError, match="updates='gradient'"):
        scale_by_cr(1.0, direction="sgd", updates="descent")
    with pytest.raises(ValueError, match="updates must be one of"):
        scale_by_cr(1.0, updates="ascent")


def _flat(tree):
    return np.concatenate([np.ravel(np.asarray(a)) for a in jax.tree_util.tree_leaves(tree)])


def _leaves(tree):
    return jax.tree_util.tree_leaves(tree)
