"""Run Locust's own command line pinned to one CPU: ``python -m bench.locust_run CPU ARGS…``.

Pinning happens before Locust is imported, so every greenlet and thread it
starts stays on that CPU.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from bench.record import pin


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit("usage: python -m bench.locust_run CPU|none LOCUST-ARGS…")
    cpu = sys.argv[1]
    pin(None if cpu == "none" else int(cpu))
    sys.argv = ["locust", *sys.argv[2:]]
    from locust import main as locust

    locust_main: Callable[[], object] = locust.main
    locust_main()


if __name__ == "__main__":
    main()
