"""Generated kernels (``python -m derive generate``), one module per section of the paper.

``feedforward`` (B.1, Eqs 10-36), ``cubic_regularization`` (Section 3, Eqs 37-40 and
Table 2), ``contracted`` (derived forms C1-C23, L1-L5), ``general_activation`` (B.3,
Eqs 66-80), ``convolution`` (B.2.1, Eqs 44-57), ``recurrent`` (B.2.2, Eqs 58-65) and
``activations``.  Do not edit them; ``_runtime`` is the small hand-written support they
import (einsum on NumPy or JAX arrays, input checks).  Nothing is imported here, so
loading one module does not load the others.
"""
