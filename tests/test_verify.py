"""The quick verification, run once through the command line: every kernel passes, every
kind of erratum is seen, and the report validates against its schema."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("jax")
pytest.importorskip("jsonschema")

from verify import report as report_mod  # noqa: E402
from verify.cli import main  # noqa: E402

#: (equation, quantity) of corrected kernels known to fail, each with its reason; empty
#: (the last entry, Eq 37 in Eq 41's case 3, went with C8's branch on the sign of h)
KNOWN_FAILURES: frozenset[tuple[str, str]] = frozenset()

#: the kinds of erratum the kernels of Appendix B.1 let the verification measure
MEASURED_KINDS = {
    "index",
    "dimension",
    "dropped-term",
    "missing-bound",
    "sqrt-sign",
    "validity",
    "case-logic",
    "batch-average",
    "free-index",
}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("verify-quick")
    rc = main(["report", "--quick", "--out", str(out), "--quiet"])
    report = json.loads((out / "report.json").read_text())
    return rc, report, out


def _failing(report) -> set[tuple[str, str]]:
    return {(r["equation"], r["quantity"]) for r in report["results"] if r["status"] != "pass"}


def test_every_corrected_kernel_passes(quick):
    rc, report, _ = quick
    unexpected = _failing(report) - KNOWN_FAILURES
    assert not unexpected, f"kernels failing verification: {sorted(unexpected)}"
    assert rc == (1 if _failing(report) else 0)
    assert report["status"] == ("fail" if _failing(report) else "pass")


def test_known_failures_still_fail(quick):
    """A fixed kernel must leave KNOWN_FAILURES."""
    _, report, _ = quick
    assert KNOWN_FAILURES <= _failing(report)


def test_every_kernel_is_exercised(quick):
    _, report, _ = quick
    assert report["coverage"]["not_exercised"] == []
    assert report["coverage"]["functions"] >= 50


def test_results_cite_equations_and_both_dtypes(quick):
    _, report, _ = quick
    equations = {r["equation"] for r in report["results"]}
    for eq in ("13", "15", "21", "22", "23", "24", "27", "28", "34", "35", "36", "37", "38",
               "39", "40", "41", "T2"):  # fmt: skip
        assert eq in equations, eq
    dtypes = {r["dtype"] for r in report["results"]}
    assert dtypes == {"float64", "float32"}
    for r in report["results"]:
        assert r["cases"] >= 1
        if r["equation"] in ("17", "41"):
            continue  # 17: ReLU patterns must match exactly; 41: expansion bounds
        assert r["tolerance"] == {"float64": 1e-10, "float32": 1e-4}[r["dtype"]]


def test_every_erratum_kind_is_seen(quick):
    _, report, _ = quick
    seen: dict[str, list[dict]] = {}
    for e in report["errata"]:
        for m in e["measurements"]:
            seen.setdefault(m["kind"], []).append({**m, "equation": e["equation"]})
    assert MEASURED_KINDS <= set(seen), MEASURED_KINDS - set(seen)
    for kind, ms in seen.items():
        for m in ms:
            assert m["corrected_rel_error"] is not None and m["corrected_rel_error"] < 1e-3, m
            if kind in ("free-index", "dimension") and "read by einsum" not in m["quantity"]:
                assert m["printed_rel_error"] is None, m  # not evaluable as printed
    # every measured erratum shows its error somewhere: not evaluable as printed, or a
    # printed error above 1e-3 (a missing bound on the conv kernel offsets, say, only
    # bites when the kernel is smaller than the input, so one regime may agree)
    for e in report["errata"]:
        ms = e["measurements"]
        if not ms:
            continue
        assert any(m["printed_rel_error"] is None or m["printed_rel_error"] > 1e-3 for m in ms), e


def test_specific_errata(quick):
    _, report, _ = quick
    by_eq = {e["equation"]: e for e in report["errata"]}
    assert by_eq["22"]["printed_rel_error"] == pytest.approx(1.0)
    eq23 = {m["quantity"]: m for m in by_eq["23"]["measurements"]}
    assert any("does not match" in m["note"] for m in eq23.values() if m["kind"] == "dimension")
    eq41 = {(m["kind"], m["quantity"]) for m in by_eq["41"]["measurements"]}
    assert any(k == "sqrt-sign" for k, _ in eq41) and any(k == "validity" for k, _ in eq41)
    for e in report["errata"]:
        assert e["what"] and e["corrected_form"]
    # Eq 61 as printed (v_(t-1) in every term) is off by the size of the derivative
    assert by_eq["61"]["measured"] and by_eq["61"]["printed_rel_error"] > 0.1
    assert by_eq["61"]["corrected_rel_error"] < 1e-10
    # Eq 2 as printed: not evaluable unless the classes equal the layer's width, and
    # wrong where einsum can read it
    eq2 = {m["quantity"].rsplit(", ", 1)[1]: m for m in by_eq["2"]["measurements"]}
    assert eq2["classes != w_k"]["printed_rel_error"] is None
    assert eq2["classes = w_k"]["printed_rel_error"] > 1e-3


def test_errata_match_the_registry(quick):
    """The report lists an erratum for exactly the printed equations the registry (and
    so derive check) calls wrong."""
    from derive.registry import all_equations

    _, report, _ = quick
    listed = {e["equation"] for e in report["errata"]}
    registry = {eq.number.split(".")[0] for eq in all_equations() if eq.erratum is not None}
    assert listed == registry
    assert {"2", "61", "38", "78", "79", "80"} <= listed


def test_report_files_and_schema(quick):
    _, report, out = quick
    report_mod.validate(report)
    md = (out / "report.md").read_text()
    assert "| Eq | Quantity | dtype | Cases | Max abs error | Max rel error | Tolerance" in md
    html = (out / "report.html").read_text()
    assert "<table>" in html and "class='pass'" in html
    ctx = report["context"]
    assert ctx["x64"] is True and ctx["matmul_precision"] == "highest"
    assert ctx["backend"] == "cpu" and ctx["seed"] == 0 and ctx["duration_s"] > 0
    assert ctx["jax_version"] and ctx["numpy_version"]


def test_schema_rejects_a_broken_report(quick):
    import jsonschema

    _, report, _ = quick
    broken = json.loads(json.dumps(report))
    del broken["results"][0]["max_rel_error"]
    with pytest.raises(jsonschema.ValidationError):
        report_mod.validate(broken)
