"""bench.turns: processes take turns, one running at a time, until all have exited."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

from bench.turns import take_turns

# Writes "<monotonic time>" lines as fast as it can for ``seconds`` of wall clock.
_TICKER = """
import sys, time
end = time.monotonic() + float(sys.argv[2])
with open(sys.argv[1], "w") as out:
    while (now := time.monotonic()) < end:
        out.write(f"{now}\\n")
        out.flush()
        time.sleep(0.002)
"""


def _ticker(path: Path, seconds: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", _TICKER, str(path), str(seconds)])


def _switches(paths: list[Path]) -> int:
    """How often the writer changes along the merged timeline of all the files."""
    ticks = sorted(
        (float(line), index)
        for index, path in enumerate(paths)
        for line in path.read_text().split()
    )
    return sum(1 for a, b in itertools.pairwise(ticks) if a[1] != b[1])


def test_processes_run_one_at_a_time_in_turns(tmp_path: Path) -> None:
    paths = [tmp_path / "a.txt", tmp_path / "b.txt"]
    processes = [_ticker(path, 1.5) for path in paths]
    turns = take_turns(processes, limit_s=30.0, turn_s=0.1)
    assert [process.wait(timeout=10) for process in processes] == [0, 0]
    # Run together, the two (2 ms apart each) would interleave hundreds of times; in turns
    # the writer changes once per turn at most (the start, before the second was stopped,
    # may add a few).
    assert turns >= 10
    assert _switches(paths) <= turns + 5


def test_a_process_that_exits_early_leaves_the_turns_to_the_others(tmp_path: Path) -> None:
    short, long = _ticker(tmp_path / "short.txt", 0.2), _ticker(tmp_path / "long.txt", 1.0)
    take_turns([short, long], limit_s=30.0, turn_s=0.1)
    assert short.poll() == 0
    assert long.poll() == 0


def test_every_process_is_left_running_when_the_limit_passes(tmp_path: Path) -> None:
    processes = [_ticker(tmp_path / f"{n}.txt", 3.0) for n in range(2)]
    try:
        take_turns(processes, limit_s=0.3, turn_s=0.1)
        assert all(process.poll() is None for process in processes)
        # Neither is stopped: both finish on their own.
        assert [process.wait(timeout=10) for process in processes] == [0, 0]
    finally:
        for process in processes:
            process.kill()
            process.wait()
