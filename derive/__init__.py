"""derive: the paper's equations in index form, symbolic self-checks, code generation.

The registry (:mod:`derive.registry`) holds one :class:`~derive.registry.Equation`
per equation of the paper; :mod:`derive.selfcheck` proves each against
``sympy.diff`` of an explicit network; :mod:`derive.codegen` writes the NumPy
kernels of :mod:`numeric.kernels`.
"""

from derive.registry import Equation, all_equations, get

__all__ = ["Equation", "all_equations", "get"]
