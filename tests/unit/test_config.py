"""The configuration loader: files, search, overrides and precise errors."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest

from squall.config import (
    Config,
    ConfigError,
    OptionOverride,
    find_config_file,
    load_config,
    option_overrides,
    parse_override,
)
from squall.metrics.thresholds import CAPACITY_THRESHOLDS, DEFAULT_THRESHOLDS, MetricKind


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A repository root, so the upward search never leaves the test's directory."""
    (tmp_path / ".git").mkdir()
    return tmp_path


def write(directory: Path, text: str, name: str = "squall.toml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


def error_of(project: Path, text: str, overrides: tuple[str, ...] = ()) -> str:
    write(project, text)
    with pytest.raises(ConfigError) as info:
        load_config(cwd=project, overrides=overrides)
    return str(info.value)


def test_defaults_without_any_file(project: Path) -> None:
    config = load_config(cwd=project)
    assert config.source is None
    assert config.run.results_dir == project / "squall-results"
    assert (config.run.workers, config.run.scale, config.run.processes) == (2, 1.0, None)
    assert config.run.scenarios == ()
    assert config.run.duration_s is None
    assert config.monitor.interval_s == 1.0
    assert (config.monitor.pids, config.monitor.ports) == ((), ())
    assert config.target.url is None
    assert config.target.adapter == "squall"
    assert config.thresholds == DEFAULT_THRESHOLDS
    assert config.capacity == CAPACITY_THRESHOLDS
    assert Config().thresholds_for("any").to_dict() == DEFAULT_THRESHOLDS.to_dict()


def test_squall_toml_every_section(project: Path) -> None:
    write(
        project,
        """
[target]
url = "ws://127.0.0.1:8000/ws"
jwt_secret_file = "secret.txt"
issuer = "me"
audience = "them"
adapter = "custom"

[run]
scenarios = ["golden_path", "race_billing"]
scale = 0.5
duration = "2m"
processes = 2
results_dir = "out"
workers = 4

[thresholds]
response_time = ["p(95) < 2s"]
"errors.timeout" = ["count == 0"]

[capacity]
users = ["value >= 10"]

[monitor]
interval_s = 0.5
pids = [1234]
ports = [8000, 8001]

[scenarios.golden_path]
users = 75
messages = 15

[scenarios.golden_path.thresholds]
success = { enabled = false }
ws_connect = []
""",
    )
    config = load_config(cwd=project)
    assert config.source == project / "squall.toml"
    assert config.target.url == "ws://127.0.0.1:8000/ws"
    assert config.target.jwt_secret_file == project / "secret.txt"
    assert (config.target.issuer, config.target.audience, config.target.adapter) == (
        "me",
        "them",
        "custom",
    )
    assert config.run.scenarios == ("golden_path", "race_billing")
    assert (config.run.scale, config.run.duration_s, config.run.processes) == (0.5, 120.0, 2)
    assert (config.run.results_dir, config.run.workers) == (project / "out", 4)
    assert config.monitor.interval_s == 0.5
    assert (config.monitor.pids, config.monitor.ports) == ((1234,), (8000, 8001))
    thresholds = config.thresholds.to_dict()
    assert thresholds["response_time"] == ["p(95) < 2s"]
    assert thresholds["errors.timeout"] == ["count == 0"]
    assert thresholds["violations"] == ["value == 0"]  # untouched defaults stay
    assert config.scenario_params("golden_path") == {"users": 75, "messages": 15}
    assert config.scenario_params("other") == {}

    golden = config.thresholds_for("golden_path", capacity=True).to_dict()
    assert "success" not in golden
    assert "ws_connect" not in golden
    assert golden["users"] == ["value >= 10"]
    assert golden["messages_sent"] == ["count >= 500"]
    other = config.thresholds_for("race_billing").to_dict()
    assert "users" not in other
    assert other["success"] == ["rate >= 0.90"]


def test_scenario_can_switch_capacity_checks(project: Path) -> None:
    write(project, "[scenarios.small]\ncapacity = false\n[scenarios.big]\ncapacity = true\n")
    config = load_config(cwd=project)
    assert "users" not in config.thresholds_for("small", capacity=True).rules
    assert "users" in config.thresholds_for("big").rules
    assert config.scenario_params("small") == {}


def test_your_thresholds_are_not_replaced_by_the_capacity_defaults(project: Path) -> None:
    # A capacity-sized run judged the default floors instead of yours (a stricter
    # delivery, users disabled), so it passed.
    write(project, '[thresholds]\ndelivery = ["rate >= 0.99"]\nusers = []\n')
    sized = load_config(cwd=project).thresholds_for("websocket_concurrency", capacity=True)
    rules = sized.to_dict()
    assert rules["delivery"] == ["rate >= 0.99"]
    assert "users" not in rules
    assert rules["messages_sent"] == ["count >= 500"]  # a capacity default you did not name
    # What you wrote in [capacity] goes over [thresholds] for capacity-sized runs.
    write(
        project, '[thresholds]\ndelivery = ["rate >= 0.99"]\n[capacity]\ndelivery = "rate >= 0.5"\n'
    )
    config = load_config(cwd=project)
    assert config.thresholds_for("x", capacity=True).to_dict()["delivery"] == ["rate >= 0.5"]
    assert config.thresholds_for("x").to_dict()["delivery"] == ["rate >= 0.99"]


def test_pyproject_tool_squall(project: Path) -> None:
    write(project, '[project]\nname = "x"\n[tool.squall.run]\nscale = 2.0\n', "pyproject.toml")
    config = load_config(cwd=project)
    assert config.source == project / "pyproject.toml"
    assert config.run.scale == 2.0


def test_search_walks_up_and_prefers_squall_toml(project: Path) -> None:
    nested = project / "a" / "b"
    nested.mkdir(parents=True)
    write(project, "[tool.squall.run]\nscale = 2.0\n", "pyproject.toml")
    assert find_config_file(nested) == project / "pyproject.toml"
    write(project, "[run]\nscale = 3.0\n")
    assert find_config_file(nested) == project / "squall.toml"
    assert load_config(cwd=nested).run.scale == 3.0


def test_pyproject_without_tool_squall_is_skipped(project: Path) -> None:
    write(project, '[project]\nname = "x"\n', "pyproject.toml")
    assert find_config_file(project) is None
    assert load_config(cwd=project).source is None


def test_explicit_config_path(project: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "conf"
    elsewhere.mkdir()
    write(project, "[run]\nscale = 3.0\n")
    path = write(elsewhere, '[run]\nscale = 0.25\nresults_dir = "r"\n', "ci.toml")
    config = load_config(path, cwd=project)
    assert config.run.scale == 0.25
    assert config.run.results_dir == elsewhere / "r"  # relative to the file
    with pytest.raises(ConfigError, match=r"config file .*missing.toml not found"):
        load_config(Path("missing.toml"), cwd=project)


def test_explicit_pyproject_needs_tool_squall(project: Path) -> None:
    path = write(project, '[project]\nname = "x"\n', "pyproject.toml")
    with pytest.raises(ConfigError, match=r"has no \[tool.squall\] table"):
        load_config(path, cwd=project)


def test_a_pyproject_whose_tool_is_no_table(project: Path) -> None:
    # The search passes it by; named, it is a clear error (both were tracebacks).
    path = write(project, "tool = 5\n", "pyproject.toml")
    assert find_config_file(project) is None
    with pytest.raises(ConfigError, match=r"'tool' in .*pyproject.toml is not a table"):
        load_config(path, cwd=project)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("run.scale", "a number > 0 and <= 1000"),
        ("run.duration", "a duration > 0"),
        ("monitor.interval_s", "a number of seconds >= 0.05"),
    ],
)
def test_an_integer_too_large_for_a_number_is_a_config_error(
    project: Path, key: str, expected: str
) -> None:
    # float() of it raised OverflowError: a traceback instead of the setting's error.
    huge = "1" + "0" * 400
    message = error_of(project, "", (f"{key}={huge}",))
    assert f"for '{key.split('.')[1]}'" in message
    assert expected in message


