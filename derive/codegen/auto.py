"""Print the auto-derived forms (registry ``A.<layer>.<part>``) as ``einsum`` kernels.

The forms of :mod:`derive.auto` index the sample explicitly (``zbar[m, j]``), may hold
*opaque* factors (``(s[m] + epsilon)**(-3/2)``: a smooth function of entries that share
one index pattern) and coefficients in the extents of their indices (``1/n_f``) and in
declared constants (``epsilon``).  :class:`AutoPrinter` prints one such form:

* every term of :func:`derive.auto.algebra.flatten` is one ``einsum`` call through
  :func:`numeric.kernels._runtime.einsum` (both backends); an opaque factor is printed
  entry-wise in the namespace ``xp`` (:class:`~derive.codegen.elementwise.XpPrinter`)
  and enters the call as one more operand;
* a term that lacks a free index (``vdot[m, j] - mudot[m]``) is broadcast along it;
* an extent symbol becomes the length of an operand's axis (``n_f = v.shape[1]``), the
  batch ``B`` that of the sample axis, and any other symbol a keyword argument;
* gradients and second-order terms (per sample) also offer ``reduce="mean"``, the batch
  mean of the per-sample form (``F = E[f]``, Eq 16); a scalar one sums the per-sample
  values.

What it cannot print it refuses with :class:`AutoCodegenError`, naming the form: a
Kronecker delta left between two free indices, an opaque factor mixing index patterns,
a form with no term that carries all its free indices.

:data:`AUTO_LAYERS` names the layers whose forms are generated (those with no
hand-encoded kernels: the re-derived dense and logits layers are proved equal to the
C-forms that :mod:`numeric.kernels.contracted` already prints).  Per layer every form
is printed except the batch gradients ``<p>bar_batch`` (the same sum as the gradient's
``reduce="mean"``) and the per-statement second-order terms ``curv_<t>`` (their sum is
the form ``curvature``, which is what a layer needs).
"""

from __future__ import annotations

import textwrap

import sympy as sp

from derive.auto.algebra import UPPER, flatten, free_indices, plain
from derive.auto.deriver import BATCH, Derivation, DerivedForm
from derive.codegen.elementwise import XpPrinter

__all__ = ["AUTO_LAYERS", "AutoCodegenError", "AutoPrinter", "auto_forms", "auto_source"]

#: layers whose auto-derived forms are printed into ``numeric/kernels/auto_derived.py``
AUTO_LAYERS = ("residual", "layernorm", "attention")
#: form kinds that offer ``reduce="mean"`` (per-sample quantities a batch mean is taken of)
_REDUCIBLE = ("gradient", "second order")
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


class AutoCodegenError(ValueError):
    """An auto-derived form the printer cannot print (it names the form and why)."""


def _derivation(layer: str) -> Derivation:
    from derive.equations.auto import DERIVATIONS

    return DERIVATIONS[layer]


def auto_forms(layer: str) -> list[DerivedForm]:
    """The forms of ``layer`` that are printed, in derivation order."""
    out = []
    for part, form in _derivation(layer).forms.items():
        if form.kind == "batch gradient" or part.startswith("curv_"):
            continue
        out.append(form)
    return out


def _axes(deriv: Derivation) -> dict[str, tuple[str, ...]]:
    """``array name -> its index names``: declared tensors, their adjoints (``zbar``),
    tangents (``zdot``, ``phi``) and the activation values (``a1``, ``a2``)."""
    layer = deriv.layer
    out: dict[str, tuple[str, ...]] = {}
    for t in (*layer.params, layer.input, *layer.intermediates):
        out[t.name] = out[t.bar] = out[t.dot] = t.indices
    for quantity, names in deriv.activation_names.items():
        for name in names:
            out[name] = layer.tensor(quantity).indices
    return out


def _extent_axes(deriv: Derivation) -> dict[sp.Symbol, tuple[str, ...]]:
    """``extent symbol -> the declared index names it is the extent of``."""
    layer = deriv.layer
    inverse: dict[sp.Symbol, list[str]] = {BATCH: [layer.sample]}
    for index, symbol in layer.extents.items():
        inverse.setdefault(symbol, []).append(index)
    return {s: tuple(v) for s, v in inverse.items()}


