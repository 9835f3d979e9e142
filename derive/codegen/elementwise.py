"""Entry-wise sources of the generated modules, printed by SymPy's NumPy printer.

* :func:`activation_source`: the activations of :mod:`derive.activations` and their
  first two derivatives, in the array namespace ``xp`` of their argument (NumPy or JAX);
* :func:`step_length_source`: Eq 37 as printed and in its cancellation-free form C8;
* :func:`variants_source`: the CR variants' predicted decrease (V3) and ARC rule (V5);
* :func:`entrywise_source`: the conditional conv forms (Eqs 45, 48, 53-57), whose indices
  are affine in the free indices, as gathers with masks over index grids (NumPy only:
  they exist to check the printed conditions, not to train).

:class:`XpPrinter` is SymPy's ``NumPyPrinter`` with the module prefix ``xp.`` (a thin
subclass in the style of SymPy's own printers) and element-wise ``Max``, ``Heaviside``
and ``Abs``.
"""

from __future__ import annotations

import textwrap

import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from derive import activations as acts
from derive.codegen import templates as T
from derive.codegen.kernel import WIDTHS
from derive.codegen.printer import argname
from derive.codegen.specs import EntrywiseSpec
from derive.notation import FAMILIES
from derive.registry import get

__all__ = [
    "XpPrinter",
    "activation_source",
    "entrywise_source",
    "step_length_source",
    "variants_source",
    "xp",
]


class XpPrinter(NumPyPrinter):
    """NumPy printer whose functions live in the namespace ``xp`` (NumPy or JAX)."""

    def __init__(self):
        super().__init__({"fully_qualified_modules": True})

    def _print_Max(self, expr):
        args = [self._print(a) for a in expr.args]
        out = args[0]
        for a in args[1:]:
            out = f"numpy.maximum({out}, {a})"
        return out

    def _print_Heaviside(self, expr):
        # a comparison cast to the argument's dtype: the same values as numpy.heaviside
        # at a sixth of its cost, and defined in every array namespace
        arg = self._print(expr.args[0])
        value_at_0 = expr.args[1] if len(expr.args) > 1 else sp.Rational(1, 2)
        step = f"numpy.astype({arg} > 0, {arg}.dtype)"
        if value_at_0 == 0:
            return step
        return f"({step} + {float(value_at_0)!r} * numpy.astype({arg} == 0, {arg}.dtype))"

    def _print_Min(self, expr):
        args = [self._print(a) for a in expr.args]
        out = args[0]
        for a in args[1:]:
            out = f"numpy.minimum({out}, {a})"
        return out

    def _print_Abs(self, expr):
        return f"numpy.abs({self._print(expr.args[0])})"

    def doprint(self, expr, assign_to=None):  # noqa: D102
        return super().doprint(expr, assign_to).replace("numpy.", "xp.")


def xp(expr: sp.Expr, like: str = "z") -> str:
    """``expr`` printed in the namespace ``xp``; a zero prints as ``zeros_like(like)``."""
    expr = sp.sympify(expr)
    if expr == 0:
        return f"xp.zeros_like({like})"
    return XpPrinter().doprint(expr)


# --------------------------------------------------------------------------- activations
def activation_source() -> str:
    """Functions of ``numeric/kernels/activations.py``."""
    parts = []
    for name in acts.names():
        act = acts.get(name)
        value, first, second = act.forms()
        parts.append(
            T.ACTIVATION_FUNCTION.format(
                name=name,
                doc=act.doc or name,
                value=xp(value),
                first=xp(first),
                second_form=xp(second),
            )
        )
    table = ", ".join(f'"{n}": {n}' for n in acts.names())
    vanishing = ", ".join(f'"{n}"' for n in acts.names() if acts.get(n).second_vanishes)
    parts.append(T.ACTIVATIONS_TAIL.format(table=table, vanishing=vanishing))
    return "\n\n".join(parts).rstrip() + "\n"


# --------------------------------------------------------------------------- Eq 37
def step_length_source() -> str:
    """Eq 37 in the cancellation-free form C8 and as printed."""
    from derive.equations.cubic_regularization import h, step_length, step_length_stable

    root = sp.Symbol("root")
    pos, neg = (br for br, _ in step_length_stable(root).args)
    return T.STEP_LENGTH.format(
        literal=xp(step_length()),
        positive=xp(pos),
        negative=xp(neg),
        condition=xp(h >= 0),
    )


# --------------------------------------------------------------------------- CR variants
def variants_source() -> str:
    """V3 (predicted decrease) and V5 (ARC update and acceptance), printed."""
    from derive import variant_model as vm

    return T.VARIANTS.format(
        decrease=xp(vm.predicted_decrease()),
        update=xp(vm.arc_sigma()),
        accept=xp(vm.arc_accept()),
    )


