"""Render and write the generated kernel modules of :mod:`numeric.kernels`.

``python -m derive generate`` writes them; ``--check`` regenerates in memory and
fails when the files on disk differ (drift).  Every module of
:data:`derive.codegen.specs.MODULES` is covered, and every kernel spec is printed in
exactly one module.
"""

from __future__ import annotations

import difflib
import re
import textwrap
from pathlib import Path

from derive.codegen import templates
from derive.codegen.elementwise import (
    activation_source,
    entrywise_source,
    step_length_source,
    variants_source,
)
from derive.codegen.kernel import kernel_source
from derive.codegen.specs import MODULES, ModuleSpec

__all__ = ["COMMAND", "modules", "render_module", "generate_all", "kernel_source"]

ROOT = Path(__file__).resolve().parents[2]
COMMAND = "python -m derive generate"

#: run-time helpers a generated module may call (all in numeric/kernels/_runtime.py)
_RUNTIME = ("as_float", "einsum", "eye_like", "namespace", "quiet", "read_masked")


def modules() -> dict[str, ModuleSpec]:
    """Every generated module, by name (``"feedforward"``, ``"contracted"``, ...)."""
    return {m.name: m for m in MODULES}


def _order(number: str) -> tuple:
    group = {"C": 2, "L": 3, "T": 1, "V": 4}.get(number[0], 0)
    digits = "".join(ch for ch in number.split(".")[0] if ch.isdigit())
    return (group, int(digits) if digits else 0, number)


def _numbers(spec: ModuleSpec) -> list[str]:
    nums = {k.equation for k in spec.kernels} | {e.equation for e in spec.entrywise}
    if "step_length" in spec.extras:
        nums |= {"37", "C8"}
    if "variants" in spec.extras:
        nums |= {"V3", "V5"}
    if "auto" in spec.extras:
        from derive.codegen.auto import auto_numbers

        return sorted(nums, key=_order) + auto_numbers()
    return sorted(nums, key=_order)


def _body(spec: ModuleSpec) -> str:
    parts = [kernel_source(k) for k in spec.kernels]
    parts += [entrywise_source(e) for e in spec.entrywise]
    if "step_length" in spec.extras:
        parts.append(step_length_source())
    if "activations" in spec.extras:
        parts.append(activation_source())
    if "variants" in spec.extras:
        parts.append(variants_source())
    if "auto" in spec.extras:
        from derive.codegen.auto import auto_source

        parts.append(auto_source())
    return "\n\n".join(parts)


def _imports(body: str) -> str:
    lines = []
    if re.search(r"\bnp\.", body):
        lines.append("import numpy as np\n")
    used = [name for name in _RUNTIME if re.search(rf"\b{name}\(", body)]
    if used:
        lines.append(f"from numeric.kernels._runtime import {', '.join(used)}")
    return "\n".join(lines)


def _wrap_first(text: str) -> str:
    """Wrap the first paragraph (the generated list of equations) at 88 columns."""
    first, sep, rest = text.partition("\n\n")
    return "\n".join(textwrap.wrap(" ".join(first.split()), 88, break_on_hyphens=False)) + (
        sep + rest
    )


def render_module(module: str = "feedforward") -> str:
    """The full text of a generated module."""
    spec = modules()[module]
    body = _body(spec)
    numbers = ", ".join(_numbers(spec))
    header = templates.HEADER.format(
        command=COMMAND,
        sources=", ".join(spec.sources),
        title=spec.title,
        body=_wrap_first(spec.body.replace("{equations}", numbers)),
        imports=_imports(body),
    )
    return header + "\n\n" + body.rstrip() + "\n"


def generate_all(check: bool = False, root: Path = ROOT) -> list[str]:
    """Write (or, with ``check``, compare) every generated module.

    Files under ``numeric/kernels`` that carry the generated header but that no module
    spec writes any more count as drift; writing removes them.

    Returns
    -------
    list of str
        Paths that differ from a fresh generation (``check``) or were written/removed.
    """
    changed = []
    for rel in stale_files(root):
        changed.append(rel)
        if check:
            print(f"{rel}: generated file that no module spec writes any more")
        else:
            (root / rel).unlink()
    for module, mspec in modules().items():
        rel = mspec.path
        path = root / rel
        fresh = render_module(module)
        old = path.read_text() if path.exists() else ""
        if old != fresh:
            changed.append(rel)
            if check:
                diff = difflib.unified_diff(
                    old.splitlines(),
                    fresh.splitlines(),
                    rel + " (on disk)",
                    rel + " (fresh)",
                    lineterm="",
                    n=1,
                )
                print("\n".join(list(diff)[:40]))
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(fresh)
    return changed


def stale_files(root: Path = ROOT) -> list[str]:
    """Generated-looking files under ``numeric/kernels`` that no module spec writes."""
    known = {m.path for m in MODULES}
    out = []
    for path in sorted((root / "numeric" / "kernels").glob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel not in known and path.read_text().startswith("# Generated by"):
            out.append(rel)
    return out