def test_a_scenarios_own_metric_may_be_judged_in_its_own_section_only(project: Path) -> None:
    # docs/configuration.md: an entry for context_large_enough replaces agent_context's
    # own check; it was refused as an unknown metric.
    write(
        project,
        '[scenarios.agent_context.thresholds]\ncontext_large_enough = ["rate >= 0.5"]\n'
        "[scenarios.long_conversation.thresholds]\ncontext_within_budget = []\n",
    )
    config = load_config(cwd=project)
    [rule] = config.thresholds_for("agent_context").rules["context_large_enough"]
    assert rule.expression.source == "rate >= 0.5"
    assert config.scenarios["long_conversation"].thresholds.rules["context_within_budget"] == ()
    message = error_of(
        project,
        '[scenarios.websocket_concurrency.thresholds]\ncontext_large_enough = ["rate == 1"]\n',
    )
    assert "unknown metric 'context_large_enough'" in message
    message = error_of(
        project, '[scenarios.agent_context.thresholds]\ncontext_large_enough = ["p(95) < 1s"]\n'
    )
    assert "context_large_enough" in message


def test_a_servers_error_code_takes_a_threshold_in_every_documented_form(project: Path) -> None:
    # errors.server.<code> is two levels below errors: the unquoted key and --set were
    # refused ("unknown key 'rate_limited' in [thresholds.errors.server]").
    write(project, '[thresholds]\nerrors.server.rate_limited = ["count == 0"]\n')
    assert "errors.server.rate_limited" in load_config(cwd=project).thresholds.rules
    write(project, "")
    config = load_config(cwd=project, overrides=["thresholds.errors.server.queue_full=count == 0"])
    assert "errors.server.queue_full" in config.thresholds.rules
    write(project, '[thresholds]\n"errors.server.queue_full" = { enabled = false }\n')
    assert "errors.server.queue_full" not in load_config(cwd=project).thresholds_for("x").rules