# --------------------------------------------------------------------------- entry-wise forms
def _code(e: sp.Basic, ops: dict[str, str], per_sample: set[str]) -> str:
    """NumPy source of an entry-wise expression over broadcast index grids."""
    if isinstance(e, sp.Piecewise):
        *rest, (last_val, last_cond) = e.args
        out = _code(last_val, ops, per_sample)
        if last_cond is not sp.true:
            out = f"np.where({_code(last_cond, ops, per_sample)}, {out}, 0.0)"
        for val, cond in reversed(rest):
            out = f"np.where({_code(cond, ops, per_sample)}, {_code(val, ops, per_sample)}, {out})"
        return out
    if isinstance(e, sp.Indexed):
        base = str(e.base.label)
        idx = [_code(x, ops, per_sample) for x in e.indices]
        if base in per_sample:
            idx = ["_batch", *idx]
        return f"read_masked({ops[base]}, ({', '.join(idx)},))"
    if isinstance(e, sp.Symbol):
        return ops.get(e.name, e.name)
    if e.is_Integer:
        return str(int(e))
    if e.is_Number:
        return repr(float(e))
    args = [_code(a, ops, per_sample) for a in e.args]
    if isinstance(e, sp.Add):
        return "(" + " + ".join(args) + ")"
    if isinstance(e, sp.Mul):
        return "(" + " * ".join(args) + ")"
    if isinstance(e, sp.Pow):
        return f"({args[0]} ** {args[1]})"
    rel = {
        sp.Equality: "==",
        sp.Unequality: "!=",
        sp.StrictLessThan: "<",
        sp.LessThan: "<=",
        sp.StrictGreaterThan: ">",
        sp.GreaterThan: ">=",
    }
    for kind, op in rel.items():
        if isinstance(e, kind):
            return f"({args[0]} {op} {args[1]})"
    if isinstance(e, sp.And):
        return "(" + " & ".join(args) + ")"
    if isinstance(e, sp.Or):
        return "(" + " | ".join(args) + ")"
    if isinstance(e, sp.Not):
        return f"(~{args[0]})"
    raise TypeError(f"cannot print {e!r}")


#: extent symbols of the conv forms and where a kernel finds them
_EXTENT_SOURCE = {"K_h": ("cw", 0), "K_w": ("cw", 1)}


def entrywise_source(spec: EntrywiseSpec) -> str:
    """A NumPy kernel for an entry-wise (conditional) conv form.

    The kernel takes the operand arrays, the strides ``sigma``, ``tau`` and the extent
    ``n_<index>`` of every free index; per-sample operands have a leading batch axis.
    Reads outside an operand's extent give NaN (the form is undefined there), so a
    printed form with a missing bound shows up as NaN entries.
    """
    name, number, which = spec.name, spec.equation, spec.which
    eq = get(number)
    form = eq.form if which == "form" else getattr(eq, which)
    sigma, tau = (
        sp.Symbol("sigma", integer=True, positive=True),
        sp.Symbol("tau", integer=True, positive=True),
    )
    expr = form.build(sigma=sigma, tau=tau)
    free = form.free
    bases = []
    for ix in sp.preorder_traversal(expr):
        if isinstance(ix, sp.Indexed) and str(ix.base.label) not in bases:
            bases.append(str(ix.base.label))
    per_sample = {b for b in bases if FAMILIES[b].per_sample}
    ops = {b: argname(b) for b in bases}
    ops.update({f: f"_{f}" for f in free})
    used = {str(sym) for sym in expr.free_symbols}
    extents = [x for x in _EXTENT_SOURCE if x in used]
    args = [ops[b] for b in bases] + ["sigma", "tau"] + [f"n_{f}" for f in free]
    sig = f"def {name}({', '.join(args)}):"
    if len(sig) > 96:
        sig = f"def {name}(\n" + "".join(f"    {a},\n" for a in args) + "):"
    doc = [f"Eq {eq.number}: {eq.title}."]
    if which == "printed":
        doc.append(f"PRINTED form, kept as evidence (erratum: {eq.erratum.what}).")
    elif eq.erratum is not None:
        doc.append(f"Corrected form (printed: {eq.erratum.what}).")
    doc += ["", "Entry-wise form (positions from 0; the paper's kernel offsets are one more)::", ""]
    doc += ["    " + line for line in textwrap.wrap(str(expr), 84)]
    doc += ["", "Parameters", "----------"]
    for b in bases:
        shape = WIDTHS[b.split("(")[0]]([])
        if b in per_sample:
            shape = ["batch", *shape]
        doc.append(f"{ops[b]} : ndarray, shape ({', '.join(shape)})")
    doc.append("sigma, tau : int")
    doc.append("    Vertical and horizontal stride.")
    doc.append(f"n_{', n_'.join(free)} : int")
    doc.append("    Extents of the free indices.")
    doc += ["", "Returns", "-------"]
    lead = "batch, " if per_sample else ""
    doc.append(f"ndarray: axes ({lead}{', '.join(free)}).")
    wrapped = []
    for line in doc:
        wrapped += (
            textwrap.wrap(line, 88) if len(line) > 88 and not line.startswith(" ") else [line]
        )
    body = [sig, textwrap.indent('"""' + "\n".join(wrapped).rstrip() + '\n"""', "    ")]
    nd = len(free) + (1 if per_sample else 0)
    shape = []
    if per_sample:
        first = ops[next(b for b in bases if b in per_sample)]
        body.append(f"    _B = {first}.shape[0]")
        body.append(f"    _batch = np.arange(_B).reshape((-1,) + (1,) * {nd - 1})")
        shape.append("_B")
    for pos, f in enumerate(free):
        axis = pos + (1 if per_sample else 0)
        grid = ["1"] * nd
        grid[axis] = "-1"
        body.append(f"    _{f} = np.arange(n_{f}).reshape(({', '.join(grid)},))")
        shape.append(f"n_{f}")
    for x in extents:
        base, axis = _EXTENT_SOURCE[x]
        body.append(f"    {x} = {ops[base]}.shape[{axis}]")
    code = _code(expr, ops, per_sample)
    body.append(f"    out = {code}")
    body.append(f"    return np.array(np.broadcast_to(out, ({', '.join(shape)},)))")
    return "\n".join(body) + "\n"
