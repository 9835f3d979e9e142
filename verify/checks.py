"""Checks of the generated kernels against the JAX reference, one group per topic.

Every check names the paper's equation it verifies.  A check group is a function
``group(ctx) -> iterable of Measurement``; :data:`GROUPS` lists them in paper order.
Kernel outputs come from :class:`verify.kernelrun.KernelRun`, so the module under test
is a parameter (the mutation tests pass a modified copy).

Directions.  The random direction ``g = (omega, phis)`` of a case is oriented as a
descent direction (``g^T grad F < 0``) before any kernel runs, so the same direction
serves Eqs 37-40; the SGD direction is ``g = -grad F``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from verify import cr_limits
from verify.cases import Case, Inputs
from verify.kernelrun import KernelRun
from verify.measure import Measurement, compare, guarded
from verify.reference import ReferenceValues, cr_root, dense_hessian

__all__ = ["Ctx", "GROUPS", "PAPER_FORM", "run_checks", "printed_step_length"]


@dataclass
class Ctx:
    """What a check group sees: the kernels' run, the reference and the case."""

    run: KernelRun
    ref: ReferenceValues
    case: Case
    inp: Inputs
    round_dtype: str = ""  # dtype the inputs were rounded to (default: the case's)

    def __post_init__(self) -> None:
        if not self.round_dtype:
            self.round_dtype = self.case.dtype

    @property
    def n(self) -> int:
        return self.case.depth

    def m(
        self,
        equation: str,
        quantity: str,
        kernels: str,
        value: Callable[[], object],
        reference: object,
        per_sample: bool = False,
        tolerance: float | None = None,
        scale: object = None,
    ) -> Measurement:
        """Measure ``value()`` against ``reference`` (an array, or a thunk returning one
        for comparisons of two kernels); exceptions become failures.  ``scale``
        replaces the reference's norm (see :func:`verify.measure.compare`)."""
        tol = self.case.tolerance if tolerance is None else tolerance
        guard = guarded(equation, quantity, self.case.dtype, self.case.name, tol, kernels)

        def thunk() -> Measurement:
            ref = reference() if callable(reference) else reference
            return compare(
                equation,
                quantity,
                value(),
                ref,
                dtype=self.case.dtype,
                case=self.case.name,
                tolerance=tol,
                kernels=kernels,
                per_sample=per_sample,
                scale=scale,
            )

        return guard(thunk)


def _layers(n: int) -> range:
    return range(1, n + 1)


# ------------------------------------------------------------------ forward pass, Eqs 10-17


def check_forward(c: Ctx) -> Iterator[Measurement]:
    r, ref = c.run, c.ref
    yield c.m(
        "13",
        "logits p (forward pass, Eqs 10-13)",
        "forward, eq10_preactivation, eq13_logits",
        lambda: r.fwd.p,
        ref.p,
        per_sample=True,
    )

    def masks() -> Measurement:
        got = np.concatenate([np.ravel(m) for m in r.fwd.masks])
        want = np.concatenate([np.ravel(m) for m in ref.masks])
        m = compare(
            "17",
            "ReLU pattern A'(z^(k)), all layers",
            got,
            want,
            dtype=c.case.dtype,
            case=c.case.name,
            tolerance=0.0,
            kernels="forward",
        )
        m.rel_error = m.abs_error  # a 0/1 pattern: one flipped unit is an error of 1
        return m

    yield guarded(
        "17", "ReLU pattern A'(z^(k)), all layers", c.case.dtype, c.case.name, 0.0, "forward"
    )(masks)
    yield c.m(
        "15",
        "per-sample loss f (Eqs 14-15)",
        "softmax_cross_entropy",
        lambda: r.loss[0],
        ref.f,
        per_sample=True,
    )
    yield c.m(
        "15",
        "df/dp (left unevaluated by the paper)",
        "softmax_cross_entropy",
        lambda: r.dfdp,
        ref.dfdp,
        per_sample=True,
    )
    yield c.m(
        "15", "d2f/dp2", "softmax_cross_entropy", lambda: r.d2fdp2, ref.d2fdp2, per_sample=True
    )
    yield c.m(
        "16",
        "F = E[f] (loss_and_gradient)",
        "loss_and_gradient",
        lambda: r.K.loss_and_gradient(c.inp.ws, c.inp.u, c.inp.x, c.inp.y)[0],
        ref.F,
    )


