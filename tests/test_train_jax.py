"""`lowrank train --backend jax`: the same runs as NumPy, resume, optax methods, devices."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("optax")

from numeric.metrics import read_metrics  # noqa: E402
from numeric.optimizers import OPTAX_OPTIMIZERS  # noqa: E402
from numeric.training.config import TrainConfig  # noqa: E402
from numeric.training.runs import resume, train  # noqa: E402

SMALL = dict(hidden=(16, 16, 16), iterations=100, eval_every=50, checkpoint_every=40)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_numpy_and_jax_runs_agree(tmp_path, optimizer):
    """Same config and seed, float64: losses and step lengths of 100 iterations to 1e-10."""
    runs = {}
    for backend in ("numpy", "jax"):
        cfg = TrainConfig(**SMALL, optimizer=optimizer, cr=True, backend=backend)
        train(cfg, tmp_path / backend, progress=False, log=None)
        runs[backend] = read_metrics(tmp_path / backend)
    for column in ("loss", "alpha", "dgrad", "dhd", "test_loss"):
        a, b = runs["numpy"][column], runs["jax"][column]
        finite = np.isfinite(a)
        assert np.array_equal(finite, np.isfinite(b))
        np.testing.assert_allclose(b[finite], a[finite], rtol=1e-10, atol=0, err_msg=column)
    assert list(runs["numpy"]["flag"]) == list(runs["jax"]["flag"])


def test_jax_resume_is_identical_to_an_uninterrupted_run(tmp_path):
    cfg = TrainConfig(**SMALL, cr=True, backend="jax")
    train(cfg, tmp_path / "whole", progress=False, log=None)
    short = TrainConfig(**{**SMALL, "iterations": 60}, cr=True, backend="jax")
    train(short, tmp_path / "parts", progress=False, log=None)
    result = resume(tmp_path / "parts", iterations=100, progress=False, log=None)
    assert result.status == "completed"
    a, b = read_metrics(tmp_path / "whole"), read_metrics(tmp_path / "parts")
    for column in ("loss", "alpha", "dhd"):
        np.testing.assert_array_equal(a[column], b[column])
    assert all(isinstance(p, np.ndarray) for p in result.network.params)


@pytest.mark.parametrize("name", ["prodigy", "linesearch"])
def test_optax_methods_train_and_resume(tmp_path, name):
    cfg = TrainConfig(hidden=(16, 16), iterations=50, checkpoint_every=20, eval_every=25,
                      optimizer=name, backend="jax", init="normal")  # fmt: skip
    train(cfg, tmp_path / "whole", progress=False, log=None)
    short = TrainConfig(**{**cfg.to_json(), "iterations": 30})
    train(short, tmp_path / "parts", progress=False, log=None)
    resume(tmp_path / "parts", iterations=50, progress=False, log=None)
    a, b = read_metrics(tmp_path / "whole"), read_metrics(tmp_path / "parts")
    np.testing.assert_array_equal(a["loss"], b["loss"])
    assert a["loss"][-10:].mean() < a["loss"][:10].mean()


def test_optax_optimizers_need_the_jax_backend_and_no_cr():
    assert set(OPTAX_OPTIMIZERS) == set(__import__("numeric.optax_methods").optax_methods.BASELINES)
    with pytest.raises(ValueError, match="--backend jax"):
        TrainConfig(optimizer="prodigy")
    with pytest.raises(ValueError, match="CR"):
        TrainConfig(optimizer="prodigy", backend="jax", cr=True)
    with pytest.raises(ValueError, match="JAX backend"):
        TrainConfig(devices=2)


def test_cli_jax_backend_with_devices(tmp_path):
    """The CLI on 4 forced host devices, then resumed on 2: same losses as 1 device."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    common = ["--layers", "2", "--width", "8", "--cr", "--checkpoint-every", "10",
              "--eval-every", "0", "--quiet", "--backend", "jax"]  # fmt: skip

    def lowrank(*args):
        proc = subprocess.run([sys.executable, "-m", "numeric", *args], env=env,
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]

    lowrank(
        "train", *common, "--iterations", "30", "--devices", "1", "--out", str(tmp_path / "one")
    )
    lowrank(
        "train", *common, "--iterations", "20", "--devices", "4", "--out", str(tmp_path / "four")
    )
    lowrank("train", "--resume", str(tmp_path / "four"), "--iterations", "30", "--devices", "2",
            "--quiet")  # fmt: skip
    a, b = read_metrics(tmp_path / "one"), read_metrics(tmp_path / "four")
    np.testing.assert_allclose(b["loss"], a["loss"], rtol=1e-12)
    np.testing.assert_allclose(b["alpha"], a["alpha"], rtol=1e-10)


@pytest.mark.parametrize("name", ["schedule_free_adamw", "schedule_free_sgd"])
def test_schedule_free_is_evaluated_at_its_averaged_weights(tmp_path, monkeypatch, name):
    """Schedule-free methods train at y and are evaluated at their average x
    (``optax.contrib.schedule_free_eval_params``); the training loop's test columns use x."""
    import optax

    from numeric import jax_backend as jb
    from numeric import optax_methods as nmeth
    from numeric.data import load_dataset
    from numeric.network import Network
    from numeric.stepping import eval_network
    from numeric.training.evaluation import evaluate

    method = nmeth.baseline(name)
    net = jb.to_jax(Network.create(20, [8, 8], 3, seed=0, init=0.5, dtype=np.float32))
    state = method.init(net)
    rng = np.random.default_rng(0)
    x, labels = rng.random((64, 20)).astype(np.float32), rng.integers(0, 3, 64)
    for _ in range(5):
        net, state, _ = method.step(net, state, x[:16], labels[:16])
    evaluated = eval_network(method, net, state)
    sf = nmeth._find_schedule_free_state(state.opt)
    want = optax.contrib.schedule_free_eval_params(sf, list(net.params))
    for got, w, y in zip(evaluated.params, want, net.params, strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(w))
        assert not np.array_equal(np.asarray(got), np.asarray(y))  # x is not the iterate
    other = nmeth.baseline("prodigy")
    assert eval_network(other, net, other.init(net)) is net

    import numeric.training.loop as training

    seen = []

    def spy(method, network, state):
        seen.append(eval_network(method, network, state))
        return seen[-1]

    monkeypatch.setattr(training, "eval_network", spy)
    cfg = TrainConfig(hidden=(8, 8), iterations=20, checkpoint_every=20, eval_every=20,
                      optimizer=name, backend="jax", init="normal")  # fmt: skip
    result = train(cfg, tmp_path / "run", progress=False, log=None)
    metrics = read_metrics(tmp_path / "run")
    test = load_dataset(cfg.dataset, split="test")
    assert len(seen) == 1
    recorded = metrics["test_loss"][-1]
    assert recorded == pytest.approx(evaluate(jb.to_numpy(seen[0]), test)[0], rel=1e-6)
    assert recorded != pytest.approx(evaluate(result.network, test)[0], rel=1e-6)
