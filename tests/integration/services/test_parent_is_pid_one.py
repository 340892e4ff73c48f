"""A parent that is PID 1 and alive (a container's entrypoint, with no init) keeps its
children: the parent-death check took "my parent is PID 1" for "my parent died", so
``squall target serve`` lost every worker at once and ``squall run``'s platform never came
up in such a container."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import pytest

#: Runs as PID 1 of its own PID namespace; each child prints "alive" if it was kept.
_AS_PID_ONE = textwrap.dedent(
    """
    import os, signal, subprocess, sys
    assert os.getpid() == 1, os.getpid()
    from squall.services.process import child_setup
    kept = subprocess.run(
        [sys.executable, "-c", "print('alive')"],
        preexec_fn=child_setup(signal.SIGTERM), capture_output=True, text=True,
    )
    print("spawn:", kept.returncode, kept.stdout.strip())
    worker = subprocess.run(
        [sys.executable, "-c",
         "import signal; from squall.parent_death import die_with_parent; "
         "die_with_parent(signal.SIGTERM, 1); print('alive')"],
        capture_output=True, text=True,
    )
    print("worker:", worker.returncode, worker.stdout.strip())
    """
)


def _in_own_pid_namespace(script: str) -> subprocess.CompletedProcess[str]:
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        pytest.skip("needs util-linux unshare (Linux)")
    probe = subprocess.run([unshare, "--pid", "--fork", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a PID namespace here: {probe.stderr.decode().strip()}")
    return subprocess.run(
        [unshare, "--pid", "--fork", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_children_of_a_live_pid_one_are_kept() -> None:
    done = _in_own_pid_namespace(_AS_PID_ONE)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["spawn: 0 alive", "worker: 0 alive"], done.stderr
