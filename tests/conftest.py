"""Shared test set-up.

Hypothesis runs without an example database: a failure found on one machine is not
replayed from a local ``.hypothesis/`` directory on the next run, so every run of the
suite depends only on the code and on the seed (``pytest --hypothesis-seed=N``), and
pytest-xdist workers (``make test`` runs two) share no files.

XLA compiles the suite's many small JAX functions with the options of ``verify report``
(:data:`verify.backend.COMPILE_FLAGS`: less LLVM optimisation, the same IEEE
arithmetic), set here before any test starts JAX's backend; subprocesses inherit them.
"""

from __future__ import annotations

from hypothesis import settings

from verify.backend import quick_compile

quick_compile()

settings.register_profile("lowrank", database=None)
settings.load_profile("lowrank")
