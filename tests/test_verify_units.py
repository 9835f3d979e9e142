"""Pieces of the verify layer: cases off the kinks, the padded reference against a plain
one, Eq 37's reference root, error measures, the command line's error paths, and random
architectures drawn by hypothesis."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verify.cases import (
    ABS_MARGIN,
    REL_MARGIN,
    Case,
    full_sweep,
    make_inputs,
    preactivation_margins,
    quick_sweep,
)
from verify.measure import compare

jax = pytest.importorskip("jax")


# ------------------------------------------------------------------ cases


def test_sweeps_are_seeded_and_cover_the_issue_ranges():
    assert quick_sweep(0) == quick_sweep(0)
    assert quick_sweep(0) != quick_sweep(1)
    cases = full_sweep(0)
    small = [c for c in cases if c.dense]
    assert {c.depth for c in small} == set(range(1, 7))
    assert max(max(c.widths) for c in small) == 9 and min(min(c.widths) for c in small) == 1
    assert {c.init for c in small} == {"plateau", "normal"}
    assert {c.dtype for c in small} == {"float64", "float32"}
    assert min(c.batch for c in small) == 1 and max(c.batch for c in small) == 16
    assert any(not c.dense for c in cases)  # nets checked through jax.jvp only
    quick = quick_sweep(0)
    assert any(len(set(c.widths[1:])) == 1 and c.depth >= 3 for c in quick)  # equal widths
    assert any(len(set(c.widths[1:])) > 1 for c in quick)  # unequal widths


@pytest.mark.parametrize("case", quick_sweep(0)[:12], ids=lambda c: c.name)
def test_inputs_stay_off_the_relu_kinks(case):
    inp = make_inputs(case)
    min_abs, min_rel, alive = preactivation_margins(inp.ws, inp.x)
    assert min_abs >= ABS_MARGIN and min_rel >= 0.5 * REL_MARGIN and alive
    bound = {"plateau": 0.1, "normal": 0.2}[case.init]
    assert all(np.abs(w).max() <= bound for w in inp.ws) and np.abs(inp.u).max() <= bound
    assert inp.x.dtype == np.dtype(case.dtype)
    again = make_inputs(case)
    assert all(np.array_equal(a, b) for a, b in zip(inp.ws, again.ws, strict=True))


def test_case_validation():
    with pytest.raises(ValueError):
        Case((3,), 2, 1)
    with pytest.raises(ValueError):
        Case((3, 2), 1, 1)
    with pytest.raises(ValueError):
        Case((3, 2), 2, 1, init="xavier")


# ------------------------------------------------------------------ reference


@pytest.fixture
def x64():
    """The settings of a verification run (so compiled references are shared)."""
    from verify.backend import run_settings, select_backend

    with run_settings(select_backend("cpu")) as settings:
        yield settings


def test_padded_reference_matches_a_plain_jax_network(x64):
    """The padding of the reference changes nothing: compare with an unpadded network."""
    import jax.numpy as jnp

    from verify.reference import compute_reference

    case = Case((3, 5, 2, 4), 3, 5, "normal", "float64", seed=3)
    inp = make_inputs(case)
    ref = compute_reference(case, inp)

    def loss(params):
        ws, u = params
        v = jnp.asarray(inp.x)
        for w in ws:
            v = jnp.maximum(v @ w.T, 0.0)
        p = v @ u.T
        logp = p - jax.scipy.special.logsumexp(p, axis=1, keepdims=True)
        return -jnp.mean(jnp.sum(jnp.asarray(inp.y) * logp, axis=1))

    params = ([jnp.asarray(w) for w in inp.ws], jnp.asarray(inp.u))
    grad_ws, grad_u = jax.jit(jax.grad(loss))(params)
    # h_w[k] = ([d2/dw_k dw_r for r], d2/dw_k du)
    h_w, (h_uw, h_uu) = jax.jit(jax.hessian(loss))(params)
    assert float(jax.jit(loss)(params)) == pytest.approx(ref.F, rel=1e-14)
    np.testing.assert_allclose(ref.grad_u, grad_u, rtol=1e-12, atol=1e-16)
    for k in range(3):
        np.testing.assert_allclose(ref.grads_w[k], grad_ws[k], rtol=1e-12, atol=1e-16)
        np.testing.assert_allclose(ref.hess[("u", k + 1)], h_uw[k], rtol=1e-12, atol=1e-16)
        for r in range(3):
            np.testing.assert_allclose(ref.hess[(k + 1, r + 1)], h_w[k][0][r], atol=1e-14)
    np.testing.assert_allclose(ref.hess[("u", "u")], h_uu, atol=1e-14)


def test_cr_root_is_the_positive_stationary_point():
    from verify.reference import cr_root

    for h, d, c in [(1.0, -1e-3, 1.0), (-1.0, -1e-12, 1e-3), (1e-9, -1.0, 1e-8), (0.0, -2.0, 4.0)]:
        a = cr_root(h, d, c)
        assert a > 0
        assert abs(d + h * a + 0.5 * c * a * a) <= 1e-14 * (abs(d) + abs(h * a) + c * a * a)
    with pytest.raises(ValueError):
        cr_root(1.0, 1.0, 1.0)  # not a descent direction


# ------------------------------------------------------------------ measures


def test_compare_catches_shape_and_nonfinite():
    ref = np.ones((2, 3))
    assert compare("1", "q", ref.T, ref, dtype="float64", case="c", tolerance=1e-10).error
    bad = ref.copy()
    bad[0, 0] = np.nan
    assert not compare("1", "q", bad, ref, dtype="float64", case="c", tolerance=1e-10).passed
    m = compare("1", "q", ref * (1 + 1e-12), ref, dtype="float64", case="c", tolerance=1e-10)
    assert m.passed and m.rel_error == pytest.approx(1e-12 / np.sqrt(6), rel=1e-3)
    per = np.array([[1.0, 0.0], [1e-6, 0.0]])
    m = compare(
        "1",
        "q",
        per + [[0, 0], [1e-9, 0]],
        per,
        dtype="float64",
        case="c",
        tolerance=1.0,
        per_sample=True,
    )
    assert m.rel_error == pytest.approx(1e-3)  # the small sample against its own norm


def test_float32_tolerance_is_never_widened():
    import verify.measure
    from verify.checks import PAPER_FORM
    from verify.runner import paper_form_note

    assert not hasattr(verify.measure, "widen")
    m32 = compare("36", "q", 1.0 + 3e-4, 1.0, dtype="float32", case="c", tolerance=1e-4)
    assert not m32.passed and m32.tolerance == 1e-4
    assert not paper_form_note(m32)  # the drivers' kernels: a verdict
    paper = compare("36", f"q, {PAPER_FORM}", 1.0, 1.0, dtype="float32", case="c", tolerance=1e-4)
    assert paper_form_note(paper)  # the paper's d2f/dp2 form in float32: a note
    paper64 = compare(
        "36", f"q, {PAPER_FORM}", 1.0, 1.0, dtype="float64", case="c", tolerance=1e-10
    )
    assert not paper_form_note(paper64)


# ------------------------------------------------------------------ command line


def test_gpu_backend_without_a_gpu_is_a_clear_error(tmp_path, capsys):
    from verify.cli import main

    try:
        jax.devices("gpu")
        pytest.skip("a GPU backend is present")
    except RuntimeError:
        pass
    rc = main(["report", "--quick", "--backend", "gpu", "--out", str(tmp_path)])
    assert rc == 2
    assert "gpu" in capsys.readouterr().err.lower()
    assert not (tmp_path / "report.json").exists()


def test_missing_jax_is_a_clear_error(monkeypatch, tmp_path, capsys):
    from verify.cli import main

    monkeypatch.setitem(sys.modules, "jax", None)
    assert main(["report", "--quick", "--out", str(tmp_path)]) == 2
    assert "pip install '.[verify]'" in capsys.readouterr().err


def test_import_verify_without_jax():
    code = (
        "import sys\n"
        "sys.modules['jax'] = None\n"
        "import verify, verify.cli, verify.cases, verify.measure, verify.report\n"
        "from verify.cli import main\n"
        "assert main(['report', '--quick']) == 2\n"
        "assert 'jax' not in [m.split('.')[0] for m in sys.modules if sys.modules[m]]\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "pip install '.[verify]'" in done.stderr


def test_usage_errors():
    from verify.cli import main

    assert main([]) == 2
    assert main(["report", "--backend", "tpu"]) == 2
    assert main(["report", "--jobs", "0"]) == 2
    assert main(["--help"]) == 0


def test_mutated_kernels_stay_in_this_process():
    """Layer-group workers import the real modules: a modified set runs serially."""
    from verify.kernelset import default_kernels
    from verify.mutation import mutate
    from verify.runner import _is_default

    assert _is_default(default_kernels())
    assert not _is_default(mutate("eq28_grad_w", '"Bl,Bj,Bmi,lm->ij"', '"Bl,Bj,Bmi,lm->ji"'))


# ------------------------------------------------------------------ random architectures


@st.composite
def cases(draw) -> Case:
    depth = draw(st.integers(1, 6))
    widths = tuple(draw(st.lists(st.integers(1, 9), min_size=depth + 1, max_size=depth + 1)))
    return Case(
        widths=widths,
        classes=draw(st.integers(2, 10)),
        batch=draw(st.integers(1, 16)),
        init=draw(st.sampled_from(["plateau", "normal"])),
        dtype=draw(st.sampled_from(["float64", "float32"])),
        seed=draw(st.integers(0, 2**31 - 1)),
        sigma=draw(st.sampled_from([10.0, 100.0, 1000.0])),
    )


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_random_architectures_verify(case):
    from tests.test_verify import KNOWN_FAILURES
    from verify.runner import run_verification

    outcome = run_verification([case])
    failing = {(r.equation, r.quantity) for r in outcome.results if r.status != "pass"}
    assert failing <= KNOWN_FAILURES, [
        (r.equation, r.quantity, r.max_rel_error, r.messages) for r in outcome.failed()
    ]
