"""Generated NumPy kernels (see ``python -m derive generate``).

``relu_mlp`` holds the ReLU feedforward network of Appendix B.1.  Do not edit the
generated modules; ``_runtime`` is the small hand-written support they import.
"""

from numeric.kernels import relu_mlp

__all__ = ["relu_mlp"]
