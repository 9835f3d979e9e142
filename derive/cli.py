"""Command line of the derive layer: ``python -m derive {generate,check,show,table}``."""

from __future__ import annotations

import argparse
import json
import sys
import time

__all__ = ["main"]


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


def _status_cell(verdict) -> str:
    if verdict is None:
        return "-"
    return verdict.status


def _cmd_check(args: argparse.Namespace) -> int:
    from derive.selfcheck import run_checks

    modes = ["symbolic", "rational"] if args.mode == "both" else [args.mode]
    start = time.perf_counter()
    rows = run_checks(args.equations or None, modes=modes, seed=args.seed, progress=not args.quiet)
    seconds = time.perf_counter() - start
    if args.json:
        payload = [
            {
                "equation": r.number,
                "name": r.name,
                "mode": r.mode,
                "printed": {"status": r.printed.status, "detail": r.printed.detail},
                "corrected": None
                if r.corrected is None
                else {"status": r.corrected.status, "detail": r.corrected.detail},
            }
            for r in rows
        ]
        with open(args.json, "w") as fh:
            json.dump(payload, fh, indent=2)
    print(f"{'eq':>6}  {'name':<28} {'mode':<9} {'printed':<15} {'corrected':<10} detail")
    failures = 0
    for r in rows:
        detail = r.printed.detail if r.corrected is None else r.corrected.detail
        if r.corrected is not None and r.printed.status != "proved":
            detail = f"printed: {r.printed.detail}"
        print(
            f"{r.number:>6}  {r.name:<28} {r.mode:<9} {_status_cell(r.printed):<15} "
            f"{_status_cell(r.corrected):<10} {detail[:90]}"
        )
        used = r.corrected if r.corrected is not None else r.printed
        if used.status == "disproved":
            failures += 1
    errata = sum(1 for r in rows if r.corrected is not None and r.printed.status != "proved")
    print(
        f"\n{len(rows)} checks in {seconds:.1f} s; {errata} printed forms corrected; "
        f"{failures} forms used by the kernels disproved"
    )
    return 1 if failures else 0


def _cmd_show(args: argparse.Namespace) -> int:
    import sympy as sp

    from derive.registry import get
    from derive.selfcheck import run_checks

    try:
        eq = get(args.number)
    except KeyError as err:
        print(err.args[0], file=sys.stderr)
        return 2
    print(f"Eq {eq.number} ({eq.name}): {eq.title}   [section {eq.section}]")
    if eq.copies:
        print(f"printed again as Eq {', '.join(eq.copies)}")
    print(f"\nas printed in the paper:\n  {eq.lhs_latex} = {eq.paper_latex}")
    for which in ("printed", "corrected"):
        expr = eq.symbolic(which)
        if expr is None:
            if which == "printed" and eq.erratum is not None and eq.printed is None:
                print(
                    f"\nprinted form: cannot be implemented as printed; read as "
                    f"{eq.erratum.reading}"
                )
            continue
        print(f"\n{which} index form:")
        print(sp.pretty(expr, use_unicode=True))
        print(f"LaTeX: {sp.latex(expr)}")
    if eq.erratum is not None:
        print(f"\nerratum ({', '.join(eq.erratum.kinds)}): {eq.erratum.what}")
        if eq.erratum.reading:
            print(f"corrected reading: {eq.erratum.reading}")
    if not args.no_check:
        for row in run_checks([eq.number], modes=["symbolic", "rational"]):
            line = f"\nself-check ({row.mode}): printed {row.printed.status}"
            if row.corrected is not None:
                line += f", corrected {row.corrected.status}"
            print(line)
            detail = row.printed.detail
            if detail:
                print(f"  {detail[:300]}")
    return 0


def _cmd_table(args: argparse.Namespace) -> int:
    from derive.registry import all_equations

    print(f"{'eq':>6}  {'role':<12} {'erratum':<28} title")
    for eq in all_equations():
        kinds = ",".join(eq.erratum.kinds) if eq.erratum else ""
        print(f"{eq.number:>6}  {eq.role:<12} {kinds:<28} {eq.title}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m derive",
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
    chk.add_argument("equations", nargs="*", help="equation numbers (default: all)")
    chk.add_argument("--mode", choices=["symbolic", "rational", "both"], default="both")
    chk.add_argument("--seed", type=int, default=0, help="seed of the random rational point")
    chk.add_argument("--json", help="also write the verdicts to this JSON file")
    chk.add_argument("--quiet", action="store_true", help="no progress bar")
    chk.set_defaults(func=_cmd_check)
    show = sub.add_parser("show", help="print one equation, its forms and self-check")
    show.add_argument("number")
    show.add_argument("--no-check", action="store_true", help="skip the self-check")
    show.set_defaults(func=_cmd_show)
    table = sub.add_parser("table", help="list every equation")
    table.set_defaults(func=_cmd_table)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m derive`` and ``lowrank derive``."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


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
