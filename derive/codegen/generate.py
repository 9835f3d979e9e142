"""Render and write the generated kernel modules of :mod:`numeric.kernels`.

``python -m derive generate`` writes them; ``--check`` regenerates in memory and
fails when the files on disk differ (drift).
"""

from __future__ import annotations

import difflib
import inspect
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from derive.codegen import templates
from derive.codegen.printer import EinsumPrinter, Operand
from derive.codegen.specs import RELU_MLP, KernelSpec
from derive.indexform import terms
from derive.registry import get

__all__ = ["ModuleSpec", "modules", "render_module", "generate_all", "kernel_source"]

ROOT = Path(__file__).resolve().parents[2]
COMMAND = "python -m derive generate"


@dataclass(frozen=True)
class ModuleSpec:
    """One generated module: its kernels, the driver source copied after them, and
    any extra source (a callable returning text)."""

    path: str
    header: str
    kernels: list
    drivers: str = ""
    extra: Callable[[], str] | None = None


def _relu_header() -> str:
    numbers = sorted({s.equation for s in RELU_MLP})
    return templates.HEADER.format(
        command=COMMAND,
        sources="derive/equations/feedforward_relu.py, cubic_regularization.py, contracted.py",
        equations=", ".join(numbers),
    )


def modules() -> dict[str, ModuleSpec]:
    """Every generated module, by name (later sections add theirs in
    ``derive/codegen/layers.py`` as ``MODULES: list[ModuleSpec]``)."""
    out = {
        "relu_mlp": ModuleSpec(
            "numeric/kernels/relu_mlp.py",
            _relu_header(),
            RELU_MLP,
            templates.DRIVERS,
            lambda: _cr_source(),
        )
    }
    try:
        from derive.codegen import layers
    except ImportError:
        return out
    for spec in layers.MODULES:
        out[Path(spec.path).stem] = spec
    return out


_WIDTH = {
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
}


def _shape_doc(op: Operand, stacked: bool = False) -> str:
    fam, _, rest = op.base.partition("(")
    labels = rest.rstrip(")").split(",") if rest else []
    dims = _WIDTH[fam](labels)
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
        doc.append(f"{o.name} : ndarray, shape {_shape_doc(o, spec.stacked)}")
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


def _cr_source() -> str:
    from derive.equations.cubic_regularization import h, step_length, step_length_stable

    printer = NumPyPrinter({"fully_qualified_modules": True})
    root = sp.Symbol("root")
    pos, neg = (br for br, _ in step_length_stable(root).args)
    lit = printer.doprint(step_length()).replace("numpy.", "np.")
    return templates.CR.format(
        literal=lit,
        positive=printer.doprint(pos).replace("numpy.", "np."),
        negative=printer.doprint(neg).replace("numpy.", "np."),
        condition=printer.doprint(h >= 0).replace("numpy.", "np."),
    )


def render_module(module: str = "relu_mlp") -> str:
    """The full text of a generated module."""
    spec = modules()[module]
    text = spec.header + "\n\n" + "\n\n".join(kernel_source(k) for k in spec.kernels)
    if spec.drivers:
        text += "\n\n" + spec.drivers
    if spec.extra is not None:
        text += "\n\n" + spec.extra()
    return text


def generate_all(check: bool = False, root: Path = ROOT) -> list[str]:
    """Write (or, with ``check``, compare) every generated module.

    Returns
    -------
    list of str
        Paths that differ from a fresh generation (``check``) or were written.
    """
    changed = []
    for module, mspec in modules().items():
        rel = mspec.path
        path = root / rel
        fresh = render_module(module)
        old = path.read_text() if path.exists() else ""
        if old != fresh:
            changed.append(rel)
            if check:
                diff = difflib.unified_diff(
                    old.splitlines(),
                    fresh.splitlines(),
                    rel + " (on disk)",
                    rel + " (fresh)",
                    lineterm="",
                    n=1,
                )
                print("\n".join(list(diff)[:40]))
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(fresh)
    return changed
