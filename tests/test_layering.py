"""One-way layering: numeric imports NumPy and generated code only."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
FORBIDDEN = {"sympy", "jax", "jaxlib", "derive", "verify"}
# the command router reaches the other layers by module name at call time
ROUTERS = {"numeric/cli.py", "numeric/bench.py"}


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_numeric_has_no_static_imports_of_other_layers():
    for path in sorted((ROOT / "numeric").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        bad = _imports(path) & FORBIDDEN
        assert not bad, f"{rel} imports {bad}"
        if rel not in ROUTERS:
            assert "import_module" not in path.read_text(), rel


def test_training_path_loads_without_sympy_or_jax():
    code = (
        "import sys\n"
        "import numeric.kernels.relu_mlp, numeric.optimizers, numeric.data\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "{'sympy', 'jax', 'derive', 'verify'}]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_derive_does_not_import_numeric_or_verify():
    for path in sorted((ROOT / "derive").rglob("*.py")):
        assert not (_imports(path) & {"verify", "jax"}), path


def test_hypothesis_keeps_no_example_database():
    """A failure found once must not be replayed from a local .hypothesis directory."""
    from hypothesis import settings

    assert settings.default.database is None
