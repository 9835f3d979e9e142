"""Generated modules for Appendix B.2 (convolutional and recurrent layers), B.3 (general
activations) and a network that stacks them: ``MODULES`` for
:func:`derive.codegen.generate.modules`.

* ``numeric/kernels/activations.py``: the activations of :mod:`derive.activations`;
* ``numeric/kernels/general_mlp.py``: B.1 and B.3 for any activation (drivers mirror
  ``relu_mlp``);
* ``numeric/kernels/conv2d.py``: one convolutional layer (Eqs 44-57, with channels);
* ``numeric/kernels/recurrent.py``: the recurrent layer (Eqs 58-65, and through B.3);
* ``numeric/kernels/conv_mlp.py``: a conv layer, ReLU layers and the softmax output.

Besides the ``einsum`` kernels of :mod:`derive.codegen.generate`, this module prints the
*entry-wise* forms of the conv layer (Eqs 45, 48, 53-57: piecewise expressions whose
indices are affine in the free indices) as NumPy gathers with masks
(:func:`entrywise_source`).
"""

from __future__ import annotations

import textwrap

import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from derive import activations as acts
from derive.codegen import generate as gen
from derive.codegen import layer_templates as T
from derive.codegen.generate import ModuleSpec
from derive.codegen.printer import argname
from derive.codegen.specs import KernelSpec
from derive.notation import FAMILIES
from derive.registry import get

__all__ = ["MODULES", "entrywise_source", "activation_source"]

SM = ("sample", "mean")
SMP = ("sample", "mean", "printed")

# shapes of the new families in kernel docstrings (extends the generator's table)
for _fam, _dims in {
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
}.items():
    gen._WIDTH.setdefault(_fam, _dims)


def _header(title: str, body: str, numbers, imports: str, sources: str) -> str:
    return T.HEADER.format(
        command=gen.COMMAND,
        sources=sources,
        title=title,
        body=_wrap_first(body.format(equations=", ".join(sorted(set(numbers), key=_order)))),
        imports=imports.rstrip("\n"),
    )


def _wrap_first(text: str) -> str:
    """Wrap the first paragraph (the generated list of equations) at 88 columns."""
    first, sep, rest = text.partition("\n")
    return "\n".join(textwrap.wrap(first, 88, break_on_hyphens=False)) + sep + rest


def _order(number: str) -> tuple:
    group = {"C": 2, "L": 3}.get(number[0], 0)
    digits = "".join(ch for ch in number.split(".")[0] if ch.isdigit())
    return (group, int(digits) if digits else 0, number)


# --------------------------------------------------------------------------- activations
class _ActivationPrinter(NumPyPrinter):
    """NumPy source for the activation forms (``np.`` prefix, elementwise ``Max``)."""

    def __init__(self):
        super().__init__({"fully_qualified_modules": True})

    def _print_Max(self, expr):
        args = [self._print(a) for a in expr.args]
        out = args[0]
        for a in args[1:]:
            out = f"numpy.maximum({out}, {a})"
        return out

    def _print_Heaviside(self, expr):
        value_at_0 = expr.args[1] if len(expr.args) > 1 else sp.Rational(1, 2)
        return f"numpy.heaviside({self._print(expr.args[0])}, {float(value_at_0)!r})"

    def _print_Abs(self, expr):
        return f"numpy.abs({self._print(expr.args[0])})"


def _np(expr: sp.Expr) -> str:
    expr = sp.sympify(expr)
    if expr == 0:
        return "np.zeros_like(z)"
    return _ActivationPrinter().doprint(expr).replace("numpy.", "np.")


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
                value=_np(value),
                first=_np(first),
                second_form=_np(second),
            )
        )
    table = ", ".join(f'"{n}": {n}' for n in acts.names())
    vanishing = ", ".join(f'"{n}"' for n in acts.names() if acts.get(n).second_vanishes)
    parts.append(T.ACTIVATIONS_TAIL.format(table=table, vanishing=vanishing))
    return "\n\n".join(parts).rstrip() + "\n"


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
        return f"_read({ops[base]}, ({', '.join(idx)},))"
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


