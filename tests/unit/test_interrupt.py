"""SIGTERM handled as Ctrl-C (squall run) and passed on to the tests' process (squall test)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from squall.interrupt import deferred_stop, sigterm_as_ctrl_c, wait_for_child

CHILD = """
import pathlib, sys, time
ready = pathlib.Path(sys.argv[1])
try:
    ready.write_text("ready")
    time.sleep(30)
except KeyboardInterrupt:
    sys.exit(7)
sys.exit(0)
"""


def test_sigterm_raises_keyboard_interrupt_inside_and_its_handler_is_back_after() -> None:
    before = signal.getsignal(signal.SIGTERM)

    def terminated() -> None:
        with sigterm_as_ctrl_c():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # interrupted long before

    with pytest.raises(KeyboardInterrupt):
        terminated()
    assert signal.getsignal(signal.SIGTERM) == before


def _signal_self_when_ready(ready: Path, *signals: signal.Signals) -> threading.Thread:
    def go() -> None:
        deadline = time.monotonic() + 20
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        for sig in signals:
            os.kill(os.getpid(), sig)
            time.sleep(0.2)

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread


def test_the_child_gets_sigint_for_a_sigterm_and_ctrl_c_leaves_it_to_finish(
    tmp_path: Path,
) -> None:
    ready = tmp_path / "ready"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    # Ctrl-C first: only this process gets it here, and it must not stop waiting; then a
    # SIGTERM, which the child receives as SIGINT and exits 7 on.
    thread = _signal_self_when_ready(ready, signal.SIGINT, signal.SIGTERM)
    child = wait_for_child([sys.executable, str(script), str(ready)])
    thread.join(5)
    assert child.status == 7
    assert child.stopped
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_the_childs_standard_error_comes_through_rewritten_line_by_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    script = "import sys; sys.stderr.write('one -m\\ntwo -m\\n'); sys.exit(3)"
    child = wait_for_child([sys.executable, "-c", script], rewrite_stderr=str.upper)
    assert child.status == 3
    assert not child.stopped
    assert capsys.readouterr().err == "ONE -M\nTWO -M\n"


def test_a_deferred_ctrl_c_or_sigterm_is_noted_and_the_work_inside_ends_whole(
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = signal.getsignal(signal.SIGINT)
    with sigterm_as_ctrl_c(), deferred_stop("finishing first") as came:
        assert not came()
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)  # raised as a Ctrl-C, noted the same way
        time.sleep(0.05)  # the handlers run here: nothing is raised
        assert came()
    assert signal.getsignal(signal.SIGINT) is before
    assert capsys.readouterr().err == "finishing first\n"  # once
    with pytest.raises(KeyboardInterrupt):  # outside, Ctrl-C is Ctrl-C again
        signal.raise_signal(signal.SIGINT)


def test_the_childs_standard_output_through_a_pipe_comes_through_byte_for_byte() -> None:
    # Decoded as UTF-8 and printed as text, a Latin-1 "é" became U+FFFD, which Latin-1
    # cannot print: the whole chunk was dropped.
    child_code = (
        "import sys; print('caf\\u00e9'); sys.stdout.flush(); "
        "sys.stdout.buffer.write(bytes([255, 254, 10]))"
    )
    parent = (
        "import sys; from squall.interrupt import wait_for_child; "
        f"sys.exit(wait_for_child([sys.executable, '-c', {child_code!r}]).status)"
    )
    env = {**os.environ, "PYTHONIOENCODING": "latin-1"}
    done = subprocess.run([sys.executable, "-c", parent], capture_output=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"caf\xe9\n\xff\xfe\n"
