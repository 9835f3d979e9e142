"""``lowrank reproduce compare``: runs, records, the results section and its goal check."""

from __future__ import annotations

import json

import pytest

from numeric import cli
from numeric import compare as cmp


def test_compare_end_to_end_and_reuse(tmp_path, capsys):
    out, doc = tmp_path / "runs", tmp_path / "results.md"
    doc.write_text("# Measured results\n\nkept text\n")
    args = ["reproduce", "compare", "--iterations", "6", "--seeds", "1", "--datasets",
            "mnist-embedded", "--models", "mlp", "--starts", "plateau", "--methods",
            "sgd@0.01,adam@0.001,cr-sgd,adaptive-adam,per-layer-sgd-k4", "--jobs", "1",
            "--out", str(out), "--doc", str(doc)]  # fmt: skip
    assert cli.main(args) == 0
    text = doc.read_text()
    assert "kept text" in text and "<!-- section:compare" in text
    assert "### MLP, mnist-embedded, plateau start" in text and "### The goal, MLP" in text
    assert "| adaptive CR-Adam (sigma0 1000) |" in text and "Step-length reuse" in text
    rec = json.loads((out / "mnist-embedded/mlp/plateau/cr-sgd-s0.json").read_text())
    assert rec["status"] == "completed" and rec["iterations_done"] == 6
    assert 0.0 <= rec["test_accuracy"] <= 1.0 and rec["step_ms"] > 0
    capsys.readouterr()
    assert cli.main(args) == 0  # the records are reused, nothing runs again
    assert "5 already done, 0 to run" in capsys.readouterr().out


def test_compare_usage_errors(tmp_path):
    with pytest.raises(SystemExit) as info:
        cmp.main(["--methods", "newton", "--out", str(tmp_path)])
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        cmp.main(["--seeds", "0", "--out", str(tmp_path)])


def _rec(dataset, start, method, seed, acc, ms, left=True, model="mlp"):
    return {
        "task": {
            "dataset": dataset,
            "model": model,
            "start": start,
            "method": method,
            "seed": seed,
            "iterations": 10,
        },  # fmt: skip
        "method": method,
        "status": "completed",
        "iterations_done": 10,
        "test_accuracy": acc,
        "hits": {"2.0": [5, 1.0] if left else None, "1.0": None},
        "flagged": 0,
        "step_ms": ms,
    }


def test_goal_check_by_hand():
    """A method meets the goal only if it leaves every plateau, matches the best Adam
    from the normal start on every dataset, and costs at most 1.6 SGD steps."""
    recs = []
    for dataset in ("mnist-embedded", "fashion-mnist"):
        for start in ("plateau", "normal"):
            for s in range(2):
                recs.append(_rec(dataset, start, "sgd@0.01", s, 0.5, 2.0))
                recs.append(_rec(dataset, start, "adam@0.001", s, 0.8, 3.0))
                recs.append(_rec(dataset, start, "adam@0.01", s, 0.6, 3.0))
                # meets: leaves, 0.8 >= best Adam 0.8, 1.5x SGD
                recs.append(_rec(dataset, start, "per-layer-sgd", s, 0.8, 3.0))
                # too slow, and below Adam on Fashion-MNIST
                acc = 0.9 if dataset == "mnist-embedded" else 0.7
                recs.append(_rec(dataset, start, "adaptive-sgd", s, acc, 4.0))
                # stays on one plateau
                recs.append(_rec(dataset, start, "cr-sgd", s, 0.85, 2.5,
                                 left=not (start == "plateau" and s == 1)))  # fmt: skip
    lines, verdicts = cmp._goal(cmp._summary(recs), "mlp")
    assert verdicts["per-layer-sgd"]["ok"]
    assert verdicts["per-layer-sgd"]["cost"] == pytest.approx(1.5)
    assert not verdicts["adaptive-sgd"]["ok"] and verdicts["adaptive-sgd"]["cost"] == 2.0
    assert not verdicts["cr-sgd"]["ok"] and verdicts["cr-sgd"]["left"] == (2, 4)
    text = cmp.render(recs, 10, 2, "lowrank reproduce compare")
    assert "Adam (lr 0.001) (best of 3 lr)" in text and "Adam (lr 0.01)" not in text
    assert "**per-layer CR-SGD (sigma 100)**: never loses" in text


@pytest.mark.parametrize("bias", [False, True])
def test_kfac_peer_trains_the_same_network(bias):
    """The second-order peer (verify side): the same weights in, trained weights out."""
    pytest.importorskip("kfac_jax")
    import numpy as np

    from numeric.architectures import build
    from verify.peers import KfacMethod, peers

    rng = np.random.default_rng(0)
    net = build("mlp", (6,), 3, bias=bias, options={"hidden": [8, 8]}, init=0.5, seed=0,
                dtype=np.float32)  # fmt: skip
    x = rng.normal(size=(64, 6)).astype(np.float32)
    labels = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    method = KfacMethod(net.layers)
    state = method.init(net)
    start = net.loss(x, labels)
    for _ in range(30):
        net, state, info = method.step(net, state, x[:32], labels[:32])
    assert np.isfinite(info.alpha) and net.loss(x, labels) < start
    assert [p.shape for p in net.params] == [p.shape for p in build(
        "mlp", (6,), 3, bias=bias, options={"hidden": [8, 8]}).params]  # fmt: skip
    factory, why = peers()["kfac"]
    assert factory is KfacMethod and why is None


def test_kfac_peer_refuses_conv_layers():
    pytest.importorskip("kfac_jax")
    from numeric.architectures import build
    from verify.peers import KfacMethod

    with pytest.raises(ValueError, match="dense layers only"):
        KfacMethod(build("cnn", (8, 8), 3, options={"channels": [2], "dense": [4]}).layers)
