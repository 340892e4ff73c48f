"""After a run, with the results database off: where the files go, and the exit code."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from rich.console import Console

from squall.config import load_config
from squall.metrics.result import Counter
from squall.report.publish import EXIT_FILES_UNWRITTEN, publish, worker_deaths_note
from squall.suite import ScenarioOutcome, SuiteReport

OFF = {"SQUALL_RESULTS_DB": "off"}


def _report(run_id: str) -> SuiteReport:
    outcome = ScenarioOutcome(
        name="synthetic", metrics={"ops": Counter("ops", 3, 1.0)}, outcomes=[], duration_s=1.0
    )
    return SuiteReport(run_id, 1_000.0, [outcome], finished_at=1_001.0)


def _publish(results_dir: Path, run_id: str) -> tuple[int, str]:
    config = load_config(None, cwd=results_dir, overrides=[f'run.results_dir="{results_dir}"'])
    console = Console(record=True, width=400, color_system=None)
    code = publish(_report(run_id), config, console, environ=OFF)
    return code, console.export_text()


def test_files_go_to_the_results_folder(tmp_path: Path, temp_dir: Path) -> None:
    code, text = _publish(tmp_path / "results", "run-ok")
    assert code == 0
    folder = tmp_path / "results" / "run-ok"
    assert json.loads((folder / "report.json").read_text())["run_id"] == "run-ok"
    assert sorted(p.name for p in folder.iterdir()) == [
        "junit.xml",
        "metrics.txt",
        "report.html",
        "report.json",
    ]
    assert f"results: {folder / 'report.json'}" in text
    assert not any(temp_dir.iterdir())


def test_a_dead_platform_worker_is_said_and_the_platforms_log_named(
    tmp_path: Path, temp_dir: Path
) -> None:
    # A worker the kernel killed mid-run showed only as closed sockets and timeouts; its
    # log, which said so, was named nowhere.
    folder = tmp_path / "results" / "run-crash"
    folder.mkdir(parents=True)
    (folder / "platform.log").write_text(
        "squall target: listening on ws://127.0.0.1:1/v1/ws (2 workers)\n"
        "squall target: worker pid 41 was killed by SIGKILL; starting a new one\n"
        "recovered orphaned run r1 of thread t1\n"
        "squall target: worker pid 42 was killed by SIGSEGV; starting a new one in 0.5 s\n"
    )
    (folder / "db_race.history.jsonl").write_text("")
    code, text = _publish(tmp_path / "results", "run-crash")
    assert code == 0
    assert (
        "! a reference platform worker died during the run (2 times, first: squall target: "
        "worker pid 41 was killed by SIGKILL; starting a new one); see "
        f"{folder / 'platform.log'}"
    ) in text
    assert "metrics.txt, db_race.history.jsonl, platform.log)" in text


def test_workers_a_scenario_stopped_on_purpose_are_no_finding(
    tmp_path: Path, temp_dir: Path
) -> None:
    # platform_races' worker_restart and worker_crash parts stop and kill a worker each:
    # every make run said "a reference platform worker died".
    folder = tmp_path / "results" / "run-races"
    folder.mkdir(parents=True)
    (folder / "platform.log").write_text(
        "squall target: worker pid 41 stopped on SIGTERM; starting a new one\n"
        "squall target: worker pid 42 was killed by SIGKILL; starting a new one\n"
    )
    config = load_config(
        None, cwd=tmp_path, overrides=[f'run.results_dir="{tmp_path / "results"}"']
    )
    races = ScenarioOutcome(
        name="platform_races", metrics={}, outcomes=[], result={"signalled_workers": [41, 42]}
    )
    console = Console(record=True, width=400, color_system=None)
    publish(SuiteReport("run-races", 1_000.0, [races]), config, console, environ=OFF)
    assert "died" not in console.export_text()
    (folder / "platform.log").write_text(
        "squall target: worker pid 43 was killed by SIGKILL; starting a new one\n"
    )
    assert worker_deaths_note(folder / "platform.log", {41, 42}) is not None


def test_a_platform_log_without_a_dead_worker_adds_no_note(tmp_path: Path, temp_dir: Path) -> None:
    folder = tmp_path / "results" / "run-calm"
    folder.mkdir(parents=True)
    (folder / "platform.log").write_text("squall target: listening on ws://127.0.0.1:1/v1/ws\n")
    _, text = _publish(tmp_path / "results", "run-calm")
    assert "died" not in text
    assert "metrics.txt, platform.log)" in text


def test_a_results_folder_that_cannot_take_the_files_sends_them_to_the_temp_folder(
    tmp_path: Path, temp_dir: Path
) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "run-x").write_text("in the way")  # the run's folder cannot be made
    code, text = _publish(results, "run-x")
    assert code == EXIT_FILES_UNWRITTEN
    fallback = temp_dir / "squall-results" / "run-x"
    assert json.loads((fallback / "report.json").read_text())["run_id"] == "run-x"
    assert (fallback / "junit.xml").exists()
    assert f"could not be written to {results / 'run-x'} (File exists" in text
    assert f"they are in {fallback} instead" in text
    assert "pass --results-dir a folder you can write to" in text
    assert "Traceback" not in text


def test_a_failed_write_leaves_no_partial_file_behind(tmp_path: Path, temp_dir: Path) -> None:
    folder = tmp_path / "results" / "run-y"
    (folder / "junit.xml.tmp").mkdir(parents=True)  # junit.xml cannot be written
    code, text = _publish(tmp_path / "results", "run-y")
    assert f"could not be written to {folder} (Is a directory" in text
    assert code == EXIT_FILES_UNWRITTEN
    assert json.loads((folder / "report.json").read_text())["run_id"] == "run-y"
    assert not (folder / "report.json.tmp").exists()
    assert (temp_dir / "squall-results" / "run-y" / "junit.xml").exists()


def test_nowhere_to_write_says_so_and_keeps_the_threshold_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(blocked))
    config = load_config(None, cwd=tmp_path, overrides=[f'run.results_dir="{blocked}"'])
    console = Console(record=True, width=400, color_system=None)
    failing = _report("run-z")
    failing.scenarios[0].error = "boom"  # the run failed: its own exit code stands
    assert publish(failing, config, console, environ=OFF) == 1
    text = console.export_text()
    assert f"could not be written to {blocked / 'run-z'}" in text
    assert f"nor to {blocked / 'squall-results' / 'run-z'}" in text


def test_a_results_database_from_the_config_is_named_as_its_key(tmp_path: Path) -> None:
    config = load_config(None, cwd=tmp_path, overrides=[f'run.results_dir="{tmp_path}"'])
    console = Console(record=True, width=400, color_system=None)
    code = publish(
        _report("20260101-000000-ffff"),
        config,
        console,
        results_db="postgresql://postgres@127.0.0.1:1/results",
        results_db_name="[results] database_url",
        environ={},
    )
    assert code == 0
    text = console.export_text()
    assert "not stored in the results database ([results] database_url)" in text


def test_an_interrupted_run_exits_130_with_its_files_written(tmp_path: Path) -> None:
    config = load_config(None, cwd=tmp_path, overrides=[f'run.results_dir="{tmp_path}"'])
    report = _report("run-cut")
    report.interrupted = True
    code = publish(report, config, Console(record=True, width=400), environ=OFF)
    assert code == 130
    assert json.loads((tmp_path / "run-cut" / "report.json").read_text())["interrupted"] is True
