"""The layers derived from their forward rules (residual block, layer normalisation):
their auto-derived kernels against JAX autodiff, alone and in a network, on both
backends (verify/derived.py, the ``derived`` group of ``verify report``)."""

from __future__ import annotations

import numpy as np
import pytest

from numeric.kernels import auto_derived as ad
from numeric.layers import LayerNorm, Residual
from numeric.layers.registry import layer_from_description

pytest.importorskip("jax")

from verify import derived  # noqa: E402
from verify.backend import run_settings, select_backend  # noqa: E402

CASES = derived.derived_cases(quick=False)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_derived_layer_matches_autodiff(case):
    with run_settings(select_backend("cpu")):
        ms, _ = derived.check_derived(case)
    assert ms
    bad = [(m.equation, m.quantity, m.rel_error, m.error) for m in ms if not m.passed]
    assert not bad, bad


def test_the_checks_see_a_wrong_kernel(monkeypatch):
    """A kernel off by a factor in one term fails its comparison (no tolerance hides it)."""
    real = ad.layernorm_sbar
    monkeypatch.setattr(
        ad, "layernorm_sbar", lambda rbar, s, epsilon: 1.01 * real(rbar, s, epsilon)
    )
    with run_settings(select_backend("cpu")):
        ms, _ = derived.check_derived(derived.DerivedCase("layernorm", 4, 3, seed=5))
    failed = {m.quantity for m in ms if not m.passed}
    assert "input adjoint vbar (numpy kernels)" in failed


def test_layers_round_trip_and_refuse_bad_sizes():
    for layer in (Residual(3, "softplus"), LayerNorm(4, 1e-3)):
        assert layer_from_description(layer.describe()) == layer
    with pytest.raises(ValueError, match="width must be positive"):
        Residual(0)
    with pytest.raises(ValueError, match="at least 2 features"):
        LayerNorm(1)
    with pytest.raises(ValueError, match="unknown activation"):
        Residual(3, "swish")


def test_kernels_cite_their_registry_form_and_rule():
    import inspect

    from derive.registry import get

    fns = [f for n, f in vars(ad).items() if inspect.isfunction(f) and f.__module__ == ad.__name__]
    assert len(fns) >= 20
    for fn in fns:
        first = fn.__doc__.strip().splitlines()[0]
        number = first.split(" ", 1)[0]
        assert number.startswith("A.") and "(auto-derived)" in first, first
        assert get(number).role == "auto"
        assert "Derived from the forward rule" in fn.__doc__


def test_layernorm_init_is_the_identity_of_normalised_features():
    layer = LayerNorm(5)
    g, beta = layer.init(np.random.default_rng(0), 0.1, np.float64)
    x = np.random.default_rng(1).normal(size=(3, 5))
    y, _ = layer.forward([g, beta], x)
    np.testing.assert_allclose(y.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=1), 1, rtol=1e-4)
