"""The kernels and drivers under verification, as one namespace that can be mutated.

:func:`default_kernels` gathers the generated modules of the feedforward network
(``feedforward``, ``cubic_regularization``, ``contracted``), the hand-written drivers
that call them (:mod:`numeric.weight_lists`, :mod:`numeric.literal.feedforward`,
:mod:`numeric.losses`) and the B.2/B.3 modules checked by :mod:`verify.layers`.  A
:class:`KernelSet` answers ``K.<name>`` for any of their functions.

A mutated set (:func:`verify.mutation.mutate`) carries a modified copy of one generated
module; :meth:`KernelSet.installed` puts the copy's functions into the real module for the
duration of a run, so every driver that calls the kernel (they all call kernels through
their module) sees the mutation, and takes them out again afterwards.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
from collections.abc import Iterator
from types import ModuleType

__all__ = ["GENERATED", "DRIVERS", "KernelSet", "default_kernels"]

#: generated modules whose functions the verification exercises
GENERATED = (
    "numeric.kernels.feedforward",
    "numeric.kernels.cubic_regularization",
    "numeric.kernels.contracted",
    "numeric.kernels.general_activation",
    "numeric.kernels.convolution",
    "numeric.kernels.recurrent",
    "numeric.kernels.bias",
    "numeric.kernels.stacking",
    "numeric.kernels.auto_derived",
)
#: hand-written driver modules whose names ``K.<name>`` also reaches (first wins)
DRIVERS = ("numeric.weight_lists", "numeric.literal.feedforward", "numeric.losses")


class KernelSet:
    """Generated modules (possibly mutated copies) and the drivers that call them.

    Parameters
    ----------
    generated : dict
        ``module name -> module`` for every module of :data:`GENERATED`; a value may be
        a mutated copy of the real module.
    """

    def __init__(self, generated: dict[str, ModuleType]) -> None:
        self.generated = dict(generated)
        self.drivers = [importlib.import_module(name) for name in DRIVERS]
        self.__name__ = "+".join(m.rsplit(".", 1)[-1] for m in self.generated)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        for mod in self.drivers:
            if name in getattr(mod, "__all__", ()):
                return getattr(mod, name)
        for mod in self.generated.values():
            fn = vars(mod).get(name)
            if inspect.isfunction(fn):
                return fn
        raise AttributeError(f"no kernel or driver {name!r}")

    def functions(self) -> dict[str, list[str]]:
        """Public functions printed in each generated module."""
        out = {}
        for name, mod in self.generated.items():
            out[name] = sorted(
                fn
                for fn, obj in vars(mod).items()
                if not fn.startswith("_")
                and inspect.isfunction(obj)
                and obj.__globals__ is vars(mod)
            )
        return out

    def globals(self) -> list[dict]:
        """The global namespaces of the generated modules (to track calls)."""
        return [vars(mod) for mod in self.generated.values()]

    @contextlib.contextmanager
    def installed(self) -> Iterator[KernelSet]:
        """Put mutated functions into the real modules while the block runs."""
        saved: list[tuple[ModuleType, str, object]] = []
        try:
            for name, mod in self.generated.items():
                real = importlib.import_module(name)
                if mod is real:
                    continue
                for fn, obj in vars(mod).items():
                    if inspect.isfunction(obj) and obj.__globals__ is vars(mod):
                        saved.append((real, fn, getattr(real, fn)))
                        setattr(real, fn, obj)
            yield self
        finally:
            for real, fn, obj in reversed(saved):
                setattr(real, fn, obj)

    def source_text(self) -> str:
        """Concatenated sources of the generated modules (for a digest)."""
        parts = []
        for mod in self.generated.values():
            try:
                parts.append(inspect.getsource(mod))
            except (OSError, TypeError):
                parts.append(getattr(mod, "__source__", ""))
        return "\n".join(parts)


def default_kernels() -> KernelSet:
    """The real generated modules and drivers."""
    return KernelSet({name: importlib.import_module(name) for name in GENERATED})
