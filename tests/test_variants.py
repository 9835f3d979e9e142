"""The CR variants: their quantities against JAX, the invariance of scale-invariant CR,
the adaptive rule's bookkeeping, step-length reuse, and NumPy/JAX agreement."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numeric import curvature as cv
from numeric import rules as vr
from numeric.cr import CR, FLAGS
from numeric.kernels import cr_variants as kv
from numeric.losses import hessian_factor, loss_change, softmax_cross_entropy
from numeric.network import Network
from numeric.optimizers import SGD, Adagrad, Adam, state_from_arrays, state_to_arrays
from numeric.stepping import MethodState, evaluate

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

from numeric import jax_backend as jb  # noqa: E402

jb.enable_x64()


def _case(seed=0, activation="relu", widths=(6, 5, 4, 5), classes=3, batch=7, init=0.6):
    rng = np.random.default_rng(seed)
    net = Network.create(widths[0], list(widths[1:]), classes, seed=seed, init=init,
                         activation=activation)  # fmt: skip
    x = rng.normal(size=(batch, widths[0]))
    y = np.eye(classes)[rng.integers(0, classes, batch)]
    return net, x, y, rng


def _jax_loss(net, x, y):
    act = {"relu": jax.nn.relu, "tanh": jnp.tanh}[net.activation]

    def loss(params):
        v = jnp.asarray(x)
        for w in params[:-1]:
            v = act(v @ w.T)
        logp = jax.nn.log_softmax(v @ params[-1].T, axis=1)
        return -jnp.mean(jnp.sum(jnp.asarray(y) * logp, axis=1))

    return loss


# ----------------------------------------------------------- quantities against JAX
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hessian_diagonal_against_jax(seed):
    """C21, C42-C44: the factored sweep gives jax.hessian's diagonal (ReLU, float64)."""
    net, x, y, _ = _case(seed)
    ev = evaluate(net.layers, net.params, x, y, True)
    diag = cv.hessian_diagonal(net.layers, net.params, ev.tape, hessian_factor(ev.tape.p,
                                                                              ev.d2fdp2))  # fmt: skip
    flat, unravel = ravel_pytree([jnp.asarray(p) for p in net.params])
    loss = _jax_loss(net, x, y)
    ref = unravel(jnp.diag(jax.hessian(lambda t: loss(unravel(t)))(flat)))
    for got, want in zip(diag, ref, strict=True):
        np.testing.assert_allclose(got, np.asarray(want), rtol=1e-10, atol=1e-14)


def test_hessian_diagonal_refuses_smooth_activations():
    net, x, y, _ = _case(activation="tanh")
    ev = evaluate(net.layers, net.params, x, y, True)
    with pytest.raises(ValueError, match="A'' = 0"):
        cv.hessian_diagonal(net.layers, net.params, ev.tape, hessian_factor(ev.tape.p, ev.d2fdp2))
    with pytest.raises(ValueError, match="A'' = 0"):
        CR(SGD(), 1.0, variant="per-variable").init(net)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("sgd", [False, True])
def test_block_curvature_against_jax(activation, sgd):
    """C45-C46 (and C11 for tanh): each layer's block, d_k^T H_kk d_k, by jvp(grad)."""
    net, x, y, rng = _case(3, activation)
    ev = evaluate(net.layers, net.params, x, y, True)
    d = [-g for g in ev.grads] if sgd else [rng.normal(size=p.shape) for p in net.params]
    gtg, ghg, sq = cv.block_curvature(net.layers, net.params, ev.tape, ev.adj, ev.dfdp,
                                      ev.d2fdp2, None if sgd else d)  # fmt: skip
    loss = _jax_loss(net, x, y)
    params = [jnp.asarray(p) for p in net.params]
    for k in range(len(d)):
        dk = [jnp.asarray(di) if j == k else jnp.zeros_like(p) for j, (di, p) in
              enumerate(zip(d, params, strict=True))]  # fmt: skip
        g, hd = jax.jvp(jax.grad(loss), (params,), (dk,))
        np.testing.assert_allclose(gtg[k], float(jnp.vdot(dk[k], g[k])), rtol=1e-10)
        np.testing.assert_allclose(ghg[k], float(jnp.vdot(dk[k], hd[k])), rtol=1e-10)
        np.testing.assert_allclose(sq[k], float(jnp.vdot(dk[k], dk[k])), rtol=1e-12)


