"""Every numeric setting has a range, refused outside it by name, value and expected form;
a ``SQUALL_*`` variable that nothing reads is named in a warning."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import get_type_hints

import pytest

from squall.target.settings import (
    MAX_INTEGER,
    RANGES,
    SERVE_OPTIONS,
    Settings,
    SettingsError,
    unknown_variables,
)

SRC = Path(__file__).resolve().parents[3] / "src" / "squall"
HINTS = get_type_hints(Settings)
NUMERIC = sorted(f.name for f in fields(Settings) if HINTS[f.name] in (int, float))
FLOATS = sorted(f.name for f in fields(Settings) if HINTS[f.name] is float)


def test_every_numeric_setting_has_a_range() -> None:
    assert sorted(RANGES) == NUMERIC


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("SQUALL_MESSAGES_PER_SECOND", "0", "a finite number of messages per second > 0"),
        ("SQUALL_MESSAGES_PER_SECOND", "-5", "a finite number of messages per second > 0"),
        ("SQUALL_MESSAGES_PER_SECOND", "nan", "a finite number of messages per second > 0"),
        ("SQUALL_RUN_COST", "-1", "0 (runs are free) or a positive integer"),
        ("SQUALL_INITIAL_CREDITS", "-1000", "0 (a new account starts with none) or a positive"),
        ("SQUALL_SHUTDOWN_GRACE_S", "-1", "a number of seconds from 0 to 86400 (a day)"),
        ("SQUALL_SHUTDOWN_GRACE_S", "1e9", "a number of seconds from 0 to 86400 (a day)"),
        ("SQUALL_HISTORY_MESSAGES", "0", "a positive integer"),
        ("SQUALL_LOCK_TTL_MS", "9223372036854775807", "a number of milliseconds from 1 to"),
        ("SQUALL_MODEL_TTFT_MS", "-100", "a finite number of milliseconds, 0 or more"),
        ("SQUALL_MODEL_TOKENS_PER_SECOND", "-1", "a finite number of tokens per second, 0"),
        ("SQUALL_SOCKET_WRITE_TIMEOUT_S", "nan", "a finite number of seconds, 0 (never) or more"),
        ("SQUALL_REDIS_POOL_TIMEOUT_S", "inf", "a finite number of seconds > 0"),
        ("SQUALL_WORKER_RESTART_WINDOW_S", "-inf", "a finite number of seconds > 0"),
    ],
)
def test_a_value_out_of_range_is_refused_with_the_range(
    name: str, value: str, expected: str
) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({name: value})
    shown = repr(float(value)) if HINTS[name.removeprefix("SQUALL_").lower()] is float else value
    assert str(info.value).startswith(f"{name}={shown}: expected {expected}")


@pytest.mark.parametrize("name", FLOATS)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400"])
def test_no_float_setting_takes_nan_or_infinity(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({Settings.env_name(name): value})
    expected = RANGES[name].expected
    assert str(info.value) == f"{Settings.env_name(name)}={float(value)!r}: expected {expected}"
    # The expected form says the value is finite: in words, or by an upper bound.
    assert "finite" in expected or " to " in expected


@pytest.mark.parametrize(
    ("name", "taken", "refused"),
    [
        ("SQUALL_RUN_COST", ["0"], "-1"),  # free runs: the debit of 0 always succeeds
        ("SQUALL_INITIAL_CREDITS", ["0", str(MAX_INTEGER)], "-1"),
        ("SQUALL_MODEL_TTFT_MS", ["0"], "-0.5"),  # 0: the first token at once
        ("SQUALL_MODEL_TOKENS_PER_SECOND", ["0"], "-0.5"),  # 0: chunks unpaced
        ("SQUALL_SHUTDOWN_GRACE_S", ["0", "86400"], "86400.5"),
        ("SQUALL_MESSAGES_PER_SECOND", ["0.01"], "0"),
        ("SQUALL_HISTORY_MESSAGES", ["1"], "0"),
        ("SQUALL_LOCK_TTL_MS", ["1", "86400000"], "86400001"),  # a day at most
    ],
)
def test_a_range_takes_its_ends_only(name: str, taken: list[str], refused: str) -> None:
    field = name.removeprefix("SQUALL_").lower()
    for value in taken:
        assert getattr(Settings.from_env({name: value}), field) == HINTS[field](value)
    with pytest.raises(SettingsError, match=f"^{name}="):
        Settings.from_env({name: refused})


@pytest.mark.parametrize("value", [str(MAX_INTEGER + 1), str(-MAX_INTEGER - 2), "1" + "0" * 30])
def test_an_integer_past_64_bits_is_refused(value: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"SQUALL_INITIAL_CREDITS": value})
    assert str(info.value) == (
        f"SQUALL_INITIAL_CREDITS={value!r}: expected an integer from -9223372036854775808 to "
        "9223372036854775807 (64 bits)"
    )


def test_a_bucket_that_would_take_over_a_year_to_refill_is_refused() -> None:
    # 100 messages at 1e-9/s: 1e11 s, over 3,000 years; from 1e-12/s Redis refuses the key.
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"SQUALL_MESSAGES_PER_SECOND": "1e-9"})
    message = str(info.value)
    assert message.startswith("SQUALL_MESSAGE_BURST=100 at SQUALL_MESSAGES_PER_SECOND=1e-09: ")
    assert "expected at most 31536000 s (a year)" in message
    year = {"SQUALL_MESSAGE_BURST": "31536000", "SQUALL_MESSAGES_PER_SECOND": "1"}
    assert Settings.from_env(year).message_burst == 31_536_000
    with pytest.raises(SettingsError, match="SQUALL_MESSAGE_BURST=31536001 at"):
        Settings.from_env({**year, "SQUALL_MESSAGE_BURST": "31536001"})


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("garbage", "'garbage' has no scheme, where http:// or https:// is needed"),
        ("ftp://models:21/v1", "'ftp://models:21/v1' has scheme 'ftp', where http://"),
        ("http:///v1", "'http:///v1' names no host"),
        ("http://models:99999/v1", "'http://models:99999/v1' has a bad port"),
        ("https://user:pw@/v1", "'https://user:***@/v1' names no host"),
    ],
)
def test_an_openai_base_url_is_an_http_url_with_a_host(value: str, problem: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"SQUALL_OPENAI_BASE_URL": value})
    assert str(info.value).startswith(f"SQUALL_OPENAI_BASE_URL: {problem}")
    assert "pw" not in str(info.value)
    for url in ("https://localhost/v1", "http://127.0.0.1:8000/v1"):
        assert Settings.from_env({"SQUALL_OPENAI_BASE_URL": url}).openai_base_url == url


def test_a_variable_nothing_reads_gets_one_warning_each() -> None:
    environ = {
        "SQUALL_WORKERS": "4",
        "SQUALL_PORT": "9000",
        "SQUALL_HOST": "0.0.0.0",
        "SQUALL_MESAGES_PER_SECOND": "3",
        "SQUALL_JWT_SECRT": "a-secret-value-nobody-should-see",
        "SQUALL_FROBNICATE": "1",
        "SQUALL_MESSAGES_PER_SECOND": "3",
        "SQUALL_RESULTS_DB": "off",
        "SQUALL_TEST_TIME_SCALE": "2",
        "DATABASE_URL": "postgresql://db/app",
        "HOME": "/root",
    }
    assert unknown_variables(environ) == [
        "SQUALL_FROBNICATE is not a setting of the platform and is ignored; "
        "docs/configuration.md lists the settings",
        "SQUALL_HOST is not a setting of the platform and is ignored; "
        "use the --host option of squall target serve",
        "SQUALL_JWT_SECRT is not a setting of the platform and is ignored; "
        "did you mean SQUALL_JWT_SECRET?",
        "SQUALL_MESAGES_PER_SECOND is not a setting of the platform and is ignored; "
        "did you mean SQUALL_MESSAGES_PER_SECOND?",
        "SQUALL_PORT is not a setting of the platform and is ignored; "
        "use the --port option of squall target serve",
        "SQUALL_WORKERS is not a setting of the platform and is ignored; "
        "use the --workers option of squall target serve",
    ]
    assert "a-secret-value" not in " ".join(unknown_variables(environ))


def test_no_variable_squall_reads_is_warned_of() -> None:
    """Every ``SQUALL_*`` name in squall's source is a setting or another part's variable,
    but the options' names that the warnings themselves mention."""
    named = set()
    for path in SRC.rglob("*.py"):
        named |= set(re.findall(r"\bSQUALL_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    assert {"SQUALL_RESULTS_DB", "SQUALL_JWT_SECRET"} <= named
    warned = {warning.split()[0] for warning in unknown_variables(dict.fromkeys(named, "1"))}
    assert warned == set(SERVE_OPTIONS)
    assert unknown_variables(Settings().to_env()) == []