# ------------------------------------------------------------------ Eqs 21-24 (dense only)


def check_structure(c: Ctx) -> Iterator[Measurement]:
    if c.ref.alphas is None:
        return
    r, ref, n = c.run, c.ref, c.n
    for (k, l), want in ref.alphas.items():
        yield c.m(
            "21",
            "alpha^(k,l) = dv^(k)/dv^(l), 0 <= l <= k (as read)",
            "eq19_gamma, eq20_beta, eq22_compose",
            lambda k=k, l=l: r.alphas[(k, l)],
            want,
            per_sample=True,
        )
    for k in range(n + 1):
        for m in range(k + 1):
            for l in range(m, k + 1):  # noqa: E741
                yield c.m(
                    "22",
                    "alpha^(k,l) alpha^(l,m) = alpha^(k,m), m <= l <= k",
                    "eq22_compose",
                    lambda k=k, l=l, m=m: r.K.eq22_compose(
                        alpha_k_l=r.alphas[(k, l)], alpha_l_m=r.alphas[(l, m)]
                    ),
                    ref.alphas[(k, m)],
                    per_sample=True,
                )
    for (k, l), want in ref.etas.items():
        yield c.m(
            "23",
            "eta^(k,l) = dv^(k)/dz^(l) (eta_chains)",
            "eta_chains, eq19_gamma, eq20_beta, eq22_compose, eq23_eta",
            lambda k=k, l=l: r.etas[(k, l)],
            want,
            per_sample=True,
        )
    for (k, l), want in ref.dv_dw.items():
        yield c.m(
            "24",
            "dv^(k)/dw^(l) = eta^(k,l) v^(l-1), l <= k",
            "eq24_dv_dw",
            lambda k=k, l=l: r.K.eq24_dv_dw(v_lm1=r.fwd.vs[l - 1], eta_k_l=r.etas[(k, l)]),
            want,
            per_sample=True,
        )


# ------------------------------------------------------------------ gradient, Eqs 27-28


