"""The printed forms that disagree with the corrected ones, measured on the same inputs.

For every erratum of the :mod:`derive` registry this module measures, per case, the
relative error of the printed form and of the corrected form against the same JAX
reference (or records why the printed form cannot be evaluated: a dimension mismatch,
a free index).  :func:`summarise` folds the measurements into one entry per equation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from verify import cr_limits
from verify.checks import Ctx, _directions
from verify.measure import compare

__all__ = ["ErratumMeasurement", "Erratum", "MEASURES", "measure_errata", "summarise"]


@dataclass
class ErratumMeasurement:
    """Printed and corrected error of one erratum on one case."""

    equation: str
    kind: str
    quantity: str
    case: str
    printed_rel_error: float | None
    corrected_rel_error: float | None
    note: str = ""


def _rel(value: object, reference: object, per_sample: bool = False) -> float:
    m = compare("", "", value, reference, dtype="", case="", tolerance=0.0, per_sample=per_sample)
    if m.error:
        raise ValueError(m.error)
    return m.rel_error


def _try(fn: Callable[[], float]) -> tuple[float | None, str]:
    try:
        return fn(), ""
    except Exception as exc:  # noqa: BLE001 - the printed form failing is the finding
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"


# ------------------------------------------------------------------ Eq 2 (Section 2)


def erratum_2(c: Ctx) -> Iterator[ErratumMeasurement]:
    """Eq 2 as printed, df/dp^i u_m^l eta_i^{(n,k),m} v^{(k-1),j}, read the one way the
    printed indices can be computed: as ``numpy.einsum`` reads them (``i`` not summed,
    the lone ``l`` summed over).  It needs as many classes as layer k has units."""
    r, n = c.run, c.n
    for k in range(1, n + 1):
        args = dict(dfdp=r.dfdp, v_km1=r.fwd.vs[k - 1], eta_n_k=r.etas[(n, k)], u=c.inp.u)
        want = c.ref.grads_w_sample[k - 1]
        corrected = _rel(r.K.eq28_grad_w(reduce="sample", **args), want, True)
        printed, _ = _try(
            lambda args=args, want=want: _rel(
                np.einsum(
                    "bi,lm,bmi,bj->bij", args["dfdp"], args["u"], args["eta_n_k"], args["v_km1"]
                ),
                want,
                True,
            )
        )
        fits = c.case.classes == c.case.widths[k]
        yield ErratumMeasurement(
            "2",
            "free-index",
            "df/dw(k) per sample, printed indices read by einsum (l summed, i not), "
            + ("classes = w_k" if fits else "classes != w_k"),
            c.case.name,
            printed,
            corrected,
            ""
            if printed is not None
            else "not evaluable: i counts classes on df/dp and units of layer k on eta",
        )


# ------------------------------------------------------------------ Eqs 21, 22, 23, 25


def erratum_21(c: Ctx) -> Iterator[ErratumMeasurement]:
    if c.ref.alphas is None:
        return
    worst = max(_rel(c.run.alphas[key], want, True) for key, want in c.ref.alphas.items())
    yield ErratumMeasurement(
        "21",
        "free-index",
        "alpha^(k,l), 0 <= l <= k",
        c.case.name,
        None,
        worst,
        "not implementable as printed (free indices i, j)",
    )


def erratum_22(c: Ctx) -> Iterator[ErratumMeasurement]:
    if c.ref.alphas is None:
        return
    r, wd, n, B = c.run, c.case.widths, c.n, c.case.batch
    dt = c.inp.x.dtype

    def alpha(k: int, l: int) -> np.ndarray:  # noqa: E741 - Eq 21, including its k < l case
        if k < l:
            return np.zeros((B, wd[k], wd[l]), dt)
        return r.alphas[(k, l)]

    outside, inside = [], []
    for k in range(n + 1):
        for m in range(k + 1):
            want = c.ref.alphas[(k, m)]
            for l in range(n + 1):  # noqa: E741
                got = r.K.eq22_compose(alpha_k_l=alpha(k, l), alpha_l_m=alpha(l, m))
                (inside if m <= l <= k else outside).append(_rel(got, want, True))
    if outside:
        yield ErratumMeasurement(
            "22",
            "missing-bound",
            "alpha^(k,l) alpha^(l,m) vs alpha^(k,m)",
            c.case.name,
            max(outside),
            max(inside),
            "printed: l outside [m, k]; corrected: m <= l <= k",
        )


def erratum_23(c: Ctx) -> Iterator[ErratumMeasurement]:
    if c.ref.etas is None or c.n < 2:
        return
    r, wd, n = c.run, c.case.widths, c.n
    for (k, l), want in c.ref.etas.items():
        if l == k:
            continue  # gamma^(k) = gamma^(l): printed and corrected coincide
        corrected = _rel(
            r.K.eq23_eta(alpha_k_l=r.alphas[(k, l)], gamma_l=r.gammas[l - 1]), want, True
        )
        printed, note = _try(
            lambda k=k, l=l, want=want: _rel(
                r.K.eq23_eta_printed(alpha_k_l=r.alphas[(k, l)], gamma_k=r.gammas[k - 1]),
                want,
                True,
            )
        )
        if wd[k] != wd[l]:
            yield ErratumMeasurement(
                "23",
                "dimension",
                "eta^(k,l), unequal widths (w_k != w_l)",
                c.case.name,
                printed,
                corrected,
                f"printed form fails: {note}" if printed is None else "printed form evaluated",
            )
        else:
            yield ErratumMeasurement(
                "23",
                "index",
                "eta^(k,l), equal widths (w_k = w_l)",
                c.case.name,
                printed,
                corrected,
                note,
            )
    # downstream: the gradient of Eq 28 through the printed eta^(n,k), where it fits
    for k in range(1, n):
        if wd[k] != wd[n]:
            continue
        eta_printed = r.K.eq23_eta_printed(alpha_k_l=r.alphas[(n, k)], gamma_k=r.gammas[n - 1])
        args = dict(dfdp=r.dfdp, v_km1=r.fwd.vs[k - 1], u=c.inp.u, reduce="mean")
        printed = _rel(r.K.eq28_grad_w(eta_n_k=eta_printed, **args), c.ref.grads_w[k - 1])
        corrected = _rel(r.K.eq28_grad_w(eta_n_k=r.etas[(n, k)], **args), c.ref.grads_w[k - 1])
        yield ErratumMeasurement(
            "23",
            "index",
            "dF/dw(k) of Eq 28 through the printed eta^(n,k)",
            c.case.name,
            printed,
            corrected,
        )


def erratum_25(c: Ctx) -> Iterator[ErratumMeasurement]:
    if c.ref.dp_du is None:
        return
    cl, v_n = c.case.classes, c.run.fwd.vs[c.n]
    reading = np.einsum("ja,bc->bjac", np.eye(cl), v_n)  # dp^j/du_c^a = delta^j_a v^(n),c
    yield ErratumMeasurement(
        "25",
        "free-index",
        "dp/du",
        c.case.name,
        None,
        _rel(reading, c.ref.dp_du, True),
        "not implementable as printed (free index l)",
    )


# ------------------------------------------------------------------ Eqs 38, 39, Table 2


def erratum_38(c: Ctx) -> Iterator[ErratumMeasurement]:
    om, ph = c.inp.omega, c.inp.phis
    printed = _rel(c.run.directional_literal(om, ph, "printed")[0], c.ref.d)
    corrected = _rel(c.run.directional_literal(om, ph, "mean")[0], c.ref.d)
    yield ErratumMeasurement(
        "38",
        "batch-average",
        "g^T grad F, random direction",
        c.case.name,
        printed,
        corrected,
        "batch of 1: no difference" if c.case.batch == 1 else "",
    )


def erratum_39(c: Ctx) -> Iterator[ErratumMeasurement]:
    om, ph = c.inp.omega, c.inp.phis
    corrected = _rel(c.run.directional_literal(om, ph, "mean")[1], c.ref.h)
    if c.n >= 2:
        printed = _rel(c.run.directional_literal(om, ph, "mean", printed=True)[1], c.ref.h)
        yield ErratumMeasurement(
            "39", "dropped-term", "g^T H g, random direction", c.case.name, printed, corrected
        )
    printed = _rel(c.run.directional_literal(om, ph, "printed")[1], c.ref.h)
    yield ErratumMeasurement(
        "39",
        "batch-average",
        "g^T H g, random direction",
        c.case.name,
        printed,
        corrected,
        "batch of 1: no difference" if c.case.batch == 1 else "",
    )


def erratum_table2(c: Ctx) -> Iterator[ErratumMeasurement]:
    if c.ref.hess is None:
        return
    from verify.checks import _diag_blocks

    want_u, want_w = _diag_blocks(c.case, c.ref.hess)

    def err(reduce: str) -> float:
        # the printed reading exists only in the paper's form with d2F/dp2
        diag_u, diag_w = c.run.hessian_diagonal(reduce, factored=reduce != "printed")
        return max(
            [_rel(diag_u, want_u)] + [_rel(a, b) for a, b in zip(diag_w, want_w, strict=True)]
        )

    corrected = err("mean")
    yield ErratumMeasurement(
        "T2",
        "free-index",
        "Hessian diagonal (g^T H g column)",
        c.case.name,
        None,
        corrected,
        "not implementable as printed (free indices s, t)",
    )
    yield ErratumMeasurement(
        "T2",
        "batch-average",
        "Hessian diagonal (g^T H g column)",
        c.case.name,
        err("printed"),
        corrected,
        "batch of 1: no difference" if c.case.batch == 1 else "",
    )


# ------------------------------------------------------------------ Eq 41


def erratum_41(c: Ctx) -> Iterator[ErratumMeasurement]:
    if c.case.dtype != "float64":
        return
    for base in _directions(c):
        corrected = list(cr_limits.probes(*base, conditions="corrected"))
        printed = list(cr_limits.probes(*base, conditions="printed"))
        # sqrt-sign: case 2's printed formula against the corrected one, same points
        case2 = [p for p in corrected if p.case == 2]
        if case2:
            yield ErratumMeasurement(
                "41",
                "sqrt-sign",
                "case 2 approximation, inside its regime",
                c.case.name,
                max(cr_limits.approximation_error(p, "printed") for p in case2),
                max(cr_limits.approximation_error(p, "corrected") for p in case2),
                "printed sqrt(2 d / c) is imaginary for d < 0 (NumPy: NaN); error of its "
                "imaginary value",
            )
        # validity: the approximations (sign fixed) at points meeting the printed
        # conditions, against the same approximations inside the corrected conditions
        for case in (1, 2, 3):
            pts = [p for p in printed if p.case == case]
            good = [p for p in corrected if p.case == case]
            if not pts:
                continue
            yield ErratumMeasurement(
                "41",
                "validity",
                cr_limits.CASE_NAMES[case],
                c.case.name,
                max(cr_limits.approximation_error(p, "corrected") for p in pts),
                max((cr_limits.approximation_error(p, "corrected") for p in good), default=None),
                f"printed conditions with '>>' = {cr_limits.PRINTED_FACTOR:g}x on |h| vs "
                f"|d| c; corrected with {cr_limits.CORRECTED_FACTOR:g}x on h^2 vs |d| c; "
                f"||g|| scaled by {cr_limits.SCALES[0]:g}..{cr_limits.SCALES[-1]:g}",
            )


#: registry number -> measurement of its erratum
MEASURES: dict[str, Callable[[Ctx], Iterator[ErratumMeasurement]]] = {
    "2": erratum_2,
    "21": erratum_21,
    "22": erratum_22,
    "23": erratum_23,
    "25": erratum_25,
    "38": erratum_38,
    "39": erratum_39,
    "T2.u": erratum_table2,
    "41": erratum_41,
}


def measure_errata(ctx: Ctx) -> list[ErratumMeasurement]:
    """Every erratum measurement on one case (failures recorded, never raised)."""
    out: list[ErratumMeasurement] = []
    for number, fn in MEASURES.items():
        try:
            out.extend(fn(ctx))
        except Exception as exc:  # noqa: BLE001 - a failing kernel fails its checks already
            out.append(
                ErratumMeasurement(
                    _printed_number(number),
                    "error",
                    "measurement failed",
                    ctx.case.name,
                    None,
                    None,
                    f"{type(exc).__name__}: {exc}",
                )
            )
    return out


def _printed_number(number: str) -> str:
    """The equation number as printed in the paper (``T2.u`` and ``T2.w`` are Table 2)."""
    return number.split(".")[0]


# ------------------------------------------------------------------ summaries


@dataclass
class Erratum:
    """One printed equation that disagrees with its corrected form."""

    equation: str
    kinds: list[str]
    what: str
    reading: str
    corrected_form: str
    section: str
    printed_rel_error: float | None = None
    corrected_rel_error: float | None = None
    measured: bool = False
    measurements: list[dict] = field(default_factory=list)


def _max(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return max(vals) if vals else None


#: kernels implementing each corrected form
CORRECTED_KERNELS = {
    "2": "eq28_grad_w (Eq 28)",
    "21": "eq20_beta composed by eq22_compose; identity for k = l",
    "22": "eq22_compose, called only inside the bound",
    "23": "eq23_eta (eta_chains)",
    "25": "dp^j/du_k^l = delta_l^j v^(n),k, as used by eq27_grad_u",
    "38": "eq38_* and c6 with reduce='mean'",
    "39": "eq39_* (all (k, r) pairs) and c7 with reduce='mean'",
    "T2": "table2_hessian_diag_u, table2_hessian_diag_w with reduce='mean'",
    "41": "LIMITS_CORRECTED of derive.equations.cubic_regularization",
}


def summarise(measurements: list[ErratumMeasurement]) -> list[Erratum]:
    """One :class:`Erratum` per printed equation of the registry with an erratum.

    Printed equations that no run measured (for example B.2/B.3 with ``--no-layers``,
    or forms with no kernel) are listed with ``measured = False``: their printed forms
    are still checked symbolically by ``python -m derive check``.
    """
    from derive.registry import all_equations

    entries: dict[str, Erratum] = {}
    for eq in all_equations():
        if eq.erratum is None:
            continue
        number = _printed_number(eq.number)
        if number in entries:
            for kind in eq.erratum.kinds:
                if kind not in entries[number].kinds:
                    entries[number].kinds.append(kind)
            continue
        entries[number] = Erratum(
            equation=number,
            kinds=list(eq.erratum.kinds),
            what=eq.erratum.what,
            reading=eq.erratum.reading,
            corrected_form=eq.erratum.reading
            + (f" (kernels: {CORRECTED_KERNELS[number]})" if number in CORRECTED_KERNELS else ""),
            section=eq.section,
        )
    groups: dict[tuple[str, str, str], list[ErratumMeasurement]] = {}
    for m in measurements:
        groups.setdefault((m.equation, m.kind, m.quantity), []).append(m)
    for (number, kind, quantity), ms in groups.items():
        entry = entries.get(number)
        if entry is None:
            continue
        notes = sorted({m.note for m in ms if m.note})
        entry.measured = True
        entry.measurements.append(
            {
                "kind": kind,
                "quantity": quantity,
                "cases": len({m.case for m in ms}),
                "printed_rel_error": _max([m.printed_rel_error for m in ms]),
                "corrected_rel_error": _max([m.corrected_rel_error for m in ms]),
                "printed_evaluable": any(m.printed_rel_error is not None for m in ms),
                "note": notes[0] + (f" (and {len(notes) - 1} similar)" if len(notes) > 1 else "")
                if notes
                else "",
            }
        )
    for entry in entries.values():
        entry.printed_rel_error = _max([m["printed_rel_error"] for m in entry.measurements])
        entry.corrected_rel_error = _max([m["corrected_rel_error"] for m in entry.measurements])
    return sorted(entries.values(), key=lambda e: _sort_key(e.equation))


def _sort_key(number: str) -> tuple:
    digits = "".join(ch for ch in number if ch.isdigit())
    return (0 if number[:1].isdigit() else 1, int(digits) if digits else 0)
