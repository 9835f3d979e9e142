"""The collapse diagnostics (numeric.diagnostics) and their ``metrics.csv`` columns.

The effective ranks a run logs are checked against an independent reference: a plain JAX
forward pass of the trained weights, written out here, and ``jnp.linalg.svd``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from numeric.diagnostics import PROBE_ROWS, collapse, effective_rank
from numeric.metrics import (
    COLUMNS,
    PRE_DIAGNOSTIC_COLUMNS,
    format_row,
    read_metrics,
    scan_metrics,
)
from numeric.network import Network
from numeric.training.runs import resume, train
from tests.test_training import DATA, TIMING, Interrupt, synthetic, tiny

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
jax.config.update("jax_enable_x64", True)

TEST = synthetic(60, seed=1)


def _reference_rank(m) -> float:
    """exp(entropy) of the normalised singular values, by jnp.linalg.svd."""
    s = jnp.linalg.svd(jnp.asarray(m, dtype=jnp.float64), compute_uv=False)
    p = s / s.sum()
    p = p[p > 0]
    return float(jnp.exp(-jnp.sum(p * jnp.log(p))))


def _plain_forward(net: Network, x):
    """The bias-free ReLU MLP of Eqs 10-13 in plain jax.numpy: last hidden layer, logits."""
    h = jnp.asarray(x, dtype=jnp.float64)
    for w in net.ws:
        h = jnp.maximum(h @ jnp.asarray(w).T, 0.0)
    return h, h @ jnp.asarray(net.u).T


def test_effective_rank_of_known_matrices():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(40, 7)))
    assert effective_rank(q) == pytest.approx(7.0, rel=1e-12)  # 7 equal singular values
    rank1 = np.outer(rng.normal(size=30), rng.normal(size=9))
    assert effective_rank(rank1) == pytest.approx(1.0, abs=1e-6)
    assert effective_rank(np.zeros((5, 3))) == 0.0
    # two singular values 3 and 1: p = (3/4, 1/4)
    expected = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert effective_rank(np.diag([3.0, 1.0])) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="matrix"):
        effective_rank(np.ones(3))


def test_effective_rank_matches_jnp_svd_on_random_matrices():
    rng = np.random.default_rng(1)
    for shape in [(50, 12), (8, 30), (64, 10)]:
        m = rng.normal(size=shape) * rng.uniform(0.01, 3.0, size=shape[1])
        assert effective_rank(m) == pytest.approx(_reference_rank(m), rel=1e-10)


def test_a_run_logs_the_effective_ranks_of_its_evaluation_rows(tmp_path):
    """At evaluation rows the logged ranks are those of the trained weights on the
    probe batch, by a plain JAX forward and jnp.linalg.svd; elsewhere they are empty."""
    res = train(tiny(cr=True, eval_every=20), tmp_path / "r", dataset=DATA,
                test_dataset=TEST, progress=False)  # fmt: skip
    m = read_metrics(tmp_path / "r")
    evaluated = np.flatnonzero(np.isfinite(m["eff_rank"]))
    assert evaluated.tolist() == [19, 39, 59]
    assert np.array_equal(np.isfinite(m["eff_rank_logits"]), np.isfinite(m["test_loss"]))
    probe = TEST.x[:PROBE_ROWS]
    h, p = _plain_forward(res.network, probe)
    assert m["eff_rank"][59] == pytest.approx(_reference_rank(h), rel=1e-9)
    centred = p - p.mean(axis=0, keepdims=True)
    assert m["eff_rank_logits"][59] == pytest.approx(_reference_rank(centred), rel=1e-9)
    assert 1.0 <= m["eff_rank"][59] <= min(probe.shape[0], res.network.hidden[-1])
    assert res.summary["eff_rank"] == m["eff_rank"][59]
    assert res.summary["eff_rank_logits"] == m["eff_rank_logits"][59]
    # the CSV leaves them empty off the evaluation rows
    line = (tmp_path / "r" / "metrics.csv").read_text().splitlines()[1]
    assert line.endswith(",,,,")


def test_collapse_is_the_same_on_both_backends():
    from numeric import jax_backend as jb

    net = Network.create(12, [6, 5], 4, init=0.5, seed=3)
    a = collapse(net, TEST.x)
    b = collapse(jb.to_jax(net), TEST.x)
    assert a.eff_rank == pytest.approx(b.eff_rank, rel=1e-10)
    assert a.eff_rank_logits == pytest.approx(b.eff_rank_logits, rel=1e-10)


def _strip_ranks(run) -> None:
    """Make ``run`` look written before the ranks were logged: the 15-column header in
    ``metrics.csv`` and no rank columns in the checkpoints' copies of the rows."""
    rows = scan_metrics(run / "metrics.csv").rows
    keep = len(PRE_DIAGNOSTIC_COLUMNS)
    text = ",".join(PRE_DIAGNOSTIC_COLUMNS) + "\n"
    text += "".join(",".join(format_row(r).rstrip("\n").split(",")[:keep]) + "\n" for r in rows)
    (run / "metrics.csv").write_text(text)
    for path in (run / "checkpoints").glob("*.npz"):
        with np.load(path) as data:
            arrays = {k: np.array(data[k]) for k in data.files if "eff_rank" not in k}
        np.savez(path, **arrays)


def test_metrics_written_before_the_effective_ranks_still_load_and_resume(tmp_path):
    """A run whose metrics.csv has the older 15-column header (and whose checkpoints
    lack the rank columns) reads back with NaN ranks; resuming it rewrites the file with
    the current header, keeps the old rows, and the new rows are those of an
    uninterrupted run, ranks included."""
    cfg = tiny(cr=True, eval_every=20)
    ref, old = tmp_path / "ref", tmp_path / "old"
    train(cfg, ref, dataset=DATA, test_dataset=TEST, progress=False)
    first = train(cfg, old, dataset=DATA, test_dataset=TEST, progress=False,
                  callback=Interrupt(44))  # fmt: skip
    n = first.iterations_done
    assert first.status == "interrupted" and 40 < n < 60
    _strip_ranks(old)
    found = scan_metrics(old / "metrics.csv")
    assert found.legacy and len(found.rows) == n and not found.bad_lines
    assert all(math.isnan(r.eff_rank) and math.isnan(r.eff_rank_logits) for r in found.rows)
    res = resume(old, dataset=DATA, test_dataset=TEST, progress=False)
    assert res.status == "completed"
    header = (old / "metrics.csv").read_text().splitlines()[0]
    assert tuple(header.split(",")) == COLUMNS
    m, r = read_metrics(old), read_metrics(ref)
    assert np.isnan(m["eff_rank"][:n]).all() and np.isfinite(r["eff_rank"][[19, 39]]).all()
    for name in ("eff_rank", "eff_rank_logits"):
        assert np.array_equal(m[name][n:], r[name][n:], equal_nan=True), name
    for name in COLUMNS:
        if name not in TIMING and name not in ("eff_rank", "eff_rank_logits"):
            assert np.array_equal(m[name], r[name], equal_nan=m[name].dtype.kind == "f"), name
