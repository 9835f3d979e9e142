"""A printer from index forms to NumPy ``einsum`` source.

SymPy 1.14's own route (``convert_indexed_to_array`` then the NumPy printer) is
right for simple contractions but, for the forms of this paper, it

* reads a repeated index without an explicit ``Sum`` as a diagonal,
* drops a symbolic divisor (``/B``),
* raises when a free batch index meets a contraction,
* orders output axes by internal factor order unless told otherwise, and
* prints ``einsum`` without ``optimize`` (no BLAS; an 8-operand Hessian kernel is
  over 1000 times slower than with ``optimize="greedy"``).

So this printer works from :func:`derive.indexform.terms` instead: every
contraction is an explicit ``Sum``, the output axes are the equation's free indices
in order, a per-sample batch axis ``b`` is added to per-sample tensors, and each
call goes through :func:`numeric.kernels._runtime.einsum`, which caches an
optimized contraction path for NumPy arrays and hands JAX arrays to
``jax.numpy.einsum`` (one printed kernel, two backends).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sympy as sp

from derive.indexform import Term, einsum_spec, terms
from derive.notation import FAMILIES

__all__ = ["EinsumPrinter", "argname", "Operand"]


def argname(base: str) -> str:
    """Python argument name for a base: ``eta(r-1,k)`` -> ``eta_rm1_k``."""
    name = base.replace("-", "m").replace("+", "p").replace(",", "_")
    name = re.sub(r"[()\s]", "_", name).strip("_")
    return re.sub(r"_+", "_", name)


def _family(base: str):
    return FAMILIES[base.split("(", 1)[0]]


@dataclass(frozen=True)
class Operand:
    """One argument of a generated kernel."""

    base: str
    name: str
    per_sample: bool


class EinsumPrinter:
    """Print an index-form expression as a NumPy expression of ``einsum`` calls.

    Parameters
    ----------
    reduce : {"sample", "mean", "printed", "none"}
        ``sample``: per-sample result with a leading batch axis.  ``mean``: batch
        mean of the per-sample products (``F = E[f]``, Eq 16).  ``printed``: the
        literal reading of ``dF/dp * v`` as a product of batch means (evidence for
        the ``batch-average`` errata; never used by training).  ``none``: no
        implicit batch axis (forms that index samples explicitly).
    """

    def __init__(self, reduce: str = "sample", stacked: bool = False):
        if reduce not in ("sample", "mean", "printed", "none"):
            raise ValueError(f"unknown reduce mode {reduce!r}")
        self.reduce = reduce
        self.stacked = stacked

    # -------------------------------------------------------------- helpers
    def operands(self, expr: sp.Expr, free: tuple[str, ...]) -> list[Operand]:
        """Distinct bases of ``expr`` in first-use order."""
        seen: dict[str, Operand] = {}
        for term in terms(expr, free):
            for f in term.factors:
                if f.base is not None and f.base not in seen:
                    fam = _family(f.base)
                    seen[f.base] = Operand(f.base, argname(f.base), fam.per_sample)
        return list(seen.values())

    def _batched(self, ops: list[Operand]) -> set[str]:
        if self.reduce == "none":
            return set()
        return {o.base for o in ops if o.per_sample}

    def _operand_source(self, base: str, ops: dict[str, Operand]) -> str:
        op = ops[base]
        if self.reduce == "printed" and op.per_sample:
            return f"{op.name}.mean(axis=0)"
        return op.name

    def _delta_source(
        self, term: Term, index: str, ops: dict[str, Operand], batched: set[str]
    ) -> str:
        for f in term.factors:
            if f.base is not None and index in f.indices:
                axis = f.indices.index(index) + (1 if f.base in batched else 0)
                name = ops[f.base].name
                return f"eye_like({name}, {axis})"
        raise ValueError(f"cannot size the delta over {index}")

    def term_source(self, term: Term, free: tuple[str, ...], ops: dict[str, Operand]) -> str:
        """Source of one term (without the batch-mean division)."""
        batched = self._batched(list(ops.values()))
        if self.reduce == "printed":
            batched_spec: set[str] = set()
        else:
            batched_spec = batched
        factors = []
        sources = []
        for f in term.factors:
            if f.base is None:
                a, b = f.indices
                sources.append(self._delta_source(term, a, ops, batched))
                factors.append(type(f)("__delta__", f.indices))
            else:
                sources.append(self._operand_source(f.base, ops))
                factors.append(f)
        t = Term(term.coefficient, tuple(factors), term.summed)
        spec, _ = einsum_spec(t, free, batched_spec, batch_out=self.reduce == "sample")
        if self.stacked:
            spec = self._stack(spec, t)
        call = f'einsum("{spec}", {", ".join(sources)})'
        coeff = sp.sympify(term.coefficient)
        if coeff == 1:
            return call
        if coeff == -1:
            return f"-{call}"
        return f"{sp.pycode(coeff)} * {call}"

    @staticmethod
    def _stack(spec: str, term: Term) -> str:
        """Prefix a layer axis ``K`` to every layer-labelled operand and the output."""
        ins, out = spec.split("->")
        subs = ins.split(",")
        new = []
        for sub, f in zip(subs, term.factors, strict=True):
            labelled = f.base is not None and "(" in f.base
            new.append(("K" + sub) if labelled else sub)
        return ",".join(new) + "->K" + out

    def source(self, expr: sp.Expr, free: tuple[str, ...]) -> tuple[str, list[Operand]]:
        """Source of the whole expression and the operands it reads."""
        ops = self.operands(expr, free)
        opmap = {o.base: o for o in ops}
        tlist = terms(expr, free)
        parts = [self.term_source(t, free, opmap) for t in tlist]
        if len(parts) == 1:
            body = parts[0]
        else:
            lines = [parts[0]] + [
                ("- " + p[1:]) if p.startswith("-") else ("+ " + p) for p in parts[1:]
            ]
            body = "(\n" + "\n".join("    " + ln for ln in lines) + "\n)"
        if self.reduce == "mean":
            first = next(o for o in ops if o.per_sample)
            if len(parts) == 1:
                body = f"{body} / {first.name}.shape[0]"
            else:
                body = f"{body} / {first.name}.shape[0]"
        return body, ops
