"""Verification reports: ``report.json`` (validated by ``report_schema.json``),
``report.md`` and ``report.html``.
"""

from __future__ import annotations

import html
import json
import math
import pathlib
from dataclasses import asdict
from importlib import resources
from typing import Any

from verify.measure import Result

__all__ = ["SCHEMA_VERSION", "to_json", "schema", "validate", "markdown", "html_report", "write"]

SCHEMA_VERSION = 1


def _num(x: float | None) -> float | None:
    """JSON has no infinities or NaN: non-finite becomes null."""
    if x is None or not math.isfinite(x):
        return None
    return float(x)


def _result(r: Result, info: bool = False) -> dict[str, Any]:
    return {
        "equation": r.equation,
        "quantity": r.quantity,
        "dtype": r.dtype,
        "status": ("info" if info else r.status),
        "max_abs_error": _num(r.max_abs_error),
        "max_rel_error": _num(r.max_rel_error),
        "tolerance": r.tolerance,
        "cases": r.cases,
        "comparisons": r.comparisons,
        "failures": r.failures,
        "worst_case": r.worst_case,
        "kernels": r.kernels,
        "messages": list(r.messages),
    }


def to_json(outcome: Any) -> dict[str, Any]:
    """The report as a JSON-ready dict (see ``report_schema.json``)."""
    errata = []
    for e in outcome.errata:
        d = asdict(e)
        d["printed_rel_error"] = _num(e.printed_rel_error)
        d["corrected_rel_error"] = _num(e.corrected_rel_error)
        for m in d["measurements"]:
            m["printed_rel_error"] = _num(m["printed_rel_error"])
            m["corrected_rel_error"] = _num(m["corrected_rel_error"])
        errata.append(d)
    return {
        "schema_version": SCHEMA_VERSION,
        "status": "pass" if outcome.passed else "fail",
        "results": [_result(r) for r in outcome.results],
        "errata": errata,
        "notes": [_result(r, info=True) for r in outcome.notes],
        "coverage": outcome.coverage,
        "cases": outcome.cases,
        "context": outcome.context,
    }


def schema() -> dict[str, Any]:
    """The JSON schema kept beside this module."""
    text = resources.files("verify").joinpath("report_schema.json").read_text()
    return json.loads(text)


def validate(report: dict[str, Any]) -> None:
    """Validate a report dict against :func:`schema` (needs ``jsonschema``).

    Raises
    ------
    jsonschema.ValidationError
    """
    import jsonschema

    jsonschema.validate(report, schema())


# ------------------------------------------------------------------ text formats


def _fmt(x: float | None, missing: str = "n/a") -> str:
    if x is None:
        return missing
    return f"{x:.2e}"


def _summary_lines(report: dict[str, Any]) -> list[str]:
    ctx = report["context"]
    n_fail = sum(r["status"] != "pass" for r in report["results"])
    status = "PASS" if report["status"] == "pass" else f"FAIL ({n_fail} failing)"
    return [
        f"Status: **{status}** - {len(report['results'])} checks (equation, quantity, dtype) "
        f"over {ctx['cases']} cases ({ctx['sweep']} sweep, seed {ctx['seed']}), "
        f"{ctx['duration_s']:.1f} s.",
        f"JAX {ctx.get('jax_version')} (jaxlib {ctx.get('jaxlib_version')}), NumPy "
        f"{ctx['numpy_version']}, Python {ctx['python_version']}; backend {ctx['backend']} "
        f"({ctx['device']}); jax_enable_x64={ctx['x64']}, "
        f"jax_default_matmul_precision={ctx['matmul_precision']}; references in "
        f"{'float64' if ctx['reference_dtype'] == 'float64' else 'the case dtype'}.",
        f"Tolerance on the relative error (max abs error / norm of the reference block): "
        f"{ctx['tolerances']['float64']:g} for float64 kernels, "
        f"{ctx['tolerances']['float32']:g} for float32 kernels; Eq 41: the size of the "
        "neglected terms of each expansion; never widened. The Gauss-Newton parts of the "
        "Hessian kernels the drivers use are factored (d2f/dp2 = R^T R, C15-C23); the "
        "paper's forms with d2f/dp2 (Eqs 34-36, Table 2, C7) are verdicts in float64 and "
        "numerical notes in float32, where they lose accuracy on nearly equal logits.",
        f"ReLU kinks: {ctx['kink_margin']['how']}.",
    ]


