"""Output-trust CR (V7): the output tangent ``J d`` both curvatures report, against a
plain-JAX ``jax.jvp`` of the logits, and the capped step by hand."""

from __future__ import annotations

import numpy as np
import pytest

from numeric import rules
from numeric.cr import CR
from numeric.network import Network
from numeric.optimizers import SGD, Adam
from numeric.stepping import FLAGS, evaluate

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

from numeric import jax_backend as jb  # noqa: E402
from numeric.autodiff import AutodiffCurvature  # noqa: E402

jb.enable_x64()


def _case(seed=0, batch=7):
    rng = np.random.default_rng(seed)
    net = Network.create(6, [5, 4, 5], 3, seed=seed, init=0.6)
    x = rng.normal(size=(batch, 6))
    y = np.eye(3)[rng.integers(0, 3, batch)]
    return net, x, y, rng


def _jax_logits(x):
    def logits(params):
        v = jnp.asarray(x)
        for w in params[:-1]:
            v = jax.nn.relu(v @ w.T)
        return v @ params[-1].T

    return logits


def _jax_loss(x, y):
    logits = _jax_logits(x)

    def loss(params):
        logp = jax.nn.log_softmax(logits(params), axis=1)
        return -jnp.mean(jnp.sum(jnp.asarray(y) * logp, axis=1))

    return loss


@pytest.mark.parametrize("sgd", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_kernel_output_tangent_is_jvp_of_the_logits(sgd, seed):
    net, x, y, rng = _case(seed)
    ev = evaluate(net.layers, net.params, x, y, True)
    d = [-g for g in ev.grads] if sgd else [rng.normal(size=p.shape) for p in net.params]
    curv = rules.KernelCurvature(net.layers, net.params, ev, sgd=sgd)
    gtg, ghg, sq, pdot, p = curv.outputs(d)
    params = [jnp.asarray(w) for w in net.params]
    logits, jd = jax.jvp(_jax_logits(x), (params,), ([jnp.asarray(v) for v in d],))
    np.testing.assert_allclose(pdot, np.asarray(jd), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(p, np.asarray(logits), rtol=1e-12, atol=1e-13)
    a = curv.along(d)
    np.testing.assert_allclose([gtg, ghg, sq], [float(v) for v in a], rtol=1e-12)
    auto = AutodiffCurvature(_jax_loss(x, y), params, output_fn=_jax_logits(x))
    b = auto.outputs([jnp.asarray(v) for v in d])
    np.testing.assert_allclose([gtg, ghg, sq], [float(v) for v in b[:3]], rtol=1e-10)
    np.testing.assert_allclose(pdot, np.asarray(b[3]), rtol=1e-10, atol=1e-13)


def test_autodiff_output_tangent_needs_the_outputs():
    net, x, y, _ = _case()
    params = [jnp.asarray(w) for w in net.params]
    with pytest.raises(ValueError, match="output_fn"):
        AutodiffCurvature(_jax_loss(x, y), params).outputs(params)


@pytest.mark.parametrize("opt", [SGD(), Adam()])
@pytest.mark.parametrize("sigma", [1e-4, 1e4])
def test_the_step_is_eq37_capped_at_unit_rms_logit_change(opt, sigma):
    """V7 by hand: ``min(alpha_37, 1 / RMS_m ||J_m d||)``; the cap binds for a small
    sigma (Eq 37's long step), not for a large one."""
    net, x, y, _ = _case(2)
    labels = y.argmax(axis=1)
    paper = CR(opt, sigma, lr=0.01)
    trust = CR(opt, sigma, lr=0.01, variant="output-trust")
    _, _, a = paper.step(net, paper.init(net), x, labels)
    new, _, b = trust.step(net, trust.init(net), x, labels)
    assert a.flag == b.flag == ""
    assert b.alpha == pytest.approx(a.alpha, rel=1e-12)
    assert (b.dgrad, b.dhd, b.dnorm) == pytest.approx((a.dgrad, a.dhd, a.dnorm), rel=1e-12)
    moved = [q - p for p, q in zip(net.params, new.params, strict=True)]
    d = [m / b.lr_eff for m in moved]
    params = [jnp.asarray(w) for w in net.params]
    _, jd = jax.jvp(_jax_logits(x), (params,), ([jnp.asarray(v) for v in d],))
    rms = float(jnp.sqrt(jnp.mean(jnp.sum(jd * jd, axis=1))))
    assert b.lr_eff == pytest.approx(min(a.alpha, 1.0 / rms), rel=1e-10)
    assert (b.lr_eff < 0.999 * a.alpha) == (sigma < 1.0)


def test_flagged_steps_are_not_capped():
    alpha = np.array([5.0, 5.0, 0.0])
    flag = np.array([0, FLAGS.index("nondescent"), FLAGS.index("zero")])
    pdot = np.full((4, 3), 10.0)
    out = [float(rules.output_cap(a, f, pdot)) for a, f in zip(alpha, flag, strict=True)]
    assert out == pytest.approx([1.0 / np.sqrt(300.0), 5.0, 0.0])