@given(scale=st.floats(1e-6, 10.0), seed=st.integers(0, 2**16))
@settings(max_examples=30, deadline=None, database=None)
def test_loss_change_against_jax(scale, seed):
    """V4 against the difference of JAX losses (float64; both exact at these scales)."""
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(5, 4))
    q = p + scale * rng.normal(size=p.shape)
    y = rng.uniform(0, 1, size=(5, 4))  # any non-negative label rows
    loss_q = -np.asarray(jnp.sum(y * jax.nn.log_softmax(q, axis=1), 1))
    loss_p = -np.asarray(jnp.sum(y * jax.nn.log_softmax(p, axis=1), 1))
    ref = loss_q - loss_p
    got = loss_change(p, q, y)
    # the reference, a difference of two losses, is exact only to the losses' rounding
    # (a few ulps of each): compare to 1e-10 relative beyond that
    slack = 1e-14 * (np.abs(loss_q) + np.abs(loss_p))
    assert np.all(np.abs(got - ref) <= 1e-10 * np.abs(ref) + slack), (got, ref)
    # the two backends round exp and log differently by an ulp; V4 is a difference of
    # terms of the logits' size, so their agreement is measured on that scale
    terms = np.max(np.abs(q)) + np.max(np.abs(p)) + 1.0
    jax_got = loss_change(jnp.asarray(p), jnp.asarray(q), y)
    np.testing.assert_allclose(got, jax_got, rtol=1e-13, atol=1e-14 * terms)


def test_loss_change_keeps_digits_a_difference_of_losses_loses():
    """In float32 a step that changes the logits by 1e-4 changes the loss by about 1e-5:
    the difference of two losses near 2.3 keeps two digits of it, V4 keeps six."""
    rng = np.random.default_rng(0)
    p = rng.normal(size=(32, 10)).astype(np.float32)
    q = (p + 1e-4 * rng.normal(size=p.shape)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 32)]
    exact = loss_change(p.astype(np.float64), q.astype(np.float64), y.astype(np.float64))
    ours = loss_change(p, q, y)
    direct = softmax_cross_entropy(q, y)[0] - softmax_cross_entropy(p, y)[0]
    err_ours = np.max(np.abs(ours - exact) / np.abs(exact))
    err_direct = np.max(np.abs(direct - exact) / np.abs(exact))
    assert err_ours < 1e-4 < err_direct


def test_loss_change_of_a_huge_step_is_finite_and_right():
    """A trial step that moves the logits far (adaptive CR with a small sigma): float32,
    the true class's probability after the step far below float32's resolution."""
    p = np.array([[0.0, 0.1, -0.2, 0.05]], dtype=np.float32)
    q = p + np.array([[-60.0, 40.0, 0.0, 10.0]], dtype=np.float32)
    y = np.eye(4, dtype=np.float32)[[0]]
    exact = loss_change(p.astype(np.float64), q.astype(np.float64), y.astype(np.float64))
    direct = (
        softmax_cross_entropy(q.astype(np.float64), y.astype(np.float64))[0]
        - softmax_cross_entropy(p.astype(np.float64), y.astype(np.float64))[0]
    )  # a difference of 100 and 1.4: exact enough here
    assert exact[0] == pytest.approx(direct[0], rel=1e-12) and exact[0] > 90
    got = loss_change(p, q, y)
    assert np.all(np.isfinite(got)) and got[0] == pytest.approx(exact[0], rel=1e-5)


@given(
    alpha=st.floats(1e-6, 1e3), gtg=st.floats(-1e3, -1e-6), ghg=st.floats(-1e3, 1e3),
    c=st.floats(1e-6, 1e3),
)  # fmt: skip
@settings(max_examples=60, deadline=None, database=None)
def test_predicted_decrease_is_minus_the_model_at_the_root(alpha, gtg, ghg, c):
    """V3 equals m(0) - m(alpha) at Eq 37's root (and is positive)."""
    root = float(vr.step_lengths(gtg, ghg, 1.0, c, 0.0)[0])
    model = root * gtg + 0.5 * root**2 * ghg + c / 6 * root**3
    got = float(kv.predicted_decrease(alpha=root, gtg=gtg, c=c))
    assert got > 0
    assert got == pytest.approx(-model, rel=1e-8)
    del alpha


def test_metric_norm_kernel():
    rng = np.random.default_rng(0)
    d = [rng.normal(size=(3, 4)), rng.normal(size=(2, 3))]
    m = [rng.uniform(0.1, 2, size=(3, 4)), rng.uniform(0.1, 2, size=(2, 3))]
    want = sum(float(np.sum(mi * di**2)) for di, mi in zip(d, m, strict=True))
    assert vr.metric_sq_norm(d, m) == pytest.approx(want, rel=1e-14)