def test_overrides_apply_last(project: Path) -> None:
    write(project, '[run]\nscale = 3.0\n[thresholds]\nresponse_time = ["avg < 1s"]\n')
    config = load_config(
        cwd=project,
        overrides=[
            "thresholds.response_time=p(95)<2s",
            "run.scale=0.5",
            "run.scenarios=golden_path,race_billing",
            "thresholds.errors.timeout=count==0",
            "scenarios.golden_path.users=10",
            "monitor.pids=[42]",
        ],
    )
    assert config.run.scale == 0.5
    assert config.run.scenarios == ("golden_path", "race_billing")
    assert config.thresholds.to_dict()["response_time"] == ["p(95)<2s"]
    assert config.thresholds.to_dict()["errors.timeout"] == ["count==0"]
    assert config.scenario_params("golden_path") == {"users": 10}
    assert config.monitor.pids == (42,)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("run.scale=0.5", (("run", "scale"), 0.5)),
        ("run.workers = 3", (("run", "workers"), 3)),
        ("target.url=ws://h/ws", (("target", "url"), "ws://h/ws")),
        ('target.url="ws://h/ws"', (("target", "url"), "ws://h/ws")),
        ("thresholds.violations=value==0", (("thresholds", "violations"), "value==0")),
        ("scenarios.x.fast=true", (("scenarios", "x", "fast"), True)),
    ],
)
def test_parse_override(text: str, expected: tuple[tuple[str, ...], object]) -> None:
    assert parse_override(text) == expected


@pytest.mark.parametrize("text", ["run.scale", "=1", "run..scale=1"])
def test_bad_override_shape(text: str) -> None:
    with pytest.raises(ConfigError, match=r"must look like key\.path=value"):
        parse_override(text)


def test_override_into_a_value_is_an_error(project: Path) -> None:
    with pytest.raises(ConfigError, match=r"'scale' is 1 .*, a value, not a table"):
        load_config(cwd=project, overrides=["run.scale=1", "run.scale.x=2"])


def test_override_into_a_value_names_who_set_each(project: Path) -> None:
    # `--set run=1 -s x` named the -s as "command-line override 'run.scenarios=[...]'" and
    # the 1 as "from the config file or an earlier override".
    scenarios = OptionOverride("run.scenarios", '["redis_locks"]')
    with pytest.raises(ConfigError) as raised:
        load_config(cwd=project, overrides=["run=1", scenarios])
    assert str(raised.value).startswith(
        "option --scenario: 'run' is 1 (from command-line override 'run=1'), a value, not a "
        "table, so it has no key 'scenarios'"
    )
    (project / "squall.toml").write_text("[run]\nscale = 1\n")
    with pytest.raises(ConfigError, match=r"'scale' is 1 \(from the config file\), .* key 'x'"):
        load_config(cwd=project, overrides=["run.scale.x.y=2"])


