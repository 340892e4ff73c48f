"""The open-files limit is raised to the hard one before squall opens many sockets.

Each case runs in a child process: limits are per process, and a lowered hard limit
cannot be raised again.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _child(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_the_soft_limit_rises_to_the_hard_one() -> None:
    out = _child(
        """
        import resource
        from squall.fdlimit import raise_open_files
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 512))
        print(raise_open_files(), resource.getrlimit(resource.RLIMIT_NOFILE))
        """
    )
    assert out == "(512, 512) (512, 512)"


def test_a_hard_limit_below_what_is_wanted_stays_unless_privileged() -> None:
    out = _child(
        """
        import os, resource
        from squall.fdlimit import raise_open_files
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 512))
        soft, hard = raise_open_files(4096)
        print(os.geteuid() == 0 or (soft, hard) == (512, 512), hard >= 512)
        """
    )
    assert out == "True True"


def test_a_connect_past_the_limit_names_the_limit_and_the_fix() -> None:
    out = _child(
        """
        import asyncio, resource, time
        from squall.engine.client import connect
        from squall.engine.errors import ConnectError
        from squall.metrics.recorder import Recorder
        resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))
        async def main():
            held = []  # every descriptor the running loop left free
            try:
                while True:
                    held.append(open("/dev/null"))
            except OSError:
                pass
            try:
                await connect("ws://127.0.0.1:9/", Recorder(), time.monotonic, timeout=5)
            except ConnectError as exc:
                print(exc)
            for f in held:
                f.close()
        asyncio.run(main())
        """
    )
    assert "reached its open-files limit (48)" in out
    assert "ulimit -Hn" in out


def test_a_run_raises_the_limit_before_it_starts() -> None:
    out = _child(
        """
        import resource
        from squall.engine import Scenario, closed, run
        async def noop(session):
            pass
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 512))
        run(Scenario(name="noop", behaviour=noop, workload=closed(1, iterations=1)),
            processes=1, progress=False)
        print(resource.getrlimit(resource.RLIMIT_NOFILE))
        """
    )
    assert out == "(512, 512)"


def test_a_limit_too_low_for_a_run_is_named_with_its_fix() -> None:
    from squall.fdlimit import FEW_OPEN_FILES, few_open_files_note

    assert few_open_files_note(FEW_OPEN_FILES) is None
    note = few_open_files_note(64)
    assert note is not None
    assert note.startswith("! this process may open 64 files at most (ulimit -n)")
    assert "Raise the hard limit to 1,024 or more (ulimit -Hn as root" in note
