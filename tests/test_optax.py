"""numeric.optax: CR as an optax transformation, for any JAX model and for ours."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")

import jax.numpy as jnp  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

from numeric import jax_backend as jb  # noqa: E402
from numeric.cr import FLAGS, step_length  # noqa: E402
from numeric.network import Network  # noqa: E402
from numeric.optax import NetworkObjective, scale_by_cr  # noqa: E402
from numeric.optax_methods import BASELINES, OptaxMethod, baseline  # noqa: E402

jb.enable_x64()

BASES = {
    "sgd": lambda: optax.identity(),
    "adagrad": lambda: optax.scale_by_rss(),
    "adadelta": lambda: optax.scale_by_adadelta(),
    "adam": lambda: optax.scale_by_adam(),
}


def _tanh_mlp(seed=0, n=24, d=5, h=7, c=3):
    """A model the project did not write: two tanh layers with biases, dict parameters."""
    rng = np.random.default_rng(seed)
    params = {
        "hidden": (jnp.asarray(rng.normal(size=(d, h)) * 0.5), jnp.asarray(rng.normal(size=h))),
        "out": {"w": jnp.asarray(rng.normal(size=(h, c)) * 0.5), "b": jnp.zeros(c)},
    }
    x = jnp.asarray(rng.normal(size=(n, d)))
    y = jax.nn.one_hot(rng.integers(0, c, n), c)

    def loss_of_params(p):
        w, b = p["hidden"]
        hid = jnp.tanh(x @ w + b)
        logits = hid @ p["out"]["w"] + p["out"]["b"]
        return -jnp.mean(jnp.sum(y * jax.nn.log_softmax(logits), axis=1))

    return params, loss_of_params


def _flat(tree):
    return jnp.concatenate([jnp.ravel(a) for a in jax.tree_util.tree_leaves(tree)])


def _check_against_dense_hessian(loss_of_params, before, updates, cr, sigma):
    """CR's logged quantities against jax.hessian of the flattened parameters."""
    flat, unravel = jax.flatten_util.ravel_pytree(before)

    def flat_loss(t):
        return loss_of_params(unravel(t))

    hess = jax.hessian(flat_loss)(flat)
    g = jax.grad(flat_loss)(flat)
    direction = _flat(updates) / cr.alpha
    np.testing.assert_allclose(float(cr.dgrad), float(direction @ g), rtol=1e-10)
    np.testing.assert_allclose(float(cr.dhd), float(direction @ hess @ direction), rtol=1e-10)
    sq = float(direction @ direction)
    alpha, flag = step_length(float(cr.dgrad), float(cr.dhd), sigma, sq**1.5, 0.0)
    assert int(cr.flag) == 0 and flag == ""
    np.testing.assert_allclose(float(cr.alpha), alpha, rtol=1e-10)
    return g, direction


@pytest.mark.parametrize("base", sorted(BASES))
def test_acceptance_example_on_a_foreign_model(base):
    """The issue's example, verbatim, on a JAX model with biases and pytree parameters."""
    params, loss_of_params = _tanh_mlp()
    start = loss_of_params(params)
    opt = optax.chain(BASES[base](), scale_by_cr(sigma=1000.0))
    state = opt.init(params)
    for _ in range(3):
        grads = jax.grad(loss_of_params)(params)
        before = params
        updates, state = opt.update(grads, state, params, value_fn=loss_of_params)
        params = optax.apply_updates(params, updates)
        g, direction = _check_against_dense_hessian(
            loss_of_params, before, updates, state[1], 1000.0
        )
        if base == "sgd":  # the SGD direction is the negative gradient
            np.testing.assert_allclose(direction, -g, rtol=1e-10)
    assert loss_of_params(params) < start