def _errata_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = []
    for e in report["errata"]:
        if not e["measured"]:
            rows.append(
                (
                    e["equation"],
                    ", ".join(e["kinds"]),
                    f"not measured (no kernel: Appendix {e['section']})",
                    "",
                    "",
                    "",
                    "",
                )
            )
            continue
        for m in e["measurements"]:
            printed = _fmt(m["printed_rel_error"], "not evaluable")
            rows.append(
                (
                    e["equation"],
                    m["kind"],
                    m["quantity"],
                    str(m["cases"]),
                    printed,
                    _fmt(m["corrected_rel_error"]),
                    m["note"],
                )
            )
    return rows


def _cell(text: object) -> str:
    """A Markdown table cell (pipes escaped)."""
    return str(text).replace("|", "\\|")


def _tol(r: dict[str, Any]) -> str:
    """Tolerance cell: the stated one."""
    return f"{r['tolerance']:.0e}"


def _row(cells: list[object]) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def markdown(report: dict[str, Any]) -> str:
    """``report.md``."""
    out = ["# Verification of the generated kernels against JAX autodiff", ""]
    out += [line + "\n" for line in _summary_lines(report)]
    out += ["## Results", ""]
    out.append(
        _row(
            [
                "Eq",
                "Quantity",
                "dtype",
                "Cases",
                "Max abs error",
                "Max rel error",
                "Tolerance",
                "Status",
            ]
        )
    )
    out.append("|---|---|---|---:|---:|---:|---:|---|")
    for r in report["results"]:
        status = "pass" if r["status"] == "pass" else "**FAIL**"
        out.append(
            _row(
                [
                    r["equation"],
                    r["quantity"],
                    r["dtype"],
                    r["cases"],
                    _fmt(r["max_abs_error"], "inf"),
                    _fmt(r["max_rel_error"], "inf"),
                    _tol(r),
                    status,
                ]
            )
        )
    failing = [r for r in report["results"] if r["status"] != "pass"]
    if failing:
        out += ["", "Failing checks (worst case, kernels):", ""]
        for r in failing:
            msg = f"; {r['messages'][0]}" if r["messages"] else ""
            out.append(
                f"- Eq {r['equation']}, {r['quantity']} [{r['dtype']}]: worst case "
                f"{r['worst_case']}, kernels {r['kernels']}{msg}"
            )
    out += ["", "## Errata: printed forms against corrected ones, same inputs", ""]
    out.append(
        _row(
            ["Eq", "Kind", "Quantity", "Cases", "Printed rel error", "Corrected rel error", "Note"]
        )
    )
    out.append("|---|---|---|---:|---:|---:|---|")
    out += [_row(list(row)) for row in _errata_rows(report)]
    out += ["", "What is wrong, and how each is read:", ""]
    for e in report["errata"]:
        out.append(
            f"- **Eq {e['equation']}** ({', '.join(e['kinds'])}): {e['what'].rstrip('.')}. "
            f"Corrected: {e['corrected_form'].rstrip('.')}."
        )
    if report["notes"]:
        out += ["", "## Numerical notes (not verdicts)", ""]
        out.append(
            "Eq 37 as printed (cancellation for h > 0 with h^2 >> |d| c), and the paper's "
            "Gauss-Newton forms with d2f/dp2 (Eqs 34-36, Table 2, C7) in float32: on nearly "
            "equal logits sum_lq d2f/dp2[l, q] A_l B_q is a difference of large similar "
            "products and loses accuracy; the drivers use the factored forms d2f/dp2 = R^T R "
            "(C15-C23), which are verdicts above."
        )
        out.append("")
        out.append(_row(["Eq", "Quantity", "dtype", "Cases", "Max rel error", "Tolerance"]))
        out.append("|---|---|---|---:|---:|---:|")
        for r in report["notes"]:
            out.append(
                _row(
                    [
                        r["equation"],
                        r["quantity"],
                        r["dtype"],
                        r["cases"],
                        _fmt(r["max_rel_error"], "inf"),
                        f"{r['tolerance']:.0e}",
                    ]
                )
            )
    cov = report["coverage"]
    out += [
        "",
        "## Kernel coverage",
        "",
        f"{len(cov['exercised'])} of {cov['functions']} public functions of the generated "
        f"modules ({', '.join(f'`{m}`' for m in cov['modules'])}) were called by the checks.",
    ]
    if cov["not_exercised"]:
        out.append(f"Not exercised: {', '.join(cov['not_exercised'])}.")
    out += [
        "",
        "## Cases",
        "",
        _row(["Case", "Dense Hessian", "Input scale", "min abs z", "min rel z", "Seconds"]),
        "|---|---|---:|---:|---:|---:|",
    ]
    for c in report["cases"]:
        out.append(
            _row(
                [
                    c["name"],
                    "yes" if c["dense_hessian"] else "jvp only",
                    f"{c['input_scale']:g}",
                    f"{c['min_abs_preactivation']:.1e}",
                    f"{c['min_rel_preactivation']:.1e}",
                    f"{c['seconds']:.2f}",
                ]
            )
        )
    return "\n".join(out) + "\n"


