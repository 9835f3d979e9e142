"""The factored Gauss-Newton forms (d2f/dp2 = R^T R, C15-C23) against the paper's forms.

Equal to the forms with ``d2f/dp2`` in float64; more accurate than them in float32 on
an ill-conditioned case (nearly equal logits: the full-sweep plateau case 4-6-9-1-5).
"""

from __future__ import annotations

import numpy as np
import pytest

from verify.cases import full_sweep, make_inputs
from verify.kernelset import default_kernels

K = default_kernels()


def _case():
    (case,) = [
        c for c in full_sweep(0) if tuple(c.widths) == (4, 6, 9, 1, 5) and c.dtype == "float32"
    ]
    return case, make_inputs(case)


def _quantities(inp, dtype, factored: bool) -> dict:
    ws = [np.asarray(w, dtype=dtype) for w in inp.ws]
    u, x, y = (np.asarray(a, dtype=dtype) for a in (inp.u, inp.x, inp.y))
    omega = np.asarray(inp.omega, dtype=dtype)
    phis = [np.asarray(p, dtype=dtype) for p in inp.phis]
    fwd = K.forward(ws, u, x)
    _, dfdp, d2 = K.softmax_cross_entropy(fwd.p, y)
    bwd = K.backward(fwd, ws, u, dfdp)
    etas = K.eta_chains(ws, fwd.masks)
    rfac = K.hessian_factor(fwd.p, d2) if factored else None
    out = {}
    for reduce in ("mean", "sample"):
        blocks = K.hessian_blocks(fwd, etas, ws, u, dfdp, d2, reduce=reduce, factored=factored)
        out.update({(reduce, key): val for key, val in blocks.items()})
        diag_u, diag_w = K.hessian_diagonal(fwd, etas, ws, u, d2, reduce=reduce, factored=factored)
        out[(reduce, "diag", "u")] = diag_u
        out.update({(reduce, "diag", k): d for k, d in enumerate(diag_w, 1)})
        out[(reduce, "ghg")] = K.directional(
            fwd, bwd, ws, u, dfdp, d2, omega, phis, reduce=reduce, rfac=rfac
        )[1]
    out["sgd"] = K.sgd_curvature(fwd, bwd, ws, u, dfdp, d2, rfac=rfac)[1]
    return out


def _rel(a, b) -> float:
    scale = np.linalg.norm(np.ravel(b))
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / max(scale, 1e-300))


def test_factor_reproduces_the_softmax_hessian():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(6, 4))
    y = rng.random((6, 4))  # any non-negative label rows (s = sum of the row)
    _, _, d2 = K.softmax_cross_entropy(p, y)
    rfac = K.hessian_factor(p, d2)
    np.testing.assert_allclose(np.einsum("bel,beq->blq", rfac, rfac), d2, atol=1e-14)
    # saturated logits: R stays finite and still reproduces d2f/dp2
    p[0] = [80.0, -80.0, 0.0, 1.0]
    _, _, d2 = K.softmax_cross_entropy(p, y)
    rfac = K.hessian_factor(p, d2)
    assert np.all(np.isfinite(rfac))
    np.testing.assert_allclose(np.einsum("bel,beq->blq", rfac, rfac), d2, atol=1e-14)


def test_factored_forms_equal_the_d2fdp2_forms_in_float64():
    _, inp = _case()
    fac, paper = _quantities(inp, np.float64, True), _quantities(inp, np.float64, False)
    assert fac.keys() == paper.keys()
    for key in fac:
        assert _rel(fac[key], paper[key]) < 1e-12, key


def test_factored_forms_are_more_accurate_in_float32_when_ill_conditioned():
    case, inp = _case()
    assert case.init == "plateau"
    exact = _quantities(inp, np.float64, True)
    fac, paper = _quantities(inp, np.float32, True), _quantities(inp, np.float32, False)
    gn = [("mean", (k, k)) for k in range(1, case.depth)] + [
        ("mean", "diag", k) for k in range(1, case.depth)
    ]
    worst_fac = max(_rel(fac[key], exact[key]) for key in gn)
    worst_paper = max(_rel(paper[key], exact[key]) for key in gn)
    # the paper's form cancels: several times the factored form's error (with the exact
    # complement 1 - yhat in d2f/dp2 its error here is about 7e-5, the factored one's 8e-6)
    assert worst_fac < 2e-5 and worst_fac < worst_paper / 5
    for key in exact:  # and every factored quantity meets the float32 tolerance
        assert _rel(fac[key], exact[key]) < 1e-4, key


def test_factored_hessian_has_no_printed_reduction():
    case, inp = _case()
    ws = [np.asarray(w, np.float64) for w in inp.ws]
    fwd = K.forward(ws, np.asarray(inp.u, np.float64), np.asarray(inp.x, np.float64))
    _, dfdp, d2 = K.softmax_cross_entropy(fwd.p, np.asarray(inp.y, np.float64))
    with pytest.raises(ValueError, match="reduce"):
        K.hessian_blocks(
            fwd,
            K.eta_chains(ws, fwd.masks),
            ws,
            np.asarray(inp.u, np.float64),
            dfdp,
            d2,
            reduce="printed",
        )
