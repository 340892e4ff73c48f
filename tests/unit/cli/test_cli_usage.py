"""The CLI's usage errors: exit code 2 and a message naming the problem."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from squall import __version__
from squall.cli import main
from squall.config import load_config
from squall.runner import RunRequest, processes_beside, shared_cores_note
from squall.suite import select, uses_target


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == __version__
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == __version__


def test_bad_option_value_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--scale", "abc"]) == 2
    err = capsys.readouterr().err
    assert "Invalid value for '--scale'" in err
    assert "Usage: squall run" in err


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nope"]) == 2
    assert "No such command 'nope'" in capsys.readouterr().err


def test_history_lists_at_least_one_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--limit", "0", "--results-db", "off"]) == 2
    assert "Invalid value for '--limit'" in capsys.readouterr().err
    # Refused as it is parsed, not passed to the database as a number it cannot hold.
    assert main(["history", "--limit", "99999999999999999999", "--results-db", "off"]) == 2
    assert "Invalid value for '--limit'" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["run", "compare"])
def test_a_tolerance_that_is_no_fraction_is_a_usage_error(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Refused while parsing, before any database is opened: a bare 5 would be 500 %.
    assert main([command, "--tolerance", "5", "--results-db", "off"]) == 2
    err = capsys.readouterr().err
    assert "Invalid value for '--tolerance'" in err
    assert "write 5% for 5 percent" in err
    assert main([command, "--tolerance", "lots", "--results-db", "off"]) == 2
    assert "a percentage like 10% or a fraction like 0.1" in capsys.readouterr().err


def test_command_line_values_reach_the_config_unchanged(tmp_path: Path) -> None:
    odd = tmp_path / 'a\\b "quoted"'
    request = RunRequest(scenarios=("db_race",), results_dir=odd, target='ws://h:1/"x"\\y')
    config = load_config(cwd=tmp_path, overrides=request.config_overrides())
    assert config.run.results_dir == odd
    assert config.target.url == 'ws://h:1/"x"\\y'
    assert config.run.scenarios == ("db_race",)


def test_a_relative_results_dir_option_is_relative_to_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # squall.toml one folder up: [run] results_dir is relative to it, --results-dir to the
    # current folder, where history and compare look for it.
    (tmp_path / "squall.toml").write_text('[run]\nresults_dir = "from-file"\n')
    here = tmp_path / "sub"
    here.mkdir()
    monkeypatch.chdir(here)
    assert load_config(cwd=here).run.results_dir == tmp_path / "from-file"
    request = RunRequest(results_dir=Path("out"))
    config = load_config(cwd=here, overrides=request.config_overrides())
    assert config.run.results_dir == here / "out"


@pytest.mark.parametrize(("given", "seconds"), [("5m", 300.0), ("90", 90.0), (45.5, 45.5)])
def test_duration_takes_seconds_or_a_duration_string(
    tmp_path: Path, given: str | float, seconds: float
) -> None:
    request = RunRequest(duration=given)
    config = load_config(cwd=tmp_path, overrides=request.config_overrides())
    assert config.run.duration_s == seconds


def test_a_duration_that_is_no_duration_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", "-s", "db_race", "--duration", "soon", "--results-db", "off"]) == 2
    assert "invalid value 'soon' for 'duration' in [run]" in _output(capsys)


def _output(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    return " ".join((captured.out + captured.err).split())


@pytest.mark.parametrize("command", ["history", "compare"])
def test_reading_a_results_database_that_is_off_is_a_usage_error(
    command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SQUALL_RESULTS_DB", raising=False)
    assert main([command, "--results-db", "off"]) == 2
    assert "--results-db is 'off', so there is no results database to read" in _output(capsys)
    monkeypatch.setenv("SQUALL_RESULTS_DB", "off")
    assert main([command]) == 2
    assert "SQUALL_RESULTS_DB is 'off'" in _output(capsys)


def test_a_results_database_url_of_another_kind_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["history", "--results-db", "mysql://app:s3cret@db/results"]) == 2
    out = _output(capsys)
    assert "--results-db: 'mysql://app:***@db/results' has scheme 'mysql'" in out
    assert "s3cret" not in out


def test_run_refuses_a_bad_results_database_before_it_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", "-s", "db_race", "--results-db", "garbage", "--no-progress"]) == 2
    assert "--results-db: 'garbage' has no scheme" in _output(capsys)
    assert not (tmp_path / "squall-results").exists()
    # From the config file: the message names the key, not an option that was not given.
    (tmp_path / "squall.toml").write_text(
        '[results]\ndatabase_url = "postgresql://squall@198.51.100.1:5432/results"\n'
    )
    assert main(["run", "-s", "db_race", "-c", "squall.toml", "--no-progress"]) == 2
    assert "[results] database_url: host 198.51.100.1 is not a loopback address" in _output(capsys)
    assert not (tmp_path / "squall-results").exists()


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "DATABASE_URL",
            "garbage",
            ("DATABASE_URL: 'garbage' has no scheme", "Fix DATABASE_URL, or unset it"),
        ),
        (
            "REDIS_URL",
            "http://cache:6379",
            ("REDIS_URL: 'http://cache:6379' has scheme 'http'", "Fix REDIS_URL, or unset it"),
        ),
        (
            "DATABASE_URL",
            "postgresql://postgres@198.51.100.1:5432/app",
            (
                "DATABASE_URL: host 198.51.100.1 is not a loopback address",
                "squall only connects to this machine (127.0.0.0/8, ::1)",
                "or unset it to use the embedded PostgreSQL",
            ),
        ),
        (
            "REDIS_URL",
            "redis://[2001:db8::7]:6379/0",
            ("REDIS_URL: host 2001:db8::7 is not a loopback address", "or unset it"),
        ),
    ],
)
def test_run_refuses_a_service_url_it_cannot_use_before_starting_anything(
    variable: str,
    value: str,
    expected: tuple[str, ...],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv(variable, value)
    assert main(["run", "-s", "db_race", "--results-db", "off", "--no-progress"]) == 2
    out = _output(capsys)
    for fragment in expected:
        assert fragment in out
    assert not any((tmp_path / "squall-results").glob("*"))  # no run folder


@pytest.mark.parametrize("baseline", ["last", "20261126-101010-abcd"])
def test_run_refuses_a_baseline_without_a_results_database_before_it_runs(
    baseline: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(["run", "-s", "db_race", "--results-db", "off", "--baseline", baseline])
    assert code == 2
    out = _output(capsys)
    assert "--baseline needs the results database, but --results-db is 'off'" in out
    assert not any((tmp_path / "squall-results").glob("*"))  # refused before running
    # Off in the config file: the message names the key, not an option not given.
    (tmp_path / "squall.toml").write_text('[results]\ndatabase_url = "off"\n')
    assert main(["run", "-s", "db_race", "-c", "squall.toml", "--baseline", baseline]) == 2
    out = _output(capsys)
    assert "--baseline needs the results database, but [results] database_url is 'off'" in out
    assert not any((tmp_path / "squall-results").glob("*"))


def test_run_refuses_monitor_pids_that_name_no_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with subprocess.Popen([sys.executable, "-c", "pass"]) as gone:
        gone.wait()  # a PID that ran and exited: nothing has it now (barring reuse)
    pids = f"monitor.pids=[{os.getpid()}, {gone.pid}]"
    assert main(["run", "-s", "db_race", "--set", pids, "--results-db", "off"]) == 2
    out = _output(capsys)
    assert f"monitor.pids: no process {gone.pid} runs on this machine" in out
    assert str(os.getpid()) not in out.split("runs on")[0].split("no process")[1]


@pytest.mark.parametrize("pid", [1, os.getpid()])
def test_run_refuses_monitor_pids_that_would_count_squall_itself(
    pid: int, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(["run", "-s", "db_race", "--set", f"monitor.pids=[{pid}]", "--results-db", "off"])
    assert code == 2
    out = _output(capsys)
    assert (
        f"monitor.pids: {pid} runs squall itself (this process or one it was started from)" in out
    )
    assert not any((tmp_path / "squall-results").glob("*"))


def test_run_refuses_a_results_folder_it_cannot_create(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taken").write_text("a file where the folder would go\n")
    code = main(["run", "-s", "db_race", "--results-dir", "taken/out", "--results-db", "off"])
    assert code == 2
    out = _output(capsys)
    assert "cannot create the results folder" in out
    assert "taken/out: Not a directory" in out
    assert "pass --results-dir a folder you can write to" in out


def test_run_refuses_an_existing_results_folder_it_cannot_write_in(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # /proc/self exists, and no one (root included) can create a file in it: a folder that
    # is there, but read-only for this run, must stop it before it starts, not after.
    code = main(["run", "-s", "db_race", "--results-dir", "/proc/self", "--results-db", "off"])
    assert code == 2
    out = _output(capsys)
    assert "cannot write in the results folder /proc/self: No such file or directory" in out
    assert "pass --results-dir a folder you can write to" in out


@pytest.mark.parametrize(
    ("workers", "cores", "expected"), [(2, 2, 1), (2, 8, 6), (4, 2, 1), (1, 1, 1), (2, 3, 1)]
)
def test_generator_processes_beside_a_local_platform(
    workers: int, cores: int, expected: int
) -> None:
    assert processes_beside(workers, cores) == expected


def test_more_generator_processes_than_free_cores_get_a_warning() -> None:
    assert shared_cores_note(1, 2, cores=2) is None  # the default: one, at least
    assert shared_cores_note(6, 2, cores=8) is None
    note = shared_cores_note(4, 3, cores=2)
    assert note is not None
    assert "4 load-generator process(es) beside 3 platform worker(s) on 2 core(s)" in note
    assert "1 would leave the workers theirs" in note


def test_more_platform_workers_than_cores_get_a_warning() -> None:
    assert shared_cores_note(1, 2, cores=2) is None
    note = shared_cores_note(1, 4, cores=2)
    assert note is not None
    assert "4 platform workers on 2 core(s)" in note
    assert "--workers 2 or fewer" in note


def test_only_scenarios_that_talk_to_a_target_need_one() -> None:
    assert not uses_target(select(["db_race", "redis_locks"]))
    assert uses_target(select(["db_race", "platform_races"]))
    assert uses_target(select([]))  # the whole suite


def test_a_scenario_named_twice_runs_once() -> None:
    # Twice, its second run overwrote the first's history file and the results database
    # refused the run (one row per scenario and metric).
    names = [entry.name for entry in select(["redis_locks", "db_race", "redis_locks"])]
    assert names == ["redis_locks", "db_race"]


def test_a_run_that_needs_no_target_needs_no_secret_for_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "garbage")  # stops the run right after the checks
    args = ["run", "--target", "ws://127.0.0.1:1/v1/ws", "--results-db", "off", "--no-progress"]
    assert main([*args, "-s", "websocket_concurrency"]) == 2
    out = _output(capsys)
    assert "--target needs the secret" in out
    assert "or set [target] jwt_secret" in out  # printed as written, not taken for markup
    assert main([*args, "-s", "db_race"]) == 2  # past the secret check, to the services
    assert "DATABASE_URL: 'garbage' has no scheme" in _output(capsys)


def test_run_refuses_a_target_off_this_machine_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["run", "-s", "websocket_concurrency", "--target", "ws://192.0.2.7:8765/v1/ws"]
    assert main([*argv, "--jwt-secret", "s" * 32, "--results-db", "off", "--no-progress"]) == 2
    out = _output(capsys)
    assert "--target ([target] url): host 192.0.2.7 is not a loopback address" in out
    assert "point --target ([target] url) at 127.0.0.1 or localhost" in out
    assert not (tmp_path / "squall-results").exists()


def test_a_results_database_off_this_machine_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["history", "--results-db", "postgresql://app:s3cret@203.0.113.3/results"]) == 2
    out = _output(capsys)
    assert "--results-db: host 203.0.113.3 is not a loopback address" in out
    assert "or leave it unset for the default database" in out
    assert "s3cret" not in out


@pytest.mark.parametrize("command", ["history", "compare"])
def test_an_unreachable_results_database_names_it_and_the_fix(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "--results-db", "postgresql://app:s3cret@127.0.0.1:1/results"]) == 3
    out = _output(capsys)
    assert f"squall {command}: cannot use the results database (--results-db):" in out
    assert "leave --results-db and SQUALL_RESULTS_DB unset for the default one" in out
    assert "s3cret" not in out


def test_names_are_echoed_as_given_not_as_emoji(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-s", ":fire:", "--results-db", "off"]) == 2
    err = capsys.readouterr().err
    assert "unknown scenario(s) :fire:" in err
    assert "\N{FIRE}" not in err


def test_an_unquoted_list_in_set_gets_a_hint(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--set", "run.scenarios=[db_race]", "--results-db", "off"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "unknown scenario(s) [db_race]" in err
    assert 'a list in --set needs quoted names, run.scenarios=["db_race"]' in err


def test_an_empty_results_database_is_refused_not_taken_for_unset(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", "-s", "db_race", "--results-db", "", "--no-progress"]) == 2
    assert "--results-db is empty; give a PostgreSQL URL or 'off', or" in capsys.readouterr().err
    # history refuses 'off' (it would have nothing to read): not offered as the fix.
    assert main(["history", "--results-db", ""]) == 2
    assert "--results-db is empty; give a PostgreSQL URL, or leave" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["history", "compare"])
def test_history_and_compare_take_the_results_database_from_the_config(
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SQUALL_RESULTS_DB", raising=False)
    (tmp_path / "squall.toml").write_text('[results]\ndatabase_url = "off"\n')
    assert main([command]) == 2
    out = _output(capsys)
    assert f"squall {command}: [results] database_url is 'off'" in out
    assert "or leave [results] database_url unset for the default one" in out
    (tmp_path / "squall.toml").write_text("run = 5\n")
    assert main([command]) == 2
    assert "invalid value 5 for 'run' at the top level" in _output(capsys)
    assert main([command, "--config", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml not found" in _output(capsys)
    unreachable = "postgresql://app@127.0.0.1:1/results"
    (tmp_path / "squall.toml").write_text(f'[results]\ndatabase_url = "{unreachable}"\n')
    assert main([command]) == 3
    out = _output(capsys)
    assert "cannot use the results database ([results] database_url)" in out
    assert "or leave [results] database_url and SQUALL_RESULTS_DB unset" in out


@pytest.mark.parametrize("command", ["run", "test", "history", "compare"])
def test_an_empty_results_folder_is_refused_not_taken_for_this_one(
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # `--results-dir "$UNSET"` used to write the run's folder into the current one.
    monkeypatch.chdir(tmp_path)
    assert main([command, "--results-dir", ""]) == 2
    assert "'--results-dir': is empty; give a folder, or leave the option out" in _output(capsys)
    assert list(tmp_path.iterdir()) == []


def test_a_bad_option_value_is_named_as_the_option(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--scale", "0"]) == 2
    assert "invalid value 0.0 for 'scale' in [run] (option --scale)" in _output(capsys)


def test_squall_run_refuses_a_broken_adapter_with_exit_2_and_no_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "proto.py").write_text("class Proto(\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    code = main(
        ["run", "--adapter", "proto:Proto", "--target", "ws://127.0.0.1:9/", "--results-db", "off"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "squall run: cannot import adapter 'proto:Proto'" in err
    assert "Traceback" not in err