def check_gradient(c: Ctx) -> Iterator[Measurement]:
    r, ref, n, inp = c.run, c.ref, c.n, c.inp
    yield c.m(
        "27",
        "df/du, per sample",
        "eq27_grad_u",
        lambda: r.literal_gradient("sample")[0],
        ref.grad_u_sample,
        per_sample=True,
    )
    yield c.m(
        "27",
        "dF/du, batch mean",
        "gradient_literal, eq27_grad_u",
        lambda: r.literal_gradient("mean")[0],
        ref.grad_u,
    )
    yield c.m(
        "27",
        "dF/du, drivers (backward, loss_and_gradient)",
        "backward, loss_and_gradient",
        lambda: r.bwd.grad_u,
        ref.grad_u,
    )
    yield c.m(
        "27",
        "dF/du, drivers (backward, loss_and_gradient)",
        "backward, loss_and_gradient",
        lambda: r.K.loss_and_gradient(inp.ws, inp.u, inp.x, inp.y)[1],
        ref.grad_u,
    )
    for k in _layers(n):
        yield c.m(
            "28",
            "df/dw(k), per sample (eta chains)",
            "gradient_literal, eq28_grad_w",
            lambda k=k: r.literal_gradient("sample")[1][k - 1],
            ref.grads_w_sample[k - 1],
            per_sample=True,
        )
        yield c.m(
            "28",
            "dF/dw(k), batch mean (eta chains)",
            "gradient_literal, eq28_grad_w",
            lambda k=k: r.literal_gradient("mean")[1][k - 1],
            ref.grads_w[k - 1],
        )
        yield c.m(
            "28",
            "df/dw(k), per sample (adjoint sweep C10, C3)",
            "c10_adjoint_v_top, c10_adjoint_v_step, c3_grad_w",
            lambda k=k: r.K.c3_grad_w(
                delta_k=r.bwd.deltas[k - 1], v_km1=r.fwd.vs[k - 1], reduce="sample"
            ),
            ref.grads_w_sample[k - 1],
            per_sample=True,
        )
        yield c.m(
            "28",
            "df/dw(k), per sample (ReLU adjoint sweep C1-C3)",
            "c1_adjoint_top, c2_adjoint_step, c3_grad_w",
            lambda k=k: r.K.c3_grad_w(
                delta_k=r.relu_deltas[k - 1], v_km1=r.fwd.vs[k - 1], reduce="sample"
            ),
            ref.grads_w_sample[k - 1],
            per_sample=True,
        )
        yield c.m(
            "28",
            "dF/dw(k), batch mean (adjoint sweep C10, C3: backward)",
            "backward, c10_adjoint_v_top, c10_adjoint_v_step, c3_grad_w",
            lambda k=k: r.bwd.grads_w[k - 1],
            ref.grads_w[k - 1],
        )
        yield c.m(
            "28",
            "dF/dw(k), batch mean (adjoint sweep C1-C3: backward)",
            "loss_and_gradient",
            lambda k=k: r.K.loss_and_gradient(inp.ws, inp.u, inp.x, inp.y)[2][k - 1],
            ref.grads_w[k - 1],
        )
        yield c.m(
            "28",
            "contracted (C1-C3) = literal (Eq 28), batch mean",
            "backward vs gradient_literal",
            lambda k=k: r.bwd.grads_w[k - 1],
            lambda k=k: r.literal_gradient("mean")[1][k - 1],
        )


# ------------------------------------------------------------------ Hessian, Eqs 34-36


def _branch(k: int, r: int) -> str:
    return "r > k" if r > k else ("r = k" if r == k else "r < k")


#: suffix of the quantities computed by the paper's forms with d2f/dp2 (Eqs 34-36,
#: Table 2, C7) rather than the drivers' factored ones (C16-C23)
PAPER_FORM = "paper form with d2f/dp2"


def check_hessian(c: Ctx) -> Iterator[Measurement]:
    """Eqs 34-36: the drivers' factored blocks (C16, C18-C20) and the paper's forms."""
    if c.ref.hess is None:
        return
    run, ref, n = c.run, c.ref, c.n
    for factored, form in ((True, ""), (False, f", {PAPER_FORM}")):
        for reduce, label, want in (
            ("mean", "batch mean", ref.hess),
            ("sample", "per sample", ref.hess_sample),
        ):
            ps = reduce == "sample"
            kern = (
                ("c18_hessian_uu", "c19_hessian_uw", "c20_hessian_ww_")
                if factored
                else ("eq34_hessian_uu", "eq35_hessian_uw", "eq36_hessian_ww_")
            )
            drv = "hessian_blocks, c16_factored_jacobian, " if factored else "hessian_blocks, "
            yield c.m(
                "34",
                f"(u, u) block, {label}{form}",
                drv + kern[0],
                lambda reduce=reduce, f=factored: run.hessian_blocks(reduce, f)[("u", "u")],
                want[("u", "u")],
                per_sample=ps,
            )
            for k in _layers(n):
                yield c.m(
                    "35",
                    f"(u, w(k)) blocks, {label}{form}",
                    drv + kern[1],
                    lambda k=k, reduce=reduce, f=factored: run.hessian_blocks(reduce, f)[("u", k)],
                    want[("u", k)],
                    per_sample=ps,
                )
                for r in _layers(n):
                    branch = {"r > k": "r_gt_k", "r = k": "r_eq_k", "r < k": "r_lt_k"}
                    yield c.m(
                        "36",
                        f"(w(k), w(r)) blocks, {_branch(k, r)}, {label}{form}",
                        drv + kern[2] + branch[_branch(k, r)],
                        lambda k=k, r=r, reduce=reduce, f=factored: run.hessian_blocks(reduce, f)[
                            (k, r)
                        ],
                        want[(k, r)],
                        per_sample=ps,
                    )
    yield c.m(
        "34-36",
        "dense Hessian of F (hessian_dense) vs jax.hessian",
        "hessian_dense",
        lambda: run.K.hessian_dense(run.hessian_blocks("mean"), c.inp.ws, c.inp.u),
        dense_hessian(c.case, ref.hess),
    )