# ----------------------------------------------------------- scale invariance
def _si_step(net, x, y, scale, opt):
    """The scale-invariant update for the base direction scaled by ``scale``."""
    method = CR(opt, 100.0, variant="scale-invariant", lr=0.0)
    state = method.init(net)
    ev = evaluate(net.layers, net.params, x, y, True)
    unit, after = opt.unit(ev.grads, state.opt)
    metric = method.metric(state.opt, after)
    unit = [scale * u for u in unit]
    update, info, _ = method.update_arrays(net.layers, net.params, ev, unit, 0.0, {}, True,
                                           metric)  # fmt: skip
    return update, info


@given(
    scale=st.floats(1e-3, 1e3), seed=st.integers(0, 2**16), opt=st.sampled_from(["adam", "adagrad"])
)
@settings(max_examples=25, deadline=None, database=None)
def test_scale_invariant_step_does_not_change_when_the_direction_is_rescaled(scale, seed, opt):
    net, x, y, _ = _case(seed % 7)
    base = {"adam": Adam(), "adagrad": Adagrad()}[opt]
    a, ia = _si_step(net, x, y, 1.0, base)
    b, ib = _si_step(net, x, y, scale, base)
    assert FLAGS[int(ia[-1])] == FLAGS[int(ib[-1])]
    for ua, ub in zip(a, b, strict=True):
        np.testing.assert_allclose(ub, ua, rtol=1e-9, atol=1e-15)


@given(
    n=st.integers(2, 6),
    seed=st.integers(0, 2**16),
    sigma=st.floats(1e-2, 1e4),
)
@settings(max_examples=40, deadline=None, database=None)
def test_scale_invariant_length_is_invariant_under_a_diagonal_change_of_coordinates(n, seed,
                                                                                     sigma):  # fmt: skip
    """V2's claim: with theta' = D theta (g' = D^-1 g, H' = D^-1 H D^-1, d' = D d and the
    metric M' = D^-1 M D^-1), alpha is unchanged, so the step maps to the same point;
    the Euclidean cubic term (the paper's CR, M = I) is not invariant."""
    rng = np.random.default_rng(seed)
    g = rng.normal(size=n)
    a = rng.normal(size=(n, n))
    hess = a + a.T
    d = -g * rng.uniform(0.5, 2.0, size=n)  # a descent direction
    m = rng.uniform(0.1, 10.0, size=n)
    dsc = rng.uniform(0.1, 10.0, size=n)

    def length(g, hess, d, m):
        nm = vr.metric_sq_norm([d[None, :]], [m[None, :]])
        return float(vr.step_lengths(d @ g, d @ hess @ d, sigma, nm**1.5, 0.0)[0])

    before = length(g, hess, d, m)
    after = length(g / dsc, hess / np.outer(dsc, dsc), dsc * d, m / dsc**2)
    assert after == pytest.approx(before, rel=1e-9)


def test_scale_invariant_is_the_paper_for_sgd_and_lifts_adams_crushed_step():
    data = np.random.default_rng(0)
    x = data.uniform(0, 1, (64, 20))
    labels = data.integers(0, 4, 64)
    net = Network.create(20, [16] * 4, 4, init="plateau", seed=1)
    for opt in (SGD(),):
        a = CR(opt, 100.0).step(net, CR(opt, 100.0).init(net), x[:16], labels[:16])[2]
        m = CR(opt, 100.0, variant="scale-invariant")
        b = m.step(net, m.init(net), x[:16], labels[:16])[2]
        assert b.alpha == pytest.approx(a.alpha, rel=1e-12)
    paper = CR(Adam(), 1000.0)
    si = CR(Adam(), 1000.0, variant="scale-invariant")
    a = paper.step(net, paper.init(net), x[:16], labels[:16])[2]
    b = si.step(net, si.init(net), x[:16], labels[:16])[2]
    assert b.alpha > 100 * a.alpha  # the Euclidean cubic term crushes Adam's step