def test_an_error_in_a_dotted_metric_names_the_override_that_set_it(project: Path) -> None:
    (project / "squall.toml").write_text("[run]\nscale = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(cwd=project, overrides=["thresholds.errors.timeout=p(95)<1s"])
    assert "(command-line override 'thresholds.errors.timeout=p(95)<1s')" in str(info.value)


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "text"),
    [
        ("iteration_time", "p(95) < 2s"),
        ("schedule_lag", "p(99) < 50ms"),
        ("iterations", "count >= 10"),
        ("dropped_iterations", "count == 0"),
        ("interrupted_iterations", "count == 0"),
    ],
)
def test_the_engines_own_metrics_take_thresholds(metric: str, text: str, tmp_path: Path) -> None:
    # They are in every report; a threshold on them was refused as an unknown metric.
    config = load_config(None, cwd=tmp_path, overrides=[f'thresholds.{metric}=["{text}"]'])
    assert [t.expression.source for t in config.thresholds if t.metric == metric] == [text]


def test_threshold_metric_typo_suggests_the_closest(project: Path) -> None:
    message = error_of(project, '[thresholds]\nrespnse_time = ["p(95) < 8s"]\n')
    assert message == (
        f"unknown metric 'respnse_time' in [thresholds] ({project / 'squall.toml'}); "
        f"did you mean 'response_time'?"
    )


def test_unknown_metric_without_close_match_points_at_metrics_section(project: Path) -> None:
    message = error_of(project, '[thresholds]\nqueue_depth_xyz = ["value < 3"]\n')
    assert "unknown metric 'queue_depth_xyz' in [thresholds]" in message
    assert "declare custom metrics in [metrics]" in message


def test_custom_metrics_must_be_declared(project: Path) -> None:
    write(
        project,
        '[metrics]\ncustom = ["queue_depth"]\n[thresholds]\nqueue_depth = ["value < 3"]\n',
    )
    config = load_config(cwd=project)
    assert config.custom_metrics == {"queue_depth": None}
    assert config.thresholds.to_dict()["queue_depth"] == ["value < 3"]


def test_custom_metric_with_kind_is_checked_at_load(project: Path) -> None:
    message = error_of(
        project,
        '[metrics.custom]\nqueue_depth = "gauge"\n[thresholds]\nqueue_depth = ["p(95) < 3s"]\n',
    )
    assert "[thresholds] metric 'queue_depth' is a gauge: aggregation 'p(95)'" in message
    write(project, '[metrics.custom]\nqueue_depth = "gauge"\n')
    assert load_config(cwd=project).custom_metrics == {"queue_depth": MetricKind.GAUGE}


def test_custom_metric_bad_kind(project: Path) -> None:
    message = error_of(project, '[metrics.custom]\nq = "histogram"\n')
    assert "invalid value 'histogram' for 'q' in [metrics.custom]" in message
    assert "expected one of trend, counter, rate, gauge" in message