# ------------------------------------------------------------------ Table 2: diagonal


def _diag_blocks(case: Case, blocks: dict, lead: str = "") -> tuple:
    diag_u = np.einsum(f"{lead}ijij->{lead}ij", blocks[("u", "u")])
    diag_w = [np.einsum(f"{lead}ijij->{lead}ij", blocks[(k, k)]) for k in _layers(case.depth)]
    return diag_u, diag_w


def check_diagonal(c: Ctx) -> Iterator[Measurement]:
    """Table 2: the drivers' factored diagonal (C16, C21-C22) and the paper's forms."""
    run, ref = c.run, c.ref
    if ref.hess is not None:
        for factored, form in ((True, ""), (False, f", {PAPER_FORM}")):
            ku, kw = (
                ("c21_hessian_diag_u", "c16_factored_jacobian, c22_hessian_diag_w")
                if factored
                else ("table2_hessian_diag_u", "table2_hessian_diag_w")
            )
            for reduce, label, blocks, lead in (
                ("mean", "batch mean", ref.hess, ""),
                ("sample", "per sample", ref.hess_sample, "B"),
            ):
                want_u, want_w = _diag_blocks(c.case, blocks, lead)
                ps = reduce == "sample"
                yield c.m(
                    "T2",
                    f"Hessian diagonal, u entries, {label}{form}",
                    f"hessian_diagonal, {ku}",
                    lambda reduce=reduce, f=factored: run.hessian_diagonal(reduce, f)[0],
                    want_u,
                    per_sample=ps,
                )
                for k in _layers(c.n):
                    yield c.m(
                        "T2",
                        f"Hessian diagonal, w(k) entries, {label}{form}",
                        f"hessian_diagonal, {kw}",
                        lambda k=k, reduce=reduce, f=factored: run.hessian_diagonal(reduce, f)[1][
                            k - 1
                        ],
                        want_w[k - 1],
                        per_sample=ps,
                    )

    def sampled() -> np.ndarray:
        diag_u, diag_w = run.hessian_diagonal("mean")
        return np.array(
            [diag_u[i, j] if blk == "u" else diag_w[blk - 1][i, j] for blk, i, j in ref.diag_index]
        )

    for pos in range(len(ref.diag_index)):
        yield c.m(
            "T2",
            "Hessian diagonal entries e^T H e by nested jax.jvp",
            "hessian_diagonal",
            lambda pos=pos: sampled()[pos],
            ref.diag_sampled[pos],
        )


# ------------------------------------------------------------------ Eqs 38-40, 37


def _scales(c: Ctx) -> dict[str, object]:
    """Sizes of the directional scalars: ``|g^T v| <= ||g|| ||v||`` (Cauchy-Schwarz).

    ``g^T grad F`` and ``g^T H g`` are contractions whose value can cancel to near zero
    (per sample especially); their errors are measured against ``||g|| ||grad F||`` and
    ``||g|| ||H g||``, the norms of the vectors they contract.
    """
    ref, inp = c.ref, c.inp
    g = np.sqrt(_sq([inp.omega, *inp.phis]))
    grad = np.sqrt(_sq([ref.grad_u, *ref.grads_w]))
    axes = lambda a: tuple(range(1, a.ndim))  # noqa: E731
    grad_b = np.sqrt(
        sum(np.sum(a**2, axis=axes(a)) for a in [ref.grad_u_sample, *ref.grads_w_sample])
    )
    return {
        "38": g * grad,
        "39": g * ref.hg_norm,
        "38 sample": g * grad_b,
        "39 sample": g * ref.hg_norm_sample,
        "38 sgd": grad * grad,
        "39 sgd": grad * ref.hg_norm_sgd,
    }


