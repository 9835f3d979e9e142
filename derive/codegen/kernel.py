"""Source of one generated ``einsum`` kernel: signature, docstring and body.

:func:`kernel_source` prints a :class:`~derive.codegen.specs.KernelSpec`: the index form
(corrected or printed, a part or a branch) through
:class:`~derive.codegen.printer.EinsumPrinter`, with a docstring that cites the
equation, shows the index form and the shapes of the operands.
"""

from __future__ import annotations

import inspect
import re
import textwrap

import sympy as sp

from derive.codegen.printer import EinsumPrinter, Operand
from derive.codegen.specs import KernelSpec
from derive.indexform import terms
from derive.registry import get

__all__ = ["kernel_source", "shape_doc", "WIDTHS"]

WIDTHS = {
    "x": lambda L: ["d_in"],
    "v": lambda L: [f"w_{L[0]}"],
    "z": lambda L: [f"w_{L[0]}"],
    "a1": lambda L: [f"w_{L[0]}"],
    "a2": lambda L: [f"w_{L[0]}"],
    "delta": lambda L: [f"w_{L[0]}"],
    "vdot": lambda L: [f"w_{L[0]}"],
    "w": lambda L: [f"w_{L[0]}", f"w_{L[0]}-1"],
    "phi": lambda L: [f"w_{L[0]}", f"w_{L[0]}-1"],
    "gamma": lambda L: [f"w_{L[0]}", f"w_{L[0]}"],
    "beta": lambda L: [f"w_{L[0]}", f"w_{L[0]}-1"],
    "alpha": lambda L: [f"w_{L[0]}", f"w_{L[1]}"],
    "eta": lambda L: [f"w_{L[0]}", f"w_{L[1]}"],
    "u": lambda L: ["classes", "w_n"],
    "omega": lambda L: ["classes", "w_n"],
    "dfdp": lambda L: ["classes"],
    "pdot": lambda L: ["classes"],
    "d2fdp2": lambda L: ["classes", "classes"],
    "Db": lambda L: ["batch", f"w_{L[0]}"],
    "Vb": lambda L: ["batch", f"w_{L[0]}"],
    "Vdotb": lambda L: ["batch", f"w_{L[0]}"],
    "Pb": lambda L: ["batch", "classes"],
    "rfac": lambda L: ["classes", "classes"],
    "rjac": lambda L: ["classes", f"w_{L[0]}", f"w_{L[0]}-1"],
    "rpdot": lambda L: ["classes"],
    "rvbar": lambda L: ["classes", f"w_{L[0]}"],
    "rdelta": lambda L: ["classes", f"w_{L[0]}"],
    "metu": lambda L: ["classes", "w_n"],
    "metw": lambda L: [f"w_{L[0]}", f"w_{L[0]}-1"],
    "lam": lambda L: [f"w_{L[0]}"] * 3,
    "dgamma": lambda L: [f"w_{L[0]}", f"w_{L[0]}", f"w_{L[1]}", f"w_{L[1]}-1"],
    "dbeta": lambda L: [f"w_{L[0]}", f"w_{L[0]}-1", f"w_{L[1]}", f"w_{L[1]}-1"],
    "deta": lambda L: [f"w_{L[0]}", f"w_{L[1]}", f"w_{L[2]}", f"w_{L[2]}-1"],
    "d2v": lambda L: [f"w_{L[0]}", f"w_{L[1]}", f"w_{L[1]}-1", f"w_{L[2]}", f"w_{L[2]}-1"],
    "zdot": lambda L: [f"w_{L[0]}"],
    "vbar": lambda L: [f"w_{L[0]}"],
    "cx": lambda L: ["H", "W"],
    "cw": lambda L: ["K_h", "K_w"],
    "cxt": lambda L: ["S", "T", "K_w"],
    "cz": lambda L: ["S", "T", "K_h", "K_w"],
    "cdz": lambda L: ["S", "T", "K_h", "K_w", "H", "W"],
    "cv": lambda L: ["S", "T"],
    "ca1": lambda L: ["S", "T"],
    "ca2": lambda L: ["S", "T"],
    "cphi": lambda L: ["K_h", "K_w"],
    "mx": lambda L: ["C", "H", "W"],
    "mw": lambda L: ["O", "C", "K_h", "K_w"],
    "mz": lambda L: ["C", "S", "T", "K_h", "K_w"],
    "mv": lambda L: ["O", "S", "T"],
    "ma1": lambda L: ["O", "S", "T"],
    "ma2": lambda L: ["O", "S", "T"],
    "mphi": lambda L: ["O", "C", "K_h", "K_w"],
    "mdelta": lambda L: ["O", "S", "T"],
    "mzdot": lambda L: ["O", "S", "T"],
    "mvbar": lambda L: ["O", "S", "T"],
    "wr": lambda L: ["d", "d"],
    "ceye": lambda L: ["C", "C"],
    "bias": lambda L: [f"w_{L[0]}"],
    "psi": lambda L: [f"w_{L[0]}"],
    "ub": lambda L: ["classes"],
    "omegab": lambda L: ["classes"],
    "mb": lambda L: ["O"],
    "mpsi": lambda L: ["O"],
    "mzx": lambda L: ["C", "S", "T", "K_h", "K_w"],
    "mzbar": lambda L: ["C", "S", "T", "K_h", "K_w"],
    "ur": lambda L: ["d", "d_in"],
    "rb": lambda L: ["d"],
    "phir": lambda L: ["d", "d"],
    "phiu": lambda L: ["d", "d_in"],
    "rpsi": lambda L: ["d"],
    "sx": lambda L: ["steps", "d_in"],
    "sxdot": lambda L: ["steps", "d_in"],
    "sv": lambda L: ["steps", "d"],
    "svdot": lambda L: ["steps", "d"],
    "sdelta": lambda L: ["steps", "d"],
    "svbar": lambda L: ["steps", "d"],
    "sa2": lambda L: ["steps", "d"],
    "szdot": lambda L: ["steps", "d"],
}