def test_custom_metric_cannot_shadow_a_standard_one(project: Path) -> None:
    assert "not a standard metric" in error_of(project, '[metrics]\ncustom = ["users"]\n')


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[rn]\nscale = 1\n", "unknown section 'rn' ({file}); did you mean 'run'?"),
        ("[run]\nscal = 1\n", "unknown key 'scal' in [run] ({file}); did you mean 'scale'?"),
        ("[target]\nurll = 'ws://x'\n", "unknown key 'urll' in [target] ({file}); did you mean"),
        ("[monitor]\ninterval = 1\n", "did you mean 'interval_s'?"),
        (
            "[thresholds.success]\nenabled = false\nexpresions = []\n",
            "unknown key 'expresions' in [thresholds.success]",
        ),
    ],
)
def test_unknown_keys_are_errors_with_suggestions(project: Path, text: str, fragment: str) -> None:
    message = error_of(project, text)
    assert fragment.format(file=project / "squall.toml") in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            "[run]\nscale = -1\n",
            "invalid value -1 for 'scale' in [run] ({file}); expected a number > 0",
        ),
        ("[run]\nscale = 'big'\n", "invalid value 'big' for 'scale' in [run]"),
        ("[run]\nscale = true\n", "invalid value True for 'scale'"),
        ("[run]\nworkers = 0\n", "invalid value 0 for 'workers' in [run] ({file}); expected an"),
        ("[run]\nprocesses = 1.5\n", "expected an integer >= 1"),
        ("[run]\nscenarios = 'a'\nduration = 'soon'\n", "invalid value 'soon' for 'duration'"),
        ("[run]\nduration = 0\n", "expected a duration > 0"),
        ("[run]\nscenarios = [1]\n", "invalid value [1] for 'scenarios' in [run]"),
        ("[run]\nresults_dir = ''\n", "expected a non-empty string"),
        ("run = 3\n", "invalid value 3 for 'run' at the top level ({file}); expected a table"),
        ("[monitor]\nports = [70000]\n", "expected a list of integers in 1..65535, e.g. [8000]"),
        ("[monitor]\npids = [0]\n", "expected a list of integers in 1..2147483647, e.g. [12345]"),
        ("[monitor]\ninterval_s = 0\n", "for 'interval_s' in [monitor]"),
        ("[target]\nurl = 'http://x'\n", "where ws:// or wss:// is needed"),
        ("[tool.squall.run]\nscale = 2\n", "in squall.toml write the sections themselves"),
        ("[target]\nurl = 'ws://127.0.0.1:99999/'\n", "has a bad port (Port out of range"),
        ("[target]\nurl = 'ws://127.0.0.1:ws/'\n", "has a bad port"),
        ("[target]\nurl = 'ws:///v1/ws'\n", "'ws:///v1/ws' names no host"),
        ("[target]\nurl = 'ws://[::1/'\n", "the value is not a URL (Invalid IPv6 URL)"),
        ("[results]\ndatabase_url = 'postgresql://127.0.0.1:5432x/r'\n", "has a bad port"),
        ("[target]\njwt_secret = 'a'\njwt_secret_file = 'b'\n", "keep one"),
        (
            "[target]\njwt_secret = 'a'\njwt_private_key_file = 'k.pem'\n",
            "[target] sets 'jwt_secret' and 'jwt_private_key_file'",
        ),
        ("[thresholds]\nsuccess = 0.9\n", "invalid value 0.9 for 'success' in [thresholds]"),
        ("[thresholds]\nsuccess = { enabled = 'no' }\n", "expected true or false"),
        ("[thresholds]\nsuccess = ['rate >> 1']\n", "[thresholds] metric 'success': cannot parse"),
        ("[thresholds]\nsuccess = ['avg < 1s']\n", "'success' is a rate: aggregation 'avg'"),
        ("thresholds = []\n", "expected a table of metric = [expressions]"),
        ("[scenarios]\nx = 1\n", "expected a table [scenarios.x]"),
        ("[scenarios.x]\ncapacity = 'yes'\n", "for 'capacity' in [scenarios.x]"),
        ("[metrics]\ncustom = 3\n", "invalid value 3 for 'custom' in [metrics]"),
    ],
)
def test_wrong_values_name_key_value_and_expectation(
    project: Path, text: str, fragment: str
) -> None:
    message = error_of(project, text)
    assert fragment.format(file=project / "squall.toml") in message


def test_error_in_an_option_names_the_option(project: Path) -> None:
    overrides = option_overrides(numbers=(("run.scale", 0.0),), texts=(("run.duration", "-5"),))
    message = error_of(project, "", overrides=overrides[:1])
    assert message == (
        "invalid value 0.0 for 'scale' in [run] (option --scale); expected a number > 0 and <= 1000"
    )
    assert "(option --duration)" in error_of(project, "", overrides=overrides[1:])
    # Handed to another process, an option's override still names it.
    assert pickle.loads(pickle.dumps(overrides[0])).option == "--scale"


def test_error_in_override_names_the_override(project: Path) -> None:
    message = error_of(project, "[run]\nscale = 1\n", overrides=("run.scale=abc",))
    assert message == (
        "invalid value 'abc' for 'scale' in [run] (command-line override 'run.scale=abc'); "
        "expected a number > 0 and <= 1000"
    )
    message = error_of(project, "", overrides=("thresholds.respnse_time=avg<1s",))
    assert "override 'thresholds.respnse_time=avg<1s'" in message
    assert "did you mean 'response_time'?" in message
    message = error_of(project, "[run]\nscale = 1\n", overrides=("rn.scale=1",))
    assert message.startswith(
        "unknown section 'rn' (command-line override 'rn.scale=1'); did you mean 'run'?"
    )


def test_a_scale_beyond_any_machine_is_refused(project: Path) -> None:
    message = error_of(project, "[run]\nscale = 1e308\n")
    assert "invalid value 1e+308 for 'scale' in [run]" in message
    assert "expected a number > 0 and <= 1000" in message
    assert load_config(cwd=project, overrides=("run.scale=1000",)).run.scale == 1000