def check_directional(c: Ctx) -> Iterator[Measurement]:
    run, ref, inp = c.run, c.ref, c.inp
    om, ph = inp.omega, inp.phis
    scale = _scales(c)
    lit = "directional_literal, eq38_u_term, eq38_w_term"
    lit39 = (
        "directional_literal, eq39_uu_term, eq39_uw_term, eq39_ww_gauss_newton_term, "
        "eq39_ww_curvature_term"
    )
    con = "directional, tangent, c4_tangent_source, c4_tangent_propagate, c5_*, c6_g_dot_grad"
    con39 = (
        "directional, tangent, hessian_factor, c17_factored_tangent, c23_pdot_term, "
        "c7_output_term, c7_layer_term"
    )
    lowrank = "sgd_curvature, l1_*, l2_*, l3_*, l4_* (stacked and per layer), c23_pdot_term"
    for idx, eq in ((0, "38"), (1, "39")):
        what = "g^T grad F" if eq == "38" else "g^T H g"
        lk, ck = (lit, con) if eq == "38" else (lit39, con39)
        want, want_s = (ref.d, ref.d_sample) if eq == "38" else (ref.h, ref.h_sample)
        sgd_want = ref.d_sgd if eq == "38" else ref.h_sgd
        s, s_b, s_sgd = scale[eq], scale[f"{eq} sample"], scale[f"{eq} sgd"]

        def lit_mean(idx=idx):
            return run.directional_literal(om, ph)[idx]

        def con_mean(idx=idx):
            return run.directional(om, ph)[idx]

        def con_sgd(idx=idx):
            return run.directional(*run.sgd_direction)[idx]

        def low_sgd(idx=idx):
            return run.sgd_curvature[idx]

        yield c.m(
            eq, f"{what}, random direction, literal (Eq {eq} terms)", lk, lit_mean, want, scale=s
        )
        yield c.m(
            eq,
            f"{what}, random direction, contracted (C4-C7 tangent sweep)",
            ck,
            con_mean,
            want,
            scale=s,
        )
        if eq == "39":
            yield c.m(
                eq,
                f"{what}, random direction, contracted (C7), {PAPER_FORM}",
                "directional, c7_pdot_term",
                lambda: run.directional(om, ph, factored=False)[1],
                want,
                scale=s,
            )
        yield c.m(
            eq,
            f"{what}, per sample, literal",
            lk,
            lambda idx=idx: run.directional_literal(om, ph, "sample")[idx],
            want_s,
            per_sample=True,
            scale=s_b,
        )
        yield c.m(
            eq,
            f"{what}, per sample, contracted",
            ck,
            lambda idx=idx: run.directional(om, ph, "sample")[idx],
            want_s,
            per_sample=True,
            scale=s_b,
        )
        yield c.m(
            eq,
            f"contracted = literal, {what}",
            "directional vs directional_literal",
            con_mean,
            lit_mean,
            scale=s,
        )
        yield c.m(
            eq,
            f"{what}, g = -grad F, low-rank (L1-L4: sgd_curvature)",
            lowrank,
            low_sgd,
            sgd_want,
            scale=s_sgd,
        )
        if hasattr(run.K, "sgd_cr_terms"):
            yield c.m(
                eq,
                f"{what}, g = -grad F, low-rank (L1-L4: sgd_curvature)",
                "sgd_cr_terms",
                lambda idx=idx: run.K.sgd_cr_terms(
                    run.fwd, run.bwd, inp.ws, inp.u, run.dfdp, run.d2fdp2
                )[idx],
                sgd_want,
                scale=s_sgd,
            )
        yield c.m(
            eq, f"{what}, g = -grad F, contracted (directional)", ck, con_sgd, sgd_want, scale=s_sgd
        )
        yield c.m(
            eq,
            f"low-rank = contracted, {what}, g = -grad F",
            "sgd_curvature vs directional",
            low_sgd,
            con_sgd,
            scale=s_sgd,
        )