@pytest.mark.parametrize("base", sorted(BASES))
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_fast_path_equals_autodiff_path(base, activation):
    """Our network: the generated kernels (NetworkObjective) against jvp(grad)."""
    rng = np.random.default_rng(1)
    net = jb.to_jax(Network.create(6, [5, 5, 4], 3, seed=2, init=0.6, activation=activation))
    x = jnp.asarray(rng.normal(size=(10, 6)))
    y = jax.nn.one_hot(rng.integers(0, 3, 10), 3)
    objective = NetworkObjective(net.layers, x, y)
    plain = lambda p: objective(p)  # noqa: E731  (not a NetworkObjective: autodiff path)
    params = list(net.params)
    grads = jax.grad(plain)(params)
    results = {}
    for name, fn in (("fast", objective), ("autodiff", plain)):
        opt = optax.chain(BASES[base](), scale_by_cr(sigma=100.0, fallback=0.01))
        state = opt.init(params)
        updates, state = opt.update(grads, state, params, value_fn=fn)
        results[name] = (state[1], _flat(updates))
    (a, ua), (b, ub) = results["fast"], results["autodiff"]
    for field in ("alpha", "dgrad", "dhd", "dnorm"):
        np.testing.assert_allclose(float(getattr(a, field)), float(getattr(b, field)), rtol=1e-10)
    np.testing.assert_allclose(ua, ub, rtol=1e-10, atol=1e-14)


def test_sgd_direction_fast_path_uses_the_low_rank_forms():
    rng = np.random.default_rng(3)
    net = jb.to_jax(Network.create(6, [5, 5, 5], 3, seed=4, init=0.6))
    x = jnp.asarray(rng.normal(size=(8, 6)))
    y = jax.nn.one_hot(rng.integers(0, 3, 8), 3)
    objective = NetworkObjective(net.layers, x, y)
    params = list(net.params)
    grads = jax.grad(objective)(params)
    out = {}
    for direction in ("sgd", "any"):
        tx = scale_by_cr(sigma=10.0, direction=direction)
        _, state = tx.update(grads, tx.init(params), params, value_fn=objective)
        out[direction] = state
    np.testing.assert_allclose(float(out["sgd"].dhd), float(out["any"].dhd), rtol=1e-10)


def test_flags_and_validation():
    params, loss = _tanh_mlp()
    tx = scale_by_cr(sigma=10.0, fallback=0.05)
    grads = jax.grad(loss)(params)
    ascent = jax.tree_util.tree_map(lambda g: -g, grads)  # d = -updates = +grad: ascent
    _, later = tx.update(grads, tx.init(params), params, value_fn=loss)  # past the first step
    updates, state = tx.update(ascent, later, params, value_fn=loss)
    assert int(state.flag) == 1  # nondescent: the fallback step along d
    np.testing.assert_allclose(float(state.alpha), 0.05)
    zero = jax.tree_util.tree_map(jnp.zeros_like, grads)
    _, state = tx.update(zero, tx.init(params), params, value_fn=loss)
    assert int(state.flag) == 2 and float(state.alpha) == 0.0
    with pytest.raises(ValueError, match="value_fn"):
        tx.update(grads, tx.init(params), params)
    with pytest.raises(ValueError, match="sigma"):
        scale_by_cr(sigma=0.0)
    with pytest.raises(ValueError, match="per-sample"):
        scale_by_cr(sigma=1.0, averaging="alpha-g")


def test_jit_and_pytrees():
    params, loss = _tanh_mlp()
    opt = optax.chain(optax.scale_by_adam(), scale_by_cr(sigma=1000.0))

    @jax.jit
    def train_step(params, state):
        grads = jax.grad(loss)(params)
        updates, state = opt.update(grads, state, params, value_fn=loss)
        return optax.apply_updates(params, updates), state

    state = opt.init(params)
    start = loss(params)
    for _ in range(20):
        params, state = train_step(params, state)
    assert loss(params) < start


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_optax_baselines_train_our_network(name):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (64, 12))
    labels = rng.integers(0, 3, 64)
    net = jb.to_jax(Network.create(12, [8, 8], 3, seed=0))
    method = baseline(name)
    state = method.init(net)
    first = None
    for _ in range(30):
        rows = rng.integers(0, 64, 16)
        net, state, info = method.step(net, state, x[rows], labels[rows])
        first = info.loss if first is None else first
        assert np.isfinite(info.loss) and np.isfinite(info.dnorm)
    assert net.loss(np.asarray(x), labels) < first or name in ("sophia",)


def test_optax_method_with_cr_logs_cr():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (64, 12))
    labels = rng.integers(0, 3, 64)
    net = jb.to_jax(Network.create(12, [8, 8], 3, seed=0))
    method = OptaxMethod(optax.chain(optax.identity(), scale_by_cr(100.0, direction="sgd")))
    state = method.init(net)
    net, state, info = method.step(net, state, x[:16], labels[:16])
    assert info.flag == "" and info.alpha > 0 and np.isfinite(info.dhd)