def entrywise_source(name: str, number: str, which: str = "form") -> str:
    """A NumPy kernel for an entry-wise (conditional) conv form.

    The kernel takes the operand arrays, the strides ``sigma``, ``tau`` and the extent
    ``n_<index>`` of every free index; per-sample operands have a leading batch axis.
    Reads outside an operand's extent give NaN (the form is undefined there), so a
    printed form with a missing bound shows up as NaN entries.
    """
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
        shape = gen._WIDTH[b.split("(")[0]]([])
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


_READ = '''\
def _read(arr, index):
    """``arr[index]`` for broadcast integer index grids; NaN where an index is outside
    ``arr`` (an entry-wise form read there: undefined)."""
    index = np.broadcast_arrays(*index)
    inside = np.ones(index[0].shape, dtype=bool)
    clipped = []
    for ix, size in zip(index, arr.shape, strict=True):
        inside &= (ix >= 0) & (ix < size)
        clipped.append(np.clip(ix, 0, size - 1))
    return np.where(inside, arr[tuple(clipped)], np.nan)
'''

# --------------------------------------------------------------------------- kernel lists
_B1_COMMON = [
    KernelSpec("eq10_preactivation", "10", labels=("k",)),
    KernelSpec("eq13_logits", "13"),
]
_CHAINS = [
    KernelSpec("eq19_gamma", "19", labels=("k",)),
    KernelSpec("eq20_beta", "20", labels=("k",)),
    KernelSpec(
        "eq22_compose",
        "22",
        which="printed",
        labels=("k", "l", "m"),
        note="Called only inside the corrected bound m <= l <= k.",
    ),
    KernelSpec("eq23_eta", "23", labels=("k", "l")),
    KernelSpec("eq67_lambda", "67", labels=("l",)),
]
_PARTS_77 = [
    "far_term",
    "far_term_printed",
    "lambda_term_q_gt_k",
    "eta_term_q_gt_k",
    "lambda_term_q_eq_k",
    "lambda_term_q_lt_k",
    "eta_term_q_lt_k",
]
_PRINTED_NOTE = (
    "PRINTED row of Eqs 75 and 77 (q < k): eta^(r-1,k) v^(k-1) in place of eta^(r-1,q) "
    "v^(q-1); evidence only (it fits only when the widths agree)."
)


def _labels(part: str) -> tuple[str, ...]:
    return ("k", "q", "r") if part.startswith("far") else ("k", "q")


GENERAL_MLP = [
    *_B1_COMMON,
    *_CHAINS,
    KernelSpec("eq27_grad_u", "27", reduces=SM),
    KernelSpec("eq28_grad_w", "28", labels=("k",), reduces=SM),
    KernelSpec("eq78_hessian_uu", "78", reduces=SMP),
    KernelSpec("eq79_hessian_uw", "79", labels=("k",), reduces=SMP),
    KernelSpec("eq80_gauss_newton", "80", part="gauss_newton", labels=("k", "q"), reduces=SMP),
    *[
        KernelSpec(
            f"eq77_{part}",
            "77",
            part=part,
            labels=_labels(part),
            note=_PRINTED_NOTE if part.endswith("printed") else "",
        )
        for part in _PARTS_77
    ],
    *[
        KernelSpec(
            f"eq75_{part}",
            "75",
            part=part,
            labels=_labels(part),
            note=_PRINTED_NOTE if part.endswith("printed") else "",
        )
        for part in _PARTS_77
        if part != "eta_term_q_lt_k"
    ],
    *[
        KernelSpec(
            f"eq80_{part}",
            "80",
            part=part,
            labels=_labels(part),
            reduces=SMP,
            note=_PRINTED_NOTE if part.endswith("printed") else "",
        )
        for part in _PARTS_77
    ],
    # contracted forms: adjoint (C10, C3), tangent (C4, C5), C6, C7 and C11's new term
    KernelSpec("c10_adjoint_v_top", "C10", labels=("k",), branch=0),
    KernelSpec("c10_adjoint_v_step", "C10", labels=("k",), branch=1),
    KernelSpec("c3_grad_w", "C3", labels=("k",), reduces=SM),
    KernelSpec("c4_tangent_source", "C4", part="source", labels=("k",)),
    KernelSpec("c4_tangent_propagate", "C4", part="propagate", labels=("k",)),
    KernelSpec("c5_omega_term", "C5", part="omega_term"),
    KernelSpec("c5_u_term", "C5", part="u_term"),
    KernelSpec("c6_g_dot_grad", "C6", reduces=SM),
    KernelSpec("c7_pdot_term", "C7", part="pdot_term", reduces=SM),
    KernelSpec("c7_output_term", "C7", part="output_term", reduces=SM),
    KernelSpec("c7_layer_term", "C7", part="layer_term", labels=("k",), reduces=SM),
    KernelSpec("c11_second_order_term", "C11", part="second_order_term", labels=("k",), reduces=SM),
    KernelSpec("l1_lowrank_tangent_source", "L1", labels=("k",), reduces=("none",)),
    KernelSpec("l2_lowrank_output_source", "L2", reduces=("none",)),
    KernelSpec("l3_lowrank_curvature", "L3", labels=("k",), reduces=("none",)),
    KernelSpec("l4_lowrank_output_curvature", "L4", reduces=("none",)),
    KernelSpec("eq40_u_sq_norm", "40", part="u_sq_norm", reduces=("none",)),
    KernelSpec("eq40_w_sq_norm", "40", part="w_sq_norm", labels=("k",), reduces=("none",)),
]