def _sq(arrays: Iterable[np.ndarray]) -> float:
    return float(sum(np.sum(np.asarray(a, np.float64) ** 2) for a in arrays))


def check_norms(c: Ctx) -> Iterator[Measurement]:
    run, ref, inp = c.run, c.ref, c.inp
    g_sq = _sq([inp.omega, *inp.phis])
    yield c.m(
        "40",
        "||g||^3, random direction (norm_cubed)",
        "norm_cubed, sq_norm, eq40_u_sq_norm, eq40_w_sq_norm",
        lambda: run.K.norm_cubed(inp.omega, inp.phis),
        g_sq**1.5,
    )
    sgd_sq = _sq([ref.grad_u, *ref.grads_w])
    yield c.m(
        "40",
        "||g||^3, g = -grad F (norm_cubed)",
        "norm_cubed",
        lambda: run.K.norm_cubed(*run.sgd_direction),
        sgd_sq**1.5,
    )
    if hasattr(run.K, "sgd_cr_terms"):
        yield c.m(
            "40",
            "||g||^3, g = -grad F (sgd_cr_terms)",
            "sgd_cr_terms",
            lambda: run.K.sgd_cr_terms(run.fwd, run.bwd, inp.ws, inp.u, run.dfdp, run.d2fdp2)[2],
            sgd_sq**1.5,
        )
    for k in _layers(c.n):
        yield c.m(
            "40",
            "||phi(k)||^2, g = -grad F, low-rank (L5)",
            "l5_lowrank_sq_norm",
            lambda k=k: run.K.l5_lowrank_sq_norm(
                Db_k=run.bwd.deltas[k - 1], Vb_km1=run.fwd.vs[k - 1]
            ),
            _sq([ref.grads_w[k - 1]]),
        )


def check_step_length(c: Ctx) -> Iterator[Measurement]:
    run, ref, inp, sigma = c.run, c.ref, c.inp, c.case.sigma
    n3 = _sq([inp.omega, *inp.phis]) ** 1.5
    yield c.m(
        "37",
        "alpha, random descent direction (cr_step_length, C8)",
        "cr_step_length, directional, norm_cubed",
        lambda: run.K.cr_step_length(
            *run.directional(inp.omega, inp.phis)[::-1],
            sigma,
            run.K.norm_cubed(inp.omega, inp.phis),
        ),
        cr_root(ref.h, ref.d, sigma * n3),
    )
    sgd_n3 = _sq([ref.grad_u, *ref.grads_w]) ** 1.5
    want = cr_root(ref.h_sgd, ref.d_sgd, sigma * sgd_n3)
    yield c.m(
        "37",
        "alpha, g = -grad F (cr_step_length, C8)",
        "cr_step_length, sgd_curvature, norm_cubed",
        lambda: run.K.cr_step_length(
            run.sgd_curvature[1], run.sgd_curvature[0], sigma, run.K.norm_cubed(*run.sgd_direction)
        ),
        want,
    )
    if hasattr(run.K, "sgd_cr_terms"):

        def via_terms() -> float:
            d, h, norm3 = run.K.sgd_cr_terms(run.fwd, run.bwd, inp.ws, inp.u, run.dfdp, run.d2fdp2)
            return run.K.cr_step_length(h, d, sigma, norm3)

        yield c.m("37", "alpha, g = -grad F (cr_step_length, C8)", "sgd_cr_terms", via_terms, want)
    # Eq 37's kernel in each regime of Eq 41: scalars rounded to the case's input dtype
    rt, kt = np.dtype(c.round_dtype).type, np.dtype(c.case.dtype).type
    for base in _directions(c):
        for probe in cr_limits.probes(*base, conditions="corrected"):
            if not cr_limits.representable(probe, c.round_dtype):
                continue
            h, d, s3, sig = (kt(rt(v)) for v in (probe.h, probe.d, probe.norm3, probe.sigma))
            want = cr_root(float(h), float(d), float(sig) * float(s3))
            yield c.m(
                "37",
                f"alpha in Eq 41's {cr_limits.CASE_NAMES[probe.case]}",
                "cr_step_length",
                lambda h=h, d=d, s3=s3, sig=sig: run.K.cr_step_length(h, d, sig, s3),
                want,
            )


