"""The CNN, RNN and ResMLP models: builders, training runs with CR (resumable, checkpointed), the
command line, and the multiply-add count of the cost routes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from numeric import cli
from numeric.architectures import DEFAULTS, build, layers_for, model_options
from numeric.bench_models import model_routes, multiply_adds, problem
from numeric.data import Dataset
from numeric.layers import Conv2D, Flatten, Output, Recurrent
from numeric.metrics import read_metrics
from numeric.network import Network
from numeric.training.config import TrainConfig, config_key, load_config
from numeric.training.runs import resume, train
from tests.test_training import Interrupt, same_trajectory, same_weights


def images(n=96, side=10, classes=3, seed=0) -> Dataset:
    """Blobs as ``side x side`` images (a bright square whose place depends on the class)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=n)
    x = 0.1 * rng.random((n, side, side))
    for i, c in enumerate(labels):
        r = 1 + 2 * c
        x[i, r : r + 3, r : r + 3] += 0.8
    return Dataset(
        x=x.reshape(n, -1), labels=labels, classes=classes, image_shape=(side, side),
        name="squares", source="synthetic",
    )  # fmt: skip


DATA = images()
SMALL = {
    "cnn": {"channels": [2, 3], "kernel": 3, "stride": 2, "dense": [4]},
    "rnn": {"width": 5, "dense": [3]},
    "resmlp": {"width": 5, "blocks": 2, "norm": True},
    "attention": {"d_k": 3},
}


def config(model, **kw) -> TrainConfig:
    base = dict(
        dataset="squares", model=model, arch=SMALL[model], init="plateau", batch_size=8,
        iterations=30, checkpoint_every=10, optimizer="sgd", lr=0.05, sigma=10.0, cr=True,
    )  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def test_default_models_for_28x28_images():
    cnn = build("cnn", (28, 28), 10)
    assert [type(layer) for layer in cnn.layers] == [Conv2D, Conv2D, Flatten, type(
        cnn.layers[3]), Output]  # fmt: skip
    assert cnn.layers[0].out_shape == (8, 13, 13) and cnn.layers[1].out_shape == (16, 6, 6)
    assert all(getattr(layer, "bias", True) for layer in cnn.layers if layer.param_shapes)
    rnn = build("rnn", (1, 28, 28), 10)
    assert isinstance(rnn.layers[0], Recurrent) and rnn.layers[0].steps == 28
    assert rnn.layers[0].in_shape == (28, 28) and rnn.layers[-1].d_in == DEFAULTS["rnn"]["width"]
    mlp = build("mlp", (28, 28), 10, seed=4, init="plateau")
    ref = Network.create(784, [128] * 12, 10, seed=4, init="plateau")
    assert mlp.layers == ref.layers and mlp.is_dense
    for a, b in zip(mlp.params, ref.params, strict=True):
        np.testing.assert_array_equal(a, b)


def test_model_option_errors():
    with pytest.raises(ValueError, match="unknown model"):
        model_options("transformer")
    with pytest.raises(ValueError, match="unknown option"):
        model_options("cnn", {"width": 3})
    with pytest.raises(ValueError, match="positive integers"):
        model_options("rnn", {"width": 0})
    with pytest.raises(ValueError, match="does not fit"):
        layers_for("cnn", (28, 28), 10, options={"channels": [4, 4, 4, 4]})
    with pytest.raises(ValueError, match="row by row"):
        layers_for("rnn", (3, 32, 32), 10)
    with pytest.raises(ValueError, match="sized by hidden"):
        TrainConfig(model="mlp", arch={"channels": [2]})
    with pytest.raises(ValueError, match="averaging"):
        TrainConfig(model="cnn", averaging="mean-alpha")


def test_config_defaults_and_key():
    plain = TrainConfig()
    assert plain.bias is False and plain.arch == {}
    key = json.loads(config_key(plain))
    assert not {"model", "bias", "arch"} & set(key)  # runs of the paper's network keep their key
    cnn = TrainConfig(model="cnn")
    assert cnn.bias is True and cnn.arch == DEFAULTS["cnn"] and "cnn" in cnn.label()
    assert TrainConfig.from_json(cnn.to_json()) == cnn
    assert config_key(cnn) != config_key(plain)
    assert config_key(TrainConfig(bias=True)) != config_key(plain)


