"""Mutated copies of a generated kernel module, to show that the verification can fail.

:func:`mutate` edits the source of one kernel function (swap two einsum indices, drop a
term of a sum, ...), executes the edited module as a copy and returns a
:class:`~verify.kernelset.KernelSet` holding it; the original module is not touched.
While a verification runs, the set installs the mutated functions into the real module,
so every driver that calls the kernel sees the mutation.
"""

from __future__ import annotations

import importlib
import pathlib
import re
import types
from types import ModuleType

from verify.kernelset import GENERATED, KernelSet, default_kernels

__all__ = ["MutationError", "function_source", "mutate"]


class MutationError(ValueError):
    """The text to replace is not in the function's source."""


def _module_source(module: ModuleType) -> str:
    path = getattr(module, "__file__", None)
    if not path:
        raise MutationError(f"{module.__name__} has no source file")
    return pathlib.Path(path).read_text()


def _span(source: str, function: str) -> tuple[int, int] | None:
    match = re.search(rf"^def {re.escape(function)}\(", source, flags=re.MULTILINE)
    if match is None:
        return None
    nxt = re.compile(r"^(def |class |# -{10,})", flags=re.MULTILINE).search(source, match.end())
    return match.start(), (nxt.start() if nxt else len(source))


def _home(function: str) -> tuple[ModuleType, str, tuple[int, int]]:
    for name in GENERATED:
        module = importlib.import_module(name)
        source = _module_source(module)
        span = _span(source, function)
        if span is not None:
            return module, source, span
    raise MutationError(f"no function {function!r} in the generated kernel modules")


def function_source(function: str) -> str:
    """The source text of one generated kernel function."""
    _, source, (start, end) = _home(function)
    return source[start:end]


def mutate(function: str, old: str, new: str, regex: bool = False) -> KernelSet:
    """The kernels with ``old`` replaced by ``new`` in ``function``.

    Every occurrence inside that function is replaced (e.g. an einsum specification that
    appears in both the per-sample and the batch-mean branch); with ``regex``, ``old`` is
    a regular expression (``re.sub``).

    Raises
    ------
    MutationError
        When ``function`` is no generated kernel, or ``old`` does not occur in it.
    """
    module, source, (start, end) = _home(function)
    block = source[start:end]
    changed = re.sub(old, new, block) if regex else block.replace(old, new)
    if changed == block:
        raise MutationError(f"{old!r} does not occur in {function}")
    mutated = source[:start] + changed + source[end:]
    copy = types.ModuleType(f"{module.__name__}__mutated_{function}")
    copy.__dict__["__file__"] = None
    copy.__dict__["__source__"] = mutated
    exec(compile(mutated, f"<{function} mutated>", "exec"), copy.__dict__)  # noqa: S102
    kernels = default_kernels()
    kernels.generated[module.__name__] = copy
    return kernels
