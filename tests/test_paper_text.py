"""The registry against the paper's text: every numbered display of ``paper.md`` must be
what the registry says the paper prints (``lhs_latex``, ``relation``, ``paper_latex``),
and every printed index form must use the tensors, layer labels and free indices of its
display.

The paper is read from ``../shared/paper.md`` relative to the repository root; without it
the tests skip and say so.  Differences pass only through ``tests/paper_text_allow.json``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import sympy as sp

from derive.registry import all_equations, get

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT.parent / "shared" / "paper.md"
ALLOW = ROOT / "tests" / "paper_text_allow.json"
#: at most this many named exceptions
MAX_ALLOWED = 5

pytestmark = pytest.mark.skipif(
    not PAPER.is_file(), reason=f"the paper's text is absent ({PAPER} not found)"
)


# ------------------------------------------------------------------ reading the paper
_NUMBER = re.compile(r"(?:\\quad|&)\s*\((\d+)\)\s*$")


def displays(text: str) -> dict[str, tuple[str, str | None]]:
    """Numbered ``$$ ... (N) $$`` displays: ``N -> (body, continues)``.

    A display that starts with ``=`` continues an unnumbered display just before it (Eq
    72: its first line is a display of its own) or, failing that, the previous numbered
    equation's left-hand side (``continues`` names that equation).
    """
    out: dict[str, tuple[str, str | None]] = {}
    unnumbered, last = None, None
    for raw in re.findall(r"\$\$(.*?)\$\$", text, re.S):
        body = raw.strip()
        m = _NUMBER.search(body)
        if not m:
            unnumbered = body
            continue
        number, body = m.group(1), body[: m.start()].strip()
        continues = None
        if body.startswith("="):
            if unnumbered is not None:
                body = f"{unnumbered} {body}"
            else:
                continues = last
        out[number] = (body, continues)
        unnumbered, last = None, number
    return out


def table2(text: str) -> dict[str, object]:
    """Table 2 (tab-separated in the text): header cells and ``row label -> cells``."""
    lines = text[text.index("Table 2: Variable-Specific") :].splitlines()
    rows = [line.split("\t") for line in lines[1:] if "\t" in line][:3]
    strip = [[c.strip().strip("$").strip() for c in row] for row in rows]
    return {"header": strip[0], "rows": {row[0]: row for row in strip[1:]}}


@pytest.fixture(scope="module")
def paper() -> str:
    return PAPER.read_text()


@pytest.fixture(scope="module")
def numbered(paper):
    return displays(paper)


@pytest.fixture(scope="module")
def allowed() -> dict[str, dict]:
    entries = json.loads(ALLOW.read_text())["allow"]
    return {e["equation"]: e for e in entries}


# ------------------------------------------------------------------ normalisation
def _group_end(s: str, i: int) -> int:
    depth = 0
    for pos in range(i, len(s)):
        if s[pos] == "{":
            depth += 1
        elif s[pos] == "}":
            depth -= 1
            if depth == 0:
                return pos + 1
    return -1


def _left_side_in_first_row(s: str) -> str:
    """``= \\begin{cases} LHS & \\\\ rows`` (the left side set as the first row of the
    cases, as the text lays out Eqs 56 and 74) -> ``LHS = \\begin{cases} rows``."""
    m = re.match(r"\s*=\s*\\begin\{cases\}\s*\\frac", s)
    if not m:
        return s
    start = m.end() - len(r"\frac")
    end = _group_end(s, _group_end(s, m.end()))
    row = re.match(r"\s*&\s*\\\\", s[end:])
    if end < 0 or not row:
        return s
    return f"{s[start:end]} = \\begin{{cases}} {s[end + row.end() :]}"


def norm(tex: str) -> str:
    """Whitespace and layout out: ``\\left``/``\\right``, ``aligned``, ``&``, ``\\\\``,
    ``\\quad``, thin spaces, braces around one-character scripts."""
    s = _left_side_in_first_row(tex)
    s = re.sub(r"\\(left|right)\s*\.", "", s)
    s = re.sub(r"\\(left|right)\b", "", s)
    s = re.sub(r"\\(begin|end)\{aligned\}", "", s)
    s = s.replace("\\\\", " ").replace("&", " ")
    s = re.sub(r"\\q?quad\b", " ", s)
    s = re.sub(r"\\[,;!: ]", " ", s)
    s = re.sub(r"\s+", "", s)
    return re.sub(r"([_^])\{(\\?[A-Za-z0-9])\}", r"\1\2", s)


def test_normalisation_keeps_symbols_and_drops_layout():
    assert norm(r"\left( a \right) & \\ \quad b^{2}") == "(a)b^2"
    assert norm(r"v^{(k),j}") != norm(r"v^{(k-1),j}")
    assert norm(r"= \begin{cases} \frac{a}{b} & \\ x & q \end{cases}") == norm(
        r"\frac{a}{b} = \begin{cases} x & q \end{cases}"
    )


def test_extraction_finds_every_numbered_display(numbered):
    assert sorted(numbered, key=int) == [str(k) for k in range(1, 81)]
    body, continues = numbered["75"]
    assert body.startswith("=") and continues == "74"
    assert numbered["72"][1] is None and numbered["72"][0].startswith(r"\frac{\partial \alpha")


# ------------------------------------------------------------------ text against registry
def _registry_text(eq) -> str:
    if not eq.lhs_latex:
        return norm(eq.paper_latex)
    return norm(eq.lhs_latex) + norm(eq.relation) + norm(eq.paper_latex)


def test_allow_list_is_short_and_explained(allowed):
    assert len(allowed) <= MAX_ALLOWED
    for number, entry in allowed.items():
        assert entry["reason"].strip(), number


@pytest.mark.parametrize("number", [str(k) for k in range(1, 81)])
def test_registry_says_what_the_paper_prints(number, numbered, allowed):
    eq = get(number)
    assert eq.number == number, f"Eq {number} resolves to Eq {eq.number}, not an entry of its own"
    body, continues = numbered[number]
    text = norm(body)
    if number in allowed and "drop" in allowed[number]:
        fragment = norm(allowed[number]["drop"])
        assert fragment in text, f"allow-list entry for Eq {number} no longer applies"
        text = text.replace(fragment, "", 1)
    if continues is not None and not text.startswith(norm(eq.lhs_latex)):
        # "= ..." continues the previous equation: same left side, then this display
        assert norm(eq.lhs_latex) == norm(get(continues).lhs_latex), (number, continues)
        want = norm(eq.relation) + norm(eq.paper_latex)
        assert text == want, f"Eq {number}:\n paper:    {text}\n registry: {want}"
        return
    want = _registry_text(eq)
    if text != want:
        lhs = norm(eq.lhs_latex)
        where = "left-hand side" if not text.startswith(lhs + norm(eq.relation)) else "right side"
        pytest.fail(f"Eq {number} differs in its {where}:\n paper:    {text}\n registry: {want}")


def test_sub_forms_quote_their_equation(numbered):
    """Entries such as ``72.a`` that quote part of a display quote it verbatim."""
    for eq in all_equations():
        head, dot, _ = eq.number.partition(".")
        if not dot or not head.isdigit() or eq.derived:
            continue
        display = norm(numbered[head][0])
        assert norm(eq.paper_latex) in display, eq.number
        assert norm(eq.lhs_latex) in display or norm(eq.lhs_latex) == norm(get(head).lhs_latex)


def test_table2_cells(paper):
    """Table 2 is a table, not a display: its g^T H g column is T2.u and T2.w verbatim;
    its gradient column is Eqs 27-28's final right-hand sides with F for f."""
    table = table2(paper)
    header, rows = table["header"], table["rows"]
    col = header.index(r"\mathbf{g}^T \mathbf{H} \mathbf{g}")
    for number, label in (("T2.u", r"\alpha_j^{(u),i}"), ("T2.w", r"\alpha_j^{(w,k),i}")):
        eq = get(number)
        assert norm(eq.paper_latex) == norm(rows[label][col]), number
        assert norm(eq.lhs_latex) == norm(rf"{header[col]} \text{{ for }} {label}"), number
    grad = header.index(r"\mathbf{g}^t \nabla f")  # sic: a lowercase t
    for number, label in (("27", r"\alpha_j^{(u),i}"), ("28", r"\alpha_j^{(w,k),i}")):
        final = get(number).paper_latex.split("=")[-1]
        assert norm(rows[label][grad]) == norm(final.replace("partial f}", "partial F}"))


