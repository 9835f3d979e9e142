"""Which kernels to generate, and into which module: one :class:`KernelSpec` per index
form (or part, or branch), each in exactly one :class:`ModuleSpec`.

The generated modules follow the paper's sections:

=====================================  ==============================================
``numeric/kernels/feedforward.py``      Appendix B.1, Eqs 10-36 (the ReLU network)
``numeric/kernels/cubic_regularization.py``  Section 3 and B.1, Eqs 37-40, Table 2
``numeric/kernels/contracted.py``       derived sweeps C1-C11, factored forms C16-C23
                                        and C42-C44, low-rank forms L1-L5
``numeric/kernels/cr_variants.py``      the CR variants' forms V1, V3, V5
``numeric/kernels/general_activation.py``  Appendix B.3, Eqs 66-80
``numeric/kernels/convolution.py``      Appendix B.2.1, Eqs 44-57 (and C12-C14)
``numeric/kernels/recurrent.py``        Appendix B.2.2, Eqs 58-65
``numeric/kernels/activations.py``      the entry-wise activations of B.3
``numeric/kernels/bias.py``             biases (derived from B.1: Eqs 27.b-36.b, C24, L6-L7)
``numeric/kernels/stacking.py``         conv and recurrent layers in a stack (C28-C41)
``numeric/kernels/auto_derived.py``     layers derived from their forward rules (A.<layer>.*)
=====================================  ==============================================

Nothing else is generated: the loops that call these kernels (forward, adjoint and
tangent sweeps, CR quantities) are hand-written modules of :mod:`numeric`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "KernelSpec",
    "ModuleSpec",
    "EntrywiseSpec",
    "MODULES",
    "FEEDFORWARD",
    "CUBIC_REGULARIZATION",
    "CONTRACTED",
    "CR_VARIANTS",
    "GENERAL_ACTIVATION",
    "CONVOLUTION",
    "CONVOLUTION_ENTRYWISE",
    "RECURRENT",
    "BIAS",
    "STACKING",
    "all_kernel_specs",
]


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


@dataclass(frozen=True)
class EntrywiseSpec:
    """An entry-wise (conditional) conv form printed as a gather with masks."""

    name: str
    equation: str
    which: str = "form"


@dataclass(frozen=True)
class ModuleSpec:
    """One generated module.

    Attributes
    ----------
    path : str
        Repository-relative path of the module.
    title : str
        First docstring line.
    body : str
        Rest of the module docstring; ``{equations}`` is replaced by the list of
        equation numbers the module prints.
    sources : tuple of str
        The ``derive`` files the forms come from (named in the header).
    kernels : list of KernelSpec
        Einsum kernels printed from index forms.
    entrywise : list of EntrywiseSpec
        Conditional forms printed as gathers (conv only).
    extras : tuple of str
        Other printed sources: ``"activations"`` (derive/activations.py) and
        ``"step_length"`` (Eq 37 and its cancellation-free form C8).
    """

    path: str
    title: str
    body: str
    sources: tuple[str, ...]
    kernels: list[KernelSpec] = field(default_factory=list)
    entrywise: list[EntrywiseSpec] = field(default_factory=list)
    extras: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1].removesuffix(".py")


SM = ("sample", "mean")
SMP = ("sample", "mean", "printed")

# ------------------------------------------------------------------ B.1 (Eqs 10-36)
FEEDFORWARD: list[KernelSpec] = [
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
]

# ----------------------------------------------- Section 3 / B.1 (Eqs 37-40, Table 2)
CUBIC_REGULARIZATION: list[KernelSpec] = [
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
]

# ------------------------------------------------- derived forms (C1-C23, L1-L5)
CONTRACTED: list[KernelSpec] = [
    # adjoint sweep (C1-C3, C10)
    KernelSpec("c1_adjoint_top", "C1"),
    KernelSpec("c2_adjoint_step", "C2", labels=("k",)),
    KernelSpec("c3_grad_w", "C3", labels=("k",), reduces=SM),
    KernelSpec("c10_adjoint_v_top", "C10", labels=("k",), branch=0),
    KernelSpec("c10_adjoint_v_step", "C10", labels=("k",), branch=1),
    # tangent sweep (C4-C5) and the directional quantities (C6-C7, C11)
    KernelSpec("c4_tangent_source", "C4", part="source", labels=("k",)),
    KernelSpec("c4_tangent_propagate", "C4", part="propagate", labels=("k",)),
    KernelSpec("c5_omega_term", "C5", part="omega_term"),
    KernelSpec("c5_u_term", "C5", part="u_term"),
    KernelSpec("c6_g_dot_grad", "C6", reduces=SM),
    KernelSpec("c7_pdot_term", "C7", part="pdot_term", reduces=SM),
    KernelSpec("c7_output_term", "C7", part="output_term", reduces=SM),
    KernelSpec("c7_layer_term", "C7", part="layer_term", labels=("k",), reduces=SM),
    KernelSpec("c11_second_order_term", "C11", part="second_order_term", labels=("k",), reduces=SM),
    # factored Gauss-Newton parts, d2f/dp2 = R^T R (C16-C23)
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
    # factored adjoints and the Hessian diagonal from them (C42-C44: per-variable CR)
    KernelSpec("c42_factored_adjoint_v_top", "C42", labels=("k",), branch=0),
    KernelSpec("c42_factored_adjoint_v_step", "C42", labels=("k",), branch=1),
    KernelSpec("c43_factored_adjoint_z", "C43", labels=("k",)),
    KernelSpec("c44_hessian_diag_w", "C44", labels=("k",), reduces=SM),
    # layer-batched low-rank forms (hidden layers of equal width)
    KernelSpec(
        "l1_lowrank_tangent_source_stacked", "L1", labels=("k",), reduces=("none",), stacked=True
    ),
    KernelSpec(
        "l3_lowrank_curvature_stacked", "L3", labels=("k",), reduces=("none",), stacked=True
    ),
]

# ------------------------------------------------- CR variants (V1, and V3, V5 printed)
CR_VARIANTS: list[KernelSpec] = [
    KernelSpec("v1_metric_sq_norm_u", "V1", part="u_term", reduces=("none",)),
    KernelSpec("v1_metric_sq_norm_w", "V1", part="w_term", labels=("k",), reduces=("none",)),
]

# ------------------------------------------------------------------ B.3 (Eqs 66-80)
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


def _note(part: str) -> str:
    return _PRINTED_NOTE if part.endswith("printed") else ""


GENERAL_ACTIVATION: list[KernelSpec] = [
    KernelSpec("eq67_lambda", "67", labels=("l",)),
    *[
        KernelSpec(f"eq75_{part}", "75", part=part, labels=_labels(part), note=_note(part))
        for part in _PARTS_77
        if part != "eta_term_q_lt_k"
    ],
    *[
        KernelSpec(f"eq77_{part}", "77", part=part, labels=_labels(part), note=_note(part))
        for part in _PARTS_77
    ],
    KernelSpec("eq78_hessian_uu", "78", reduces=SMP),
    KernelSpec("eq79_hessian_uw", "79", labels=("k",), reduces=SMP),
    KernelSpec("eq80_gauss_newton", "80", part="gauss_newton", labels=("k", "q"), reduces=SMP),
    *[
        KernelSpec(
            f"eq80_{part}", "80", part=part, labels=_labels(part), reduces=SMP, note=_note(part)
        )
        for part in _PARTS_77
    ],
]

# ---------------------------------------------------------------- B.2.1 (Eqs 44-57)
CONVOLUTION: list[KernelSpec] = [
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
CONVOLUTION_ENTRYWISE: list[EntrywiseSpec] = [
    EntrywiseSpec("eq45_patch_entrywise", "45"),
    EntrywiseSpec("eq48_dz_dx_entrywise", "48"),
    EntrywiseSpec("eq53_dv_dw_entrywise", "53"),
    EntrywiseSpec("eq54_dv_dx_entrywise", "54"),
    EntrywiseSpec("eq54_dv_dx_entrywise_printed", "54", "printed"),
    EntrywiseSpec("eq55_d2v_dwdw_entrywise", "55"),
    EntrywiseSpec("eq56_d2v_dwdx_entrywise", "56"),
    EntrywiseSpec("eq56_d2v_dwdx_entrywise_printed", "56", "printed"),
    EntrywiseSpec("eq57_d2v_dxdx_entrywise", "57"),
    EntrywiseSpec("eq57_d2v_dxdx_entrywise_printed", "57", "printed"),
]

# ---------------------------------------------------------------- B.2.2 (Eqs 58-65)
RECURRENT: list[KernelSpec] = [
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
]

# ------------------------------------------------- biases (derived: Eqs 27.b-36.b, C24, L6-L7)
BIAS: list[KernelSpec] = [
    KernelSpec("eq27b_grad_c", "27.b", reduces=SMP),
    KernelSpec("eq28b_grad_b", "28.b", labels=("k",), reduces=SMP),
    KernelSpec("eq34b_hessian_cu", "34.b", reduces=SMP),
    KernelSpec("eq34bb_hessian_cc", "34.bb", reduces=SMP),
    KernelSpec("eq35b_hessian_ub", "35.b", labels=("k",), reduces=SMP),
    KernelSpec("eq35bw_hessian_cw", "35.bw", labels=("k",), reduces=SMP),
    KernelSpec("eq35bb_hessian_cb", "35.bb", labels=("k",), reduces=SMP),
    KernelSpec("eq36b_hessian_wb_r_ge_k", "36.b", labels=("k", "r"), branch=0, reduces=SMP),
    KernelSpec("eq36b_hessian_wb_r_lt_k", "36.b", labels=("k", "r"), branch=1, reduces=SMP),
    KernelSpec("eq36bb_hessian_bb", "36.bb", labels=("k", "r"), branch=0, reduces=SMP),
    KernelSpec("c24_grad_bias", "C24", labels=("k",), reduces=SM),
    KernelSpec("l6_lowrank_bias_direction", "L6", labels=("k",), reduces=("none",)),
    KernelSpec("l7_lowrank_output_bias_direction", "L7", reduces=("none",)),
]

# ------------------------------------ conv and recurrent layers in a stack (derived: C28-C41)
STACKING: list[KernelSpec] = [
    KernelSpec("c28_conv_input_tangent", "C28"),
    KernelSpec("c29_conv_cross_term", "C29", reduces=SM),
    KernelSpec("c30_conv_patch_adjoint", "C30"),
    KernelSpec("c31_conv_input_adjoint", "C31"),
    KernelSpec("c32_conv_grad_bias", "C32", reduces=SM),
    KernelSpec("c34_rec_input_preactivation", "C34"),
    KernelSpec("c35_rec_grad_w", "C35", reduces=SM),
    KernelSpec("c36_rec_grad_u", "C36", reduces=SM),
    KernelSpec("c37_rec_grad_bias", "C37", reduces=SM),
    KernelSpec("c38_rec_input_adjoint", "C38"),
    KernelSpec("c39_rec_source_state", "C39", part="state"),
    KernelSpec("c39_rec_source_input", "C39", part="input"),
    KernelSpec("c39_rec_source_input_tangent", "C39", part="input_tangent"),
    KernelSpec("c41_rec_state_term", "C41", part="state_term", reduces=SM),
    KernelSpec("c41_rec_input_term", "C41", part="input_term", reduces=SM),
    KernelSpec("c41_rec_second_order_term", "C41", part="second_order_term", reduces=SM),
]

# ------------------------------------------------------------------------- modules
_ARRAYS = (
    "Array conventions: ``docs/conventions.md``.  Every per-sample array has a leading\n"
    "batch axis; kernels that average over the batch average per-sample *products*\n"
    '(``F = E[f]``, Eq 16), and ``reduce="printed"`` gives the paper\'s literal product of\n'
    "batch means, kept only as evidence for the batch-average errata."
)
_BACKENDS = (
    "Each kernel is one or a few ``einsum`` contractions through\n"
    ":func:`numeric.kernels._runtime.einsum`, which runs NumPy arrays along a cached plan\n"
    "and JAX arrays through ``jax.numpy.einsum``: the same kernels serve both backends."
)

MODULES: list[ModuleSpec] = [
    ModuleSpec(
        "numeric/kernels/feedforward.py",
        "Kernels of the ReLU feedforward network of Appendix B.1 (Eqs 10-36).",
        "Printed from the index forms of the ``derive`` registry (equations {equations}).\n"
        "The per-sample ``eta^(k,l)`` chains of Eqs 19-24, the gradient blocks of Eqs 27-28\n"
        "and the Hessian blocks of Eqs 34-36: O(n^2) width-cubed products, for small\n"
        "networks and verification (training uses :mod:`numeric.kernels.contracted`).\n"
        + _ARRAYS
        + "\n"
        + _BACKENDS,
        ("derive/equations/feedforward_relu.py",),
        FEEDFORWARD,
    ),
    ModuleSpec(
        "numeric/kernels/cubic_regularization.py",
        "Kernels of Section 3: the CR step length and its inputs (Eqs 37-40, Table 2).",
        "Printed from the index forms of the ``derive`` registry (equations {equations}).\n"
        "Eq 37 (as printed, and in the cancellation-free form C8) is printed by SymPy's\n"
        "NumPy printer; Eqs 38-40 and Table 2 term by term from their index forms.\n"
        + _ARRAYS
        + "\n"
        + _BACKENDS,
        ("derive/equations/cubic_regularization.py",),
        CUBIC_REGULARIZATION,
        extras=("step_length",),
    ),
    ModuleSpec(
        "numeric/kernels/contracted.py",
        "Derived contracted and low-rank forms (C1-C23, C42-C44, L1-L5): what training uses.",
        "Printed from the index forms of the ``derive`` registry (equations {equations}).\n"
        "Each form is derived from the paper's equations and proved equal to them by\n"
        "``python -m derive check``: an adjoint sweep (C1-C3, C10), a tangent sweep\n"
        "(C4-C5), the directional quantities of Eqs 38-39 and 78-80 without eta chains\n"
        "(C6, C7, C11), the factored Gauss-Newton parts ``d2f/dp2 = R^T R`` (C16-C23), the\n"
        "factored adjoints and the Hessian diagonal from them (C42-C44) and the\n"
        "rank-``batch`` factors of the mini-batch gradient (L1-L5).\n" + _ARRAYS + "\n" + _BACKENDS,
        ("derive/equations/contracted.py", "general_activation.py", "variants.py"),
        CONTRACTED,
    ),
    ModuleSpec(
        "numeric/kernels/cr_variants.py",
        "Kernels of the CR variants: a metric norm, the predicted decrease and the ARC rule.",
        "Printed from the registry's derived forms (equations {equations}): the squared norm\n"
        "of a direction in a diagonal metric (V1, term by term from its index form; the\n"
        "scale-invariant step V2 is Eq 37's C8 with ``c = sigma ||g||_M^3``), the decrease\n"
        "the cubic model predicts at Eq 37's root (V3) and the ARC update of sigma with its\n"
        "acceptance test (V5), the last two printed by SymPy's NumPy printer in the array\n"
        "namespace of their arguments (NumPy or JAX, also under ``jit``).\n" + _BACKENDS,
        ("derive/equations/variants.py", "derive/variant_model.py"),
        CR_VARIANTS,
        extras=("variants",),
    ),
    ModuleSpec(
        "numeric/kernels/general_activation.py",
        "Kernels of the network with a general activation (Appendix B.3, Eqs 66-80).",
        "Printed from the index forms of the ``derive`` registry (equations {equations}).\n"
        "The second derivative of Eq 77 (corrected) from its per-layer terms, the\n"
        "derivatives of eta (Eq 75) and the Hessian blocks of Eqs 78-80; O(n^3) products\n"
        "of ``alpha``/``eta`` chains, for small networks and verification.  ``*_printed``\n"
        "kernels keep the printed (wrong) row of Eqs 75 and 77 as evidence.\n"
        + _ARRAYS
        + "\n"
        + _BACKENDS,
        ("derive/equations/general_activation.py",),
        GENERAL_ACTIVATION,
    ),
    ModuleSpec(
        "numeric/kernels/convolution.py",
        "Kernels of one convolutional layer (Appendix B.2.1, Eqs 44-57).",
        "Printed from the index forms of the ``derive`` registry (equations {equations}).\n"
        "A VALID cross-correlation with vertical stride ``sigma`` and horizontal stride\n"
        "``tau``.  Arrays: inputs ``x`` (batch, C, H, W), kernels ``w`` (O, C, K_h, K_w),\n"
        "outputs ``v`` (batch, O, S, T) with ``S = (H - K_h) // sigma + 1``,\n"
        "``T = (W - K_w) // tau + 1``; patches ``z`` (batch, C, S, T, K_h, K_w) (Eq 45) and\n"
        "the selection tensor ``dzdx`` (S, T, K_h, K_w, H, W) (Eq 48).\n"
        "\n"
        "* patch forms (``eq4x_*``, ``eq5x_*``, ``*mc`` with channels): the derivatives of\n"
        "  the layer outputs with respect to inputs and kernels, first and second order;\n"
        "* conditional forms (``*_entrywise``, single channel, NumPy only): the paper's\n"
        "  piecewise expressions as gathers with masks; ``*_printed`` keep the printed\n"
        "  conditions (evidence; an entry that reads outside an operand is NaN);\n"
        "* ``c12``-``c14``: the contractions a stacked network needs (tangent, kernel\n"
        "  gradient and the layer's own curvature along a direction).\n" + _BACKENDS,
        ("derive/equations/convolution.py",),
        CONVOLUTION,
        CONVOLUTION_ENTRYWISE,
    ),
    ModuleSpec(
        "numeric/kernels/recurrent.py",
        "Kernels of the recurrent layer (Appendix B.2.2, Eqs 58-65).",
        "Printed from the index forms of the ``derive`` registry (equations {equations}).\n"
        "The recurrent layer ``v_(t) = A(w v_(t-1))``, ``v_(0) = x`` (Eqs 58-59) unrolled\n"
        "``t`` steps with one weight matrix ``w`` (d, d): the terms of the derivatives of\n"
        "``v_(t)`` with respect to ``w`` and ``x`` (Eqs 61-65), for the ReLU as printed\n"
        "(``*_printed``: evidence) and corrected, and for a general activation through\n"
        "B.3 (``64.g``, ``65.g``).  The chains they read (Eqs 10, 19-23, 67, 75, 77) are\n"
        "those of :mod:`numeric.kernels.feedforward` and\n"
        ":mod:`numeric.kernels.general_activation`.\n" + _BACKENDS,
        ("derive/equations/recurrent.py",),
        RECURRENT,
    ),
    ModuleSpec(
        "numeric/kernels/activations.py",
        "Entry-wise activations and their first two derivatives (Appendix B.3).",
        "Each function takes the pre-activation ``z`` and returns ``(A(z), A'(z), A''(z))``\n"
        "(``A''`` is ``None`` when ``second=False``), printed from the SymPy expressions of\n"
        "``derive/activations.py`` (numeric forms where given, each proved equal to the\n"
        "SymPy original there) in the array namespace of ``z`` (NumPy or JAX).  The ReLU\n"
        "takes ``A'(0) = 0`` and ``A'' = 0`` (Eqs 17, 29).\n"
        "\n"
        "Add an activation in ``derive/activations.py`` and run ``python -m derive generate``.",
        ("derive/activations.py",),
        extras=("activations",),
    ),
    ModuleSpec(
        "numeric/kernels/bias.py",
        "Kernels of biases, which the paper omits (derived from Appendix B.1).",
        "Printed from the index forms of the ``derive`` registry (equations {equations}).\n"
        "A bias is a weight on a constant input 1, so each form is the paper's equation for\n"
        "that weight keeping the terms that carry its input, set to 1 (the bias rule of\n"
        "``derive/equations/bias.py``): the gradients and Hessian blocks of B.1 with\n"
        "``b^(k)`` (``z^(k) = w^(k) v^(k-1) + b^(k)``) and ``c`` (``p = u v^(n) + c``), the bias\n"
        "gradient from the adjoint sweep (C24) and the bias part of the SGD direction\n"
        "(L6-L7).  Biases add no cross term to ``g^T H g`` (C26).\n" + _ARRAYS + "\n" + _BACKENDS,
        ("derive/equations/bias.py",),
        BIAS,
    ),
    ModuleSpec(
        "numeric/kernels/stacking.py",
        "Kernels of conv and recurrent layers inside a network (derived from Appendix B.2).",
        "Printed from the index forms of the ``derive`` registry (equations {equations}).\n"
        "\n"
        "* a conv layer fed by another layer (C28-C32): the input part of its tangent, its\n"
        "  cross term, the adjoint of its patches and input and the gradient of its bias\n"
        "  (the layers apply C31, Eq 48's gather, as a scatter-add over the patch grid).  Arrays as in :mod:`numeric.kernels.convolution`; ``zx``\n"
        "  are the patches of the input tangent.\n"
        "* a recurrent layer ``z_(t) = w v_(t-1) + U x_(t) + b`` (C34-C41): step sums of the\n"
        "  gradients, the input adjoint, the tangent sources and the layer's own terms of\n"
        "  ``g^T H g``.  Arrays with a step axis are (batch, steps, width): inputs\n"
        "  ``x_(t)``, and the states ``v_(t-1)`` and tangents ``vdot_(t-1)`` entering step\n"
        "  ``t``.\n\n" + _BACKENDS,
        ("derive/equations/stacking.py",),
        STACKING,
    ),
    ModuleSpec(
        "numeric/kernels/auto_derived.py",
        "Kernels of layers the paper does not cover, derived from their forward rules.",
        "Printed from the auto-derived registry forms {equations}.\n"
        "Each form was derived by ``derive.auto`` from the layer's forward rule in index form\n"
        "(``sympy.diff`` on ``Indexed`` entries, delta elimination, canonical dummies; no\n"
        "derivative written by hand) and proved against ``sympy.diff`` of the explicit layer\n"
        "(``python -m derive layer NAME`` shows rule and forms).  Per sample the arrays carry\n"
        "the sample axis ``m`` first, as the index forms do; adjoints are ``<name>bar``,\n"
        "tangents ``<name>dot`` (parameter directions ``phi``, ``psi``, ``gdot``, ...) and\n"
        "``a1``, ``a2`` the activation's ``A'`` and ``A''`` at the pre-activation.  The\n"
        "form ``curvature`` is the layer's whole part of ``d^T H d`` per sample.\n\n" + _BACKENDS,
        ("derive/auto/layers.py", "derive/equations/auto.py"),
        extras=("auto",),
    ),
]


def all_kernel_specs() -> list[KernelSpec]:
    """Every einsum kernel spec of every module (each exactly once)."""
    return [k for m in MODULES for k in m.kernels]