CONV2D = [
    KernelSpec("eq46mc_preactivation", "46.mc"),
    KernelSpec("eq47mc_dv_dx", "47.mc"),
    KernelSpec("eq49mc_dv_dw", "49.mc"),
    KernelSpec("eq50mc_d2v_dxdx", "50.mc"),
    KernelSpec("eq51mc_d2v_dwdx", "51.mc"),
    KernelSpec("eq52mc_d2v_dwdw", "52.mc"),
    KernelSpec("eq46_preactivation", "46"),
    KernelSpec("eq47_dv_dx", "47"),
    KernelSpec("eq49_dv_dw", "49"),
    KernelSpec("eq50_d2v_dxdx", "50"),
    KernelSpec("eq51_d2v_dwdx", "51"),
    KernelSpec("eq52_d2v_dwdw", "52"),
    KernelSpec("c12_conv_tangent", "C12"),
    KernelSpec("c13_conv_grad_w", "C13", reduces=SM),
    KernelSpec("c14_conv_second_order_term", "C14", reduces=SM),
]
CONV2D_ENTRYWISE = [
    ("eq45_patch_entrywise", "45", "form"),
    ("eq48_dz_dx_entrywise", "48", "form"),
    ("eq53_dv_dw_entrywise", "53", "form"),
    ("eq54_dv_dx_entrywise", "54", "form"),
    ("eq54_dv_dx_entrywise_printed", "54", "printed"),
    ("eq55_d2v_dwdw_entrywise", "55", "form"),
    ("eq56_d2v_dwdx_entrywise", "56", "form"),
    ("eq56_d2v_dwdx_entrywise_printed", "56", "printed"),
    ("eq57_d2v_dxdx_entrywise", "57", "form"),
    ("eq57_d2v_dxdx_entrywise_printed", "57", "printed"),
]

RECURRENT = [
    KernelSpec("eq10_preactivation", "10", labels=("k",)),
    *_CHAINS,
    KernelSpec("eq61_term", "61", part="term", labels=("t", "k")),
    KernelSpec("eq62_dv_dx", "62", labels=("t",)),
    KernelSpec("eq63_pair_term", "63", part="pair_term", labels=("t", "k", "p")),
    KernelSpec(
        "eq63_pair_term_printed",
        "63",
        part="pair_term_printed",
        labels=("t", "k", "p"),
        note="PRINTED Eq 63: twice the p < k term (evidence only).",
    ),
    KernelSpec("eq64g_term", "64.g", part="term", labels=("t", "r")),
    KernelSpec("eq65_first_term", "65", part="first_term", labels=("t",)),
    KernelSpec("eq65_sum_term", "65", part="sum_term", labels=("t", "k")),
    KernelSpec("eq65g_w_term", "65.g", part="w_term", labels=("t", "k")),
    *[
        KernelSpec(f"eq75_{part}", "75", part=part, labels=_labels(part))
        for part in _PARTS_77
        if part not in ("far_term_printed", "eta_term_q_lt_k")
    ],
    *[
        KernelSpec(f"eq77_{part}", "77", part=part, labels=_labels(part))
        for part in _PARTS_77
        if part != "far_term_printed"
    ],
]

