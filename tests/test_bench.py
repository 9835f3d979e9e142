"""`lowrank bench` runs end to end on a tiny configuration and reports every route."""

from __future__ import annotations

import json

import pytest

from numeric.bench import main

SMALL = [
    "--layers", "3", "--width", "8", "--batch-size", "4", "--rounds", "3", "--dtype", "float64",
]  # fmt: skip


def test_bench_small_run_writes_json(tmp_path, capsys):
    out = tmp_path / "new" / "bench.json"  # its directory is created
    rc = main([*SMALL, "--no-jax", "--json", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    routes = data["routes"]
    expected = {"sgd", "cr-lowrank", "cr-tangent", "cr-literal", "train-sgd", "train-cr"}
    assert expected | {"sgd@opt_einsum", "cr-lowrank@opt_einsum"} <= set(routes)
    assert routes["sgd"]["float64"]["ratio"] == 1.0
    assert all(r["float64"]["seconds"] > 0 for r in routes.values())
    mem = data["memory"]["float64"]
    assert mem["cr_peak_bytes"] > 0 and mem["sgd_peak_bytes"] > 0
    assert set(data["derived"]["float64"]) >= {"cr-lowrank/sgd", "train-cr/cr-lowrank"}
    variants = {
        "train-adam", "train-cr-adam", "train-cr-adaptive", "train-cr-adaptive-adam",
        "train-cr-scale-invariant-adam", "train-cr-per-layer", "train-cr-per-variable",
        "train-cr-adaptive-adam-every4", "train-cr-per-layer-every4",
        "train-cr-per-variable-every4",
    }  # fmt: skip
    assert variants <= set(routes)
    assert "train-cr-per-variable/train-sgd" in data["derived"]["float64"]
    assert "| cr-lowrank |" in capsys.readouterr().out


def test_bench_jax_routes(tmp_path):
    pytest.importorskip("jax")
    out = tmp_path / "bench.json"
    assert main([*SMALL, "--no-literal", "--json", str(out)]) == 0
    routes = json.loads(out.read_text())["routes"]
    assert {"jax-gen-sgd", "jax-gen-cr", "jax-sgd", "jax-cr-hvp"} <= set(routes)
    assert {"optax-sgd", "optax-cr-fast", "optax-cr-jvp"} <= set(routes)
    try:
        import kfac_jax  # noqa: F401
    except ImportError:
        return
    assert "kfac-jax" in routes  # the second-order peer, through the bench plug-in


def test_bench_checks_the_json_path_first(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SystemExit) as exc:
        main([*SMALL, "--no-jax", "--json", str(blocker / "x.json")])
    assert exc.value.code == 2
    assert "usage" in capsys.readouterr().err


@pytest.mark.parametrize("model", ["cnn", "rnn", "resmlp", "attention"])
def test_bench_models(tmp_path, model):
    out = tmp_path / "bench.json"
    rc = main(["--model", model, "--rounds", "2", "--batch-size", "4", "--dtype", "float64",
               "--no-jax", "--json", str(out)])  # fmt: skip
    assert rc == 0
    data = json.loads(out.read_text())
    assert {f"{model}-sgd", f"{model}-cr"} <= set(data["routes"])
    assert data["routes"][f"{model}-sgd"]["float64"]["ratio"] == 1.0
    assert data["multiply_adds"]["ratio"] > 1.0


def test_bench_warns_on_a_busy_machine(tmp_path, capsys, monkeypatch):
    import os

    cores = os.cpu_count()
    monkeypatch.setattr(os, "getloadavg", lambda: (cores + 1.5, 0.0, 0.0))
    out = tmp_path / "bench.json"
    assert main([*SMALL, "--no-jax", "--no-literal", "--json", str(out)]) == 0
    err = capsys.readouterr().err
    expected = f"the 1-minute load average is {cores + 1.5:.2f}, above the {cores} CPU cores"
    assert f"warning: {expected}" in err
    data = json.loads(out.read_text())
    assert data["machine"]["load_1min"] == cores + 1.5
    assert any(note.startswith(expected) for note in data["notes"])


def test_bench_is_quiet_on_an_idle_machine(monkeypatch):
    import os

    from numeric.bench import busy_warning

    cores = os.cpu_count()
    monkeypatch.setattr(os, "getloadavg", lambda: (float(cores), 0.0, 0.0))
    assert busy_warning() == (float(cores), None)
    monkeypatch.delattr(os, "getloadavg")  # a system without load averages
    assert busy_warning() == (None, None)
