"""Symbolic self-checks: every index form against an independent reference.

For each equation with a check, both its printed and its corrected form are
expanded into explicit scalars at concrete sizes and compared entry by entry with
derivatives of the explicit network (:mod:`derive.explicit`):

* ``symbolic`` mode: fully symbolic, reference by :func:`sympy.diff`; the difference
  of the two sides must expand to 0 (a proof at that size).
* ``rational`` mode: larger, unequal widths; everything is a random rational, the
  reference is exact second-order forward mode; both sides are polynomials in the
  free values, so agreement is a sound probabilistic proof and disagreement an exact
  counterexample.

Each equation carries its check (:attr:`derive.forms.Equation.selfcheck`, built in
:mod:`derive.references` and :mod:`derive.layer_checks`); this module runs it.

Equations printed with ``F = E[f]`` (erratum kind ``batch-average``) get a second
verdict: their form read literally on a mini-batch, as a product of batch means of its
per-sample factors, against the batch mean of the per-sample values
(:func:`check_batch_reading`).  The per-sample verdict says whether the formula holds
for one sample; the batch verdict whether it holds for ``F`` as printed.

Verdicts: ``proved``, ``disproved`` (with a counterexample), ``not checkable``
(with the reason), ``definition``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import sympy as sp

from derive.checking import DEFAULT_SIZES, Context, OutsideValidity, Verdict, accepted
from derive.explicit import Sizes
from derive.forms import Equation, Form
from derive.indexform import IndexFormError, terms
from derive.layer_checks import evaluate_fast
from derive.registry import all_equations

__all__ = [
    "Context",
    "DEFAULT_SIZES",
    "Row",
    "Verdict",
    "check_batch_reading",
    "check_equation",
    "check_form",
    "run_checks",
]

#: samples of the mini-batch on which the batch readings are checked
BATCH_SAMPLES = 2


def _equal(ctx: Context, a, b) -> bool:
    diff = a - b
    if ctx.mode == "rational":
        return sp.nsimplify(diff) == 0
    return sp.expand(diff) == 0


def _lhs(eq: Equation, ctx: Context, form: Form, lab: dict) -> np.ndarray:
    sc = eq.selfcheck
    if sc.lhs is not None:
        return sc.lhs(ctx, form, lab)
    sizes = sc.sizes(ctx, lab) if sc.sizes is not None else None
    return ctx.evaluate(form, lab, sizes)


def _first_difference(ctx: Context, lhs, ref, lab: dict, start: float, cases: int):
    """``(verdict, cases)``: a disproof at the first differing entry, or ``None``."""
    lhs = np.asarray(lhs, dtype=object)
    ref = np.asarray(ref, dtype=object)
    if lhs.shape != ref.shape:
        return (
            Verdict(
                "disproved",
                f"shape {lhs.shape} != reference {ref.shape} at {lab}",
                cases,
                time.perf_counter() - start,
                {"labels": lab},
            ),
            cases,
        )
    for pos in np.ndindex(*lhs.shape) if lhs.shape else [()]:
        cases += 1
        if not _equal(ctx, lhs[pos], ref[pos]):
            ce = {
                "labels": lab,
                "entry": list(pos),
                "form": str(lhs[pos]),
                "reference": str(ref[pos]),
            }
            return (
                Verdict(
                    "disproved",
                    f"at labels {lab}, entry {list(pos)}: {ce['form']} != {ce['reference']}",
                    cases,
                    time.perf_counter() - start,
                    ce,
                ),
                cases,
            )
    return None, cases


def check_form(eq: Equation, form: Form, ctx: Context) -> Verdict:
    """Check one form of ``eq`` at every label set of the context's depth."""
    start = time.perf_counter()
    cases = 0
    skipped = 0
    for lab in eq.label_sets(ctx.sizes.n):
        try:
            lhs = _lhs(eq, ctx, form, lab)
        except OutsideValidity:
            skipped += 1
            continue
        except IndexFormError as err:
            return Verdict(
                "disproved",
                f"cannot be evaluated at {lab}: {err}",
                cases,
                time.perf_counter() - start,
                {"labels": lab, "error": str(err)},
            )
        ref = eq.selfcheck.reference(ctx, lab)
        verdict, cases = _first_difference(ctx, lhs, ref, lab, start, cases)
        if verdict is not None:
            return verdict
    detail = f"{cases} entries"
    if skipped:
        detail += f"; {skipped} label sets outside the stated bound"
    return Verdict("proved", detail, cases, time.perf_counter() - start)


