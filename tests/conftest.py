"""Shared test set-up.

Hypothesis runs without an example database: a failure found on one machine is not
replayed from a local ``.hypothesis/`` directory on the next run, so every run of the
suite depends only on the code and on the seed (``pytest --hypothesis-seed=N``).
"""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("lowrank", database=None)
settings.load_profile("lowrank")
