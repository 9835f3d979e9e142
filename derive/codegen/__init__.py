"""Code generation: index forms of :mod:`derive.registry` to NumPy ``einsum`` kernels."""

from derive.codegen.generate import ModuleSpec, generate_all, modules, render_module
from derive.codegen.printer import EinsumPrinter, argname

__all__ = ["EinsumPrinter", "argname", "ModuleSpec", "generate_all", "modules", "render_module"]
