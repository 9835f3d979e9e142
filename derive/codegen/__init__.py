"""Code generation: index forms of :mod:`derive.registry` to NumPy ``einsum`` kernels."""

from derive.codegen.generate import GENERATED, generate_all, render_module
from derive.codegen.printer import EinsumPrinter, argname

__all__ = ["EinsumPrinter", "argname", "GENERATED", "generate_all", "render_module"]