class AutoPrinter:
    """Print one auto-derived form of a :class:`~derive.auto.deriver.Derivation`."""

    def __init__(self, deriv: Derivation):
        self.deriv = deriv
        self.axes = _axes(deriv)
        self.extents = _extent_axes(deriv)
        self.sample = deriv.layer.sample

    # ------------------------------------------------------------------ factors
    def _factor(self, form: DerivedForm, f: sp.Expr) -> tuple[str, tuple[str, ...]]:
        """``(source, index names)`` of one factor of a term."""
        if isinstance(f, sp.Indexed):
            return str(f.base.label), tuple(str(i) for i in f.indices)
        if isinstance(f, sp.KroneckerDelta):
            raise AutoCodegenError(
                f"{form.part}: a Kronecker delta {f} between free indices is left after "
                "elimination; the printer does not print identities"
            )
        patterns = {tuple(str(i) for i in e.indices) for e in f.atoms(sp.Indexed)}
        if len(patterns) != 1:
            raise AutoCodegenError(
                f"{form.part}: the factor {plain(f)} mixes the index patterns "
                f"{sorted(patterns)}; declare its argument as a quantity of its own"
            )
        sub = {e: sp.Symbol(str(e.base.label)) for e in f.atoms(sp.Indexed)}
        return "(" + XpPrinter().doprint(f.xreplace(sub)) + ")", patterns.pop()

    def operands(self, form: DerivedForm) -> list[str]:
        """Array arguments of the kernel, sorted by name."""
        names = {str(e.base.label) for e in sp.sympify(form.expr).atoms(sp.Indexed)}
        return sorted(names)

    def constants(self, form: DerivedForm) -> list[str]:
        """Symbols of the form that are neither extents nor indices (``epsilon``)."""
        expr = sp.sympify(form.expr)
        idx = {str(i) for e in expr.atoms(sp.Indexed) for i in e.indices}
        out = set()
        for s in expr.free_symbols:
            if isinstance(s, sp.Idx) or str(s) in idx or s in self.extents or s == UPPER:
                continue
            if isinstance(s, sp.Symbol) and not isinstance(s, sp.Indexed):
                out.add(str(s))
        return sorted(out - {str(b) for b in expr.atoms(sp.IndexedBase)})

    def _extent_source(self, form: DerivedForm, symbol: sp.Symbol) -> str:
        names = set(self.extents[symbol])
        for arr in self.operands(form):
            axes = self.axes.get(arr, ())
            for pos, index in enumerate(axes):
                if index in names:
                    return f"{arr}.shape[{pos}]"
        raise AutoCodegenError(f"{form.part}: no operand carries an axis of extent {symbol}")

    # ------------------------------------------------------------------ terms
    def _term(self, form: DerivedForm, term, out: tuple[str, ...]) -> str:
        if not term.factors:
            raise AutoCodegenError(f"{form.part}: a term with no array factor ({term})")
        sources, subs = [], []
        for f in term.factors:
            src, ids = self._factor(form, f)
            sources.append(src)
            subs.append(ids)
        present = free_indices(term)
        kept = tuple(i for i in out if i in present)
        letters: dict[str, str] = {}
        for ids in (*subs, kept):
            for name in ids:
                letters.setdefault(name, _LETTERS[len(letters)])
        spec = ",".join("".join(letters[n] for n in ids) for ids in subs)
        spec += "->" + "".join(letters[n] for n in kept)
        if len(subs) == 1 and subs[0] == kept:
            call = sources[0]  # the operand itself: no contraction, no transpose
        else:
            call = f'einsum("{spec}", {", ".join(sources)})'
        if kept != out:
            call += "[" + ", ".join(":" if i in kept else "None" for i in out) + "]"
        coeff = sp.sympify(term.coefficient)
        if coeff == 1:
            return call
        if coeff == -1:
            return f"-{call}"
        return f"{sp.pycode(coeff)} * {call}"

    def body(self, form: DerivedForm, reduce: str) -> str:
        """The returned expression for one reduction (``"sample"`` or ``"mean"``)."""
        free = tuple(form.free)
        out = free if reduce == "sample" else tuple(i for i in free if i != self.sample)
        if reduce == "mean" and not out:
            # a batch mean of per-sample scalars: the per-sample contractions, then one sum
            # (a contraction straight to a scalar took a much slower pairwise path here)
            text = self.body(form, "sample")
            text = text if text.startswith("(") else f"({text})"
            return f"{text}.sum() / {self._extent_source(form, BATCH)}"
        terms = [t for t in flatten(form.expr) if t.coefficient != 0]
        if not terms:
            raise AutoCodegenError(f"{form.part}: the form is zero; nothing to print")
        if not any(set(out) <= free_indices(t) for t in terms):
            raise AutoCodegenError(
                f"{form.part}: no term carries all of the free indices {out}; its shape "
                "would not follow from its operands"
            )
        parts = [self._term(form, t, out) for t in terms]
        if len(parts) == 1:
            text = parts[0]
        else:
            lines = [parts[0]] + [("- " + p[1:]) if p.startswith("-") else ("+ " + p)
                                  for p in parts[1:]]  # fmt: skip
            text = "(\n" + "\n".join("    " + ln for ln in lines) + "\n)"
        if reduce == "mean":
            text = f"{text} / {self._extent_source(form, BATCH)}"
        return text

    def reduces(self, form: DerivedForm) -> tuple[str, ...]:
        if form.kind in _REDUCIBLE and form.free and form.free[0] == self.sample:
            return ("sample", "mean")
        return ("sample",)

    # ------------------------------------------------------------------ function
    def source(self, form: DerivedForm, registry_number: str) -> str:
        """Source of the kernel function ``<layer>_<part>``."""
        layer = self.deriv.layer
        name = f"{layer.name}_{form.part}"
        ops = self.operands(form)
        consts = self.constants(form)
        modes = self.reduces(form)
        bodies = {mode: self.body(form, mode) for mode in modes}
        used = set()
        for text in bodies.values():
            for symbol in self.extents:
                if _uses(text, str(symbol)):
                    used.add(symbol)
        params = [*ops, *consts] + ([f"reduce: str = {modes[0]!r}"] if len(modes) > 1 else [])
        sig = f"def {name}({', '.join(params)})"
        if len(sig) > 96:
            sig = f"def {name}(\n" + "".join(f"    {p},\n" for p in params) + ")"
        doc = [f"{registry_number} (auto-derived): {form.title}."]
        if form.rank_note:
            doc.append(f"Low-rank structure: {form.rank_note}.")
        doc += ["", f"Derived from the forward rule of ``{layer.name}`` ({layer.title}):", ""]
        doc += ["    " + line for line in layer.forward_text()]
        doc += ["", "Index form::", "", f"    {form.target}[{', '.join(form.free)}] = "]
        doc += ["        " + line for line in textwrap.wrap(plain(form.expr), 76)]
        doc += ["", "Parameters", "----------"]
        for op in ops:
            doc.append(f"{op} : ndarray, axes ({', '.join(self.axes.get(op, ('?',)))})")
        for c in consts:
            doc.append(f"{c} : float")
        if len(modes) > 1:
            doc.append("reduce : {'sample', 'mean'}")
            doc.append("    'sample': per sample; 'mean': the batch mean (F = E[f]).")
        doc += ["", "Returns", "-------"]
        free = ", ".join(form.free) or "scalar"
        rest = ", ".join(i for i in form.free if i != self.sample) or "scalar"
        if len(modes) > 1:
            doc.append(f"ndarray: axes ({free}) per sample, ({rest}) reduced.")
        else:
            doc.append(f"ndarray: axes ({free}).")
        docstring = textwrap.indent('"""' + "\n".join(doc).rstrip() + '\n"""', "    ")
        docstring = "\n".join(line.rstrip() for line in docstring.splitlines())
        lines = [sig + ":", docstring]
        if any(_uses(t, "xp") for t in bodies.values()):
            lines.append(f"    xp = namespace({ops[0]})")
        for symbol in sorted(used, key=str):
            lines.append(f"    {symbol} = {self._extent_source(form, symbol)}")
        if len(modes) > 1:
            for mode in modes:
                lines.append(f"    if reduce == {mode!r}:")
                lines.append("        return " + bodies[mode].replace("\n", "\n        "))
            lines.append(
                f'    raise ValueError(f"reduce must be one of {list(modes)}, got {{reduce!r}}")'
            )
        else:
            lines.append("    return " + bodies[modes[0]].replace("\n", "\n    "))
        return "\n".join(lines) + "\n"


def _uses(text: str, name: str) -> bool:
    import re

    return re.search(rf"(?<![\w.]){re.escape(name)}\b", text) is not None


def auto_source() -> str:
    """The functions of ``numeric/kernels/auto_derived.py``: every printed form of every
    layer of :data:`AUTO_LAYERS`, each once."""
    from derive.equations.auto import number
    from derive.registry import get

    parts = []
    for layer in AUTO_LAYERS:
        printer = AutoPrinter(_derivation(layer))
        for form in auto_forms(layer):
            num = number(layer, form.part)
            get(num)  # the registry holds it (a KeyError otherwise)
            parts.append(printer.source(form, num))
    return "\n\n".join(parts)


def auto_numbers() -> list[str]:
    """Registry numbers of the printed forms, in module order."""
    from derive.equations.auto import number

    return [number(layer, f.part) for layer in AUTO_LAYERS for f in auto_forms(layer)]
