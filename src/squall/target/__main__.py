"""``python -m squall.target`` is ``squall target``."""

from __future__ import annotations

import sys

from squall.target.cli import app

if __name__ == "__main__":
    sys.exit(app())
