"""Render the notebooks of this folder to HTML, for reading without Jupyter.

Usage::

    python notebooks/render.py --out notebooks/html            # execute those stored without outputs
    python notebooks/render.py --out notebooks/html --execute  # execute every notebook
    python notebooks/render.py --out notebooks/html --no-execute 01_low_rank_structure

The notebooks are committed without outputs, so by default each one that has none is
executed first (from this folder, as Jupyter runs them, with a per-cell time limit) and then
exported; ``--no-execute`` exports them as stored. The key numbers each notebook
writes go to ``OUT/key-numbers/`` and an ``index.html`` lists the notebooks with their
run times. ``make notebooks-html`` runs the first form.

The test suite (``tests/test_notebooks.py``) uses :func:`execute` and :func:`to_html`.
"""

from __future__ import annotations

import argparse
import html
import os
import sys
import time
from pathlib import Path

import nbformat

__all__ = ["NOTEBOOKS", "ROOT", "notebook_paths", "has_outputs", "execute", "to_html", "main"]

NOTEBOOKS = Path(__file__).resolve().parent
ROOT = NOTEBOOKS.parent
#: per-cell time limit in seconds (every notebook runs in well under this in total)
CELL_TIMEOUT = 90


def notebook_paths(names: list[str] | None = None) -> list[Path]:
    """The notebooks of this folder in order, or those named (stem or file name)."""
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return paths
    by_name = {p.stem: p for p in paths} | {p.name: p for p in paths}
    missing = [n for n in names if n not in by_name]
    if missing:
        known = ", ".join(p.stem for p in paths)
        raise SystemExit(f"no notebook named {', '.join(missing)}; known: {known}")
    return [by_name[n] for n in names]


def has_outputs(nb: nbformat.NotebookNode) -> bool:
    """Whether any code cell of ``nb`` carries outputs."""
    return any(c.get("outputs") for c in nb.cells if c.cell_type == "code")


def execute(
    notebook: Path | nbformat.NotebookNode, timeout: int = CELL_TIMEOUT, cwd: Path = NOTEBOOKS
) -> tuple[nbformat.NotebookNode, float]:
    """Execute a notebook top to bottom in a fresh ``python3`` kernel.

    Parameters
    ----------
    notebook : Path or NotebookNode
        The ``.ipynb`` file (not modified) or a notebook read from one (executed in
        place, so that it holds the outputs up to a failing cell).
    timeout : int
        Seconds allowed per cell.
    cwd : Path
        Working directory of the kernel: the notebooks' folder, where Jupyter runs them (a
        notebook finds its files through the packages, from any folder).  The kernel
        imports the packages of this checkout (even without an installed copy, or with
        another checkout installed): :data:`ROOT` leads its ``PYTHONPATH``.

    Returns
    -------
    (notebook, seconds)
        The executed notebook and the wall time of the execution.

    Raises
    ------
    nbconvert.preprocessors.CellExecutionError
        When a cell raises; the message names the cell and the error.
    """
    from nbconvert.preprocessors import ExecutePreprocessor

    nb = notebook if isinstance(notebook, dict) else nbformat.read(notebook, as_version=4)
    runner = ExecutePreprocessor(timeout=timeout, kernel_name="python3")
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *([saved] if saved else [])])
    start = time.perf_counter()
    try:  # the kernel starts with this environment
        runner.preprocess(nb, {"metadata": {"path": str(cwd)}})
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    return nb, time.perf_counter() - start


def to_html(nb: nbformat.NotebookNode, dest: Path) -> Path:
    """Export ``nb`` to a standalone HTML file (images embedded)."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nb)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(body, encoding="utf-8")
    return dest


def _title(nb: nbformat.NotebookNode, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def _index(out: Path, entries: list[tuple[str, str, str]]) -> Path:
    rows = "\n".join(
        f'<li><a href="{html.escape(href)}">{html.escape(title)}</a> {html.escape(note)}</li>'
        for href, title, note in entries
    )
    page = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Notebooks</title></head>\n'
        f"<body><h1>Notebooks</h1>\n<ul>\n{rows}\n</ul></body></html>\n"
    )
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def _render_all(paths: list[Path], out: Path, args: argparse.Namespace):
    entries = []
    failures = 0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        run = args.execute or (not args.no_execute and not has_outputs(nb))
        note = "(as stored)"
        if run:
            try:
                nb, seconds = execute(nb, timeout=args.timeout)
                note = f"(executed in {seconds:.1f} s)"
            except Exception as err:  # render what ran, marked as failed
                failures += 1
                note = "(execution FAILED)"
                print(f"{path.name}: execution failed:\n{err}", file=sys.stderr)
        dest = to_html(nb, out / f"{path.stem}.html")
        entries.append((dest.name, _title(nb, path.stem), note))
        print(f"{dest} {note}")
    return entries, failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render the notebooks to HTML.")
    parser.add_argument("names", nargs="*", help="notebooks to render (default: all)")
    parser.add_argument("--out", type=Path, default=NOTEBOOKS / "html", help="output folder")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--execute", action="store_true", help="execute every notebook first")
    mode.add_argument(
        "--no-execute", action="store_true", help="export as stored, without executing"
    )
    parser.add_argument(
        "--timeout", type=int, default=CELL_TIMEOUT, help="seconds allowed per cell"
    )
    args = parser.parse_args(argv)

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    saved = os.environ.get("LOWRANK_NOTEBOOK_OUT")
    os.environ.setdefault("LOWRANK_NOTEBOOK_OUT", str(out / "key-numbers"))
    try:
        entries, failures = _render_all(notebook_paths(args.names), out, args)
    finally:
        if saved is None:
            os.environ.pop("LOWRANK_NOTEBOOK_OUT", None)
    print(_index(out, entries))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