# ----------------------------------------------------------- adaptive bookkeeping
@pytest.mark.parametrize(
    ("rho", "accepted", "factor"),
    [(0.95, True, 0.5), (0.5, True, 1.0), (0.1, True, 1.0), (0.05, False, 2.0),
     (-3.0, False, 2.0)],
)  # fmt: skip
def test_arc_rule_by_hand(rho, accepted, factor):
    """V5 with eta1 = 0.1, eta2 = 0.9, gamma = 2: the outcome for a given ratio."""
    alpha, gtg, c, sigma = 0.3, -2.0, 5.0, 40.0
    predicted = -alpha * gtg / 2 + c * alpha**3 / 12  # V3 by hand: 0.3 + 0.01125
    applied, new_sigma, flag, got_rho = vr.adaptive_outcome(
        alpha, 0, gtg, c, rho * predicted, sigma, vr.ARC().for_sigma(sigma)
    )
    assert float(got_rho) == pytest.approx(rho, rel=1e-12)
    assert float(applied) == (alpha if accepted else 0.0)
    assert FLAGS[int(flag)] == ("" if accepted else "rejected")
    assert float(new_sigma) == pytest.approx(sigma * factor)


def test_arc_leaves_flagged_steps_alone_and_bounds_sigma():
    arc = vr.ARC(sigma_min=1.0, sigma_max=100.0)
    applied, sigma, flag, _ = vr.adaptive_outcome(0.02, FLAGS.index("nondescent"), 1.0, 5.0,
                                                  -1.0, 30.0, arc)  # fmt: skip
    assert float(applied) == 0.02 and float(sigma) == 30.0 and FLAGS[int(flag)] == "nondescent"
    _, sigma, _, _ = vr.adaptive_outcome(0.1, 0, -1.0, 1.0, 10.0, 1.5, arc)
    assert float(sigma) == 1.0  # shrink, not below sigma_min
    _, sigma, _, _ = vr.adaptive_outcome(0.1, 0, -1.0, 1.0, -10.0, 80.0, arc)
    assert float(sigma) == 100.0  # grow, not above sigma_max
    with pytest.raises(ValueError, match="eta1"):
        vr.ARC(eta1=0.95, eta2=0.9)
    default = vr.ARC().for_sigma(1000.0)
    assert (default.sigma_min, default.sigma_max) == (10.0, 1e9)


@pytest.mark.parametrize("opt", [SGD(), Adam()])
def test_adaptive_step_against_a_hand_computation(opt):
    """One adaptive step: the trial loss by a plain forward pass, rho, the decision."""
    data = np.random.default_rng(2)
    x = data.uniform(0, 1, (16, 10))
    labels = data.integers(0, 3, 16)
    net = Network.create(10, [8, 8], 3, init=0.5, seed=0)
    for sigma in (1e-3, 1.0, 1e3):
        method = CR(opt, sigma, variant="adaptive", lr=0.0, arc=vr.ARC(sigma_min=1e-9))
        state = method.init(net)
        new, new_state, info = method.step(net, state, x, labels)
        unit, _ = opt.unit(net.loss_and_gradient(x, labels)[1], state.opt)
        trial = [p + info.alpha * u for p, u in zip(net.params, unit, strict=True)]
        actual = net.loss(x, labels) - net.with_params(trial).loss(x, labels)
        c = sigma * cv.sq_norm(unit) ** 1.5
        predicted = -info.alpha * info.dgrad / 2 + c * info.alpha**3 / 12
        rho = actual / predicted
        if rho >= 0.1:
            assert info.flag == "" and info.lr_eff == info.alpha
            for p, t in zip(new.params, trial, strict=True):
                np.testing.assert_allclose(p, t, rtol=1e-12)
        else:
            assert info.flag == "rejected" and info.lr_eff == 0.0
            for p, q in zip(new.params, net.params, strict=True):
                np.testing.assert_array_equal(p, q)
        want = sigma / 2 if rho > 0.9 else (sigma if rho >= 0.1 else 2 * sigma)
        assert new_state.opt["cr_sigma"] == pytest.approx(want, rel=1e-12)


# ----------------------------------------------------------- reuse (--cr-every)
@pytest.mark.parametrize("variant", ["paper", "per-layer", "per-variable"])
def test_every_k_reuses_the_step_lengths(variant):
    data = np.random.default_rng(4)
    x = data.uniform(0, 1, (64, 12))
    labels = data.integers(0, 3, 64)
    net = Network.create(12, [8, 8], 3, init=0.4, seed=0)
    method = CR(SGD(), 100.0, variant=variant, every=3)
    state = method.init(net)
    lengths = None
    for it in range(7):
        rows = data.integers(0, 64, 16)
        assert method.recompute(state) == (it % 3 == 0)
        _, grads = net.loss_and_gradient(x[rows], labels[rows])
        new, state, info = method.step(net, state, x[rows], labels[rows])
        step = [q - p for p, q in zip(net.params, new.params, strict=True)]
        if it % 3 == 0:
            assert np.isfinite(info.dhd)
            lengths = [np.array(a) for a in state.opt["cr_alpha"]]
        else:
            assert np.isnan(info.dhd)  # no curvature computed
            for s, a, g in zip(step, lengths, grads, strict=True):
                np.testing.assert_allclose(s, -a * g, rtol=1e-10, atol=1e-16)
        net = new