def shape_doc(op: Operand, stacked: bool = False) -> str:
    fam, _, rest = op.base.partition("(")
    labels = rest.rstrip(")").split(",") if rest else []
    dims = WIDTHS[fam](labels)
    dims = [re.sub(r"^w_([a-z0-9]+)-1$", r"w_(\1-1)", d) for d in dims]
    if op.per_sample:
        dims = ["batch", *dims]
    if stacked and "(" in op.base:
        dims = ["layers", *dims]
    return "(" + ", ".join(dims) + ")"


def _index_text(expr: sp.Expr, free: tuple[str, ...]) -> list[str]:
    """Human-readable index form, one term per line."""
    lines = []
    for t in terms(expr, free):
        factors = " ".join(
            f"{f.base}[{','.join(f.indices)}]" if f.base else f"delta[{','.join(f.indices)}]"
            for f in t.factors
        )
        coeff = "" if t.coefficient == 1 else f"{t.coefficient} * "
        summed = f"   (sum over {', '.join(sorted(t.summed))})" if t.summed else ""
        lines.append(f"{coeff}{factors}{summed}")
    return lines


def _build(spec: KernelSpec) -> tuple[sp.Expr, tuple[str, ...], str]:
    eq = get(spec.equation)
    if spec.part is not None:
        form = eq.parts[spec.part]
    else:
        form = eq.form if spec.which == "form" else getattr(eq, spec.which)
    if form is None:
        raise ValueError(f"{spec.name}: equation {spec.equation} has no {spec.which} form")
    params = inspect.signature(form.build).parameters
    labels = {name: sp.Symbol(name, integer=True, positive=True) for name in ("n", *spec.labels)}
    labels.update(dict(spec.concrete))
    expr = form.build(**{k: v for k, v in labels.items() if k in params})
    expr = sp.piecewise_fold(sp.sympify(expr))
    cond = ""
    if isinstance(expr, sp.Piecewise):
        if spec.branch is None:
            raise ValueError(f"{spec.name}: piecewise form needs a branch")
        expr, c = expr.args[spec.branch]
        cond = str(c)
    return expr, form.free, cond


