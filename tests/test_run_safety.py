"""A run directory is never left changed by a refused command, never written through a
link, and every setting that would be ignored or fail later is refused up front."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from numeric.cli import main
from numeric.training.config import TrainConfig
from numeric.training.data import device_count
from numeric.training.rundir import RunDirError
from numeric.training.runs import resume

TINY = ["--hidden", "2x8", "--iterations", "4", "--checkpoint-every", "2", "--eval-every", "0",
        "--quiet"]  # fmt: skip


def _train(out: Path, *extra: str) -> int:
    return main(["train", *TINY, *extra, "--out", str(out)])


def _files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file() and p.name != ".lock"}  # fmt: skip


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--sigma", "5"], "--sigma sets CR's step; add --cr"),
        (["--nondescent", "skip", "--averaging", "alpha-g"], "add --cr"),
        (["--iterations", "0"], "iterations >= 1"),
        (["--batch-size", "5000"], "larger than the 4,000 training images"),
    ],
    ids=["sigma", "cr-flags", "no-iterations", "batch"],
)
def test_a_refused_run_writes_nothing(tmp_path, capsys, extra, message):
    out = tmp_path / "run"
    assert main(["train", *TINY, *extra, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_per_variable_cr_on_a_cnn_is_refused_before_the_directory_exists(tmp_path, capsys):
    out = tmp_path / "cnn"
    args = ["train", "--model", "cnn", "--cr", "--cr-variant", "per-variable", "--iterations",
            "2", "--quiet", "--out", str(out)]  # fmt: skip
    assert main(args) == 2
    assert "Hessian diagonal" in capsys.readouterr().err
    assert not out.exists()
    fixed = ["train", "--model", "cnn", "--cr", "--cr-variant", "per-layer", "--iterations", "2",
             "--eval-every", "0", "--quiet", "--out", str(out)]  # fmt: skip
    assert main(fixed) == 0


def test_a_resume_never_appends_through_a_symbolic_link(tmp_path):
    original = tmp_path / "a"
    assert _train(original) == 0
    before = _files(original)
    branch = tmp_path / "b"  # what `cp -rs a b` makes: a tree of links to a's files
    for path in original.rglob("*"):
        target = branch / path.relative_to(original)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif path.name != ".lock":
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(path, target)
    with pytest.raises(RunDirError, match="symbolic link"):
        resume(branch, iterations=8, progress=False, log=None)
    assert _files(original) == before


def test_devices_that_do_not_divide_the_batch_are_refused_before_config_is_written(
    tmp_path, monkeypatch
):
    pytest.importorskip("jax")
    from numeric import jax_backend as jb

    run = tmp_path / "jax"
    assert _train(run, "--backend", "jax", "--iterations", "2") == 0
    config = (run / "config.json").read_bytes()
    monkeypatch.setattr(jb, "local_device_count", lambda: 4)
    with pytest.raises(ValueError, match="does not divide the batch of 32"):
        resume(run, iterations=4, devices=3, progress=False, log=None)
    assert (run / "config.json").read_bytes() == config


@pytest.mark.parametrize("available, want", [(1, 1), (3, 2), (4, 4), (5, 4), (6, 4), (7, 4)])
def test_all_devices_means_the_most_that_divide_the_batch(monkeypatch, available, want):
    pytest.importorskip("jax")
    from numeric import jax_backend as jb

    monkeypatch.setattr(jb, "local_device_count", lambda: available)
    config = TrainConfig(backend="jax", batch_size=32, devices=0)
    assert device_count(config) == want


def test_the_start_line_names_the_devices_and_resume_clears_stale_temporaries(tmp_path, capsys):
    run = tmp_path / "r"
    assert _train(run) == 0
    assert "-> " in capsys.readouterr().out
    stale = [run / ".metrics.csv.999.abcd.tmp", run / "checkpoints" / ".ckpt-000002.npz.1.tmp"]
    for path in stale:
        path.write_bytes(b"half a write")
    assert main(["train", "--resume", str(run), "--iterations", "6", "--quiet"]) == 0
    assert not any(p.exists() for p in stale)
    assert "removed 2 temporary file(s)" in capsys.readouterr().out
    assert json.loads((run / "summary.json").read_text())["iterations_done"] == 6


def test_a_relative_data_dir_is_recorded_absolute_and_changed_files_are_refused(
    tmp_path, monkeypatch
):
    from tests.test_data import _make_idx_dir

    monkeypatch.chdir(tmp_path)
    _make_idx_dir(tmp_path / "d", gz=False, n_train=40, n_test=10, seed=1)
    args = ["--dataset", "mnist", "--data-dir", "d", "--batch-size", "8"]
    assert _train(tmp_path / "run", *args) == 0
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["config"]["data_dir"] == str(tmp_path / "d")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # a resume from another folder reads the same files
    assert main(["train", "--resume", str(tmp_path / "run"), "--iterations", "6", "--quiet"]) == 0
    _make_idx_dir(tmp_path / "d", gz=False, n_train=40, n_test=10, seed=2)  # other contents
    before = _files(tmp_path / "run")
    with pytest.raises(ValueError, match="differ from those the run was trained on"):
        resume(tmp_path / "run", iterations=8, progress=False, log=None)
    assert _files(tmp_path / "run") == before


def test_a_checkpoint_that_cannot_be_written_leaves_a_failed_summary(tmp_path):
    run = tmp_path / "blocked"
    run.mkdir()
    (run / "checkpoints").write_text("not a folder")  # blocks every checkpoint
    assert _train(run, "--overwrite") == 2
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert "not saved" in summary["error"] and "checkpoints" in summary["error"]