def test_invalid_toml_names_the_file(project: Path) -> None:
    message = error_of(project, "[run\nscale = 1\n")
    assert re.search(r"squall\.toml is not valid TOML: .*line 1", message)


def test_a_byte_order_mark_is_named(project: Path) -> None:
    (project / "squall.toml").write_bytes(b"\xef\xbb\xbf[run]\nscale = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(cwd=project)
    assert "starts with a UTF-8 byte-order mark" in str(info.value)
    assert "save it as UTF-8 without one" in str(info.value)


def test_a_config_that_is_no_regular_file_is_read(project: Path) -> None:
    # --config <(...) names a pipe; /dev/null an empty device: both are read, not "not found".
    config = load_config(Path("/dev/null"), cwd=project)
    assert config.run.scale == 1.0


def test_a_file_that_is_not_utf8_names_the_encoding(project: Path) -> None:
    (project / "squall.toml").write_bytes(b"\xff\xfe[\x00r\x00u\x00n\x00]\x00")  # UTF-16
    with pytest.raises(ConfigError) as info:
        load_config(cwd=project)
    assert "squall.toml is not UTF-8 text (byte 0: invalid start byte)" in str(info.value)
    assert "save it as UTF-8" in str(info.value)


def test_a_folder_given_as_the_config_file_is_called_a_folder(project: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file .* is a folder, not a file"):
        load_config(Path("."), cwd=project)


def test_config_is_frozen(project: Path) -> None:
    config = load_config(cwd=project)
    with pytest.raises(AttributeError):
        config.run = config.run  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.scenarios["x"] = config.scenarios.get("x")  # type: ignore[index]


def test_results_database_url(project: Path) -> None:
    write(project, '[results]\ndatabase_url = "postgresql://127.0.0.1:5432/results"\n')
    config = load_config(cwd=project)
    assert config.results.database_url == "postgresql://127.0.0.1:5432/results"
    assert (
        load_config(cwd=project, overrides=['results.database_url="off"']).results.database_url
        == "off"
    )


def test_results_database_url_of_another_kind_is_refused(project: Path) -> None:
    message = error_of(project, '[results]\ndatabase_url = "mysql://app:s3cret@db/results"\n')
    assert "'database_url' in [results]" in message
    assert "scheme 'mysql'" in message
    assert "expected a PostgreSQL URL or 'off'" in message
    assert "s3cret" not in message


def test_results_section_typo_names_the_key(project: Path) -> None:
    message = error_of(project, '[results]\ndatabase_uri = "x"\n')
    assert "database_uri" in message
    assert "database_url" in message


def test_platform_settings_override_the_golden_path_one_by_one(project: Path) -> None:
    write(project, '[platform]\nfaults = "no_fencing"\nlock_ttl_ms = 300\nmodel_ttft_ms = 400.5\n')
    config = load_config(cwd=project)
    env = config.platform.env()
    assert env["SQUALL_FAULTS"] == "no_fencing"
    assert env["SQUALL_LOCK_TTL_MS"] == "300"
    assert env["SQUALL_MODEL_TTFT_MS"] == "400.5"  # overridden
    assert env["SQUALL_RUN_CONCURRENCY"] == "64"  # the golden path's, kept
    assert config.platform.changed
    assert not Config().platform.changed
    assert Config().platform.env()["SQUALL_MESSAGES_PER_SECOND"] == "1000"


def test_a_platform_key_setting_reads_starred_in_reports(project: Path) -> None:
    write(
        project,
        '[platform]\nopenai_api_key = "sk-123"\nopenai_model = "m"\n'
        'openai_base_url = "http://user:hunter2@127.0.0.1:9/v1"\n',
    )
    shown = load_config(cwd=project).platform.shown()
    assert (shown["openai_api_key"], shown["openai_model"]) == ("***", "m")
    assert shown["openai_base_url"] == "http://user:***@127.0.0.1:9/v1"


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        (
            '[platform]\nfualts = "no_fencing"\n',
            (),
            "unknown key 'fualts' in [platform] (squall.toml); did you mean 'faults'?",
        ),
        (
            '[platform]\njwt_secret = "abc"\n',
            (),
            "'jwt_secret' in [platform] (squall.toml) is set by squall for the platform it "
            "starts: a fresh secret it signs its users' tokens with; to test other values, "
            "start the platform yourself (squall target serve) and pass --target",
        ),
        (
            "",
            ("platform.lock_ttl_ms=0",),
            "invalid [platform] setting (command-line override 'platform.lock_ttl_ms=0'): "
            "SQUALL_LOCK_TTL_MS=0: expected a number of milliseconds from 1 to 86400000",
        ),
        (
            '[platform]\nfaults = "nope"\n',
            (),
            "invalid [platform] setting (squall.toml): SQUALL_FAULTS='nope': unknown fault(s)",
        ),
        (
            "[platform]\nfaults = true\n",
            (),
            "invalid value True for 'faults' in [platform] (squall.toml); expected a string or "
            "a number",
        ),
        ("platform = 3\n", (), "invalid value 3 for 'platform' at the top level"),
    ],
)
def test_platform_settings_are_checked_before_anything_starts(
    project: Path, text: str, overrides: tuple[str, ...], message: str
) -> None:
    assert message in error_of(project, text, overrides).replace(f"{project}/", "")