# ------------------------------------------------------------------ the variants
VARIANTS = ["paper", "adaptive", "scale-invariant", "per-layer", "per-variable"]


@pytest.mark.parametrize("every", [1, 2])
@pytest.mark.parametrize("variant", VARIANTS)
def test_variants_agree_with_numeric_cr_on_both_paths(variant, every):
    """scale_by_cr(variant=...) on the fast path, on jvp(grad), and numeric.cr.CR with
    the same rule (SGD direction; scale-invariant with the identity metric, SGD's own)."""
    from numeric.cr import CR
    from numeric.optimizers import SGD

    rng = np.random.default_rng(1)
    net = Network.create(6, [5, 5, 4], 3, seed=2, init=0.6)
    x = rng.normal(size=(10, 6))
    labels = rng.integers(0, 3, 10)
    jnet = jb.to_jax(net)
    objective = NetworkObjective(jnet.layers, jnp.asarray(x), jnp.asarray(np.eye(3)[labels]))
    plain = lambda p: objective(p)  # noqa: E731
    logged = {}
    for name, fn in (("fast", objective), ("autodiff", plain)):
        tx = optax.chain(optax.identity(), scale_by_cr(100.0, variant=variant, every=every,
                                                       fallback=0.01, metric="identity"))  # fmt: skip
        params = list(jnet.params)
        state = tx.init(params)
        rows = []
        for _ in range(4):
            updates, state = tx.update(jax.grad(plain)(params), state, params, value_fn=fn)
            params = optax.apply_updates(params, updates)
            rows.append([float(state[1].alpha), float(state[1].dgrad), int(state[1].flag)])
        logged[name] = (np.array(rows), params)
    method = CR(SGD(), 100.0, lr=0.01, variant=variant, every=every)
    a, state = net, method.init(net)
    rows = []
    for _ in range(4):
        a, state, info = method.step(a, state, x, labels)
        rows.append([info.alpha, info.dgrad, FLAGS.index(info.flag)])
    for name in ("fast", "autodiff"):
        np.testing.assert_allclose(logged[name][0], np.array(rows), rtol=1e-10, atol=1e-300)
        for p, q in zip(logged[name][1], a.params, strict=True):
            np.testing.assert_allclose(np.asarray(p), q, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("variant", VARIANTS[1:])
def test_variants_train_a_foreign_model_under_jit(variant):
    """Any model (dict and tuple leaves, biases, tanh), jit, every=2: the loss falls."""
    params, loss = _tanh_mlp()
    opt = optax.chain(
        optax.scale_by_adam(), scale_by_cr(1000.0 if variant != "scale-invariant" else 1e4,
                                           variant=variant, every=2, fallback=1e-3)
    )  # fmt: skip

    @jax.jit
    def train_step(params, state):
        value, grads = jax.value_and_grad(loss)(params)
        updates, state = opt.update(grads, state, params, value_fn=loss, value=value,
                                    grad=grads)  # fmt: skip
        return optax.apply_updates(params, updates), state

    state = opt.init(params)
    start = loss(params)
    for _ in range(12):
        params, state = train_step(params, state)
    assert loss(params) < start
    cr = state[1]
    assert int(cr.count) == 12 and int(cr.rule.age) == 0
    if variant == "adaptive":
        assert float(cr.rule.inner.sigma) > 0


def test_per_variable_diagonal_on_a_foreign_model_is_the_hessian_diagonal():
    params, loss = _tanh_mlp()
    flat, unravel = ravel_pytree(params)
    grads = jax.grad(loss)(params)
    tx = scale_by_cr(10.0, variant="per-variable")
    _, state = tx.update(grads, tx.init(params), params, value_fn=loss)
    d = -_flat(grads)
    hess = jax.hessian(lambda t: loss(unravel(t)))(flat)
    np.testing.assert_allclose(float(state.dhd), float(jnp.sum(d * d * jnp.diag(hess))),
                               rtol=1e-10)  # fmt: skip


def test_variant_validation():
    with pytest.raises(ValueError, match="variant"):
        scale_by_cr(1.0, variant="newton")
    with pytest.raises(ValueError, match="every"):
        scale_by_cr(1.0, every=0)
    with pytest.raises(ValueError, match="metric"):
        scale_by_cr(1.0, variant="scale-invariant", metric="adam")
