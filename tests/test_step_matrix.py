"""Whole CR training steps on every path against plain JAX autodiff (verify/steps.py).

Each cell takes three steps from one state and batch and compares every logged
quantity, the flag, the new parameters and the applied update with the reference
(float64, 1e-10 relative); undefined cells must be refused with a ``ValueError``.  The
compiled paths run the ``"test"`` tier of :func:`verify.steps.select`; the NumPy path
runs the whole matrix (``python -m verify report`` runs the whole matrix on every path).
"""

from __future__ import annotations

import re

import pytest

pytest.importorskip("jax")
pytest.importorskip("optax")

from verify import steps as st  # noqa: E402

CELLS = st.select(st.cells(), "test")


@pytest.mark.parametrize("cell", CELLS, ids=[c.name for c in CELLS])
def test_step_path_matches_autodiff(cell):
    pattern = st.refusal(cell)
    if pattern is not None:
        with pytest.raises(ValueError, match=re.escape(pattern)):
            st.run_path(cell)
        return
    got = st.run_path(cell)
    want = st.reference_run(cell, st.QUICK, st.anchors(cell, got))
    bad = [
        f"step {s} {q}: rel err {e:.2e}"
        + (
            ""
            if q in ("params", "update")
            else f" (got {getattr(got[s], q)!r}, want {getattr(want[s], q)!r})"
        )
        for s, q, e in st.compare_runs(got, want)
        if not e <= st.RTOL
    ]
    assert not bad, "\n".join(bad)
    if cell.base == "sgd" and cell.config.averaging == "model":
        errs = st.sgd_invariant(cell, got)
        assert max(errs) <= st.RTOL, errs