def test_section2_restatements_point_at_their_appendix_equation():
    for number, of in (("1", "27"), ("2", "28"), ("3", "34"), ("4", "35"), ("5", "36")):
        eq = get(number)
        assert eq.copy_of == of
        final = norm(get(of).paper_latex.split("=")[-1]) if number != "5" else None
        if number in ("1", "3", "4"):
            assert norm(eq.paper_latex) == final
            assert eq.printed is get(of).printed
    # Eq 2 is not Eq 28: it has its own printed form and an erratum
    assert get("2").erratum is not None and get("2").printed is not get("28").printed


# ------------------------------------------------------------------ tensors of the forms
_FAMILY_TEX = {
    "eta": "eta",
    "alpha": "alpha",
    "beta": "beta",
    "gamma": "gamma",
    "lambda": "lam",
    "omega": "omega",
    "phi": "phi",
}
_DERIVATIVES = [
    # \frac{\partial X}{\partial w...} -> family; the labels of X then of each w
    (r"\\frac\{\\partial\^2 v\^\{\(([^)]*)\),\w\}\}\{\\partial w_\w\^\{\(([^)]*)\),\w\} "
     r"\\partial w_\w\^\{\(([^)]*)\),\w\}\}", "d2v"),
    (r"\\frac\{\\partial \\eta_\w\^\{\(([^)]*)\),\w\}\}\{\\partial w_\w\^\{\(([^)]*)\),\w\}\}",
     "deta"),
    (r"\\frac\{\\partial \\alpha_\w\^\{\(([^)]*)\),\w\}\}\{\\partial w_\w\^\{\(([^)]*)\),\w\}\}",
     "dalpha"),
    (r"\\frac\{\\partial \\beta_\w\^\{\(([^)]*)\),\w\}\}\{\\partial w_\w\^\{\(([^)]*)\),\w\}\}",
     "dbeta"),
    (r"\\frac\{\\partial \\gamma_\w\^\{\(([^)]*)\),\w\}\}\{\\partial w_\w\^\{\(([^)]*)\),\w\}\}",
     "dgamma"),
    (r"\\frac\{\\partial v\^\{\(([^)]*)\),\w\}\}\{\\partial w_\w\^\{\(([^)]*)\),\w\}\}", "dv"),
]  # fmt: skip


