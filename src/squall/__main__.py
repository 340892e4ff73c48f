"""``python -m squall``: the same as the ``squall`` command."""

import sys

from squall.cli import main

sys.exit(main())
