"""Mutated copies of the generated kernel module, to show that the verification can fail.

:func:`mutate` edits the source of one function of :mod:`numeric.kernels.relu_mlp`
(swap two einsum indices, drop a term of a sum, ...) and executes the result as a new
module; the original module is not touched.  Drivers of the copy call the copy's
kernels, so a mutated kernel is seen wherever it is used.
"""

from __future__ import annotations

import pathlib
import re
import types
from types import ModuleType

__all__ = ["MutationError", "function_source", "mutate"]


class MutationError(ValueError):
    """The text to replace is not in the function's source."""


def _module_source(module: ModuleType) -> str:
    path = getattr(module, "__file__", None)
    if not path:
        raise MutationError(f"{module.__name__} has no source file")
    return pathlib.Path(path).read_text()


def _span(source: str, function: str) -> tuple[int, int]:
    match = re.search(rf"^def {re.escape(function)}\(", source, flags=re.MULTILINE)
    if match is None:
        raise MutationError(f"no function {function!r} in the kernel module")
    nxt = re.compile(r"^(def |class |# -{10,})", flags=re.MULTILINE).search(source, match.end())
    return match.start(), (nxt.start() if nxt else len(source))


def function_source(function: str, module: ModuleType | None = None) -> str:
    """The source text of one top-level function of the kernel module."""
    if module is None:
        from numeric.kernels import relu_mlp as module
    source = _module_source(module)
    start, end = _span(source, function)
    return source[start:end]


def mutate(
    function: str,
    old: str,
    new: str,
    module: ModuleType | None = None,
    regex: bool = False,
) -> ModuleType:
    """A copy of the kernel module with ``old`` replaced by ``new`` in ``function``.

    Every occurrence inside that function is replaced (e.g. an einsum specification that
    appears in both the per-sample and the batch-mean branch); with ``regex``, ``old`` is
    a regular expression (``re.sub``).

    Raises
    ------
    MutationError
        When ``old`` does not occur in the function.
    """
    if module is None:
        from numeric.kernels import relu_mlp as module
    source = _module_source(module)
    start, end = _span(source, function)
    block = source[start:end]
    changed = re.sub(old, new, block) if regex else block.replace(old, new)
    if changed == block:
        raise MutationError(f"{old!r} does not occur in {function}")
    mutated = source[:start] + changed + source[end:]
    copy = types.ModuleType(f"{module.__name__}__mutated_{function}")
    copy.__dict__["__file__"] = None
    exec(compile(mutated, f"<{function} mutated>", "exec"), copy.__dict__)  # noqa: S102
    return copy
