"""numeric.rules: one rule object per CR variant, shared by CR and scale_by_cr.

These tests hold the contract of the rules as a registry (a new variant is one class
and one entry), and the guarantees of the optax adapter (never a non-finite update,
``fallback`` checked).  The quantities of every rule on every path are compared with
plain JAX autodiff in tests/test_step_matrix.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from numeric import rules
from numeric.cr import CR
from numeric.network import Network
from numeric.optimizers import SGD, Adam
from numeric.stepping import FLAGS


class _Halved(rules.Paper):
    """A toy variant: half of Eq 37's length (what a user's new rule looks like)."""

    name = "halved"

    def apply(self, curv, d, fallback, state, metric=None):
        out = super().apply(curv, d, fallback, state, metric)
        lengths = [0.5 * a for a in out.lengths]
        stats = out.stats._replace(alpha=0.5 * out.stats.alpha, lr_eff=0.5 * out.stats.lr_eff)
        return out._replace(update=rules.scale(lengths, d), lengths=lengths, stats=stats)


def _net_and_batch(seed=0):
    rng = np.random.default_rng(seed)
    net = Network.create(6, [5, 5], 3, init="normal", seed=seed)
    x = rng.normal(size=(7, 6))
    labels = rng.integers(0, 3, 7)
    return net, x, labels


def test_a_new_variant_is_one_class_and_one_registry_entry(monkeypatch):
    monkeypatch.setitem(rules.RULES, "halved", _Halved)
    net, x, labels = _net_and_batch()
    for opt in (SGD(), Adam()):
        paper, halved = CR(opt, 50.0, lr=0.0), CR(opt, 50.0, lr=0.0, variant="halved")
        _, _, a = paper.step(net, paper.init(net), x, labels)
        new, _, b = halved.step(net, halved.init(net), x, labels)
        assert a.flag == b.flag == ""
        assert b.alpha == pytest.approx(0.5 * a.alpha, rel=1e-14)
        assert (b.dgrad, b.dhd, b.dnorm) == (a.dgrad, a.dhd, a.dnorm)
        moved = np.concatenate(
            [(q - p).ravel() for p, q in zip(net.params, new.params, strict=True)]
        )
        assert moved.any()


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"sigma": 0.0}, "sigma must be positive"),
        ({"sigma": math.inf}, "sigma must be positive"),
        ({"sigma": 1e-320}, "a normal float"),
        ({"variant": "nope"}, "variant must be one of"),
        ({"every": 0}, "every must be a positive integer"),
        ({"every": True}, "every must be a positive integer"),
        ({"nondescent": "maybe"}, "nondescent must be one of"),
        ({"averaging": "alpha-g", "sgd": False}, "defined only for SGD"),
        ({"averaging": "alpha-g", "every": 2}, "paper's CR only"),
    ],
)
def test_settings_are_checked_in_one_place(settings, message):
    kwargs = {"sigma": 10.0, **settings}
    sigma = kwargs.pop("sigma")
    with pytest.raises(ValueError, match=message):
        rules.make_rule(sigma, **kwargs)


def test_every_reuses_the_lengths_of_its_inner_rule():
    rule = rules.make_rule(10.0, variant="per-layer", every=3)
    assert isinstance(rule, rules.Every) and isinstance(rule.inner, rules.PerLayer)
    net, _, _ = _net_and_batch()
    state = rule.init(net.params)
    assert rule.due(state) and rule.entries(state).keys() == {"cr_alpha", "cr_age"}


# ------------------------------------------------------------------ the optax adapter
jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")

from numeric import jax_backend  # noqa: E402

jax_backend.enable_x64()


def _quadratic():
    import jax.numpy as jnp

    params = {"w": jnp.asarray([1.0, -2.0, 0.5])}

    def loss(p):
        return 0.5 * jnp.sum(p["w"] ** 2) + jnp.sum(p["w"] ** 4)

    return params, loss


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf])
def test_scale_by_cr_checks_its_fallback(bad):
    from numeric.optax import scale_by_cr

    with pytest.raises(ValueError, match="fallback must be finite and >= 0"):
        scale_by_cr(1.0, fallback=bad)


def test_scale_by_cr_never_returns_a_non_finite_update():
    import jax.numpy as jnp

    from numeric.optax import scale_by_cr

    params, loss = _quadratic()
    tx = scale_by_cr(1.0, fallback=0.1)
    state = tx.init(params)
    # a direction that is not finite: the step is zero, flagged
    bad = {"w": jnp.asarray([jnp.nan, 1.0, 0.0])}
    upd, st = tx.update(bad, state, params, value_fn=loss)
    assert np.all(np.asarray(upd["w"]) == 0.0)
    assert FLAGS[int(st.flag)] == "nonfinite" and float(st.lr_eff) == 0.0
    # a finite direction whose curvature overflows: the fallback along it
    huge = {"w": jnp.asarray([1e150, 1e150, 1e150])}
    upd, st = tx.update(huge, state, params, value_fn=loss)
    assert FLAGS[int(st.flag)] == "nonfinite"
    np.testing.assert_array_equal(np.asarray(upd["w"]), -0.1 * np.asarray(huge["w"]))
    assert np.all(np.isfinite(np.asarray(upd["w"])))


def test_the_command_line_offers_every_registered_variant():
    """``--cr-variant``'s choices are written out in numeric/cli.py (importing the rules
    there would triple the command's start-up time); this test keeps them in step with
    the registry, so a new variant that is not offered fails here."""
    from numeric.cli import build_parser

    parser = build_parser({})
    train = next(
        a for a in parser._subparsers._group_actions[0].choices["train"]._actions
        if "--cr-variant" in a.option_strings
    )  # fmt: skip
    assert tuple(train.choices) == rules.VARIANTS
