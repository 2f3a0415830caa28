"""``python -m skipsearch.cli``: the same as the ``skipsearch`` console script."""

import sys

from . import main

sys.exit(main())
