"""``python -m numeric``: the ``lowrank`` command line."""

import sys

from numeric.cli import main

sys.exit(main())
