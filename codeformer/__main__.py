"""``python -m codeformer``: see ``codeformer.cli``."""

import sys

from .cli import main

sys.exit(main())