def _activation_tokens(tex: str) -> str:
    """``\\mathcal{A}'(w^{(k)} ...)`` -> ``@a1(k)``: the form keeps A' of layer k."""
    out = []
    i = 0
    while True:
        m = re.compile(r"\\mathcal\{A\}('{1,2})\s*(\\left)?\s*\(").search(tex, i)
        if not m:
            out.append(tex[i:])
            return "".join(out)
        depth, pos = 1, m.end()
        while depth and pos < len(tex):
            depth += {"(": 1, ")": -1}.get(tex[pos], 0)
            pos += 1
        inner = tex[m.end() : pos - 1]
        label = re.search(r"\^\{\(([^)]*)\)", inner)
        fam = "a1" if m.group(1) == "'" else "a2"
        out.append(tex[i : m.start()])
        out.append(f" @{fam}({label.group(1) if label else '?'}) ")
        i = pos


def paper_tensors(tex: str, section: str) -> set[tuple[str, tuple[str, ...]]] | None:
    """``{(family, layer labels)}`` of a right-hand side, or ``None`` when it uses
    notation the comparison does not read (conv layers, Section 3's bold vectors)."""
    s = re.sub(r"\\frac\{\d+\}\{\d+\}", " ", tex)  # numeric fractions (powers)
    s = re.sub(r"&[^&]*?(\\\\|\\end\{cases\})", r" \1", s)  # conditions of cases
    s = re.sub(r"\\frac\{\\partial\^2 [fF]\}\{\\partial p\^\w \\partial p\^\w\}", " @d2fdp2() ", s)
    s = re.sub(r"\\frac\{\\partial [fF]\}\{\\partial p\^\w\}", " @dfdp() ", s)
    for pattern, fam in _DERIVATIVES:
        s = re.sub(pattern, lambda m, fam=fam: f" @{fam}({','.join(m.groups())}) ", s)
    s = _activation_tokens(s)
    if re.search(r"\\frac|\\mathcal|\\tilde|\\mathbf|\\partial|[xz]_", s):
        return None
    found = set()
    for m in re.finditer(r"@(\w+)\(([^)]*)\)", s):
        labels = tuple(x for x in m.group(2).split(",") if x)
        found.add((m.group(1), labels))
    for m in re.finditer(r"\\(eta|alpha|beta|gamma|lambda|omega|phi)(?![a-z])", s):
        pos = m.end()
        if s.startswith("_{", pos):  # a subscript, possibly with nested braces
            pos = _group_end(s, pos + 1)
        elif s.startswith("_", pos):
            pos += 2
        label = re.match(r"\^\{\(([^)]*)\)", s[pos:])
        labels = tuple(label.group(1).split(",")) if label else ()
        found.add((_FAMILY_TEX[m.group(1)], labels))
    for m in re.finditer(r"(?<![\\a-zA-Z])v(\^\{\(([^)]*)\)|_\{\(([^)]*)\)\})", s):
        found.add(("v", ((m.group(2) or m.group(3)),)))
    for m in re.finditer(r"(?<![\\a-zA-Z])w(_\w|_\{\w+\})?\^(\{\(([^)]*)\)|\w)", s):
        if m.group(3):
            found.add(("w", (m.group(3),)))
        else:
            found.add(("wr" if section.startswith("B.2.2") else "w?", ()))
    for _ in re.finditer(r"(?<![\\a-zA-Z])u_\w\^\w", s):
        found.add(("u", ()))
    if re.search(r"(?<![\\a-zA-Z])a_\{is\}", s):
        found.add(("a", ()))  # Eq 6's coefficient (Eq 7)
    return found


