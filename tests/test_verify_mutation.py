"""A verifier that cannot fail is worth nothing: mutated kernels must fail, by equation."""

from __future__ import annotations

import pytest

pytest.importorskip("jax")

from verify.cases import Case  # noqa: E402
from verify.mutation import MutationError, mutate  # noqa: E402
from verify.runner import run_verification  # noqa: E402

#: equal hidden widths (a swapped index keeps the shape, so the values must give it away)
#: and unequal ones; float64 only, to be quick
CASES = [
    Case((3, 4, 4, 4), 4, 6, "normal", "float64", seed=11, sigma=100.0),
    Case((4, 3, 5, 2), 3, 5, "plateau", "float64", seed=12, sigma=100.0),
]


def _verdicts(kernels) -> tuple[set[str], set[str]]:
    outcome = run_verification(CASES, kernels=kernels)
    failing = {r.equation for r in outcome.results if r.status != "pass"}
    passing = {r.equation for r in outcome.results if r.status == "pass"}
    return failing, passing


MUTATIONS = [
    # (function, old, new, regex, equation that must fail, equations that must still pass)
    ("eq28_grad_w", '"Bl,Bj,Bmi,lm->ij"', '"Bl,Bj,Bmi,lm->ji"', False, "28", {"27", "34"}),
    ("eq28_grad_w", '"Bl,Bj,Bmi,lm->Bij"', '"Bl,Bj,Bim,lm->Bij"', False, "28", {"27"}),
    (
        "eq35_hessian_uw",
        r'einsum\("Bi,Bt,Bjs->B?ijst", dfdp, v_km1, eta_n_k\)\s*\+\s*',
        "",
        True,
        "35",
        {"34", "28"},
    ),
    (
        "eq36_hessian_ww_r_lt_k",
        r'einsum\("Bl,Bt,Bjs,Bmi,lm->B?ijst", dfdp, v_rm1, eta_km1_r, eta_n_k, u\)\s*\+\s*',
        "",
        True,
        "36",
        {"34", "35"},
    ),
    ("c7_layer_term", "Bi,Bj,ij->", "Bi,Bj,ji->", False, "39", {"38", "28"}),
    ("c4_tangent_propagate", '"Bi,ji->Bj"', '"Bi,ij->Bj"', False, "38", {"28", "36"}),
    ("l3_lowrank_curvature", "-1/B", "1/B", False, "39", {"38", "36"}),
    ("cr_step_length", "-2*d/", "2*d/", False, "37", {"39"}),
    (
        "table2_hessian_diag_w",
        '"Bj,Bj,Blq,Bai,Bmi,lm,qa->ij"',
        '"Bj,Bj,Blq,Bai,Bmi,lm,la->ij"',
        False,
        "T2",
        {"36"},
    ),
]


@pytest.mark.parametrize(
    ("function", "old", "new", "regex", "equation", "unaffected"),
    MUTATIONS,
    ids=[f"{m[0]}->{m[4]}" for m in MUTATIONS],
)
def test_mutated_kernel_fails_and_names_its_equation(
    function, old, new, regex, equation, unaffected
):
    kernels = mutate(function, old, new, regex=regex)
    failing, passing = _verdicts(kernels)
    assert equation in failing, f"mutating {function} went unnoticed (failing: {failing})"
    assert unaffected <= passing, f"unrelated equations failed: {unaffected - passing}"


def test_a_neutral_edit_passes():
    """The copying machinery alone changes no verdict."""
    kernels = mutate("eq28_grad_w", "if reduce == 'mean':", "if reduce == 'mean':  # copy")
    failing, _ = _verdicts(kernels)
    assert not failing, failing


def test_mutation_must_match():
    with pytest.raises(MutationError):
        mutate("eq28_grad_w", "no such text", "x")
    with pytest.raises(MutationError):  # an identical replacement is no mutation
        mutate("eq28_grad_w", '"Bl,Bj,Bmi,lm->ij"', '"Bl,Bj,Bmi,lm->ij"')
    with pytest.raises(MutationError):
        mutate("no_such_kernel", "a", "b")
