"""The open-files limit, raised before squall opens many sockets.

Every WebSocket, database connection and ``/proc`` file a run opens counts against
``RLIMIT_NOFILE``, whose soft value is often 1,024: a run of a few hundred users
with its monitor and the platform beside it reaches it and fails with "Too many
open files". squall raises the soft limit to the hard one, as servers commonly do,
before it starts load or serves the platform; processes it starts afterwards
inherit it. Only a privileged process may raise the hard limit itself.
"""

from __future__ import annotations

import contextlib
import resource

#: Where an unlimited hard limit is capped (Linux's default ``fs.nr_open``).
CEILING = 1 << 20


def raise_open_files(wanted: int | None = None) -> tuple[int, int]:
    """Raise the soft open-files limit to the hard one; with ``wanted`` above the hard
    limit, try to raise both to ``wanted`` (which takes privileges). Returns the
    (soft, hard) limits in force; a limit that cannot be raised is left as it is."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    unlimited = hard == resource.RLIM_INFINITY
    if wanted is not None and not unlimited and hard < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return resource.getrlimit(resource.RLIMIT_NOFILE)
        except (ValueError, OSError):
            pass  # not privileged: the soft limit goes as far as the hard one
    target = CEILING if unlimited else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def open_files_limit() -> int:
    """The soft open-files limit in force."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


#: Below this many open files a run is likely to run out: each socket, database connection
#: and ``/proc`` file of the generator, the monitor and the platform takes one.
FEW_OPEN_FILES = 1024


def few_open_files_note(limit: int) -> str | None:
    """A warning when ``limit`` (the open-files limit once raised as far as it goes) is
    below :data:`FEW_OPEN_FILES`; None otherwise."""
    if limit >= FEW_OPEN_FILES:
        return None
    return (
        f"! this process may open {limit} files at most (ulimit -n): each socket, database "
        "connection and monitor sample takes one, and past the limit they "
        f'fail with "Too many open files". Raise the hard limit to {FEW_OPEN_FILES:,} or '
        "more (ulimit -Hn as root, LimitNOFILE= for a service, --ulimit nofile= for a "
        "container)"
    )