def _directions(c: Ctx) -> list[tuple[float, float, float]]:
    """Reference ``(h, d, ||g||^3)`` of the random descent direction and of ``-grad F``."""
    ref, inp = c.ref, c.inp
    return [
        (ref.h, ref.d, _sq([inp.omega, *inp.phis]) ** 1.5),
        (ref.h_sgd, ref.d_sgd, _sq([ref.grad_u, *ref.grads_w]) ** 1.5),
    ]


# ------------------------------------------------------------------ Eq 41


def check_limits(c: Ctx) -> Iterator[Measurement]:
    """Eq 41's corrected approximations inside their corrected regimes, against the exact
    stationary point; the tolerance is the size of the neglected terms."""
    if c.case.dtype != "float64":
        return  # scalar analysis on the float64 reference; once per architecture
    for base in _directions(c):
        for probe in cr_limits.probes(*base, conditions="corrected"):
            tol = cr_limits.expansion_bound(probe.case)
            guard = guarded(
                "41",
                cr_limits.CASE_NAMES[probe.case],
                "float64",
                c.case.name,
                tol,
                "registry (derive): LIMITS_CORRECTED",
            )

            def one(probe=probe, tol=tol) -> Measurement:
                err = cr_limits.approximation_error(probe, "corrected")
                return Measurement(
                    "41",
                    cr_limits.CASE_NAMES[probe.case],
                    "float64",
                    c.case.name,
                    err * abs(probe.exact),
                    err,
                    tol,
                    "registry (derive): LIMITS_CORRECTED",
                )

            yield guard(one)


def printed_step_length(c: Ctx) -> list[Measurement]:
    """Eq 37 exactly as printed (``cr_step_length_printed``) in Eq 41's regimes.

    Not a verdict: the formula is right, and its cancellation for ``h > 0`` with
    ``h^2 >> |d| c`` is numerical; the runner reports these as notes.
    """
    out = []
    rt, kt = np.dtype(c.round_dtype).type, np.dtype(c.case.dtype).type
    for base in _directions(c):
        for probe in cr_limits.probes(*base, conditions="corrected"):
            if not cr_limits.representable(probe, c.round_dtype):
                continue
            h, d, s3, sig = (kt(rt(v)) for v in (probe.h, probe.d, probe.norm3, probe.sigma))
            want = cr_root(float(h), float(d), float(sig) * float(s3))
            out.append(
                c.m(
                    "37",
                    "alpha as printed (cr_step_length_printed), "
                    + cr_limits.CASE_NAMES[probe.case],
                    "cr_step_length_printed",
                    lambda h=h, d=d, s3=s3, sig=sig: c.run.K.cr_step_length_printed(h, d, sig, s3),
                    want,
                )
            )
    return out


GROUPS: tuple[Callable[[Ctx], Iterable[Measurement]], ...] = (
    check_forward,
    check_structure,
    check_gradient,
    check_hessian,
    check_directional,
    check_norms,
    check_step_length,
    check_limits,
    check_diagonal,
)


def run_checks(ctx: Ctx) -> list[Measurement]:
    """All check groups on one case."""
    out: list[Measurement] = []
    for group in GROUPS:
        out.extend(group(ctx))
    return out
