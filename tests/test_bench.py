"""`lowrank bench` runs end to end on a tiny configuration and reports every route."""

from __future__ import annotations

import json

from numeric.bench import main


def test_bench_small_run_writes_json(tmp_path, capsys):
    out = tmp_path / "new" / "bench.json"  # its directory is created
    rc = main(
        [
            "--layers",
            "3",
            "--width",
            "8",
            "--batch-size",
            "4",
            "--rounds",
            "3",
            "--no-jax",
            "--dtype",
            "float64",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    data = json.loads(out.read_text())
    routes = data["routes"]
    assert {"sgd", "cr-lowrank", "cr-tangent", "cr-literal"} <= set(routes)
    assert routes["sgd"]["float64"]["ratio"] == 1.0
    assert all(r["float64"]["seconds"] > 0 for r in routes.values())
    assert "| cr-lowrank |" in capsys.readouterr().out
