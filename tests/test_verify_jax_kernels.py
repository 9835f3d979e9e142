"""verify checks the JAX-backend kernels against autodiff exactly as the NumPy ones."""

from __future__ import annotations

import pytest

pytest.importorskip("jax")

from verify.cases import Case  # noqa: E402
from verify.runner import run_verification  # noqa: E402


def test_kernels_on_jax_arrays_pass_in_float64_and_float32():
    cases = [
        Case((3, 4, 3), 3, 4, "normal", "float64", seed=21, sigma=100.0),
        Case((3, 4, 3), 3, 4, "plateau", "float32", seed=22, sigma=100.0),
    ]
    outcome = run_verification(cases, kernels_backend="jax")
    assert outcome.context["kernels_backend"] == "jax"
    assert outcome.passed, [(r.equation, r.quantity, r.max_rel_error) for r in outcome.failed()]
    assert {r.dtype for r in outcome.results} == {"float64", "float32"}
    # the B.1 kernels were all called with JAX arrays
    b1 = [n for n in outcome.coverage["not_exercised"] if n.split(".")[0] in
          {"feedforward", "cubic_regularization"}]  # fmt: skip
    assert not b1, b1