def test_a_rejected_adaptive_step_recomputes_at_once():
    data = np.random.default_rng(5)
    x = data.uniform(0, 1, (32, 10))
    labels = data.integers(0, 3, 32)
    net = Network.create(10, [8, 8], 3, init=0.5, seed=0)
    # eta1 = 0.99: a step is taken only when the loss falls as predicted or more
    method = CR(SGD(), 10.0, variant="adaptive", every=4, arc=vr.ARC(eta1=0.99, eta2=0.995))
    state = method.init(net)
    flags = []
    for it in range(12):
        rows = slice(8 * (it % 4), 8 * (it % 4) + 8)
        net, state, info = method.step(net, state, x[rows], labels[rows])
        flags.append(info.flag)
        if info.flag == "rejected":
            assert state.opt["cr_age"] == 0 and method.recompute(state)
    assert "rejected" in flags


def test_checkpointed_state_resumes_identically():
    data = np.random.default_rng(6)
    x = data.uniform(0, 1, (64, 12))
    labels = data.integers(0, 3, 64)
    net = Network.create(12, [8, 8], 3, init=0.4, seed=0)
    method = CR(Adam(), 10.0, variant="adaptive", every=2)
    state = method.init(net)
    for _ in range(3):
        net, state, _ = method.step(net, state, x[:16], labels[:16])
    saved = MethodState(state.step, state_from_arrays(state_to_arrays(state.opt)))
    a = method.step(net, state, x[16:32], labels[16:32])
    b = method.step(net, saved, x[16:32], labels[16:32])
    assert a[2] == b[2]
    assert a[1].opt["cr_sigma"] == b[1].opt["cr_sigma"]


def test_validation():
    with pytest.raises(ValueError, match="variant"):
        CR(SGD(), 1.0, variant="newton")
    with pytest.raises(ValueError, match="every"):
        CR(SGD(), 1.0, every=0)
    with pytest.raises(ValueError, match="paper"):
        CR(SGD(), 1.0, averaging="alpha-g", variant="adaptive")


# ----------------------------------------------------------- NumPy and JAX agree
VARIANTS = ["paper", "adaptive", "scale-invariant", "per-layer", "per-variable"]


