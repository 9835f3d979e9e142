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
    libraries = {f"{lib}-{route}" for lib in ("equinox", "flax")
                 for route in ("sgd", "cr-fast", "cr-jvp")}  # fmt: skip
    assert libraries <= set(routes)
    assert routes["equinox-sgd"]["float64"]["ratio"] == routes["flax-sgd"]["float64"]["ratio"] == 1
    assert all(routes[name]["float64"]["seconds"] > 0 for name in libraries)
    notes = json.loads(out.read_text())["notes"]
    assert any(n.startswith("equinox: XLA's FLOP count") and "equinox-cr-fast" in n for n in notes)
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


def test_bench_grid_on_a_tiny_grid(tmp_path, capsys):
    out = tmp_path / "grid.json"
    argv = ["--grid", "--grid-models", "mlp,cnn,rnn", "--grid-batches", "4,16",
            "--grid-widths", "16,64", "--grid-layers", "2", "--rounds", "2", "--stat", "min",
            "--no-jax", "--json", str(out)]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "| model | batch | width | SGD ms |" in text and "measured / predicted" in text
    data = json.loads(out.read_text())
    assert data["statistic"] == "min" and "minima of 2 interleaved rounds" in text
    cells = data["cells"]
    assert len(cells) == 3 * 2 * 2
    assert {c["model"] for c in cells} == {"mlp", "cnn", "rnn"}
    assert all(c["dtype"] == "float32" and c["floor"] > 1.0 for c in cells)
    assert all(set(c["seconds"]) == {"sgd", "cr", "gram", "dense"} for c in cells)
    by = {(c["model"], c["batch"], c["width"]): "".join(c["chosen"]) for c in cells}
    # 784 -> 64 -> 64 -> 10: Gram where B (d_in + d_out) < d_in d_out (numeric.cost_model)
    assert by[("mlp", 4, 64)] == "ggg"  # the output layer too: 4 * 74 < 640
    assert by[("mlp", 16, 64)] == "ggd"  # 16 * 74 > 640
    assert by[("mlp", 16, 16)] == "ddd"  # 16 * 800 > 784 * 16, 16 * 32 > 256
    assert by[("cnn", 4, 64)].startswith("dd")  # conv layers: the dense route only


def test_fit_exponents_recovers_a_power_law():
    from numeric.bench_grid import fit_exponents

    bs, ws = [32, 64, 32, 64, 128], [128, 128, 256, 256, 512]
    a, b = fit_exponents(bs, ws, [3.0 * x**2 * y for x, y in zip(bs, ws, strict=True)])
    assert a == pytest.approx(2.0) and b == pytest.approx(1.0)
    nan = fit_exponents([32, 32, 32], [1, 2, 4], [1.0, 2.0, 4.0])
    assert all(v != v for v in nan)  # no spread in batch: no fit


def test_bench_grid_refuses_an_unknown_model(capsys):
    with pytest.raises(SystemExit):
        main(["--grid", "--grid-models", "mlp,vit"])
    assert "--grid-models takes mlp, cnn, rnn" in capsys.readouterr().err


def test_bench_library_models_are_the_bench_network():
    """The equinox and flax routes train the bench's own network: same loss and gradient
    (flax's kernels are the transposed weights)."""
    jax = pytest.importorskip("jax")
    import numpy as np

    from numeric import adapters
    from numeric import jax_backend as jb
    from numeric.bench_libraries import LIBRARIES
    from numeric.network import Network

    jb.enable_x64()
    net = Network.create(7, [5, 5, 5], 3, seed=1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 7))
    y = np.eye(3)[rng.integers(0, 3, 6)]
    loss, grads = net.loss_and_gradient(x, y)
    for name, make in LIBRARIES.items():
        model = make(net)
        params = adapters.parameters(model)
        plain = adapters.plain_objective(model, jax.numpy.asarray(x), jax.numpy.asarray(y))
        np.testing.assert_allclose(float(plain(params)), loss, rtol=1e-12, err_msg=name)
        objective = adapters.objective(model, x, y)
        assert isinstance(objective, adapters.ModelObjective), name
        leaves = jax.tree_util.tree_leaves(jax.grad(plain)(params))
        ours = objective.flat(leaves)  # in the network's layout
        for a, b in zip(ours, grads, strict=True):
            np.testing.assert_allclose(np.asarray(a), b, rtol=1e-10, err_msg=name)


def test_bench_cpu_clock_and_minima(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = [*SMALL, "--no-jax", "--no-literal", "--clock", "cpu", "--stat", "min"]
    assert main([*argv, "--json", str(out)]) == 0
    cfg = json.loads(out.read_text())["config"]
    assert cfg["clock"] == "cpu" and cfg["statistic"] == "min"
    assert "minima (CPU time) of 3 interleaved rounds" in capsys.readouterr().out
    assert main([*SMALL, "--no-jax", "--no-literal", "--json", str(out)]) == 0  # back
    cfg = json.loads(out.read_text())["config"]
    assert cfg["clock"] == "wall" and cfg["statistic"] == "median"


def test_bench_grid_times_the_jax_steps(tmp_path, capsys):
    pytest.importorskip("jax")
    out = tmp_path / "grid.json"
    argv = ["--grid", "--grid-models", "mlp", "--grid-batches", "4,8", "--grid-widths", "8",
            "--grid-layers", "1", "--rounds", "1", "--json", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert "JAX CR / SGD |" in capsys.readouterr().out
    cells = json.loads(out.read_text())["cells"]
    assert all({"jax-sgd", "jax-cr"} <= set(c["seconds"]) for c in cells)
    assert all(c["jax_ratio"] > 0 for c in cells)
