"""Command line of the derive layer: ``python -m derive {generate,check,show,table,layer}``
(also ``lowrank derive ...``).

Output fits in 100 columns; long LaTeX and counterexamples are wrapped, never cut.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
import time

__all__ = ["main", "build_parser"]

WIDTH = 100


def _prog() -> str:
    """``lowrank derive`` when called through the ``lowrank`` command, else
    ``python -m derive``."""
    argv0 = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if argv0 == "lowrank" or sys.argv[0].replace(os.sep, "/").endswith("numeric/__main__.py"):
        return "lowrank derive"
    return "python -m derive"


def _wrap(text: str, indent: str = "  ", first: str | None = None) -> str:
    """``text`` wrapped at :data:`WIDTH` columns (breaking at spaces only, so LaTeX stays
    copyable), every line indented."""
    first = indent if first is None else first
    return textwrap.fill(
        text,
        WIDTH,
        initial_indent=first,
        subsequent_indent=indent,
        break_long_words=True,
        break_on_hyphens=False,
    )


def _cell(line: str, text: str) -> str:
    """``line`` (a table row up to its last column) followed by ``text`` wrapped into the
    last column: never cut, continuation lines aligned under the column's start."""
    width = max(WIDTH - len(line), 20)
    parts = textwrap.wrap(text, width, break_on_hyphens=False) or [""]
    pad = "\n" + " " * len(line)
    return line + pad.join(parts)


# ------------------------------------------------------------------ generate
def _cmd_generate(args: argparse.Namespace) -> int:
    from derive.codegen.generate import generate_all, modules

    start = time.perf_counter()
    changed = generate_all(check=args.check)
    seconds = time.perf_counter() - start
    if args.check:
        if changed:
            print(f"generated code differs from a fresh generation: {', '.join(changed)}")
            print("run `python -m derive generate` and commit the result")
            return 1
        print(f"generated code is up to date ({len(modules())} module(s), {seconds:.1f} s)")
        return 0
    for path in (m.path for m in modules().values()):
        state = "written" if path in changed else "unchanged"
        print(f"{path}: {state}")
    print(f"generation took {seconds:.1f} s")
    return 0


# ------------------------------------------------------------------ check
_SHORT = {"not checkable": "n/a", "definition": "definition"}


def _status(verdict) -> str:
    if verdict is None:
        return "-"
    return _SHORT.get(verdict.status, verdict.status)


def _verdict_json(verdict) -> dict | None:
    if verdict is None:
        return None
    return {
        "status": verdict.status,
        "detail": verdict.detail,
        "counterexample": verdict.counterexample,
    }


def _brief(verdict) -> str:
    """A verdict's detail in a few words (the table's last column)."""
    ce = verdict.counterexample or {}
    if "error" in ce:
        return f"not evaluable: {ce['error']}"
    if "entry" in ce:
        return f"differs at {ce.get('labels')}, entry {ce['entry']}"
    return verdict.detail


def _row_detail(r) -> str:
    if r.corrected is not None and r.printed.status != "proved":
        return f"printed {_brief(r.printed)}"
    if r.batch is not None and r.batch.status == "disproved":
        return f"batch reading {_brief(r.batch)}"
    return r.printed.detail if r.corrected is None else r.corrected.detail


