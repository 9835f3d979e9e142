"""Kernel outputs of one case, computed on first use.

Each property calls the kernels and drivers under test through a
:class:`~verify.kernelset.KernelSet` (by default the generated modules; the mutation
tests pass a set with a modified copy).  A kernel that raises makes only the checks that
use it fail.  Results are kept per case (a property's, or a method's per argument set):
every block of a Hessian is checked on its own, from one evaluation of the drivers; a
call that raises keeps nothing, so each check that uses it fails with the same error.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np

from verify.cases import Case, Inputs

__all__ = ["KernelRun"]


class KernelRun:
    """Lazily evaluated kernel quantities of one case.

    Parameters
    ----------
    kernels : KernelSet
        The generated kernels and the drivers that call them.
    case, inputs : the case and its arrays (kernels run in ``case.dtype``).
    """

    def __init__(self, kernels: Any, case: Case, inputs: Inputs) -> None:
        self.K = kernels
        self.case = case
        self.inp = inputs
        self._kept: dict[tuple, Any] = {}

    def _once(self, key: tuple, compute) -> Any:
        """``compute()``, kept under ``key`` once it has returned."""
        if key not in self._kept:
            self._kept[key] = compute()
        return self._kept[key]

    @property
    def n(self) -> int:
        return self.case.depth

    @cached_property
    def fwd(self) -> Any:
        return self.K.forward(self.inp.ws, self.inp.u, self.inp.x)

    @cached_property
    def loss(self) -> tuple:
        """``(f, df/dp, d2f/dp2)`` per sample."""
        return self.K.softmax_cross_entropy(self.fwd.p, self.inp.y)

    @property
    def dfdp(self) -> np.ndarray:
        return self.loss[1]

    @property
    def d2fdp2(self) -> np.ndarray:
        return self.loss[2]

    @cached_property
    def rfac(self) -> np.ndarray:
        """Factor ``R`` of ``d2f/dp2 = R^T R`` per sample (C15)."""
        return self.K.hessian_factor(self.fwd.p, self.d2fdp2)

    @cached_property
    def bwd(self) -> Any:
        return self.K.backward(self.fwd, self.inp.ws, self.inp.u, self.dfdp)

    @cached_property
    def relu_deltas(self) -> list:
        """``delta^(k)`` by the ReLU adjoint forms C1 (top) and C2 (step)."""
        ws, masks = self.inp.ws, self.fwd.masks
        n = len(ws)
        delta = self.K.c1_adjoint_top(a1_n=masks[n - 1], dfdp=self.dfdp, u=self.inp.u)
        deltas = [delta]
        for k in range(n, 1, -1):
            delta = self.K.c2_adjoint_step(a1_km1=masks[k - 2], delta_k=delta, w_k=ws[k - 1])
            deltas.append(delta)
        return deltas[::-1]

    @cached_property
    def etas(self) -> dict:
        return self.K.eta_chains(self.inp.ws, self.fwd.masks)

    @cached_property
    def gammas(self) -> list:
        return [self.K.eq19_gamma(a1_k=m) for m in self.fwd.masks]

    @cached_property
    def betas(self) -> list:
        return [
            self.K.eq20_beta(gamma_k=g, w_k=w)
            for g, w in zip(self.gammas, self.inp.ws, strict=True)
        ]

    @cached_property
    def alphas(self) -> dict:
        """``alpha^(k,l)`` for ``0 <= l <= k <= n``: the identity for ``k = l`` (Eq 21 as
        read), else Eq 20's betas composed by Eq 22's kernel."""
        wd, B, dt = self.case.widths, self.case.batch, self.inp.x.dtype
        out = {}
        for l in range(self.n + 1):  # noqa: E741
            out[(l, l)] = np.broadcast_to(np.eye(wd[l], dtype=dt), (B, wd[l], wd[l]))
            for k in range(l + 1, self.n + 1):
                beta = self.betas[k - 1]
                out[(k, l)] = (
                    beta
                    if k == l + 1
                    else self.K.eq22_compose(alpha_k_l=beta, alpha_l_m=out[(k - 1, l)])
                )
        return out

    def literal_gradient(self, reduce: str) -> tuple:
        return self.K.gradient_literal(
            self.fwd, self.etas, self.inp.ws, self.inp.u, self.dfdp, reduce=reduce
        )

    def hessian_blocks(self, reduce: str, factored: bool = True) -> dict:
        """Eqs 34-36; Gauss-Newton parts factored (C16, C18-C20) or with ``d2f/dp2``."""
        return self._once(
            ("hessian_blocks", reduce, factored),
            lambda: self.K.hessian_blocks(
                self.fwd,
                self.etas,
                self.inp.ws,
                self.inp.u,
                self.dfdp,
                self.d2fdp2,
                reduce=reduce,
                factored=factored,
                rfac=self.rfac if factored else None,
            ),
        )

    def directional(self, omega, phis, reduce: str = "mean", factored: bool = True) -> tuple:
        """C4-C7 (tangent sweep); C7's pdot term factored (C17, C23) or with ``d2f/dp2``."""
        return self.K.directional(
            self.fwd,
            self.bwd,
            self.inp.ws,
            self.inp.u,
            self.dfdp,
            self.d2fdp2,
            omega,
            phis,
            reduce=reduce,
            rfac=self.rfac if factored else None,
        )

    def directional_literal(
        self, omega, phis, reduce: str = "mean", printed: bool = False
    ) -> tuple:
        """Eqs 38-39 term by term."""
        return self.K.directional_literal(
            self.fwd,
            self.etas,
            self.inp.ws,
            self.inp.u,
            self.dfdp,
            self.d2fdp2,
            omega,
            phis,
            reduce=reduce,
            printed=printed,
        )

    @cached_property
    def sgd_direction(self) -> tuple:
        """``g = -grad F`` from the kernels' own gradient: ``(omega, phis)``."""
        return -self.bwd.grad_u, [-g for g in self.bwd.grads_w]

    @cached_property
    def sgd_curvature(self) -> tuple:
        """L1-L4: ``(g^T grad F, g^T H g)`` for ``g = -grad F``."""
        return self.K.sgd_curvature(
            self.fwd, self.bwd, self.inp.ws, self.inp.u, self.dfdp, self.d2fdp2, rfac=self.rfac
        )

    def hessian_diagonal(self, reduce: str, factored: bool = True) -> tuple:
        """Table 2; factored (C16, C21-C22) or with ``d2f/dp2``."""
        return self._once(
            ("hessian_diagonal", reduce, factored),
            lambda: self.K.hessian_diagonal(
                self.fwd,
                self.etas,
                self.inp.ws,
                self.inp.u,
                self.d2fdp2,
                reduce=reduce,
                factored=factored,
                rfac=self.rfac if factored else None,
            ),
        )