def kernel_source(spec: KernelSpec) -> str:
    """Source of one generated kernel function."""
    eq = get(spec.equation)
    expr, free, cond = _build(spec)
    bodies = {}
    ops: list[Operand] = []
    for mode in spec.reduces:
        body, ops = EinsumPrinter(mode, stacked=spec.stacked).source(expr, free)
        bodies[mode] = body
    args = ", ".join(o.name for o in ops)
    multi = len(spec.reduces) > 1
    sig = f"def {spec.name}({args}{', reduce: str = ' + repr(spec.reduces[0]) if multi else ''})"
    if len(sig) > 96:
        params = [o.name for o in ops] + ([f"reduce: str = {spec.reduces[0]!r}"] if multi else [])
        sig = f"def {spec.name}(\n" + "".join(f"    {p},\n" for p in params) + ")"
    cites = f"Eq {eq.number}" if eq.number[0].isdigit() else f"{eq.number}"
    if eq.copies:
        cites += " (printed again as Eq " + ", Eq ".join(eq.copies) + ")"
    title = eq.title if spec.part is None else f"{eq.title}: {spec.part.replace('_', ' ')}"
    doc = [f"{cites}: {title}."]
    if eq.section.startswith("contracted"):
        doc.append(f"Derived form, {eq.section}.")
    if spec.stacked:
        doc.append(
            "Layer-batched: each layer-labelled operand and the result carry a leading "
            "axis over a stack of layers (all of equal width)."
        )
    if spec.note:
        doc.append(spec.note)
    elif spec.which == "printed" and eq.erratum is not None:
        doc.append(f"PRINTED form, kept as evidence (erratum: {eq.erratum.what}).")
    elif eq.erratum is not None and eq.corrected is not None and spec.part is None:
        doc.append(f"Corrected form (printed: {eq.erratum.what}).")
    if cond:
        doc.append(f"Branch of the piecewise form: {cond}.")
    doc.append("")
    doc.append("Index form::")
    doc.append("")
    doc += ["    " + line for line in _index_text(expr, free)]
    doc.append("")
    doc.append("Parameters")
    doc.append("----------")
    for o in ops:
        doc.append(f"{o.name} : ndarray, shape {shape_doc(o, spec.stacked)}")
    if multi:
        doc.append("reduce : {" + ", ".join(repr(m) for m in spec.reduces) + "}")
        doc.append("    'sample': per sample; 'mean': batch mean of per-sample products")
        if "printed" in spec.reduces:
            doc.append("    (F = E[f]); 'printed': product of batch means, the literal reading")
            doc.append("    of the paper's dF/dp (batch-average erratum; evidence only).")
        else:
            doc.append("    (F = E[f]).")
    doc.append("")
    doc.append("Returns")
    doc.append("-------")
    free_txt = ", ".join(free) if free else "scalar"
    if multi:
        doc.append(f"ndarray: axes (batch, {free_txt}) per sample, ({free_txt}) reduced.")
    elif spec.reduces == ("sample",):
        doc.append(f"ndarray: axes (batch, {free_txt}).")
    elif spec.stacked:
        doc.append(f"ndarray: axes (layers, {free_txt}).")
    else:
        doc.append(f"ndarray: axes ({free_txt}).")
    wrapped = []
    for line in doc:
        if len(line) > 88 and not line.startswith(" "):
            wrapped += textwrap.wrap(line, 88)
        else:
            wrapped.append(line)
    docstring = textwrap.indent('"""' + "\n".join(wrapped).rstrip() + '\n"""', "    ")
    lines = [sig + ":", docstring]
    if expr.has(sp.Symbol("B", positive=True, integer=True)):
        first = next(o for o in ops)
        axis = 1 if (spec.stacked and "(" in first.base) else 0
        lines.append(f"    B = {first.name}.shape[{axis}]")
    if multi:
        for mode in spec.reduces:
            lines.append(f"    if reduce == {mode!r}:")
            lines.append("        return " + bodies[mode].replace("\n", "\n        "))
        lines.append(
            f'    raise ValueError(f"reduce must be one of {list(spec.reduces)}, got {{reduce!r}}")'
        )
    else:
        lines.append("    return " + bodies[spec.reduces[0]].replace("\n", "\n    "))
    return "\n".join(lines) + "\n"
