"""Which kernels to generate: one :class:`KernelSpec` per index form (or part).

Each spec names the registry equation (and part) it prints, the layer labels it is
generic in, the piecewise branch it takes, and the batch reductions it offers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KernelSpec:
    """A generated function.

    Attributes
    ----------
    name : str
        Function name in the generated module.
    equation : str
        Registry number, e.g. ``"36"``.
    part : str or None
        A part of the equation (Eqs 38-40, C4-C7) or ``None`` for the whole form.
    which : {"form", "printed"}
        The kernel form (corrected where it exists) or the printed one.
    labels : tuple of str
        Symbolic layer labels the function is generic in (besides ``n``).
    branch : int or None
        Index of the ``Piecewise`` branch over layer labels to print.
    reduces : tuple of str
        Batch reductions offered (see :class:`derive.codegen.printer.EinsumPrinter`).
    concrete : dict
        Concrete labels substituted instead of symbols (e.g. ``{"k": 1}``).
    note : str
        Extra docstring line.
    stacked : bool
        Layer-batched variant: every layer-labelled operand and the result gain a
        leading axis over layers of equal width (one BLAS call for all layers).
    """

    name: str
    equation: str
    part: str | None = None
    which: str = "form"
    labels: tuple[str, ...] = ()
    branch: int | None = None
    reduces: tuple[str, ...] = ("sample",)
    concrete: tuple[tuple[str, int], ...] = ()
    note: str = ""
    stacked: bool = False


SM = ("sample", "mean")
SMP = ("sample", "mean", "printed")

RELU_MLP: list[KernelSpec] = [
    # forward pass (Eqs 10, 13)
    KernelSpec("eq10_preactivation", "10", labels=("k",)),
    KernelSpec("eq13_logits", "13"),
    # literal intermediates (Eqs 19-24)
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
    KernelSpec("eq23_eta_printed", "23", which="printed", labels=("k", "l")),
    KernelSpec("eq24_dv_dw", "24", labels=("k", "l"), branch=1),
    # gradient blocks (Eqs 27-28)
    KernelSpec("eq27_grad_u", "27", reduces=SMP),
    KernelSpec("eq28_grad_w", "28", labels=("k",), reduces=SMP),
    # Hessian blocks (Eqs 34-36)
    KernelSpec("eq34_hessian_uu", "34", reduces=SMP),
    KernelSpec("eq35_hessian_uw", "35", labels=("k",), reduces=SMP),
    KernelSpec("eq36_hessian_ww_r_gt_k", "36", labels=("k", "r"), branch=0, reduces=SMP),
    KernelSpec("eq36_hessian_ww_r_eq_k", "36", labels=("k", "r"), branch=1, reduces=SMP),
    KernelSpec("eq36_hessian_ww_r_lt_k", "36", labels=("k", "r"), branch=2, reduces=SMP),
    # directional quantities, literal (Eqs 38-40)
    KernelSpec("eq38_u_term", "38", part="u_term", reduces=SMP),
    KernelSpec("eq38_w_term", "38", part="w_term", labels=("k",), reduces=SMP),
    KernelSpec("eq39_uu_term", "39", part="uu_term", reduces=SMP),
    KernelSpec("eq39_uw_term", "39", part="uw_term", labels=("k",), reduces=SMP),
    KernelSpec(
        "eq39_ww_gauss_newton_term",
        "39",
        part="ww_gauss_newton_term",
        labels=("k", "r"),
        reduces=SMP,
    ),
    KernelSpec(
        "eq39_ww_curvature_term", "39", part="ww_curvature_term", labels=("k", "r"), reduces=SMP
    ),
    KernelSpec("eq40_u_sq_norm", "40", part="u_sq_norm", reduces=("none",)),
    KernelSpec("eq40_w_sq_norm", "40", part="w_sq_norm", labels=("k",), reduces=("none",)),
    # Hessian diagonal (Table 2)
    KernelSpec("table2_hessian_diag_u", "T2.u", reduces=SMP),
    KernelSpec("table2_hessian_diag_w", "T2.w", labels=("k",), reduces=SMP),
    # contracted forms: adjoint sweep (C1-C3), tangent sweep (C4-C5), C6-C7
    KernelSpec("c1_adjoint_top", "C1"),
    KernelSpec("c2_adjoint_step", "C2", labels=("k",)),
    KernelSpec("c3_grad_w", "C3", labels=("k",), reduces=SM),
    KernelSpec("c4_tangent_source", "C4", part="source", labels=("k",)),
    KernelSpec("c4_tangent_propagate", "C4", part="propagate", labels=("k",)),
    KernelSpec("c5_omega_term", "C5", part="omega_term"),
    KernelSpec("c5_u_term", "C5", part="u_term"),
    KernelSpec("c6_g_dot_grad", "C6", reduces=SM),
    KernelSpec("c7_pdot_term", "C7", part="pdot_term", reduces=SM),
    KernelSpec("c7_output_term", "C7", part="output_term", reduces=SM),
    KernelSpec("c7_layer_term", "C7", part="layer_term", labels=("k",), reduces=SM),
    # factored Gauss-Newton parts, d2f/dp2 = R^T R (C16-C23): what the drivers use
    KernelSpec("c16_factored_jacobian", "C16", labels=("k",)),
    KernelSpec("c17_factored_tangent", "C17"),
    KernelSpec("c18_hessian_uu", "C18", reduces=SM),
    KernelSpec("c19_hessian_uw", "C19", labels=("k",), reduces=SM),
    KernelSpec("c20_hessian_ww_r_gt_k", "C20", labels=("k", "r"), branch=0, reduces=SM),
    KernelSpec("c20_hessian_ww_r_eq_k", "C20", labels=("k", "r"), branch=1, reduces=SM),
    KernelSpec("c20_hessian_ww_r_lt_k", "C20", labels=("k", "r"), branch=2, reduces=SM),
    KernelSpec("c21_hessian_diag_u", "C21", reduces=SM),
    KernelSpec("c22_hessian_diag_w", "C22", labels=("k",), reduces=SM),
    KernelSpec("c23_pdot_term", "C23", reduces=SM),
    # low-rank forms for the SGD direction (L1-L5)
    KernelSpec("l1_lowrank_tangent_source", "L1", labels=("k",), reduces=("none",)),
    KernelSpec("l2_lowrank_output_source", "L2", reduces=("none",)),
    KernelSpec("l3_lowrank_curvature", "L3", labels=("k",), reduces=("none",)),
    KernelSpec("l4_lowrank_output_curvature", "L4", reduces=("none",)),
    KernelSpec("l5_lowrank_sq_norm", "L5", labels=("k",), reduces=("none",)),
    # layer-batched low-rank forms (hidden layers of equal width)
    KernelSpec(
        "l1_lowrank_tangent_source_stacked", "L1", labels=("k",), reduces=("none",), stacked=True
    ),
    KernelSpec(
        "l3_lowrank_curvature_stacked", "L3", labels=("k",), reduces=("none",), stacked=True
    ),
]
