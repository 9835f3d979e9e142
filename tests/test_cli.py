"""Tests for the ``lowrank`` command line (numeric.cli)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

from numeric import cli
from numeric.training import latest_checkpoint, load_config, read_metrics

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--hidden", "8,8", "--iterations", "40", "--quiet"]


def test_train_resume_and_summary(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--cr", "--init", "plateau", "--out", str(out), *TINY]) == 0
    text = capsys.readouterr().out
    assert "SGD with CR: completed after 40 iterations" in text
    cfg = json.loads((out / "config.json").read_text())["config"]
    assert cfg["hidden"] == [8, 8] and cfg["cr"] and cfg["sigma"] == 100.0
    assert cfg["dataset"] == "mnist-embedded"
    # a completed run resumes to itself; a longer target extends it
    assert cli.main(["train", "--resume", str(out), "--iterations", "50", "--quiet"]) == 0
    assert len(read_metrics(out)["loss"]) == 50
    # the saved configuration cannot be changed on resume
    assert cli.main(["train", "--resume", str(out), "--lr", "0.5"]) == 2
    assert "--lr" in capsys.readouterr().err
    # an existing run is not overwritten by accident
    assert cli.main(["train", "--out", str(out), *TINY]) == 2
    assert cli.main(["train", "--out", str(out), "--overwrite", *TINY]) == 0


def test_train_options_reach_the_config(tmp_path):
    out = tmp_path / "r"
    args = [
        "train",
        "--optimizer",
        "adagrad",
        "--lr",
        "0.2",
        "--cr",
        "--sigma",
        "50",
        "--layers",
        "2",
        "--width",
        "6",
        "--seed",
        "3",
        "--batch-size",
        "16",
        "--no-decay",
        "--iterations",
        "5",
        "--init",
        "normal",
        "--quiet",
        "--out",
        str(out),
    ]
    assert cli.main(args) == 0
    cfg = json.loads((out / "config.json").read_text())["config"]
    assert (cfg["optimizer"], cfg["lr"], cfg["sigma"], cfg["hidden"], cfg["seed"]) == (
        "adagrad",
        0.2,
        50.0,
        [6, 6],
        3,
    )
    assert (cfg["batch_size"], cfg["decay"], cfg["init"], cfg["cr"]) == (16, False, "normal", True)
    for spec, hidden in (("7x3", [7, 7, 7]), ("9,5", [9, 5])):
        out = tmp_path / spec
        argv = ["train", "--hidden", spec, "--iterations", "1", "--quiet", "--out", str(out)]
        assert cli.main(argv) == 0
        assert json.loads((out / "config.json").read_text())["config"]["hidden"] == hidden
    with pytest.raises(SystemExit):
        cli.main(["train", "--hidden", "wide", "--out", str(tmp_path / "bad")])


def test_train_activation_round_trips_through_config_and_resume(tmp_path, capsys, monkeypatch):
    out = tmp_path / "tanh"
    argv = ["train", "--cr", "--activation", "tanh", "--checkpoint-every", "15", "--out", str(out)]
    assert cli.main([*argv, *TINY]) == 0
    assert "SGD with CR (tanh): completed after 40 iterations" in capsys.readouterr().out
    cfg = json.loads((out / "config.json").read_text())["config"]
    assert cfg["activation"] == "tanh" and cfg["cr"]
    with np.load(latest_checkpoint(out)) as ck:
        assert str(ck["net/activation"]) == "tanh"
    # resumed from the checkpoint at 30 (the rows after it recomputed): bit for bit
    full = read_metrics(out)
    (out / "checkpoints" / "ckpt-000040.npz").unlink()
    assert cli.main(["train", "--resume", str(out), "--quiet"]) == 0
    again = read_metrics(out)
    for name in full:
        if name not in ("step_ms", "time_s"):
            equal_nan = full[name].dtype.kind == "f"
            assert np.array_equal(full[name], again[name], equal_nan=equal_nan), name
    assert cli.main(["train", "--resume", str(out), "--iterations", "45", "--quiet"]) == 0
    assert len(read_metrics(out)["loss"]) == 45
    assert load_config(out).activation == "tanh"
    # the saved activation cannot be changed on resume
    assert cli.main(["train", "--resume", str(out), "--activation", "relu"]) == 2
    assert "--activation" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["train", "--activation", "cubic", "--out", str(tmp_path / "bad")])
    # without --out a non-ReLU run gets its own default directory
    monkeypatch.chdir(tmp_path)
    argv = ["train", "--activation", "sigmoid", "--hidden", "4", "--iterations", "2", "--quiet"]
    assert cli.main(argv) == 0
    assert load_config(tmp_path / "runs" / "sgd-plateau-sigmoid").activation == "sigmoid"


def test_missing_cifar_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LOWRANK_DATA_DIR", str(tmp_path / "empty"))
    rc = cli.main(["train", "--dataset", "cifar10", "--out", str(tmp_path / "r"), *TINY])
    assert rc == 2
    err = capsys.readouterr().err
    assert "cifar-10-python.tar.gz" in err and "--data-dir" in err
    rc = cli.main(["reproduce", "fig3", "--out", str(tmp_path / "f3"), "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "fig3" in err and "https://www.cs.toronto.edu/~kriz/cifar.html" in err
    assert not (tmp_path / "f3").exists()


def test_reproduce_writes_both_runs_and_the_plot(tmp_path, capsys):
    out = tmp_path / "fig2"
    assert cli.main(["reproduce", "fig2", "--out", str(out), "--iterations", "12", "--quiet"]) == 0
    assert (out / "fig2.png").stat().st_size > 10_000
    summary = json.loads((out / "fig2.json").read_text())
    assert summary["baseline"]["label"] == "SGD" and summary["cr"]["label"] == "SGD with CR"
    base = json.loads((out / "baseline" / "config.json").read_text())["config"]
    assert (base["lr"], base["sigma"], base["init"], base["hidden"]) == (
        0.02,
        100.0,
        "plateau",
        [128] * 12,
    )
    assert base["activation"] == "relu"  # the paper's figures are ReLU networks
    assert "fig2: plot" in capsys.readouterr().out
    assert cli.main(["reproduce", "fig9"]) == 2


def fake_module(name, calls, rc=0):
    mod = types.ModuleType(name)

    def main(argv):
        calls.append((name, list(argv)))
        return rc

    mod.main = main
    return mod


def test_derive_and_verify_are_forwarded_by_name(monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "derive.cli", fake_module("derive.cli", calls))
    monkeypatch.setitem(sys.modules, "verify.cli", fake_module("verify.cli", calls, rc=3))
    assert cli.main(["derive", "show", "36", "--no-check"]) == 0
    assert cli.main(["verify", "report", "--quick"]) == 3
    assert calls == [
        ("derive.cli", ["show", "36", "--no-check"]),
        ("verify.cli", ["report", "--quick"]),
    ]


def test_missing_extra_names_the_pip_command(monkeypatch, capsys):
    real = cli.importlib.import_module

    def fake_import(name, *a):
        if name == "verify.cli":
            raise ModuleNotFoundError("No module named 'jax'", name="jax")
        if name == "derive.cli":
            raise ModuleNotFoundError("No module named 'sympy'", name="sympy")
        return real(name, *a)

    monkeypatch.setattr(cli.importlib, "import_module", fake_import)
    assert cli.main(["verify", "report"]) == 2
    assert "pip install '.[verify]'" in capsys.readouterr().err
    assert cli.main(["derive", "check"]) == 2
    assert "pip install '.[derive]'" in capsys.readouterr().err


def test_demo_runs_all_three_steps(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setitem(sys.modules, "derive.cli", fake_module("derive.cli", calls))
    monkeypatch.setitem(sys.modules, "verify.cli", fake_module("verify.cli", calls))
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), "--iterations", "12", "--quiet"]) == 0
    names = [c[0] for c in calls]
    assert names == ["derive.cli", "derive.cli", "derive.cli", "verify.cli"]
    assert calls[0][1] == ["generate", "--check"]
    assert calls[1][1][0] == "check" and calls[2][1] == ["table"]
    assert calls[3][1] == ["report", "--quick", "--out", str(out / "verify")]
    assert (out / "train" / "fig2.png").is_file()
    assert "demo finished" in capsys.readouterr().out


def test_demo_skips_verification_without_jax(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setitem(sys.modules, "derive.cli", fake_module("derive.cli", calls))
    real = cli.importlib.import_module

    def fake_import(name, *a):
        if name == "verify.cli":
            raise ModuleNotFoundError("No module named 'jax'", name="jax")
        return real(name, *a)

    monkeypatch.setattr(cli.importlib, "import_module", fake_import)
    rc = cli.main(["demo", "--out", str(tmp_path / "d"), "--skip-train", "--quiet"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "skipped" in out and "pip install '.[verify]'" in out


def test_numeric_layer_imports_neither_sympy_nor_jax():
    code = (
        "import sys\n"
        "import numeric.cli, numeric.training, numeric.cr, numeric.model, numeric.experiments\n"
        "import numeric.results, numeric.plots\n"
        "bad = [m for m in ('sympy', 'jax', 'derive', 'verify') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_ctrl_c_exits_130_and_resume_completes(tmp_path):
    out = tmp_path / "r"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [
        sys.executable,
        "-m",
        "numeric",
        "train",
        "--hidden",
        "16,16",
        "--iterations",
        "200000",
        "--quiet",
        "--checkpoint-every",
        "1000000",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (out / "summary.json").exists():
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout
    assert "lowrank train --resume" in stdout
    summary = json.loads((out / "summary.json").read_text())
    done = summary["iterations_done"]
    assert summary["status"] == "interrupted" and 0 < done < 200000
    assert len(read_metrics(out)["loss"]) == done
    assert cli.main(["train", "--resume", str(out), "--iterations", str(done + 5), "--quiet"]) == 0
    assert len(read_metrics(out)["loss"]) == done + 5


@pytest.mark.parametrize(
    "argv", [["--help"], ["train", "--help"], ["reproduce", "--help"], ["demo", "--help"]]
)
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 0
    assert "usage" in capsys.readouterr().out


def test_reproduce_results_writes_the_page(tmp_path, capsys):
    doc = tmp_path / "results.md"
    argv = [
        "reproduce",
        "results",
        "--iterations",
        "110",
        "--seeds",
        "1",
        "--hidden",
        "8x2",
        "--out",
        str(tmp_path / "runs"),
        "--doc",
        str(doc),
    ]
    assert cli.main(argv) == 0
    text = doc.read_text()
    assert text.startswith("# Measured results")
    assert "lowrank reproduce results --iterations 110 --seeds 1" in text
    assert "--hidden 8x2" in text and "2 hidden ReLU layers of 8" in text
    for heading in (
        "## Plateau start",
        "## Normal start",
        "## Mini-batch averaging",
        "## Sensitivity to sigma",
        "## The paper's claims",
        "## Where these runs",
    ):
        assert heading in text
    assert "| SGD + CR (sigma 100) |" in text and "| alpha-g |" in text
    assert "nan" not in text.lower()
    # a second invocation reuses every run
    capsys.readouterr()
    assert cli.main(argv) == 0
    assert (tmp_path / "runs" / "plateau" / "adam-cr" / "seed0" / "summary.json").is_file()


def test_diverged_run_exits_1_with_a_message(tmp_path, capsys):
    argv = ["train", "--lr", "1e300", "--no-decay", "--out", str(tmp_path / "d"), *TINY]
    assert cli.main(argv) == 1
    assert "diverged" in capsys.readouterr().out


def test_demo_goes_on_when_a_step_raises(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setitem(sys.modules, "derive.cli", fake_module("derive.cli", calls))
    broken = types.ModuleType("verify.cli")

    def main(argv):
        raise RuntimeError("verification broke")

    broken.main = main
    monkeypatch.setitem(sys.modules, "verify.cli", broken)
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), "--iterations", "5", "--quiet"]) == 1
    text = capsys.readouterr()
    assert "verify: failed" in text.out and "verification broke" in text.err
    assert (out / "train" / "fig2.png").is_file()