@pytest.mark.parametrize(
    "model, extra",
    [("cnn", {}), ("rnn", {"activation": "tanh"}), ("cnn", {"optimizer": "adam", "lr": 0.01,
                                                              "sigma": 1000.0}),
     ("resmlp", {"activation": "tanh"}), ("attention", {})],
    ids=["cnn-sgd-cr", "rnn-tanh-sgd-cr", "cnn-adam-cr", "resmlp-tanh-sgd-cr", "attention-sgd-cr"],
)  # fmt: skip
def test_training_resumes_exactly(tmp_path, model, extra):
    cfg = config(model, **extra)
    full = train(cfg, tmp_path / "full", dataset=DATA, progress=False)
    assert full.status == "completed"
    assert np.isfinite(read_metrics(tmp_path / "full")["dhd"]).all()
    part = train(cfg, tmp_path / "part", dataset=DATA, progress=False, callback=Interrupt(17))
    assert part.status == "interrupted"
    done = resume(tmp_path / "part", dataset=DATA, progress=False)
    assert done.iterations_done == cfg.iterations
    same_weights(full.network, done.network)
    same_trajectory(tmp_path / "full", tmp_path / "part")
    assert load_config(tmp_path / "part").model == model


def test_cli_trains_cnn_and_rnn_with_cr(tmp_path, capsys):
    for model, sizes in (
        ("cnn", ["--channels", "2", "--kernel", "5", "--stride", "3", "--dense", "4"]),
        ("rnn", ["--rnn-width", "4"]),
        ("resmlp", ["--res-width", "4", "--blocks", "1", "--activation", "tanh"]),
        ("attention", ["--d-k", "3"]),
    ):
        out = tmp_path / model
        argv = ["train", "--model", model, "--cr", *sizes, "--iterations", "6", "--quiet"]
        assert cli.main([*argv, "--out", str(out)]) == 0
        cfg = json.loads((out / "config.json").read_text())["config"]
        assert cfg["model"] == model and cfg["bias"] is True and cfg["cr"] is True
        assert cli.main(["train", "--resume", str(out), "--iterations", "8", "--quiet"]) == 0
        assert json.loads((out / "summary.json").read_text())["iterations_done"] == 8
    assert cli.main(["train", "--resume", str(tmp_path / "cnn"), "--channels", "3"]) == 2
    assert cli.main(["train", "--model", "cnn", "--hidden", "8", "--out", str(tmp_path / "x")]) == 2
    assert cli.main(["train", "--channels", "3", "--out", str(tmp_path / "y"), "--quiet"]) == 2
    out = tmp_path / "mlp-bias"
    assert cli.main(["train", "--bias", "--hidden", "6", "--iterations", "4", "--quiet",
                     "--out", str(out)]) == 0  # fmt: skip
    assert load_config(out).bias is True
    assert cli.main(["train", "--model", "resmlp", "--channels", "3", "--quiet",
                     "--out", str(tmp_path / "z")]) == 2  # fmt: skip
    assert cli.main(["train", "--model", "attention", "--activation", "tanh", "--quiet",
                     "--out", str(tmp_path / "w")]) == 2  # fmt: skip
    assert "--model {mlp,cnn,rnn,resmlp,attention}" in _help(capsys)


def _help(capsys) -> str:
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    return capsys.readouterr().out


@pytest.mark.parametrize("model", ["cnn", "rnn", "resmlp", "attention"])
def test_cost_routes_step_and_count(model):
    net, x, labels = problem(model, batch=4, options=SMALL[model])
    routes = model_routes(net, x, labels)
    assert set(routes) == {f"{model}-forward", f"{model}-sgd", f"{model}-cr"}
    for fn in routes.values():
        fn()
    counts = multiply_adds(net, batch=4)
    assert 0 < counts["forward"] < counts["sgd"]
    assert 1.0 < counts["ratio"] < 3.0


def test_reproduce_model_section(tmp_path, capsys):
    from numeric.model_results import keep_sections, plan

    doc = tmp_path / "results.md"
    doc.write_text("# Measured results\n\nkept text\n")
    argv = ["--iterations", "3", "--seeds", "1", "--datasets", "mnist-embedded,nosuch"]
    out = ["--out", str(tmp_path / "runs"), "--doc", str(doc)]
    assert cli.main(["reproduce", "cnn", *argv, *out]) == 0
    assert "skipping nosuch" in capsys.readouterr().out
    text = doc.read_text()
    assert "kept text" in text and text.count("<!-- section:cnn") == 1
    assert "| SGD + CR (sigma 100) |" in text and "### CNN, mnist-embedded, normal start" in text
    assert cli.main(["reproduce", "cnn", *argv, *out]) == 0  # reuses the runs, same section
    assert doc.read_text() == text
    regenerated = keep_sections(text, "# Measured results\n\nnew page\n")
    assert "new page" in regenerated and regenerated.count("<!-- end section:cnn -->") == 1
    jobs = plan("rnn", ["mnist-embedded", "fashion-mnist"], 10, range(3))
    assert len(jobs) == 2 * 3 * (4 + 2) and {j.config.model for j in jobs} == {"rnn"}
    assert cli.main(["reproduce", "rnn", "--seeds", "0", *out]) == 2
