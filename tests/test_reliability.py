"""Reliability of the command lines: usage errors are one line with exit code 2 and the
subcommand's usage, outputs are checked before the work, messages name the file at
fault, and tables are never cut."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from numeric import cli

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--hidden", "2x4", "--iterations", "2", "--quiet"]


def _usage_error(argv: list[str], capsys, parse_only: bool = True) -> str:
    """stderr of ``lowrank ARGV``, which must stop with exit code 2 and no traceback.

    ``parse_only``: only parse ARGV (a value the parser lets through then never starts
    a run that allocates what it asks for)."""
    with pytest.raises(SystemExit) as exc:
        if parse_only:
            cli.build_parser().parse_args(argv)
        else:
            cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


# ------------------------------------------------------------- values out of range


def test_init_bound_beyond_float32_is_a_usage_error(tmp_path, capsys):
    err = _usage_error(["train", "--init", "1e308", "--out", str(tmp_path / "r")], capsys)
    assert "argument --init" in err and "at most 3.4e+38" in err
    assert not (tmp_path / "r").exists()
    # the largest bound is accepted (the weights stay finite in float32)
    args = cli.build_parser().parse_args(["train", "--init", "3.4e38"])
    assert args.init == "3.4e38"


def test_seed_outside_32_bits_is_a_usage_error(tmp_path, capsys):
    err = _usage_error(["train", "--seed", str(2**70), "--out", str(tmp_path / "r")], capsys)
    assert "argument --seed" in err and "from 0 to 4294967295" in err
    err = _usage_error(["reproduce", "fig2", "--seed", str(2**32)], capsys)
    assert "argument --seed" in err
    assert cli.build_parser().parse_args(["train", "--seed", str(2**32 - 1)]).seed == 2**32 - 1


@pytest.mark.parametrize(
    ("layers", "width"), [(99999999999999999999, 1), (1, 2000000000), (3, 40000)]
)
def test_hidden_too_large_names_weights_and_bytes(layers, width, tmp_path, capsys):
    spec = f"{layers}x{width}"
    err = _usage_error(["train", "--hidden", spec, "--out", str(tmp_path / "r")], capsys)
    weights = 784 * width + (layers - 1) * width**2 + width * 10  # 28 x 28 in, 10 classes
    assert f"a network of {weights:,} weights" in err
    assert "at most 1,000,000,000" in err
    if (layers, width) == (1, 2000000000):
        assert "(12.7 TB as float64" in err  # 8 * 1,588,000,000,000 bytes


def test_layers_too_many_is_a_usage_error():
    from numeric.sizes import MAX_PARAMETERS

    def hidden(layers: int):
        return cli._hidden(cli.build_parser().parse_args(["train", "--layers", str(layers)]))

    # the most layers of 128 within the bound, then one more, then far more
    room = (MAX_PARAMETERS - 784 * 128 - 128 * 10) // 128**2 + 1
    assert hidden(room) == (128,) * room
    for layers in (room + 1, 10**20):
        with pytest.raises(cli._Usage, match=f"{layers}x128': a network of .* weights"):
            hidden(layers)


def test_a_size_within_the_bound_still_parses():
    args = cli.build_parser().parse_args(["train", "--hidden", "12x128"])
    assert args.hidden == (128,) * 12


def test_channels_that_are_not_numbers_exit_2(tmp_path, capsys):
    argv = ["train", "--model", "cnn", "--channels", "a,b", "--out", str(tmp_path / "r")]
    err = _usage_error(argv, capsys, parse_only=False)
    assert "argument --channels" in err and "'a,b'" in err
    err = _usage_error(["train", "--model", "cnn", "--dense", "0"], capsys, parse_only=False)
    assert "argument --dense" in err


# ------------------------------------------------------------- sizes in words


def test_more_layers_than_units_warns_and_the_size_is_printed(tmp_path, capsys):
    out = tmp_path / "r"
    assert cli.main(["train", "--hidden", "5x2", "--iterations", "1", "--quiet",
                     "--out", str(out)]) == 0  # fmt: skip
    captured = capsys.readouterr()
    assert "warning: 5 hidden layers of 2: more layers than units per layer" in captured.err
    assert "2x5" in captured.err  # the size with layers and width swapped
    assert f"SGD, 5 hidden layers of 2 -> {out}" in captured.out
    assert json.loads((out / "config.json").read_text())["config"]["hidden"] == [2] * 5

    out = tmp_path / "s"
    assert cli.main(["train", "--hidden", "2x5", "--iterations", "1", "--quiet",
                     "--out", str(out)]) == 0  # fmt: skip
    captured = capsys.readouterr()
    assert "warning" not in captured.err
    assert f"SGD, 2 hidden layers of 5 -> {out}" in captured.out


# ------------------------------------------------------------- misspelled flags


def test_misspelled_flag_gets_the_subcommands_usage_and_a_suggestion(capsys):
    err = _usage_error(["train", "--optimiser", "adam"], capsys, parse_only=False)
    assert "usage: lowrank train" in err
    assert "lowrank train: error: unrecognized arguments: --optimiser adam" in err
    assert "did you mean --optimizer?" in err
    err = _usage_error(["plot", "runs/x", "--titel", "t"], capsys)
    assert "usage: lowrank plot" in err and "did you mean --title?" in err
    err = _usage_error(["train", "--zzzzzz"], capsys)
    assert "usage: lowrank train" in err and "did you mean" not in err


# ------------------------------------------------------------- outputs checked first


def test_demo_checks_its_output_directory_first(tmp_path, capsys, monkeypatch):
    import numeric.demo

    def no_work(*_args):
        raise AssertionError("a step ran before the output directory was checked")

    monkeypatch.setattr(numeric.demo, "_step", no_work)
    blocker = tmp_path / "f"
    blocker.write_text("a file")
    assert cli.main(["demo", "--out", str(blocker / "x"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{blocker / 'x'}: cannot write the demo's outputs, {blocker} is a file" in err


def test_derive_check_checks_its_json_path_first(tmp_path, capsys, monkeypatch):
    import derive.selfcheck
    from derive.cli import main

    def no_checks(*_args, **_kwargs):
        raise AssertionError("the checks ran before the --json path was checked")

    monkeypatch.setattr(derive.selfcheck, "run_checks", no_checks)
    blocker = tmp_path / "f"
    blocker.write_text("a file")
    assert main(["check", "28", "--json", str(blocker / "x.json"), "--quiet"]) == 2
    err = " ".join(capsys.readouterr().err.split())  # wrapped at 100 columns
    assert f"{blocker / 'x.json'}: cannot write the verdicts, {blocker} is a file" in err


# ------------------------------------------------------------- metrics.csv


def _run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    assert cli.main(["train", *TINY, "--out", str(run)]) == 0
    return run


def test_metrics_that_are_not_utf8_name_the_file(tmp_path, capsys):
    run = _run(tmp_path)
    metrics = run / "metrics.csv"
    good = metrics.read_bytes()
    metrics.write_bytes(b"\xff\xfe" + good)  # the header is not text
    capsys.readouterr()
    assert cli.main(["plot", str(run), "--out", str(tmp_path / "p.png")]) == 2
    err = capsys.readouterr().err
    assert f"{metrics}: not a metrics file" in err and "UTF-8" in err
    assert cli.main(["train", "--resume", str(run), "--iterations", "3", "--quiet"]) == 2
    assert f"{metrics}: not a metrics file" in capsys.readouterr().err


def test_a_row_that_is_not_utf8_is_a_bad_line(tmp_path):
    from numeric.metrics import scan_metrics

    run = _run(tmp_path)
    metrics = run / "metrics.csv"
    lines = metrics.read_bytes().splitlines(keepends=True)
    assert len(lines) == 3  # header and two iterations
    metrics.write_bytes(lines[0] + b"\xff" + lines[1] + lines[2])
    found = scan_metrics(metrics)
    assert found.bad_lines == [2] and [r[0] for r in found.rows] == [1]


# ------------------------------------------------------------- derive output


def _derive(argv: list[str], capsys) -> str:
    from derive.cli import main

    assert main(argv) == 0
    return capsys.readouterr().out


def test_derive_show_names_the_scalar_symbols(capsys):
    out = _derive(["show", "37", "--no-check"], capsys)
    text = " ".join(out.split())  # the legend is wrapped
    assert "text: (-h + sqrt(-2*c*d + h**2))/c" in text
    assert "where: c: sigma ||g||^3" in text
    assert "d: g^T grad F, the slope along g" in text
    assert "h: g^T H g, the curvature along the direction g" in text


def test_derive_show_names_the_tensor_families(capsys):
    from derive.notation import FAMILIES

    text = " ".join(_derive(["show", "23", "--no-check"], capsys).split())
    for name in ("alpha", "gamma"):
        assert f"{name}: {FAMILIES[name].doc}" in text


def test_derive_check_prints_every_detail_in_full(capsys):
    from derive.cli import _row_detail
    from derive.selfcheck import run_checks

    out = _derive(["check", "23", "41", "--mode", "symbolic", "--quiet"], capsys)
    assert all(len(line) <= 100 for line in out.splitlines())
    text = " ".join(out.split())
    for row in run_checks(["23", "41"], modes=["symbolic"]):
        assert " ".join(_row_detail(row).split()) in text
    assert "..." not in out


def test_derive_table_prints_every_title_in_full(capsys):
    from derive.registry import all_equations

    out = _derive(["table"], capsys)
    assert all(len(line) <= 100 for line in out.splitlines())
    text = " ".join(out.split())
    for eq in all_equations():
        assert " ".join(eq.title.split()) in text


# ------------------------------------------------------------- sophia at float64


@pytest.mark.slow
def test_sophia_trains_at_float64(tmp_path):
    # a fresh process: another test may have enabled float64 in this one already
    argv = [sys.executable, "-m", "numeric", "train", "--backend", "jax", "--optimizer",
            "sophia", *TINY, "--out", str(tmp_path / "r")]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["status"] == "completed"