_CSS = """
body { font-family: sans-serif; margin: 2em; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #bbb; padding: 3px 8px; font-size: 13px; }
th { background: #eee; }
td.num { text-align: right; font-family: monospace; }
tr.pass td.status { background: #c8f0c8; }
tr.fail td.status { background: #f6b8b8; font-weight: bold; }
tr.fail { background: #fdeaea; }
"""


def html_report(report: dict[str, Any]) -> str:
    """``report.html``: the results table, coloured by status, and the errata."""
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        "<html><head><meta charset='utf-8'>",
        "<title>Verification report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Verification of the generated kernels against JAX autodiff</h1>",
    ]
    for line in _summary_lines(report):
        out.append(f"<p>{e(line).replace('**', '')}</p>")
    out.append(
        "<table><tr><th>Eq</th><th>Quantity</th><th>dtype</th><th>Cases</th>"
        "<th>Max abs error</th><th>Max rel error</th><th>Tolerance</th>"
        "<th>Status</th></tr>"
    )
    for r in report["results"]:
        cls = "pass" if r["status"] == "pass" else "fail"
        title = e(f"worst case {r['worst_case']}; kernels {r['kernels']}")
        out.append(
            f"<tr class='{cls}' title='{title}'><td>{e(r['equation'])}</td>"
            f"<td>{e(r['quantity'])}</td><td>{r['dtype']}</td><td class='num'>{r['cases']}</td>"
            f"<td class='num'>{_fmt(r['max_abs_error'], 'inf')}</td>"
            f"<td class='num'>{_fmt(r['max_rel_error'], 'inf')}</td>"
            f"<td class='num'>{e(_tol(r))}</td><td class='status'>{cls}</td></tr>"
        )
    out.append("</table>")
    out.append("<h2>Errata: printed forms against corrected ones, same inputs</h2>")
    out.append(
        "<table><tr><th>Eq</th><th>Kind</th><th>Quantity</th><th>Cases</th>"
        "<th>Printed rel error</th><th>Corrected rel error</th><th>Note</th></tr>"
    )
    for row in _errata_rows(report):
        cells = "".join(
            f"<td class='num'>{e(c)}</td>" if i in (3, 4, 5) else f"<td>{e(c)}</td>"
            for i, c in enumerate(row)
        )
        out.append(f"<tr>{cells}</tr>")
    out.append("</table><ul>")
    for er in report["errata"]:
        out.append(
            f"<li><b>Eq {e(er['equation'])}</b> ({e(', '.join(er['kinds']))}): "
            f"{e(er['what'].rstrip('.'))}. Corrected: {e(er['corrected_form'].rstrip('.'))}.</li>"
        )
    out.append("</ul></body></html>")
    return "\n".join(out) + "\n"


def write(outcome: Any, out_dir: str | pathlib.Path, validate_json: bool = True) -> dict:
    """Write ``report.json``, ``report.md`` and ``report.html`` into ``out_dir``.

    Returns the JSON dict.  With ``validate_json`` the dict is checked against the
    schema first (when ``jsonschema`` is installed).
    """
    report = to_json(outcome)
    if validate_json:
        try:
            validate(report)
        except ImportError:  # pragma: no cover - jsonschema is part of the verify extra
            pass
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    (out / "report.md").write_text(markdown(report))
    (out / "report.html").write_text(html_report(report))
    return report
