"""``lowrank train`` on the NumPy and JAX backends logs the same step quantities.

The conv and recurrent models are where the NumPy route once read a gradient that the
optimizer had overwritten with SGD's direction (its ``d^T grad F`` was 25% off on the
RNN); the JAX route never aliased.  The ResMLP and attention models run the layers derived
from their forward rules (residual blocks, layer normalisation, self-attention) on both
backends.  Whole runs of the command, float64, every logged
quantity of every iteration to 1e-8 relative.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax")

from numeric.cli import main  # noqa: E402
from numeric.metrics import read_metrics  # noqa: E402

QUANTITIES = ("loss", "alpha", "lr", "lr_eff", "dgrad", "dhd", "dnorm")


def _run(tmp_path, backend: str, args: list[str]) -> dict:
    out = tmp_path / backend
    rc = main(["train", *args, "--backend", backend, "--iterations", "4", "--quiet",
               "--eval-every", "0", "--out", str(out)])  # fmt: skip
    assert rc == 0
    return read_metrics(out)


@pytest.mark.parametrize(
    "args",
    [
        ["--model", "cnn", "--cr"],
        ["--model", "rnn", "--cr"],
        ["--model", "rnn", "--cr", "--optimizer", "adam"],
        ["--model", "cnn", "--cr", "--cr-variant", "per-layer"],
        ["--model", "resmlp", "--cr", "--activation", "tanh"],
        ["--model", "resmlp", "--cr", "--optimizer", "adam", "--cr-variant", "per-layer"],
        ["--model", "attention", "--cr", "--d-k", "4"],
    ],
    ids=lambda a: "-".join(x.lstrip("-") for x in a),
)
def test_numpy_and_jax_backends_log_the_same_quantities(tmp_path, args):
    a = _run(tmp_path, "numpy", args)
    b = _run(tmp_path, "jax", args)
    assert len(a["iteration"]) == len(b["iteration"]) == 4
    assert list(a["flag"]) == list(b["flag"])
    for name in QUANTITIES:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-8, atol=0, err_msg=name)
    # SGD's direction: d^T grad F = -||d||^2, each from its own reduction
    if "--optimizer" not in args and "--cr-variant" not in args:
        np.testing.assert_allclose(a["dgrad"], -(a["dnorm"] ** 2), rtol=1e-10)


def test_both_backends_log_the_same_evaluation_and_effective_ranks(tmp_path):
    """With evaluations, the test metrics and the effective ranks of the last hidden
    layer and the centred logits agree between the backends at every evaluation row."""
    rows = {}
    for backend in ("numpy", "jax"):
        out = tmp_path / backend
        rc = main(["train", "--model", "cnn", "--cr", "--backend", backend, "--iterations", "4",
                   "--eval-every", "2", "--quiet", "--out", str(out)])  # fmt: skip
        assert rc == 0
        rows[backend] = read_metrics(out)
    a, b = rows["numpy"], rows["jax"]
    evaluated = np.flatnonzero(np.isfinite(a["eff_rank"]))
    assert evaluated.tolist() == [1, 3]
    assert np.array_equal(np.isfinite(b["eff_rank"]), np.isfinite(a["eff_rank"]))
    for name in ("test_loss", "test_accuracy", "eff_rank", "eff_rank_logits"):
        np.testing.assert_allclose(a[name][evaluated], b[name][evaluated], rtol=1e-8,
                                   err_msg=name)  # fmt: skip
    assert (a["eff_rank"][evaluated] >= 1).all() and (a["eff_rank_logits"][evaluated] >= 1).all()
