"""``python -m bench`` itself: result files written atomically, unreadable ones skipped by
name, benchmarks without results named in the summary, SIGTERM / SIGHUP as Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import bench.__main__ as bench_main
import pytest
from bench.record import Result, environment, result_path, write_result


def result_data(benchmark: str = "engine", quick: bool = False, **extra: Any) -> dict[str, Any]:
    data = Result(benchmark, f"{benchmark} title", quick, f"python -m bench --only {benchmark}")
    return {**data.to_dict(), **extra}


def test_write_result_replaces_the_file_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_result(result_data(notes=["old"]), tmp_path)
    old = path.read_text()

    def write_half(self: Path, text: str, *args: Any, **kwargs: Any) -> int:
        with self.open("w") as out:
            out.write(text[:10])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", write_half)
    with pytest.raises(OSError, match="No space left"):
        write_result(result_data(notes=["new"]), tmp_path)
    monkeypatch.undo()
    assert path.read_text() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["engine.json"]  # no .tmp left


def test_write_result_goes_through_a_tmp_file_then_a_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    renames: list[tuple[str, str]] = []
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        renames.append((Path(src).name, Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    path = write_result(result_data("growth", quick=True), tmp_path)
    assert renames == [("growth.quick.json.tmp", "growth.quick.json")]
    assert json.loads(path.read_text())["benchmark"] == "growth"


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("", "is empty"),
        ('{"title": "x", "environment": {}', "is not valid JSON"),
        ("[1, 2]", "holds a JSON list, not an object"),
        (json.dumps({"environment": {}}), "has no 'title' key"),
        (json.dumps({"title": "engine"}), "has no 'environment' key"),
    ],
)
def test_an_unreadable_result_file_is_skipped_naming_the_file_and_the_fault(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, complaint: str
) -> None:
    broken = result_path("engine", False, tmp_path)
    broken.write_text(content)
    write_result(result_data("engine", quick=True), tmp_path)
    write_result(result_data("ledger"), tmp_path)
    found = bench_main.latest_results(tmp_path)
    # The broken full result is skipped: the quick one stands in for it.
    assert [(r["benchmark"], r["quick"]) for r in found] == [("engine", True), ("ledger", False)]
    err = capsys.readouterr().err
    assert f"skipping {broken}: it {complaint}" in err


def test_summary_names_each_benchmark_without_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{bench_main.START_MARK}\nold table\n{bench_main.END_MARK}\nend\n")
    monkeypatch.setattr(bench_main, "README", readme)
    monkeypatch.setattr(bench_main, "SUMMARY", tmp_path / "summary.md")
    monkeypatch.setattr(bench_main, "latest_results", lambda: [result_data("ledger")])
    bench_main.publish_summary()
    text = readme.read_text()
    assert "### ledger title" in text
    for name in bench_main.BENCHMARKS:
        if name != "ledger":
            assert f"No results for {name}:" in text
    assert "old table" not in text
    assert text.startswith("intro\n")
    assert text.endswith("end\n")


def test_summary_without_any_result_says_so_for_every_benchmark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench_main, "README", tmp_path / "absent.md")
    monkeypatch.setattr(bench_main, "SUMMARY", tmp_path / "summary.md")
    monkeypatch.setattr(bench_main, "latest_results", lambda: [])
    text = bench_main.publish_summary().read_text()
    assert [line for line in text.splitlines() if line.startswith("_No results for")] == [
        f"_No results for {name}: run `python -m bench --only {name}` to measure it._"
        for name in bench_main.BENCHMARKS
    ]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_a_benchmark_like_ctrl_c(
    monkeypatch: pytest.MonkeyPatch, signum: signal.Signals
) -> None:
    events: list[str] = []

    def runner(quick: bool) -> Result:
        try:
            os.kill(os.getpid(), signum)
            for _ in range(50):  # the handler runs here, at the latest
                time.sleep(0.01)
            events.append("went on")
        finally:
            events.append("finally")
        return Result("engine", "t", quick, "c")

    monkeypatch.setattr(bench_main, "_runner", lambda name: runner)
    monkeypatch.setattr(bench_main, "write_result", lambda data: events.append("wrote"))
    monkeypatch.setattr(bench_main, "publish_summary", lambda: events.append("published"))
    # Without main's handler the signal lands here (not in pytest's default: death).
    fallback = signal.signal(signum, lambda *_: events.append("not handled by main"))
    try:
        code = bench_main.main(["--only", "engine", "--only", "ledger"])
        restored = signal.getsignal(signum)
    finally:
        handler = signal.signal(signum, fallback)
    assert events == ["finally"]  # stopped at once: nothing written, ledger never started
    assert code == 130
    assert restored is handler  # main put back the handler it found


def test_the_environment_names_the_commit_measured() -> None:
    # Every result names squall 0.1.0: two results' code could not be told apart.
    commit = environment()["commit"]
    assert commit is None or re.fullmatch(r"[0-9a-f]{40}(\+changes)?", commit), commit
    if (Path(__file__).resolve().parents[3] / ".git").exists():
        assert commit is not None