def _cmd_check(args: argparse.Namespace) -> int:
    from derive.registry import get
    from derive.selfcheck import run_checks

    if args.equations:
        try:
            numbers = [get(n).number for n in _expand(args.equations)]
        except KeyError as err:
            print(_wrap(f"{_prog()} check: {err.args[0]}", "  ", ""), file=sys.stderr)
            return 2
    else:
        numbers = None
    if args.json:
        from numeric.outputs import OutputPathError, check_output_file

        try:  # before the checks run: their verdicts must have somewhere to go
            check_output_file(args.json, "verdicts")
        except OutputPathError as exc:
            print(_wrap(f"{_prog()} check: {exc}", "  ", ""), file=sys.stderr)
            return 2
    modes = ["symbolic", "rational"] if args.mode == "both" else [args.mode]
    start = time.perf_counter()
    rows = run_checks(numbers, modes=modes, seed=args.seed, progress=not args.quiet)
    seconds = time.perf_counter() - start
    if args.json:
        payload = [
            {
                "equation": r.number,
                "name": r.name,
                "mode": r.mode,
                "printed": _verdict_json(r.printed),
                "batch_reading": _verdict_json(r.batch),
                "corrected": _verdict_json(r.corrected),
                "erratum": r.erratum,
            }
            for r in rows
        ]
        with open(args.json, "w") as fh:
            json.dump(payload, fh, indent=2)
    wide = max([len(r.name) for r in rows] + [4])
    head = f"{'eq':>6}  {'name':<{wide}} {'mode':<4} {'printed':<10} {'batch':<10} "
    print(head + f"{'corrected':<10} detail")
    failures = 0
    for r in rows:
        line = (
            f"{r.number:>6}  {r.name:<{wide}} {r.mode[:3]:<4} {_status(r.printed):<10} "
            f"{_status(r.batch):<10} {_status(r.corrected):<10} "
        )
        print(_cell(line, _row_detail(r)))
        used = r.corrected if r.corrected is not None else r.printed
        if used.status == "disproved":
            failures += 1
    print()
    legend = (
        "printed: the printed form per sample; batch: the printed form read on a mini-batch "
        "(F = E[f] as a product of batch means); corrected: the form the kernels use "
        "(- where the printed one is used); n/a: not checkable; details in full: "
        f"{_prog()} show N"
    )
    print(_wrap(legend, "", ""))
    wrong: dict[str, set] = {}
    for r in rows:
        if r.erratum:
            kind = "batch" if r.printed.status == "proved" else "printed"
            wrong.setdefault(r.number, set()).add(kind)
    from derive.forms import sort_key

    listed = [n + ("*" if wrong[n] == {"batch"} else "") for n in sorted(wrong, key=sort_key)]
    print(
        f"\n{len(rows)} checks in {seconds:.1f} s; {failures} forms used by the kernels "
        f"disproved; {len(wrong)} printed forms wrong (errata):"
    )
    if listed:
        print(_wrap(", ".join(listed)))
        if any(s == {"batch"} for s in wrong.values()):
            print("  (* proved per sample; only the printed batch reading is disproved)")
    return 1 if failures else 0


# ------------------------------------------------------------------ show
def _expand(numbers: list[str]) -> list[str]:
    """``T2`` or ``Table 2`` stands for both entries of Table 2."""
    out = []
    for number in numbers:
        key = " ".join(str(number).split()).lower()
        if key in ("t2", "table 2", "table2", "tab 2"):
            out += ["T2.u", "T2.w"]
        else:
            out.append(str(number).strip())
    return out


def _plain(expr) -> str:
    """One-line text of an index form: contractions as ``sum_{l,m}``."""
    import sympy as sp
    from sympy.printing.str import StrPrinter

    class _Printer(StrPrinter):
        def _print_Sum(self, e):
            names = ",".join(self._print(lim[0]) for lim in e.limits)
            return f"sum_{{{names}}} ({self._print(e.function)})"

        def _print_Piecewise(self, e):
            parts = [f"{self._print(v)} if {self._print(c)}" for v, c in e.args]
            return "{ " + "; ".join(parts) + " }"

        def _print_Indexed(self, e):
            return f"{e.base.label}[{','.join(self._print(i) for i in e.indices)}]"

    return _Printer().doprint(sp.sympify(expr))


def _show_form(eq, which: str, heading: str) -> None:
    import sympy as sp

    from derive.forms import symbol_legend
    from derive.registry import latex_index_form

    expr = eq.symbolic(which)
    at = ""
    if expr is None:
        found = eq.concrete(which)
        if found is None:
            return
        expr, labels = found
        at = " at " + ", ".join(f"{k} = {v}" for k, v in labels.items())
    free = getattr(eq, which).free
    print(f"\n{heading}{at} (free indices {', '.join(free) or 'none'}):")
    print(_wrap(latex_index_form(expr), "    ", "  LaTeX: "))
    print(_wrap(_plain(expr), "    ", "  text:  "))
    legend = symbol_legend(sp.sympify(expr))
    if legend:
        print(_wrap("; ".join(legend), "    ", "  where: "))


def _show_counterexample(verdict) -> None:
    ce = verdict.counterexample
    if not ce:
        if verdict.detail:
            print(_wrap(verdict.detail, "    "))
        return
    for key, value in ce.items():
        print(_wrap(str(value), "    ", f"    {key}: "))