def _matches(pattern: tuple[str, ...], concrete: tuple[str, ...], known: dict) -> bool:
    if len(pattern) != len(concrete):
        return False
    for pat, val in zip(pattern, concrete, strict=True):
        expr = sp.sympify(pat).subs({sp.Symbol(k): v for k, v in known.items()})
        if expr.free_symbols:
            continue  # a summation variable: any layer
        if int(expr) != int(val):
            return False
    return True


#: the families the comparison reads back from the printer's LaTeX (B.1, B.2.2, B.3)
_RENDERED = (
    "eta", "alpha", "beta", "gamma", "lam", "omega", "phi", "v", "w", "wr", "u", "dfdp",
    "d2fdp2", "a1", "a2", "dv", "dalpha", "deta", "dbeta", "dgamma", "d2v", "a",
)  # fmt: skip


def rendered_tensors(latex: str) -> set[tuple[str, tuple[str, ...]]]:
    """``{(family, labels)}`` read back from :func:`derive.registry.latex_index_form`'s
    output: ``{\\eta^{(3,1)}}_{m,s}`` -> ``("eta", ("3", "1"))``."""
    from derive.notation import FAMILIES

    found = set()
    for name in _RENDERED:
        tex = FAMILIES[name].tex
        if FAMILIES[name].labels:
            for m in re.finditer(re.escape("{" + tex + "^{(") + r"([^)]*)\)\}\}_\{", latex):
                found.add((name, tuple(m.group(1).split(","))))
        elif ("{" + tex + "}_{") in latex:
            found.add((name, ()))
    return found