@pytest.mark.parametrize("every", [1, 3])
@pytest.mark.parametrize("opt", ["sgd", "adam", "adagrad"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_numpy_and_jax_agree(variant, opt, every):
    """Same seed, float64, a short run: every logged quantity to 1e-10.

    Short: per-variable CR's step grows like sqrt(|dF/dtheta_i|) for small gradients,
    so rounding differences in near-zero gradient entries are amplified step after step;
    over 10 steps both backends still agree to 1e-10."""
    data = np.random.default_rng(0)
    x = data.uniform(0, 1, (96, 20))
    labels = data.integers(0, 4, 96)
    net = Network.create(20, [12, 12, 12], 4, init=0.3, seed=3)
    base = {"sgd": SGD, "adam": Adam, "adagrad": Adagrad}[opt]()
    method = CR(base, 100.0, lr=0.02, variant=variant, every=every)
    a_net, a_state = net, method.init(net)
    b_net, b_state = jb.to_jax(net), method.init(net)
    rng = np.random.default_rng(5)
    for _ in range(10):
        rows = rng.integers(0, 96, 16)
        a_net, a_state, a = method.step(a_net, a_state, x[rows], labels[rows])
        b_net, b_state, b = method.step(b_net, b_state, x[rows], labels[rows])
        assert a.flag == b.flag
        for field in ("loss", "alpha", "lr_eff", "dgrad", "dhd", "dnorm"):
            va, vb = getattr(a, field), getattr(b, field)
            if math.isnan(va):
                assert math.isnan(vb)
            else:
                assert vb == pytest.approx(va, rel=1e-10, abs=1e-300), field
    for pa, pb in zip(a_net.params, b_net.params, strict=True):
        np.testing.assert_allclose(np.asarray(pb), pa, rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------- any stack, biases
def _stack(model, seed=0):
    from numeric.architectures import build

    rng = np.random.default_rng(seed)
    if model == "mlp-bias":
        net = build("mlp", (6,), 3, bias=True, options={"hidden": [5, 4]}, init=0.6, seed=seed)
        x = rng.normal(size=(7, 6))
    elif model == "cnn":
        net = build("cnn", (7, 6), 3, options={"channels": [2, 2], "kernel": 2, "stride": 1,
                                                "dense": [4]}, init=0.6, seed=seed)  # fmt: skip
        x = rng.normal(size=(5, 1, 7, 6))
    else:
        net = build("rnn", (3, 4), 3, options={"width": 5, "dense": [4]}, init=0.6, seed=seed)
        x = rng.normal(size=(5, 3, 4))
    net = net.with_params([p + 0.1 * rng.normal(size=p.shape) for p in net.params])
    y = np.eye(3)[rng.integers(0, 3, x.shape[0])]
    return net, x, y, rng


def test_hessian_diagonal_with_biases_against_jax():
    from numeric.optax import NetworkObjective

    net, x, y, _ = _stack("mlp-bias")
    ev = evaluate(net.layers, net.params, x, y, True)
    diag = cv.hessian_diagonal(net.layers, net.params, ev.tape,
                               hessian_factor(ev.tape.p, ev.d2fdp2))  # fmt: skip
    objective = NetworkObjective(net.layers, jnp.asarray(x), jnp.asarray(y))
    flat, unravel = ravel_pytree([jnp.asarray(p) for p in net.params])
    ref = unravel(jnp.diag(jax.hessian(lambda t: objective(unravel(t)))(flat)))
    assert len(diag) == len(net.params) == 6
    for got, want in zip(diag, ref, strict=True):
        np.testing.assert_allclose(got, np.asarray(want), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("model", ["mlp-bias", "cnn", "rnn"])
def test_block_curvature_of_any_stack_against_jax(model):
    """Per-layer blocks of conv, recurrent, dense layers with biases (all of a layer's
    arrays form one block) against jvp(grad) of the forward pass."""
    from numeric.optax import NetworkObjective

    net, x, y, rng = _stack(model)
    ev = evaluate(net.layers, net.params, x, y, True)
    d = [rng.normal(size=p.shape) for p in net.params]
    gtg, ghg, sq = cv.block_curvature(net.layers, net.params, ev.tape, ev.adj, ev.dfdp,
                                      ev.d2fdp2, d)  # fmt: skip
    objective = NetworkObjective(net.layers, jnp.asarray(x), jnp.asarray(y))
    params = [jnp.asarray(p) for p in net.params]
    owner = cv.blocks(net.layers)
    assert len(gtg) == max(owner) + 1
    for k in range(len(gtg)):
        dk = [jnp.asarray(di) if b == k else jnp.zeros_like(p)
              for di, p, b in zip(d, params, owner, strict=True)]  # fmt: skip
        g, hd = jax.jvp(jax.grad(objective), (params,), (dk,))
        ref_h = sum(jnp.vdot(a, b) for a, b in zip(dk, hd, strict=True))
        ref_g = sum(jnp.vdot(a, b) for a, b in zip(dk, g, strict=True))
        np.testing.assert_allclose(ghg[k], float(ref_h), rtol=1e-9)
        np.testing.assert_allclose(gtg[k], float(ref_g), rtol=1e-10)
        np.testing.assert_allclose(sq[k], float(sum(jnp.vdot(a, a) for a in dk)), rtol=1e-12)


def test_per_layer_and_adaptive_cr_train_a_cnn_and_per_variable_refuses_it():
    net, x, y, _ = _stack("cnn")
    labels = np.argmax(y, axis=1)
    for variant in ("per-layer", "adaptive"):
        method = CR(Adam(), 1000.0, variant=variant)
        _, _, info = method.step(net, method.init(net), x, labels)
        assert np.isfinite(info.alpha)
    method = CR(SGD(), 100.0, variant="per-variable")
    with pytest.raises(ValueError, match="Conv2D"):
        method.init(net)


def test_verify_variants_group_passes():
    """The report's ``variants`` group: every quantity against its JAX reference."""
    from verify.layers import layer_measurements

    ms, _ = layer_measurements(only=("variants",))
    equations = {m.equation for m in ms}
    assert {"C44", "C45", "C46", "V1", "V3", "V4", "V6"} <= equations
    assert all(m.passed for m in ms), [
        (m.equation, m.quantity, m.error) for m in ms if not m.passed
    ]