def _show_one(eq, check: bool) -> None:
    print(_wrap(f"Eq {eq.number} ({eq.name}): {eq.title}   [section {eq.section}]", "  ", ""))
    if eq.copy_of:
        print(f"restates Eq {eq.copy_of} of the appendix")
    if eq.copies:
        print(f"restated in Section 2 as Eq {', '.join(eq.copies)}")
    if eq.derived:
        print(_wrap(f"derived form, not in the paper ({eq.section})", "  ", "\n"))
        _show_form(eq, "printed", "index form")
    else:
        print("\nas printed in the paper:")
        print(_wrap(eq.paper_display(), "    ", "  "))
        if eq.printed is None:
            print("\nprinted index form: none (a definition the references build)")
        else:
            _show_form(eq, "printed", "printed index form (symbol for symbol)")
        if eq.corrected is not None:
            _show_form(eq, "corrected", "corrected index form (what the kernels use)")
        if eq.form_lhs_latex:
            which = "corrected form" if eq.corrected is not None else "index form"
            print(_wrap(eq.form_lhs_latex, "    ", f"  left-hand side of the {which}: "))
    if eq.erratum is not None:
        print(_wrap(eq.erratum.what, "  ", f"\nerratum ({', '.join(eq.erratum.kinds)}): "))
        if eq.erratum.reading:
            print(_wrap(eq.erratum.reading, "  ", "corrected reading: "))
    if not check:
        return
    from derive.selfcheck import run_checks

    for row in run_checks([eq.number], modes=["symbolic", "rational"]):
        print(f"\nself-check ({row.mode}):")
        for label, verdict in (
            ("printed, per sample", row.printed),
            ("printed, batch reading", row.batch),
            ("corrected", row.corrected),
        ):
            if verdict is None:
                continue
            print(f"  {label}: {verdict.status}")
            if verdict.status == "disproved":
                _show_counterexample(verdict)
            elif verdict.detail:
                print(_wrap(verdict.detail, "    "))


def _cmd_show(args: argparse.Namespace) -> int:
    from derive.registry import get

    try:
        eqs = [get(n) for n in _expand([args.number])]
    except KeyError as err:
        print(_wrap(f"{_prog()} show: {err.args[0]}", "  ", ""), file=sys.stderr)
        return 2
    for pos, eq in enumerate(eqs):
        if pos:
            print("\n" + "-" * WIDTH + "\n")
        _show_one(eq, not args.no_check)
    return 0


# ------------------------------------------------------------------ table
def _cmd_table(args: argparse.Namespace) -> int:
    from derive.registry import all_equations

    eqs = all_equations()
    wide = max([len(",".join(eq.erratum.kinds)) for eq in eqs if eq.erratum] + [7])
    print(f"{'eq':>6}  {'role':<11} {'erratum':<{wide}} title")
    for eq in eqs:
        kinds = ",".join(eq.erratum.kinds) if eq.erratum else ""
        print(_cell(f"{eq.number:>6}  {eq.role:<11} {kinds:<{wide}} ", eq.title))
    return 0


# ------------------------------------------------------------------ layer
def _cmd_layer(args: argparse.Namespace) -> int:
    from derive.auto.layers import LAYERS

    if args.list or not args.name:
        return _layer_list(args)
    if args.name not in LAYERS:
        known = ", ".join(LAYERS)
        print(_wrap(f"{_prog()} layer: no layer {args.name!r}; the layers are {known}", "  ", ""),
              file=sys.stderr)  # fmt: skip
        return 2
    return _layer_show(args.name, not args.no_check)


def _layer_verdicts(name: str, check: bool) -> dict:
    """``part -> Verdict`` of the symbolic self-check (empty without ``check``)."""
    if not check:
        return {}
    from derive.equations.auto import DERIVATIONS, number
    from derive.selfcheck import run_checks

    parts = {number(name, p): p for p in DERIVATIONS[name].forms}
    rows = run_checks(list(parts), modes=["symbolic"])
    return {parts[r.number]: r.printed for r in rows}


def _layer_list(args: argparse.Namespace) -> int:
    from derive.equations.auto import DERIVATIONS

    print(f"{'layer':<12} {'source':<7} {'forms':>5} {'derived':>8} {'proved':>7}  forward rule")
    failed = 0
    for name, deriv in DERIVATIONS.items():
        verdicts = _layer_verdicts(name, not args.no_check)
        proved = sum(v.status == "proved" for v in verdicts.values())
        failed += sum(v.status == "disproved" for v in verdicts.values())
        shown = f"{proved}/{len(deriv.forms)}" if verdicts else "-"
        layer = deriv.layer
        line = (
            f"{name:<12} {layer.source:<7} {len(deriv.forms):>5} {deriv.seconds:>7.2f}s "
            f"{shown:>7}  "
        )
        print(_cell(line, f"{layer.cites or 'new'}: " + "; ".join(layer.forward_text())))
    print()
    print(_wrap(
        "source: paper (the forward rule is the paper's equation) or new; forms: forms "
        "derived; derived: seconds to derive them; proved: forms proved against sympy.diff "
        "of the explicit layer (and, for the paper's layers, equal to the hand-encoded "
        f"forms); one layer in full: {_prog()} layer NAME", "", ""))  # fmt: skip
    return 1 if failed else 0


