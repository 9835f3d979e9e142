"""One-way layering: numeric imports NumPy and generated code only.

The ``lowrank`` command lives in numeric; the derive and verify layers reach it only
through entry points (numeric/commands.py), never through an import from numeric.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
FORBIDDEN = {"sympy", "jax", "jaxlib", "optax", "equinox", "flax", "derive", "verify"}
#: the optional JAX modules of numeric: the only ones that may import JAX (and optax)
JAX_MODULES = {
    "numeric/jax_backend.py",
    "numeric/optax.py",
    "numeric/optax_methods.py",
    "numeric/autodiff.py",
    "numeric/adapters.py",
    "numeric/bench_libraries.py",
    "numeric/optax_state.py",
}
#: ways to import a module by a name computed at run time
DYNAMIC = ("import_module", "__import__", "importlib.util.spec_from", "exec(", "eval(")


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _strings(path: pathlib.Path) -> list[str]:
    """String constants in the code (docstrings and other bare strings left out)."""
    tree = ast.parse(path.read_text())
    bare = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in bare
    ]


def test_numeric_imports_no_other_layer_even_dynamically():
    for path in sorted((ROOT / "numeric").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        jax_libs = {"jax", "jaxlib", "optax", "equinox", "flax"}
        forbidden = FORBIDDEN - (jax_libs if rel in JAX_MODULES else set())
        bad = _imports(path) & forbidden
        assert not bad, f"{rel} imports {bad}"
        text = path.read_text()
        assert not [d for d in DYNAMIC if d in text], f"{rel} imports by computed name"
        named = [v for v in _strings(path) if v.startswith(("derive.", "verify."))]
        assert not named, f"{rel} names modules of another layer: {named}"
    # the one way up: entry points, loaded in numeric/commands.py only
    users = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "numeric").rglob("*.py")
        if "entry_points" in p.read_text()
    ]
    assert users == ["numeric/commands.py"]


def test_the_command_line_starts_without_sympy_or_jax():
    code = (
        "import sys, contextlib, io\n"
        "from numeric import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    cli.main(['--help'])\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in {'sympy', 'jax'}]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_training_path_loads_without_sympy_or_jax():
    code = (
        "import sys\n"
        "import numeric, numeric.network, numeric.cr, numeric.curvature, numeric.optimizers\n"
        "import numeric.data, numeric.weight_lists, numeric.literal.feedforward\n"
        "import numeric.kernels.feedforward, numeric.kernels.contracted\n"
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
