"""``python -m latode``: the ``latode`` command (see :mod:`latode.cli`)."""

import sys

from latode.cli import main

if __name__ == "__main__":
    sys.exit(main())