def _layer_show(name: str, check: bool) -> int:
    import sympy as sp

    from derive.auto.algebra import plain
    from derive.equations.auto import DERIVATIONS, number
    from derive.registry import get, latex_index_form

    deriv = DERIVATIONS[name]
    layer = deriv.layer
    print(_wrap(f"layer {name}: {layer.title}   [source: {layer.source}"
                + (f", {layer.cites}]" if layer.cites else "]"), "  ", ""))  # fmt: skip
    params = ", ".join(plain(p.at()) for p in layer.params)
    print(f"parameters {params}; input {plain(layer.input.at())}; output "
          f"{plain(layer.output.at())}; per-sample index {layer.sample}")  # fmt: skip
    print("\nforward rule:")
    for st in layer.statements:
        print(_wrap(plain(st.rhs), "    ", f"  {plain(st.target.at())} = "))
    print(f"\n{len(deriv.forms)} forms derived in {deriv.seconds:.2f} s")
    verdicts = _layer_verdicts(name, check)
    failed = 0
    for part, form in deriv.forms.items():
        eq = get(number(name, part))
        status = verdicts[part].status if part in verdicts else "not run"
        failed += status == "disproved"
        print(_wrap(f"{eq.number} ({form.kind}): {form.title}  [{status}]", "  ", "\n"))
        lhs = sp.latex(sp.IndexedBase(form.target)[tuple(sp.Idx(i) for i in form.free)])
        print(_wrap(f"{lhs} = {latex_index_form(form.expr)}", "    ", "  LaTeX: "))
        print(_wrap(plain(form.expr), "    ", "  text:  "))
        if form.rank_note:
            print(_wrap(form.rank_note, "    ", "  low rank: "))
        if part in verdicts and verdicts[part].detail:
            print(_wrap(verdicts[part].detail, "    ", "  check: "))
    return 1 if failed else 0


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog or _prog(),
        description="The paper's equations in index form: self-checks and code generation.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="regenerate the NumPy kernels in numeric/kernels/")
    gen.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when the checked-in code differs from a fresh generation",
    )
    gen.set_defaults(func=_cmd_generate)
    chk = sub.add_parser("check", help="run the symbolic self-checks")
    chk.add_argument("equations", nargs="*", help="equation numbers (default: all; T2: Table 2)")
    chk.add_argument("--mode", choices=["symbolic", "rational", "both"], default="both")
    chk.add_argument("--seed", type=int, default=0, help="seed of the random rational point")
    chk.add_argument("--json", help="also write the verdicts to this JSON file")
    chk.add_argument("--quiet", action="store_true", help="no progress bar")
    chk.set_defaults(func=_cmd_check)
    show = sub.add_parser(
        "show", help="one equation: the paper's text, index forms, erratum, self-check"
    )
    show.add_argument("number", help='equation number, e.g. 36, 46.mc, C7; T2 or "Table 2"')
    show.add_argument("--no-check", action="store_true", help="skip the self-check")
    show.set_defaults(func=_cmd_show)
    table = sub.add_parser("table", help="list every equation")
    table.set_defaults(func=_cmd_table)
    layer = sub.add_parser(
        "layer", help="layers declared by their forward rule and the forms derived from them"
    )
    layer.add_argument("name", nargs="?", help="one layer in full (default: the list)")
    layer.add_argument("--list", action="store_true", help="one line per layer")
    layer.add_argument("--no-check", action="store_true", help="skip the self-checks")
    layer.set_defaults(func=_cmd_layer)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m derive`` and ``lowrank derive``."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:  # output piped into head or less and closed early
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silences the flush at exit
        return 0


# ---------------------------------------------------------------- `lowrank derive`


def register() -> dict:
    """The ``lowrank derive`` command (entry point in the group ``lowrank.commands``).

    Returns a plain dict (see ``numeric.commands``): SymPy is needed only when a command
    runs, so the command is listed, and explains what is missing, without it.
    """
    return {
        "help": "the equations' self-checks and code generation (needs the [derive] extra)",
        "main": _lowrank_main,
        "requires": ("sympy",),
        "extra": "derive",
    }


def _lowrank_main(argv: list[str]) -> int:
    parser = build_parser()
    _as_lowrank(parser, "lowrank derive")
    args = parser.parse_args(argv)
    return int(args.func(args))


def _as_lowrank(parser: argparse.ArgumentParser, prog: str) -> None:
    """Name the parser (and its subcommands) ``prog`` and show every option's default."""
    parser.prog = prog
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            action._prog_prefix = prog
            for name, sub in action.choices.items():
                _as_lowrank(sub, f"{prog} {name}")
        elif action.option_strings and action.help != argparse.SUPPRESS:
            if isinstance(action, argparse._HelpAction):
                continue
            text = action.help or ""
            if "default" not in text:
                if isinstance(action, argparse._StoreTrueAction):
                    shown = "off"
                elif action.default is None:
                    shown = "none"
                else:
                    shown = str(action.default)
                action.help = f"{text} (default: {shown})".strip()