def check_equation(eq: Equation, ctx: Context, which: str) -> Verdict:
    """Check the ``printed`` or ``corrected`` form of ``eq`` in context ``ctx``."""
    sc = eq.selfcheck
    if sc is None:
        if eq.role == "definition":
            return Verdict(
                "definition", "defines the network or the update; used by the references"
            )
        return Verdict("not checkable", "no self-check")
    if sc.run is not None:
        return sc.run(eq, ctx, which)
    form = getattr(eq, which)
    if form is None:
        if which == "printed" and eq.erratum is not None:
            return Verdict(
                "not checkable", f"cannot be implemented as printed; read as {eq.erratum.reading}"
            )
        return Verdict("not checkable", "no such form")
    return check_form(eq, form, ctx)


def _at_random_point(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Both arrays at one random rational point of their free symbols, when they differ
    there (an exact counterexample, found without expanding the symbolic difference);
    otherwise unchanged (the symbolic comparison then decides)."""
    a, b = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    symbols = set()
    for x in (*a.ravel(), *b.ravel()):
        symbols |= sp.sympify(x).free_symbols
    rng = random.Random(0)
    point = {
        x: sp.Rational(rng.randint(-40, 40), rng.randint(1, 17)) for x in sorted(symbols, key=str)
    }
    at_a = np.vectorize(lambda x: sp.sympify(x).xreplace(point), otypes=[object])(a)
    at_b = np.vectorize(lambda x: sp.sympify(x).xreplace(point), otypes=[object])(b)
    if any(sp.nsimplify(x - y) != 0 for x, y in zip(at_a.ravel(), at_b.ravel(), strict=True)):
        return at_a, at_b, True
    return a, b, False


def has_batch_reading(eq: Equation) -> bool:
    """Whether ``eq`` is printed with ``F = E[f]`` read as a product of batch means."""
    return eq.erratum is not None and "batch-average" in eq.erratum.kinds


def check_batch_reading(eq: Equation, contexts: list[Context]) -> Verdict:
    """The printed form read on a mini-batch, against the batch mean of its values.

    ``contexts`` are samples of one network (:class:`Context` with ``sample = 0, 1,
    ...``).  The literal reading replaces every factor of the form by its batch mean
    (``dF/dp`` for ``df/dp``, and so on for ``v``, ``eta``, ...); ``F = E[f]`` needs the
    batch mean of the per-sample products.  The form checked is the printed one, or the
    corrected one when the printed one cannot be evaluated at all (Table 2).
    """
    start = time.perf_counter()
    forms = [(w, getattr(eq, w)) for w in ("printed", "corrected") if getattr(eq, w) is not None]
    for which, form in forms:
        verdict = _batch_reading(eq, which, form, contexts, start)
        if verdict.status != "not checkable" or which == forms[-1][0]:
            return verdict
    return Verdict("not checkable", "no form to read on a batch")


def _batch_reading(
    eq: Equation, which: str, form: Form, contexts: list[Context], start: float
) -> Verdict:
    resolver = eq.selfcheck.resolver or (lambda ctx, name: ctx.array(name))
    base = contexts[0]
    cases = 0
    for lab in eq.label_sets(base.sizes.n):
        expr = form(**accepted(form, lab))
        if expr is None:
            continue
        shape = np.asarray(eq.selfcheck.reference(base, lab), dtype=object).shape
        sizes = dict(zip(form.free, shape, strict=True))
        try:
            names = {f.base for t in terms(expr, form.free) for f in t.factors if f.base}
            per_sample = [
                evaluate_fast(expr, form.free, {nm: resolver(c, nm) for nm in names}, sizes)
                for c in contexts
            ]
        except IndexFormError as err:
            return Verdict("not checkable", f"the {which} form cannot be evaluated: {err}")
        means = {
            nm: sum((resolver(c, nm) for c in contexts[1:]), resolver(base, nm)) / len(contexts)
            for nm in names
        }
        literal = evaluate_fast(expr, form.free, means, sizes)
        mean = sum(per_sample[1:], per_sample[0]) / len(contexts)
        at_point = False
        if base.mode == "symbolic":
            literal, mean, at_point = _at_random_point(literal, mean)
        verdict, cases = _first_difference(base, literal, mean, lab, start, cases)
        if verdict is not None:
            where = " (free values at a random rational point)" if at_point else ""
            ce = verdict.counterexample
            verdict.counterexample = {
                "labels": ce.get("labels"),
                "entry": ce.get("entry"),
                "product of batch means": ce.get("form"),
                "batch mean of products": ce.get("reference"),
            }
            if at_point:
                verdict.counterexample["free values"] = "at a random rational point"
            verdict.detail = (
                f"{which} form with each factor a mean over {len(contexts)} samples != mean of "
                f"its per-sample values{where}: {verdict.detail}"
            )
            return verdict
    return Verdict(
        "proved",
        f"{cases} entries: the product of batch means equals the mean of products here",
        cases,
        time.perf_counter() - start,
    )


@dataclass
class Row:
    """One line of the self-check summary.

    ``printed`` is the per-sample verdict of the printed form, ``batch`` (for equations
    printed with ``F = E[f]``) the verdict of its literal batch reading, ``corrected``
    that of the corrected form.
    """

    number: str
    name: str
    mode: str
    printed: Verdict
    corrected: Verdict | None
    batch: Verdict | None = None

    @property
    def erratum(self) -> bool:
        """Whether the printed form is wrong: disproved, not implementable, or its batch
        reading disproved."""
        if self.batch is not None and self.batch.status == "disproved":
            return True
        return self.corrected is not None and self.printed.status != "proved"


def run_checks(
    numbers: Iterable[str] | None = None,
    modes: Iterable[str] = ("symbolic", "rational"),
    sizes: dict[str, Sizes] | None = None,
    seed: int = 0,
    progress: bool = False,
) -> list[Row]:
    """Run the self-checks and return one :class:`Row` per equation and mode."""
    sizes = {**DEFAULT_SIZES, **(sizes or {})}
    eqs = all_equations()
    if numbers is not None:
        wanted = {str(x) for x in numbers}
        eqs = [e for e in eqs if e.number in wanted]
    jobs = [(mode, eq) for mode in modes for eq in eqs]
    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=len(jobs), desc="self-check", unit="eq")
        except ImportError:  # pragma: no cover
            bar = None
    rows = []
    contexts: dict[tuple[str, str, int], Context] = {}

    def context(mode: str, eq: Equation, sample: int = 0) -> Context:
        key = (mode, eq.activation, sample)
        if key not in contexts:
            contexts[key] = Context(
                sizes[mode], mode, seed, eq.activation == "general", sample=sample
            )
        return contexts[key]

    for mode, eq in jobs:
        ctx = context(mode, eq)
        if bar is not None:
            bar.set_postfix_str(f"{mode} Eq {eq.number}")
        printed = check_equation(eq, ctx, "printed")
        corrected = check_equation(eq, ctx, "corrected") if eq.corrected is not None else None
        batch = None
        if has_batch_reading(eq) and eq.selfcheck is not None:
            samples = [context(mode, eq, b) for b in range(BATCH_SAMPLES)]
            batch = check_batch_reading(eq, samples)
        rows.append(Row(eq.number, eq.name, mode, printed, corrected, batch))
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    return rows