CONV_MLP = [
    KernelSpec("eq46mc_preactivation", "46.mc"),
    *_B1_COMMON,
    KernelSpec("c1_adjoint_top", "C1"),
    KernelSpec("c2_adjoint_step", "C2", labels=("k",)),
    KernelSpec("c10_adjoint_v_step", "C10", labels=("k",), branch=1),
    KernelSpec("c3_grad_w", "C3", labels=("k",), reduces=SM),
    KernelSpec("eq27_grad_u", "27", reduces=SM),
    KernelSpec("c12_conv_tangent", "C12"),
    KernelSpec("c13_conv_grad_w", "C13", reduces=SM),
    KernelSpec("c14_conv_second_order_term", "C14", reduces=SM),
    KernelSpec("c4_tangent_source", "C4", part="source", labels=("k",)),
    KernelSpec("c4_tangent_propagate", "C4", part="propagate", labels=("k",)),
    KernelSpec("c5_omega_term", "C5", part="omega_term"),
    KernelSpec("c5_u_term", "C5", part="u_term"),
    KernelSpec("c6_g_dot_grad", "C6", reduces=SM),
    KernelSpec("c7_pdot_term", "C7", part="pdot_term", reduces=SM),
    KernelSpec("c7_output_term", "C7", part="output_term", reduces=SM),
    KernelSpec("c7_layer_term", "C7", part="layer_term", labels=("k",), reduces=SM),
]

_IMPORTS = (
    "from typing import NamedTuple\n\nimport numpy as np\n\n"
    "from numeric.kernels import activations\n"
    "from numeric.kernels._runtime import {names}\n"
)


def _numbers(kernels, extra=()) -> list[str]:
    return [k.equation for k in kernels] + list(extra)


def _conv_extra() -> str:
    src = [_READ] + [entrywise_source(name, num, which) for name, num, which in CONV2D_ENTRYWISE]
    return "\n\n".join(src)


def _general_extra() -> str:
    return gen._cr_source()


_SRC_B3 = "derive/equations/general_activation.py, feedforward_relu.py, contracted.py"
MODULES: list[ModuleSpec] = [
    ModuleSpec(
        "numeric/kernels/activations.py",
        _header(
            "Entry-wise activations and their first two derivatives (Appendix B.3).",
            T.ACTIVATIONS_BODY,
            [],
            "import numpy as np\n\n__all__ = ["
            + ", ".join(f'"{n}"' for n in [*acts.names(), "ACTIVATIONS", "get", "names"])
            + "]",
            "derive/activations.py",
        ),
        [],
        "",
        activation_source,
    ),
    ModuleSpec(
        "numeric/kernels/general_mlp.py",
        _header(
            "NumPy kernels for the feedforward network with a general activation "
            "(Appendix B.3, Eqs 66-80).",
            T.GENERAL_BODY,
            _numbers(GENERAL_MLP),
            _IMPORTS.format(names="check_direction, check_labels, check_network, einsum, eye"),
            _SRC_B3,
        ),
        GENERAL_MLP,
        T.GENERAL_DRIVERS,
        _general_extra,
    ),
    ModuleSpec(
        "numeric/kernels/conv2d.py",
        _header(
            "NumPy kernels for one convolutional layer (Appendix B.2.1, Eqs 44-57).",
            T.CONV_BODY,
            _numbers(CONV2D, [n for _, n, _ in CONV2D_ENTRYWISE]),
            _IMPORTS.format(names="einsum, eye"),
            "derive/equations/convolution.py",
        ),
        CONV2D,
        T.CONV_DRIVERS,
        _conv_extra,
    ),
    ModuleSpec(
        "numeric/kernels/recurrent.py",
        _header(
            "NumPy kernels for the recurrent layer (Appendix B.2.2, Eqs 58-65).",
            T.RECURRENT_BODY,
            _numbers(RECURRENT),
            _IMPORTS.format(names="einsum, eye"),
            "derive/equations/recurrent.py, general_activation.py, feedforward_relu.py",
        ),
        RECURRENT,
        T.RECURRENT_DRIVERS,
    ),
    ModuleSpec(
        "numeric/kernels/conv_mlp.py",
        _header(
            "NumPy kernels for a conv layer stacked on ReLU layers and a softmax output.",
            T.CONV_MLP_BODY,
            _numbers(CONV_MLP),
            _IMPORTS.format(names="einsum"),
            "derive/equations/convolution.py, contracted.py, feedforward_relu.py",
        ),
        CONV_MLP,
        T.CONV_MLP_DRIVERS,
    ),
]
