"""Tests for the ``lowrank`` command line (numeric.cli)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import types
from importlib.metadata import EntryPoint
from pathlib import Path

import numpy as np
import pytest

from numeric import cli
from numeric.commands import BENCH_GROUP, COMMAND_GROUP, discover
from numeric.metrics import read_metrics
from numeric.training.checkpoints import latest_checkpoint
from numeric.training.config import load_config

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
    for spec, hidden in (("3x7", [7, 7, 7]), ("9,5", [9, 5]), ("1x4", [4])):
        out = tmp_path / spec
        argv = ["train", "--hidden", spec, "--iterations", "1", "--quiet", "--out", str(out)]
        assert cli.main(argv) == 0
        assert json.loads((out / "config.json").read_text())["config"]["hidden"] == hidden
    for bad in ("wide", "8x2x3", "0x5", "5x0", "4,0"):  # usage errors: exit 2
        with pytest.raises(SystemExit) as exc:
            cli.main(["train", "--hidden", bad, "--out", str(tmp_path / "bad")])
        assert exc.value.code == 2
    for flags in (["--layers", "0"], ["--width", "0"], ["--threads", "-2"], ["--seed", "-1"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(["train", *flags, "--out", str(tmp_path / "bad")])
        assert exc.value.code == 2
    assert not (tmp_path / "bad").exists()
    assert (
        cli.main(["train", "--hidden", "2x3", "--layers", "2", "--out", str(tmp_path / "b")]) == 2
    )


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


PLUGINS = "tests_fake_lowrank_plugins"


def fake_commands(monkeypatch, calls, *, rc=None, requires=None, broken=()):
    """Register fake ``derive`` and ``verify`` commands through entry points."""
    rc = rc or {}
    requires = requires or {}
    mod = types.ModuleType(PLUGINS)
    for name in ("derive", "verify"):

        def main(argv, name=name):
            if name in broken:
                raise RuntimeError(f"{name} broke")
            calls.append((name, list(argv)))
            return rc.get(name, 0)

        def register(name=name, main=main):
            return {"help": f"fake {name}", "main": main, "requires": requires.get(name, ())}

        setattr(mod, f"register_{name}", register)
    monkeypatch.setitem(sys.modules, PLUGINS, mod)
    eps = [
        EntryPoint(name, f"{PLUGINS}:register_{name}", COMMAND_GROUP)
        for name in ("derive", "verify")
    ]
    monkeypatch.setattr(cli, "_discover", lambda: discover(COMMAND_GROUP, eps))


def test_derive_and_verify_are_found_through_entry_points(monkeypatch):
    calls = []
    fake_commands(monkeypatch, calls, rc={"verify": 3})
    assert cli.main(["derive", "show", "36", "--no-check"]) == 0
    assert cli.main(["verify", "report", "--quick"]) == 3
    assert calls == [("derive", ["show", "36", "--no-check"]), ("verify", ["report", "--quick"])]


def test_missing_extra_names_the_pip_command(monkeypatch, capsys):
    fake_commands(
        monkeypatch, [], requires={"derive": ("no_such_sympy",), "verify": ("no_such_jax",)}
    )
    assert cli.main(["verify", "report"]) == 2
    assert "pip install 'lowrank-derivatives[verify]'" in capsys.readouterr().err
    assert cli.main(["derive", "check"]) == 2
    assert "pip install 'lowrank-derivatives[derive]'" in capsys.readouterr().err


def _pyproject_entry_points(group):
    text = (ROOT / "pyproject.toml").read_text()
    table = re.search(
        rf'\[project\.entry-points\."{re.escape(group)}"\]\n(.*?)(?:\n\[|\Z)', text, re.S
    )
    assert table, f"pyproject.toml has no entry points for {group}"
    pairs = re.findall(r'^(\w+) = "([\w.:]+)"$', table.group(1), re.M)
    return [EntryPoint(name, value, group) for name, value in pairs]


def test_the_declared_entry_points_register_derive_verify_and_jax_routes():
    commands = discover(COMMAND_GROUP, _pyproject_entry_points(COMMAND_GROUP))
    assert set(commands) == {"derive", "verify"}
    assert commands["derive"].requires == ("sympy",) and commands["derive"].extra == "derive"
    assert commands["verify"].requires == ("jax",) and commands["verify"].extra == "verify"
    assert all(callable(c.main) for c in commands.values())
    bench = discover(BENCH_GROUP, _pyproject_entry_points(BENCH_GROUP))
    assert set(bench) == {"jax"} and callable(bench["jax"].main)


def test_lowrank_derive_help_names_lowrank(monkeypatch, capsys):
    eps = _pyproject_entry_points(COMMAND_GROUP)
    monkeypatch.setattr(cli, "_discover", lambda: discover(COMMAND_GROUP, eps))
    assert cli.main(["derive", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: lowrank derive") and "python -m derive" not in out
    assert cli.main(["derive", "check", "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: lowrank derive check")


def test_demo_runs_all_three_steps(tmp_path, monkeypatch, capsys):
    calls = []
    fake_commands(monkeypatch, calls)
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), "--iterations", "12", "--quiet"]) == 0
    names = [c[0] for c in calls]
    assert names == ["derive", "derive", "derive", "verify"]
    assert calls[0][1] == ["generate", "--check"]
    assert calls[1][1][0] == "check" and calls[2][1] == ["table"]
    assert calls[3][1] == ["report", "--quick", "--out", str(out / "verify"), "--quiet"]
    assert (out / "train" / "fig2.png").is_file()
    printed = capsys.readouterr().out
    assert "demo finished" in printed
    # the demo's account of CR-SGD is that of the runs it wrote
    from numeric.demo import plateau_story

    summaries = json.loads((out / "train" / "fig2.json").read_text())
    story = plateau_story(summaries["baseline"], summaries["cr"])
    assert all(line in printed for line in story)
    assert summaries["cr"]["eff_rank"] is not None and "effective rank" in story[2]


def test_plateau_story_reads_the_summaries():
    from numeric.demo import plateau_story

    base = {"iters_to_loss_below": {"2.0": None}, "test_accuracy": 0.098, "iterations_done": 900,
            "eff_rank": 23.04}  # fmt: skip
    collapsed = {"iters_to_loss_below": {"2.0": 412}, "test_accuracy": 0.101,
                 "test_iteration": 1499, "eff_rank": 1.04, "eff_rank_logits": 1.01,
                 "iterations_done": 1500}  # fmt: skip
    first, second, third = plateau_story(base, collapsed)
    assert "left the first plateau at iteration 412" in first and "SGD never did" in first
    assert "10.1%" in second and "(SGD: 9.8%)" in second and "1499" in second
    assert "second plateau" in third and "1.0 (centred logits 1.0" in third
    assert "SGD's, still on the first plateau, 23.0" in third  # from the baseline's summary
    assert "docs/results.md" in third
    healthy = {**collapsed, "test_accuracy": 0.83, "eff_rank": 31.2}
    assert "Diagnostics: the effective rank of its last hidden layer" in plateau_story(
        base, healthy)[2]  # fmt: skip
    stuck = {**collapsed, "iters_to_loss_below": {"2.0": None}}
    assert "did not leave the first plateau in 1500 iterations" in plateau_story(base, stuck)[0]


def test_demo_skips_steps_whose_extra_is_missing(tmp_path, monkeypatch, capsys):
    calls = []
    fake_commands(monkeypatch, calls, requires={"verify": ("no_such_jax",)})
    rc = cli.main(["demo", "--out", str(tmp_path / "d"), "--skip-train", "--quiet"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "skipped" in out and "pip install 'lowrank-derivatives[verify]'" in out
    assert [c[0] for c in calls] == ["derive"] * 3


def test_numeric_layer_imports_neither_sympy_nor_jax():
    code = (
        "import sys\n"
        "import numeric.cli, numeric.training.runs, numeric.cr, numeric.network, numeric.experiments\n"
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
        "2x8",
        "--out",
        str(tmp_path / "runs"),
        "--doc",
        str(doc),
    ]
    assert cli.main(argv) == 0
    text = doc.read_text()
    assert text.startswith("# Measured results")
    assert "lowrank reproduce results --iterations 110 --seeds 1" in text
    assert "--hidden 2x8" in text and "2 hidden ReLU layers of 8" in text
    assert "test accuracy %" in text
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
    fake_commands(monkeypatch, calls, broken=("verify",))
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), "--iterations", "5", "--quiet"]) == 1
    text = capsys.readouterr()
    assert "verify: failed" in text.out and "verify broke" in text.err
    assert (out / "train" / "fig2.png").is_file()


# --------------------------------------------------------------- run directories, signals


def _start(out, *extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "numeric", "train", "--quiet", *extra]
    if "--resume" not in extra:
        cmd += ["--hidden", "2x16", "--out", str(out)]
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for(path, proc):
    deadline = time.time() + 60
    while time.time() < deadline and not path.exists() and proc.poll() is None:
        time.sleep(0.1)
    time.sleep(0.5)


def test_sigterm_finishes_the_step_checkpoints_and_exits_143(tmp_path):
    out = tmp_path / "r"
    proc = _start(out, "--iterations", "200000", "--checkpoint-every", "1000000")
    _wait_for(out / "summary.json", proc)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stdout + stderr
    assert "lowrank train --resume" in stdout
    summary = json.loads((out / "summary.json").read_text())
    done = summary["iterations_done"]
    assert summary["status"] == "interrupted" and summary["signal"] == "SIGTERM"
    assert 0 < done < 200000
    assert latest_checkpoint(out).name == f"ckpt-{done:06d}.npz"
    assert len(read_metrics(out)["loss"]) == done


def test_a_second_resume_of_a_running_run_is_refused(tmp_path, capsys):
    out = tmp_path / "r"
    assert (
        cli.main(["train", "--hidden", "2x16", "--iterations", "5", "--quiet", "--out", str(out)])
        == 0
    )
    proc = _start(out, "--resume", str(out), "--iterations", "200000")
    try:
        deadline = time.time() + 60
        while time.time() < deadline and len(read_metrics(out)["loss"]) <= 5:
            time.sleep(0.2)  # it is training (it has flushed rows past the first run's)
        capsys.readouterr()
        rc = cli.main(["train", "--resume", str(out), "--iterations", "300000", "--quiet"])
        err = capsys.readouterr().err
        assert rc == 1 and "in use by another process" in err
        assert len(err.strip().splitlines()) == 1
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    iterations = read_metrics(out)["iteration"]
    assert np.array_equal(iterations, np.arange(len(iterations)))  # one writer, no duplicates


def test_out_holding_other_files_is_refused(tmp_path, capsys):
    d = tmp_path / "d"
    (d / "checkpoints").mkdir(parents=True)
    (d / "metrics.csv").write_text("precious\n")
    (d / "checkpoints" / "ckpt-best.npz").write_text("x\n")
    assert cli.main(["train", "--hidden", "2x8", "--iterations", "5", "--out", str(d)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (d / "metrics.csv").read_text() == "precious\n"
    assert (d / "checkpoints" / "ckpt-best.npz").read_text() == "x\n"


@pytest.mark.parametrize("where", ["under-a-file", "a-file"])
def test_bad_out_is_one_line_exit_2(tmp_path, capsys, where):
    (tmp_path / "f").write_text("x")
    out = tmp_path / "f" / "run" if where == "under-a-file" else tmp_path / "f"
    assert cli.main(["train", "--iterations", "5", "--quiet", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "a file" in err


def test_invalid_config_json_is_one_line_naming_the_file(tmp_path, capsys):
    out = tmp_path / "r"
    assert cli.main(["train", *TINY, "--out", str(out)]) == 0
    (out / "config.json").write_text("{not json")
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "config.json: invalid JSON" in err


def test_refused_resume_leaves_config_json_alone(tmp_path, capsys):
    out = tmp_path / "r"
    assert cli.main(["train", *TINY, "--out", str(out)]) == 0
    before = (out / "config.json").read_bytes()
    assert cli.main(["train", "--resume", str(out), "--iterations", "10", "--quiet"]) == 2
    assert "more than the requested 10" in capsys.readouterr().err
    assert (out / "config.json").read_bytes() == before
    assert cli.main(["train", "--resume", str(out), "--quiet"]) == 0  # still resumable


def test_mnist_without_data_dir_is_not_the_embedded_subset(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LOWRANK_DATA_DIR", str(tmp_path / "empty"))
    argv = ["train", "--dataset", "mnist", "--out", str(tmp_path / "r"), *TINY]
    assert cli.main(argv) == 2
    assert "mnist-embedded" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_reproduce_rejects_negative_iterations(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", "fig2", "--iterations", "-1"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", "results", "--iterations", "-1"])
    assert exc.value.code == 2


def test_output_paths_are_checked_before_the_work(tmp_path, monkeypatch, capsys):
    import numeric.bench

    def no_work(*a, **k):
        raise AssertionError("the work ran before the output path was checked")

    monkeypatch.setattr(numeric.bench, "run_benchmark", no_work)
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "--json", str(tmp_path / "file" / "x.json")])
    assert exc.value.code == 2
    assert "is a file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "--json", str(tmp_path)])
    assert exc.value.code == 2

    import verify.runner
    from verify.cli import main as verify_main

    monkeypatch.setattr(verify.runner, "run_verification", no_work)
    assert verify_main(["report", "--quick", "--out", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err
    doc = tmp_path / "file" / "results.md"
    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", "results", "--iterations", "200", "--doc", str(doc)])
    assert exc.value.code == 2


def test_plot_draws_runs_side_by_side(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli.main(["train", *TINY, "--out", str(a)]) == 0
    assert cli.main(["train", *TINY, "--cr", "--out", str(b)]) == 0
    assert cli.main(["plot", str(a), str(b), "--out", str(tmp_path / "ab.png")]) == 0
    assert (tmp_path / "ab.png").stat().st_size > 10_000
    assert cli.main(["plot", str(a)]) == 0 and (a / "plot.png").is_file()
    assert cli.main(["plot", str(tmp_path / "nothing")]) == 2


# ------------------------------------------------------------------------ help texts


def _parsers():
    """Every argument parser of the command line, with its name."""
    import argparse

    seen = []

    def walk(parser, name):
        seen.append((name, parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    walk(sub, f"{name} {sub_name}")

    walk(cli.build_parser(), "lowrank")
    captured = []

    def capture(self, args=None, namespace=None):
        captured.append(self)
        raise SystemExit(0)

    import numeric.bench
    import numeric.results
    from verify.cli import main as verify_main

    eps = _pyproject_entry_points(COMMAND_GROUP)
    derive = discover(COMMAND_GROUP, eps)["derive"]
    real = argparse.ArgumentParser.parse_args
    argparse.ArgumentParser.parse_args = capture
    try:
        for fn in (
            lambda: numeric.bench.main([]),
            lambda: numeric.results.main([], prog="lowrank reproduce results"),
            lambda: verify_main([], prog="lowrank verify"),
            lambda: derive.main([]),
        ):
            with contextlib.suppress(SystemExit):
                fn()
    finally:
        argparse.ArgumentParser.parse_args = real
    for parser in captured:
        walk(parser, parser.prog)
    return [(n, p) for n, p in seen if p.add_help]


def test_every_option_shows_its_default_and_no_rst():
    import argparse

    problems = []
    for name, parser in _parsers():
        if "`" in parser.format_help():
            problems.append(f"{name}: backticks in its help")
        for action in parser._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction):
                continue
            if "default" not in (action.help or ""):
                problems.append(f"{name} {action.option_strings[0]}: no default in its help")
    assert not problems, problems


def test_one_name_per_flag_across_subcommands():
    names = {opt for _, p in _parsers() for a in p._actions for opt in a.option_strings}
    for old in ("--batch", "--depth", "--no-progress"):
        assert old not in names
    assert {"--batch-size", "--layers", "--quiet"} <= names


# ----------------------------------------------------- installations without the extras

BLOCK = (
    "import sys\n"
    "class Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('jax', 'jaxlib', 'sympy'):\n"
    "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
    "sys.meta_path.insert(0, Block())\n"
)


def _without_extras(code, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, "-c", BLOCK + code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_demo_without_sympy_and_jax_skips_those_steps(tmp_path):
    code = (
        "from numeric.cli import main\n"
        f"sys.exit(main(['demo', '--out', {str(tmp_path / 'd')!r}, '--iterations', '3', "
        "'--quiet']))\n"
    )
    proc = _without_extras(code, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("skipped:") == 2
    assert (tmp_path / "d" / "train" / "fig2.png").is_file()


def test_bench_without_jax_skips_the_jax_routes(tmp_path):
    code = (
        "from numeric.cli import main\n"
        "sys.exit(main(['bench', '--layers', '2', '--width', '4', '--batch-size', '4', "
        "'--rounds', '2', '--dtype', 'float64', '--no-literal']))\n"
    )
    proc = _without_extras(code, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "JAX routes skipped" in proc.stdout and "| cr-lowrank |" in proc.stdout


@pytest.mark.parametrize(
    ("variant", "every"), [("adaptive", 2), ("per-layer", 1), ("per-variable", 3),
                           ("scale-invariant", 1)]
)  # fmt: skip
def test_train_cr_variants_end_to_end(tmp_path, capsys, variant, every):
    out = tmp_path / "run"
    args = ["train", "--optimizer", "adam", "--cr", "--cr-variant", variant, "--cr-every",
            str(every), "--out", str(out), *TINY]  # fmt: skip
    assert cli.main(args) == 0
    assert "completed after 40 iterations" in capsys.readouterr().out
    cfg = json.loads((out / "config.json").read_text())["config"]
    assert cfg["cr_variant"] == variant and cfg["cr_every"] == every
    metrics = read_metrics(out)
    assert len(metrics["loss"]) == 40
    if every > 1:  # the reused steps compute no curvature
        assert np.isnan(metrics["dhd"][1]) and np.isfinite(metrics["dhd"][0])
    assert cli.main(["train", "--resume", str(out), "--iterations", "45", "--quiet"]) == 0
    assert len(read_metrics(out)["loss"]) == 45


def test_train_cr_variant_errors(tmp_path, capsys):
    assert cli.main(["train", "--cr-variant", "adaptive", "--out", str(tmp_path / "a"), *TINY]) == 2
    assert "need cr" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # argparse's usage error
        cli.main(["train", "--cr", "--cr-every", "0", "--out", str(tmp_path / "b")])
    assert exit_info.value.code == 2
    args = ["train", "--cr", "--cr-variant", "per-variable", "--activation", "tanh", "--out",
            str(tmp_path / "c"), *TINY]  # fmt: skip
    assert cli.main(args) == 2
    assert "A'' = 0" in capsys.readouterr().err
