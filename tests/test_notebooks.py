"""Execute every notebook in ``notebooks/`` and check the key numbers it writes.

Each notebook runs top to bottom in a fresh kernel (nbconvert's ``ExecutePreprocessor``
through ``notebooks/render.py``) with ``notebooks/`` as its working directory, as Jupyter
runs it; a cell that raises fails the test. Each notebook
writes ``$LOWRANK_NOTEBOOK_OUT/<name>.json`` with its key numbers and the bounds it
states for them; the bounds below must equal the stated ones, and every value must
meet them. The notebooks are committed without outputs.
"""

from __future__ import annotations

import importlib.util
import json
import operator
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
#: per-cell limit that only guards against a hang: notebooks aim at under 90 s on 2 cores
#: (their run times are printed), but a busy shared machine must not fail the suite
CELL_TIMEOUT = 600

OPS = {
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    ">": operator.gt,
    ">=": operator.ge,
}

# key number -> (operator, bound), as stated in each notebook's last cell
BOUNDS: dict[str, dict[str, tuple[str, float]]] = {
    "01_low_rank_structure": {
        "per_sample_grad_rank_max": ("==", 1),
        "batch_grad_rank_min": (">", 1),
        "outer_product_residual": ("<", 1e-12),
        "grad_rel_err_contracted": ("<", 1e-12),
        "grad_rel_err_fd": ("<", 1e-6),
        "hessian_rel_err_fd": ("<", 1e-6),
        "per_sample_hessian_uu_rank_max": ("==", 3),
        "per_sample_hessian_rank_over_bound": ("<=", 1),
        "batch_over_per_sample_hessian_rank": (">", 1),
        "ghg_lowrank_rel_err": ("<", 1e-10),
    },
    "02_deriving_and_generating": {
        "selfcheck_eq28_proved": ("==", 1),
        "selfcheck_eq23_printed_disproved": ("==", 1),
        "selfcheck_eq23_corrected_proved": ("==", 1),
        "generated_matches_checked_in": ("==", 1),
        "module_drift_lines": ("==", 0),
        "kernel_rel_err_fd": ("<", 1e-6),
        "activation_problems": ("==", 0),
        "activation_bad_form_caught": ("==", 1),
        "activation_rel_err_fd": ("<", 1e-6),
        "new_activation_grad_rel_err_fd": ("<", 1e-6),
        "new_activation_b1_hessian_rel_err": (">", 1e-3),
        "new_activation_b3_hessian_rel_err": ("<", 1e-6),
        "relu_b1_hessian_rel_err": ("<", 1e-6),
        "regenerated_module_has_activation": ("==", 1),
    },
    "03_verification": {
        "failed_checks": ("==", 0),
        "checks": (">=", 100),
        "max_error_over_tolerance": ("<=", 1),
        "max_rel_error_float64_derivatives": ("<", 1e-8),
        "kernel_functions_not_exercised": ("==", 0),
        "errata_measured": (">=", 8),
        "errata_min_printed_over_corrected": (">", 100),
    },
    "04_cr_training": {
        "fig2_sgd_final_loss_ma100": (">", 2.29),
        "fig2_cr_final_loss_ma100": ("<", 2.2),
        "fig2_plateau_lr_ratio": (">", 10),
        "fig2_lr_after_over_plateau": ("<", 0.1),
        "fig2_plateau_sigma_regime_fraction": (">", 0.5),
        "alpha_eq37_rel_err": ("<", 1e-12),
        "eq41_case1_rel_err": ("<", 0.01),
        "eq41_case2_rel_err": ("<", 0.01),
        "eq41_case3_rel_err": ("<", 0.01),
        "eq41_printed_case2_real_fraction": ("==", 0),
    },
    "05_conv_recurrent": {
        "conv_rel_err_fd": ("<", 1e-6),
        "conv_hww_rank_per_position": ("==", 1),
        "conv_hxx_rank_per_position": ("==", 1),
        "conv_summed_over_per_position_rank": (">", 1),
        "conv_conditional_corrected_err": ("<", 1e-12),
        "conv_printed_nan_fraction_min": (">", 0),
        "conv_printed_eq56_err": (">", 1e-2),
        "rec_rel_err_fd": ("<", 1e-6),
        "rec_printed_eq63_rel_err": (">", 1e-2),
        "rec_grad_rank_is_steps": ("==", 1),
        "conv_mlp_ghg_rel_err_fd": ("<", 1e-6),
    },
    "06_cr_on_your_equinox_model": {
        "fast_path": ("==", 1),
        "fast_vs_jvp_max_rel_err": ("<", 1e-10),
        "flagged_steps": ("==", 0),
        "last_over_first_loss": ("<", 0.5),
        "test_accuracy": (">", 0.8),
    },
    "07_derive_your_own_layer": {
        "forms_proved_fraction": ("==", 1),
        "rank_one_gradients": ("==", 2),
        "refusal_names_construct": ("==", 1),
        "first_order_rel_err_fd": ("<", 1e-6),
        "tangent_rel_err_fd": ("<", 1e-6),
        "curvature_rel_err_fd": ("<", 1e-4),
        "train_loss_ratio": ("<", 1),
        "alpha_finite_fraction": ("==", 1),
        "derive_seconds": (">", 0),
    },
}


def _render_module():
    spec = importlib.util.spec_from_file_location("notebooks_render", NOTEBOOKS / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = _render_module()
PATHS = render.notebook_paths()


def test_every_notebook_has_bounds():
    assert [p.stem for p in PATHS] == sorted(BOUNDS)


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: a code cell has stored outputs"
            assert cell.execution_count is None, f"{path.name}: stored execution count"


@pytest.mark.slow
@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_executes_and_meets_its_bounds(path, tmp_path, monkeypatch):
    monkeypatch.setenv("LOWRANK_NOTEBOOK_OUT", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("LOWRANK_NOTEBOOK_SCALE", raising=False)
    # the per-cell timeout guards against a hang; run times are reported, not asserted
    # (timed tests flake on shared machines): `python notebooks/render.py` lists them
    # from the notebooks' own folder, as Jupyter runs them: no notebook may depend on the
    # working directory (render.execute imports the packages of this checkout)
    nb, seconds = render.execute(path, timeout=CELL_TIMEOUT, cwd=NOTEBOOKS)
    print(f"{path.name}: {seconds:.1f} s")

    record = json.loads((tmp_path / f"{path.stem}.json").read_text())
    expected = BOUNDS[path.stem]
    stated = {k: (op, limit) for k, (op, limit) in record["bounds"].items()}
    assert stated == expected, "bounds stated in the notebook differ from the test's"
    bad = {
        key: record["values"][key]
        for key, (op, limit) in expected.items()
        if not OPS[op](record["values"][key], limit)
    }
    assert not bad, f"{path.name}: key numbers out of bounds: {bad}"

    html = render.to_html(nb, tmp_path / f"{path.stem}.html")
    assert html.stat().st_size > 10_000


def test_render_without_execution(tmp_path):
    assert render.main(["--out", str(tmp_path), "--no-execute"]) == 0
    for path in PATHS:
        assert (tmp_path / f"{path.stem}.html").is_file()
    index = (tmp_path / "index.html").read_text()
    assert all(f"{p.stem}.html" in index for p in PATHS)