def test_a_monitor_interval_below_its_floor_is_refused(project: Path) -> None:
    # 1e-9 was taken: the sampler then read every process without a pause.
    message = error_of(project, "[monitor]\ninterval_s = 1e-9\n")
    assert "invalid value 1e-09 for 'interval_s' in [monitor]" in message
    assert "expected a number of seconds >= 0.05" in message


def test_an_option_holding_bytes_that_are_not_utf8_is_named(project: Path) -> None:
    # Python keeps such bytes of argv as lone surrogates: the override read back was the
    # quoted JSON text, '"ws://…"', said to have "no scheme".
    url = b"ws://127.0.0.1:8765/caf\xe9".decode("utf-8", "surrogateescape")
    (target,) = option_overrides(texts=[("target.url", url)])
    assert isinstance(target, OptionOverride)
    # As squall run names it, and as the pytest plugin does.
    for override, named in (
        (target, "--target"),
        (target.named("--squall-target"), "--squall-target"),
    ):
        with pytest.raises(ConfigError, match=rf"^option {named}: .* not UTF-8 text; give it"):
            load_config(cwd=project, overrides=[override])


@pytest.mark.parametrize(
    ("overrides", "sized"),
    [
        ([], True),
        (["run.scale=2"], True),
        (["run.scale=0.5"], False),
        (["run.duration=2s"], False),  # a capped run stops short of the floors
        (["scenarios.websocket_concurrency.users=10"], False),  # resized by the user
        (["scenarios.websocket_concurrency.messages=3"], False),
        (["scenarios.websocket_concurrency.timeout_s=5"], True),  # not a size
    ],
)
def test_the_capacity_floors_apply_to_a_scenario_at_its_own_size(
    overrides: list[str], sized: bool, tmp_path: Path
) -> None:
    # users=10 failed "users >= 50" and "messages_sent >= 500", naming no way out.
    from squall.suite import at_own_size

    config = load_config(None, cwd=tmp_path, overrides=overrides)
    params = config.scenario_params("websocket_concurrency")
    assert at_own_size(config, params, ("users", "messages")) is sized


@pytest.mark.parametrize(
    ("scenario", "metric", "text"),
    [
        ("agent_context", "context_processing_time", "p(95) < 1s"),
        ("agent_context", "response_generation_time", "p(95) < 2s"),
        ("agent_context", "context_chars_measured", "min >= 2000"),
        ("long_conversation", "context_tokens_peak", "value <= 2048"),
    ],
)
def test_a_scenarios_own_metrics_take_thresholds_of_their_kind(
    scenario: str, metric: str, text: str, tmp_path: Path
) -> None:
    # Recorded and reported, compared by --baseline, yet refused as unknown metrics.
    config = load_config(
        None, cwd=tmp_path, overrides=[f'scenarios.{scenario}.thresholds.{metric}=["{text}"]']
    )
    assert [t.expression.source for t in config.thresholds_for(scenario) if t.metric == metric] == [
        text
    ]


def test_a_scenario_named_twice_is_selected_once(tmp_path: Path) -> None:
    # It ran once, but report.json's config.scenarios listed it twice.
    config = load_config(
        None, cwd=tmp_path, overrides=['run.scenarios=["redis_locks","db_race","redis_locks"]']
    )
    assert config.run.scenarios == ("redis_locks", "db_race")