def form_tensors(eq, n: int = 3) -> tuple[list[set], list[dict]]:
    """The printed form's ``(family, labels)`` at each label set of depth ``n``, read from
    its LaTeX as the project's printer renders it."""
    import inspect

    from derive.registry import latex_index_form

    params = inspect.signature(eq.printed.build).parameters
    per_set, sets = [], []
    for labels in eq.label_sets(n):
        accepted = {k: v for k, v in labels.items() if k in params}
        expr = eq.printed(**accepted)
        if expr is None or expr == 0:
            continue
        found = rendered_tensors(latex_index_form(expr))
        # the printer shows every tensor of the form
        bases = {str(b.label).partition("(")[0] for b in sp.sympify(expr).atoms(sp.IndexedBase)}
        assert {fam for fam, _ in found} == bases, (eq.number, found, bases)
        per_set.append(found)
        sets.append(labels)
    return per_set, sets


def _final(tex: str) -> str:
    """The last member of a chain ``a = b = c`` (outside braces and cases)."""
    depth, cut = 0, 0
    for pos, ch in enumerate(tex):
        if tex.startswith(r"\begin{", pos):
            depth += 1
        elif tex.startswith(r"\end{", pos):
            depth -= 1
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if ch == "=" and depth == 0:
            cut = pos + 1
    return tex[cut:]


def _lhs_indices(tex: str) -> set[str] | None:
    """Ordinary indices of a left-hand side (labels in parentheses left out)."""
    s = re.sub(r"([_^]\{)\(([^)]*)\),?", r"\1", tex)
    found = set()
    for m in re.finditer(r"[_^](\{([^{}]*)\}|(\w))", s):
        body = m.group(2) if m.group(2) is not None else m.group(3)
        if re.fullmatch(r"j_\w", body or ""):
            found.add(body)
        elif body and re.fullmatch(r"[a-z]+", body):
            found |= set(body)
    found -= {"T"}
    return found or None


def test_printed_forms_use_the_tensors_of_their_display():
    checked, skipped = [], []
    for eq in all_equations():
        if eq.derived or eq.printed is None or eq.section.startswith("B.2.1"):
            # Section 3's scalars (h, d, c) and the conv layer's patch arrays (z, x~) are
            # not the display's symbols: their forms are compared in the self-checks only
            skipped.append(eq.number)
            continue
        side = _final(eq.paper_latex)
        if eq.form_lhs_latex and norm(eq.form_lhs_latex) == norm(eq.paper_latex):
            side = eq.lhs_latex  # the form is the paper's left side (Eq 22's product)
        want = paper_tensors(side, eq.section)
        if want is None or not want:
            skipped.append(eq.number)
            continue
        per_set, sets = form_tensors(eq)
        if not per_set:
            skipped.append(eq.number)
            continue
        matched = set()
        for found, labels in zip(per_set, sets, strict=True):
            for fam, lab in found:
                hits = [p for p in want if p[0] == fam and _matches(p[1], lab, labels)]
                assert hits, f"Eq {eq.number} at {labels}: {fam}{lab} is not in the paper's {want}"
                matched.update(hits)
        missing = want - matched
        assert not missing, f"Eq {eq.number}: the paper's {sorted(missing)} is not in the form"
        checked.append(eq.number)
    # the comparison must not silently read nothing
    assert len(checked) >= 45, (checked, skipped)
    assert {"2", "28", "38", "39", "61", "80"} <= set(checked), checked


def test_printed_forms_have_the_free_indices_of_their_left_side():
    checked = []
    for eq in all_equations():
        if eq.derived or eq.printed is None or eq.form_lhs_latex:
            continue
        want = _lhs_indices(eq.lhs_latex)
        if want is None:
            continue
        assert set(eq.printed.free) == want, (eq.number, eq.printed.free, want)
        checked.append(eq.number)
    assert len(checked) >= 55, checked


def test_the_tensor_comparison_can_fail():
    """A form with v at the wrong step (the old reading of Eq 61) is caught."""
    labels = {"n": 3, "t": 3}
    want = paper_tensors(r"\sum_k \eta_s^{(t,k),m} v_{(t-1)}^r", "B.2.2")
    assert ("v", ("t-1",)) in want
    assert not _matches(("t-1",), ("0",), labels)
    assert _matches(("t", "k"), ("3", "1"), labels)
