"""Code generation: index forms of :mod:`derive.registry` to ``einsum`` kernels.

:mod:`~derive.codegen.specs` says what is generated and where,
:mod:`~derive.codegen.printer` prints index forms as ``einsum`` calls,
:mod:`~derive.codegen.kernel` wraps one form as a documented function,
:mod:`~derive.codegen.elementwise` prints entry-wise forms through SymPy's NumPy printer,
and :mod:`~derive.codegen.generate` writes (or checks) the modules.
"""

from derive.codegen.generate import generate_all, modules, render_module
from derive.codegen.printer import EinsumPrinter, argname
from derive.codegen.specs import ModuleSpec

__all__ = ["EinsumPrinter", "argname", "ModuleSpec", "generate_all", "modules", "render_module"]
