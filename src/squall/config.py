"""The one configuration loader: ``squall.toml`` or ``[tool.squall]`` in ``pyproject.toml``.

:func:`load_config` finds the file (or takes ``--config PATH``), applies
command-line overrides (``key.path=value``) last, validates every key and
returns a frozen :class:`Config`. Every problem raises :class:`ConfigError`
whose message names the file, the key, the bad value and what was expected,
and suggests the closest valid key when a name looks like a typo: an unknown
key is always an error, because a misspelt threshold silently not applying is
worse than a refusal to start.

Relative paths (``results_dir``, key files) are relative to the directory of
the file they were written in, or to ``cwd`` when there is no file.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from squall.metrics.expressions import ExpressionError
from squall.metrics.thresholds import (
    CAPACITY_THRESHOLDS,
    DEFAULT_THRESHOLDS,
    STANDARD_METRICS,
    MetricKind,
    Threshold,
    ThresholdError,
    ThresholdSet,
    standard_kind,
)
from squall.monitor.sampler import MIN_INTERVAL_S
from squall.monitor.targets import MAX_PID, MAX_PORT
from squall.target.settings import Settings, SettingsError
from squall.urls import POSTGRES_SCHEMES, redact, url_problem

__all__ = [
    "CONFIG_FILE",
    "Config",
    "ConfigError",
    "MonitorConfig",
    "PlatformConfig",
    "RunConfig",
    "ScenarioConfig",
    "TargetConfig",
    "find_config_file",
    "load_config",
    "parse_override",
]

CONFIG_FILE = "squall.toml"
PYPROJECT = "pyproject.toml"


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the file, key, value and fix."""


# -- the typed result --------------------------------------------------------------------


@dataclass(frozen=True)
class TargetConfig:
    """The system under test. ``url = None`` means squall starts its reference platform."""

    url: str | None = None
    jwt_secret: str | None = None
    jwt_secret_file: Path | None = None
    jwt_private_key_file: Path | None = None
    issuer: str = "squall"
    audience: str = "squall-platform"
    adapter: str = "squall"


#: The largest ``run.scale``: 1,000 × the golden path is 75,000 sockets of
#: ``websocket_concurrency``, already past what one machine's ports and memory hold.
MAX_SCALE = 1000.0


@dataclass(frozen=True)
class RunConfig:
    """What to run and how big. ``scenarios = ()`` means every scenario."""

    scenarios: tuple[str, ...] = ()
    scale: float = 1.0
    duration_s: float | None = None
    #: Load-generator worker processes; None: one per core (never more than users).
    processes: int | None = None
    results_dir: Path = Path("squall-results")
    workers: int = 2


@dataclass(frozen=True)
class MonitorConfig:
    """Resource sampling; ``pids``/``ports`` locate an external target."""

    interval_s: float = 1.0
    pids: tuple[int, ...] = ()
    ports: tuple[int, ...] = ()


#: The results database setting that keeps runs out of it (``--results-db off``).
RESULTS_DB_OFF = "off"


@dataclass(frozen=True)
class ResultsConfig:
    """Where runs are stored; ``None``: see :mod:`squall.store.location`; ``"off"``: nowhere."""

    database_url: str | None = None


#: The settings of the reference platform ``squall run`` starts for the golden path: a fast
#: simulated model and room for the suite's load. ``[platform]`` overrides them one by one.
GOLDEN_PATH_PLATFORM: Mapping[str, str] = MappingProxyType(
    {
        "model_ttft_ms": "20",
        "model_tokens_per_second": "2000",
        "run_concurrency": "64",
        "messages_per_second": "1000",
        "message_burst": "1000",
    }
)
#: Settings ``squall run`` chooses itself for the platform it starts, and why.
PLATFORM_SET_BY_SQUALL: Mapping[str, str] = MappingProxyType(
    {
        "database_url": "a database of its own on DATABASE_URL's server",
        "redis_url": "REDIS_URL",
        "redis_prefix": "a fresh prefix, whose keys it deletes afterwards",
        "jwt_algorithm": "HS256 with a fresh secret it signs its users' tokens with",
        "jwt_secret": "a fresh secret it signs its users' tokens with",
        "jwt_public_key_file": "HS256 with a fresh secret it signs its users' tokens with",
        "jwt_private_key_file": "HS256 with a fresh secret it signs its users' tokens with",
        "jwt_issuer": "the issuer its users' tokens carry",
        "jwt_audience": "the audience its users' tokens carry",
    }
)


@dataclass(frozen=True)
class PlatformConfig:
    """``[platform]``: the settings of the reference platform ``squall run`` (or the pytest
    plugin) starts, by :class:`~squall.target.settings.Settings` field name, as text."""

    settings: Mapping[str, str] = field(default_factory=lambda: GOLDEN_PATH_PLATFORM)

    def env(self) -> dict[str, str]:
        """The settings as the platform's ``SQUALL_*`` environment variables."""
        return {Settings.env_name(name): value for name, value in self.settings.items()}

    def shown(self) -> dict[str, str]:
        """The settings for a report: a key's value (``openai_api_key``) reads ``***``, a
        URL's password too."""
        return {
            name: "***"
            if name.endswith(("_key", "_secret")) and value
            else redact(value)
            if name.endswith("_url")
            else value
            for name, value in sorted(self.settings.items())
        }

    @property
    def changed(self) -> bool:
        """Whether ``[platform]`` changed a setting of the golden path's."""
        return dict(self.settings) != dict(GOLDEN_PATH_PLATFORM)


@dataclass(frozen=True)
class ScenarioConfig:
    """Per-scenario overrides: parameters, thresholds by metric, capacity checks on/off."""

    name: str
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    thresholds: ThresholdSet = field(default_factory=ThresholdSet)
    capacity: bool | None = None


@dataclass(frozen=True)
class Config:
    """The validated configuration of one squall invocation."""

    source: Path | None = None
    target: TargetConfig = field(default_factory=TargetConfig)
    run: RunConfig = field(default_factory=RunConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    results: ResultsConfig = field(default_factory=ResultsConfig)
    platform: PlatformConfig = field(default_factory=PlatformConfig)
    thresholds: ThresholdSet = DEFAULT_THRESHOLDS
    capacity: ThresholdSet = CAPACITY_THRESHOLDS
    scenarios: Mapping[str, ScenarioConfig] = field(default_factory=lambda: MappingProxyType({}))
    custom_metrics: Mapping[str, MetricKind | None] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def thresholds_for(self, scenario: str, *, capacity: bool = False) -> ThresholdSet:
        """The thresholds that apply to ``scenario``.

        ``[thresholds]`` always; ``[capacity]`` when the scenario is sized for it
        (``capacity``, the scenario's own default, overridden by
        ``[scenarios.<name>] capacity``); then ``[scenarios.<name>.thresholds]``
        replaces whole metrics. An empty list disables a metric.
        """
        own = self.scenarios.get(scenario)
        if own is not None and own.capacity is not None:
            capacity = own.capacity
        result = self.thresholds.merged(self.capacity) if capacity else self.thresholds
        if own is not None:
            result = result.merged(own.thresholds)
        return ThresholdSet({m: ts for m, ts in result.rules.items() if ts})

    def scenario_params(self, scenario: str) -> Mapping[str, Any]:
        own = self.scenarios.get(scenario)
        return own.params if own is not None else MappingProxyType({})


# -- finding and reading ---------------------------------------------------------------


def _finite(value: object) -> float | None:
    """``value`` as a float if it is a TOML number a float can hold (an integer of hundreds
    of digits cannot), else None; ``true`` is no number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def find_config_file(cwd: Path) -> Path | None:
    """The nearest ``squall.toml``, or ``pyproject.toml`` with ``[tool.squall]``.

    Looks in ``cwd`` then its parents, ``squall.toml`` first in each directory,
    and stops after a directory holding ``.git`` (the repository root).
    """
    for directory in (cwd, *cwd.parents):
        candidate = directory / CONFIG_FILE
        if candidate.is_file():
            return candidate
        pyproject = directory / PYPROJECT
        if pyproject.is_file():
            tool = _read_toml(pyproject).get("tool")
            if isinstance(tool, dict) and "squall" in tool:
                return pyproject
        if (directory / ".git").exists():
            return None
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
        return tomllib.loads(data.decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        bom = (
            " (the file starts with a UTF-8 byte-order mark, which TOML does not take: save "
            "it as UTF-8 without one)"
            if data.startswith(b"\xef\xbb\xbf")
            else ""
        )
        raise ConfigError(f"{path} is not valid TOML: {exc}{bom}; fix the syntax there") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason}); TOML files are "
            "UTF-8: save it as UTF-8 (without a byte-order mark)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None


def load_config(
    path: Path | None = None,
    *,
    cwd: Path,
    overrides: Sequence[str] = (),
) -> Config:
    """Load, override and validate the configuration.

    ``path`` is ``--config PATH`` (a ``squall.toml``-shaped file, or a
    ``pyproject.toml`` read at ``[tool.squall]``); without it the file is
    searched from ``cwd`` (see :func:`find_config_file`); with none found the
    defaults apply. ``overrides`` are ``key.path=value`` strings applied last.
    """
    raw: dict[str, Any] = {}
    label = "defaults"
    if path is not None:
        path = path if path.is_absolute() else cwd / path
        if path.is_dir() or not path.exists():  # a pipe (--config <(...)) is read too
            found = "is a folder, not a file" if path.is_dir() else "not found"
            raise ConfigError(
                f"config file {path} {found}; pass an existing file to --config or omit it "
                f"to search for {CONFIG_FILE} from {cwd}"
            )
    else:
        path = find_config_file(cwd)
    if path is not None:
        data = _read_toml(path)
        if path.name == PYPROJECT:
            tool = data.get("tool", {})
            if not isinstance(tool, dict):
                raise ConfigError(
                    f"'tool' in {path} is not a table, where pyproject.toml holds "
                    "a table of tools' settings; make it the table [tool.squall], or use a "
                    f"{CONFIG_FILE}"
                )
            section = tool.get("squall")
            if section is None:
                raise ConfigError(
                    f"{path} has no [tool.squall] table; add one or use a {CONFIG_FILE}"
                )
            raw = section
            label = f"{path} [tool.squall]"
        else:
            raw = data
            label = str(path)
        if not isinstance(raw, dict):
            raise ConfigError(f"[tool.squall] in {path} must be a table")
    base = path.parent if path is not None else cwd
    origins: dict[tuple[str, ...], str] = {}
    for text in overrides:
        keys, value = parse_override(text)
        origin = (
            f"option {text.option}"
            if isinstance(text, OptionOverride)
            else f"command-line override {text!r}"
        )
        garbled = _not_utf8(text) if isinstance(text, OptionOverride) else None
        if garbled is not None:
            # Bytes the command line held that are not UTF-8 (Python keeps them as lone
            # surrogates): TOML cannot hold them, and the value read back was its JSON.
            raise ConfigError(
                f"{origin}: {garbled!r} holds bytes that are not UTF-8 text; give it in UTF-8"
            )
        _deep_set(raw, keys, value, origin, origins)
        origins[keys] = origin
    return _Builder(label, origins, base).build(raw, path)


#: The command-line option of ``squall run`` / ``squall test`` that sets each key.
OPTION_NAMES = {
    "run.scenarios": "--scenario",
    "run.scale": "--scale",
    "run.duration": "--duration",
    "run.processes": "--processes",
    "run.workers": "--workers",
    "run.results_dir": "--results-dir",
    "target.url": "--target",
    "target.adapter": "--adapter",
}


class OptionOverride(str):
    """A ``key.path=value`` override made from a command-line option: a message about its
    value names the option (``--scale``), not the override."""

    option: str

    def __new__(cls, key: str, value: str, option: str | None = None) -> OptionOverride:
        made = super().__new__(cls, f"{key}={value}")
        made.option = OPTION_NAMES[key] if option is None else option
        return made

    def __getnewargs__(self) -> tuple[str, str, str]:  # type: ignore[override]  # for pickle
        key, _, value = self.partition("=")
        return key, value, self.option

    def named(self, option: str) -> OptionOverride:
        """The same override, made from ``option`` (the pytest plugin's ``--squall-scale``
        for ``--scale``)."""
        key, _, value = self.partition("=")
        return OptionOverride(key, value, option)


def _not_utf8(text: OptionOverride) -> str | None:
    """The text option ``text`` was made from when it cannot be UTF-8, else None."""
    try:
        given = json.loads(text.partition("=")[2])
    except ValueError:
        return None
    if not isinstance(given, str):
        return None
    try:
        given.encode("utf-8")
    except UnicodeEncodeError:
        return given
    return None


def option_overrides(
    numbers: Iterable[tuple[str, float | None]] = (),
    texts: Iterable[tuple[str, str | None]] = (),
) -> list[str]:
    """Command-line options as ``key.path=value`` overrides, those that are None left out.

    Texts are written as JSON strings, which TOML reads back unchanged (quotes,
    backslashes and all). Keys of :data:`OPTION_NAMES` become :class:`OptionOverride`.
    """
    given = [(key, str(value)) for key, value in numbers if value is not None]
    given += [(key, json.dumps(text)) for key, text in texts if text is not None]
    return [
        OptionOverride(key, value) if key in OPTION_NAMES else f"{key}={value}"
        for key, value in given
    ]


def parse_override(text: str) -> tuple[tuple[str, ...], Any]:
    """``"run.scale=0.5"`` → ``(("run", "scale"), 0.5)``; TOML values, else a plain string."""
    key, sep, value = text.partition("=")
    keys = tuple(part.strip() for part in key.strip().split("."))
    if not sep or not all(keys):
        raise ConfigError(
            f"command-line override {text!r} must look like key.path=value, "
            f"e.g. run.scale=0.5 or thresholds.response_time='p(95)<2s'"
        )
    value = value.strip()
    try:
        parsed: Any = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return keys, parsed


def _deep_set(
    raw: dict[str, Any],
    keys: tuple[str, ...],
    value: Any,
    origin: str,
    origins: Mapping[tuple[str, ...], str],
) -> None:
    """Set ``keys`` to ``value`` in ``raw``; ``origin`` names the override (or option) for
    a message, ``origins`` those of earlier overrides."""
    node = raw
    for depth, part in enumerate(keys[:-1], start=1):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            set_by = origins.get(keys[:depth], "the config file")
            raise ConfigError(
                f"{origin}: {part!r} is {child!r} (from {set_by}), a value, not a table, so "
                f"it has no key {keys[depth]!r}"
            )
        node = child
    node[keys[-1]] = value


# -- validation -----------------------------------------------------------------------

_SECTIONS = (
    "target",
    "run",
    "thresholds",
    "capacity",
    "scenarios",
    "monitor",
    "metrics",
    "results",
    "platform",
)
_RESULTS_KEYS = ("database_url",)
_PLATFORM_KEYS = tuple(
    f.name for f in dataclasses.fields(Settings) if f.name not in PLATFORM_SET_BY_SQUALL
)
_TARGET_KEYS = (
    "url",
    "jwt_secret",
    "jwt_secret_file",
    "jwt_private_key_file",
    "issuer",
    "audience",
    "adapter",
)
#: Metrics a built-in scenario records beyond the standard ones, with their kinds: its
#: ``[scenarios.<name>.thresholds]`` may judge them (squall.suite checks them by default).
SCENARIO_METRICS: Mapping[str, Mapping[str, MetricKind]] = MappingProxyType(
    {
        "agent_context": MappingProxyType(
            {
                "context_large_enough": MetricKind.RATE,
                "context_chars_measured": MetricKind.GAUGE,
                "context_processing_time": MetricKind.TREND,
                "response_generation_time": MetricKind.TREND,
            }
        ),
        "long_conversation": MappingProxyType(
            {
                "context_within_budget": MetricKind.RATE,
                "context_tokens_peak": MetricKind.GAUGE,
            }
        ),
    }
)

_RUN_KEYS = ("scenarios", "scale", "duration", "processes", "results_dir", "workers")
_MONITOR_KEYS = ("interval_s", "pids", "ports")
_METRICS_KEYS = ("custom",)
_RULE_KEYS = frozenset({"enabled", "expressions"})
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def _suggest(name: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return "expected one of " + ", ".join(repr(c) for c in choices)


class _Builder:
    """Walks the raw TOML data, checking each key; knows where each value came from."""

    def __init__(self, label: str, origins: Mapping[tuple[str, ...], str], base: Path) -> None:
        self.label = label
        self.origins = origins
        self.base = base

    def origin(self, keys: tuple[str, ...]) -> str:
        """Where the value at ``keys`` came from: the override that set it or a table
        above it, else one that set a key below it (an unknown section named only in
        an override), else the file. A dotted metric name (``errors.timeout``) counts as
        the keys an override writes it as."""
        keys = tuple(part for key in keys for part in key.split("."))
        for n in range(len(keys), 0, -1):
            if keys[:n] in self.origins:
                return self.origins[keys[:n]]
        for set_keys, origin in self.origins.items():
            if set_keys[: len(keys)] == keys:
                return origin
        return self.label

    def error(self, keys: tuple[str, ...], value: Any, expected: str) -> ConfigError:
        section = ".".join(keys[:-1])
        where = f"in [{section}]" if section else "at the top level"
        return ConfigError(
            f"invalid value {value!r} for {keys[-1]!r} {where} ({self.origin(keys)}); "
            f"expected {expected}"
        )

    def unknown(self, keys: tuple[str, ...], known: Sequence[str], what: str = "key") -> None:
        section = ".".join(keys[:-1])
        where = f" in [{section}]" if section else ""
        raise ConfigError(
            f"unknown {what} {keys[-1]!r}{where} ({self.origin(keys)}); {_suggest(keys[-1], known)}"
        )

    def table(self, value: Any, keys: tuple[str, ...], known: Sequence[str]) -> dict[str, Any]:
        """``value`` checked to be a table holding only ``known`` keys."""
        if not isinstance(value, dict):
            raise self.error(keys, value, "a table")
        for key in value:
            if key not in known:
                self.unknown((*keys, key), known)
        return value

    # -- scalar readers
    def string(self, data: Mapping[str, Any], keys: tuple[str, ...], default: str) -> str:
        value = data.get(keys[-1], default)
        if not isinstance(value, str) or not value:
            raise self.error(keys, value, "a non-empty string")
        return value

    def opt_string(self, data: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
        if keys[-1] not in data:
            return None
        return self.string(data, keys, "")

    def opt_path(self, data: Mapping[str, Any], keys: tuple[str, ...]) -> Path | None:
        value = self.opt_string(data, keys)
        return None if value is None else self.path(value)

    def path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base / path

    def number(
        self,
        data: Mapping[str, Any],
        keys: tuple[str, ...],
        default: float,
        *,
        minimum: float,
        maximum: float = math.inf,
    ) -> float:
        value = data.get(keys[-1], default)
        number = _finite(value)
        if number is None or not minimum < number <= maximum:
            bound = "" if maximum == math.inf else f" and <= {maximum:g}"
            raise self.error(keys, value, f"a number > {minimum:g}{bound}")
        return number

    def integer(
        self, data: Mapping[str, Any], keys: tuple[str, ...], default: int, *, minimum: int
    ) -> int:
        value = data.get(keys[-1], default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(keys, value, f"an integer >= {minimum}")
        return value

    def opt_integer(
        self, data: Mapping[str, Any], keys: tuple[str, ...], *, minimum: int
    ) -> int | None:
        if keys[-1] not in data:
            return None
        return self.integer(data, keys, minimum, minimum=minimum)

    def strings(self, data: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[str, ...]:
        value = data.get(keys[-1], [])
        if isinstance(value, str):  # "a,b" from the command line
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(keys, value, 'a list of strings, e.g. ["a", "b"]')
        return tuple(value)

    def integers(
        self,
        data: Mapping[str, Any],
        keys: tuple[str, ...],
        *,
        low: int,
        high: int,
        example: str,
    ) -> tuple[int, ...]:
        value = data.get(keys[-1], [])
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and low <= v <= high for v in value
        ):
            raise self.error(keys, value, f"a list of integers in {low}..{high}, e.g. {example}")
        return tuple(value)

    def interval(self, data: Mapping[str, Any], keys: tuple[str, ...]) -> float:
        value = data.get(keys[-1], MonitorConfig.interval_s)
        number = _finite(value)
        if number is None or number < MIN_INTERVAL_S:
            raise self.error(keys, value, f"a number of seconds >= {MIN_INTERVAL_S:g}")
        return number

    def duration(self, data: Mapping[str, Any], keys: tuple[str, ...]) -> float | None:
        value = data.get(keys[-1])
        if value is None:
            return None
        expected = "a duration > 0: seconds as a number, or a string like '30s', '5m', '1h'"
        if isinstance(value, str) and (match := _DURATION.match(value)):
            seconds: float | None = _finite(float(match[1]) * _DURATION_UNITS[match[2]])
        else:
            seconds = _finite(value)
        if seconds is None or seconds <= 0:
            raise self.error(keys, value, expected)
        return seconds

    # -- sections
    def build(self, raw: Mapping[str, Any], source: Path | None) -> Config:
        for key in raw:
            if key == "tool":
                raise ConfigError(
                    f"unknown section 'tool' ({self.origin((key,))}); [tool.squall] is how "
                    "pyproject.toml holds squall's settings: in squall.toml write the sections "
                    "themselves, [run], [thresholds], ..."
                )
            if key not in _SECTIONS:
                self.unknown((key,), _SECTIONS, "section")
        custom = self.metrics(raw)
        given = self.thresholds(raw.get("thresholds", {}), ("thresholds",), custom)
        return Config(
            source=source,
            target=self.target(raw),
            run=self.run(raw),
            monitor=self.monitor(raw),
            results=self.results(raw),
            platform=self.platform(raw),
            thresholds=DEFAULT_THRESHOLDS.merged(given),
            # A metric of yours in [thresholds] is not replaced by a capacity default: only
            # what you wrote in [capacity] goes over it.
            capacity=ThresholdSet(
                {m: ts for m, ts in CAPACITY_THRESHOLDS.rules.items() if m not in given.rules}
            ).merged(self.thresholds(raw.get("capacity", {}), ("capacity",), custom)),
            scenarios=MappingProxyType(self.scenarios(raw, custom)),
            custom_metrics=MappingProxyType(custom),
        )

    def target(self, raw: Mapping[str, Any]) -> TargetConfig:
        data = self.table(raw.get("target", {}), ("target",), _TARGET_KEYS)
        k = ("target",)
        config = TargetConfig(
            url=self.opt_string(data, (*k, "url")),
            jwt_secret=self.opt_string(data, (*k, "jwt_secret")),
            jwt_secret_file=self.opt_path(data, (*k, "jwt_secret_file")),
            jwt_private_key_file=self.opt_path(data, (*k, "jwt_private_key_file")),
            issuer=self.string(data, (*k, "issuer"), TargetConfig.issuer),
            audience=self.string(data, (*k, "audience"), TargetConfig.audience),
            adapter=self.string(data, (*k, "adapter"), TargetConfig.adapter),
        )
        if config.url is not None:
            problem = url_problem(config.url, ("ws", "wss"), host_required=True)
            if problem is not None:
                raise ConfigError(
                    f"invalid value for 'url' in [target] ({self.origin((*k, 'url'))}): "
                    f"{problem}; give a URL like ws://127.0.0.1:8765/v1/ws"
                )
        keys = [
            key
            for key in ("jwt_secret", "jwt_secret_file", "jwt_private_key_file")
            if getattr(config, key) is not None
        ]
        if len(keys) > 1:
            raise ConfigError(
                f"[target] sets {' and '.join(map(repr, keys))} ({self.origin((*k, keys[0]))}); "
                "keep one: each is a way to sign the tokens"
            )
        return config

    def run(self, raw: Mapping[str, Any]) -> RunConfig:
        data = self.table(raw.get("run", {}), ("run",), _RUN_KEYS)
        k = ("run",)
        results_dir = self.string(data, (*k, "results_dir"), str(RunConfig.results_dir))
        return RunConfig(
            scenarios=tuple(dict.fromkeys(self.strings(data, (*k, "scenarios")))),  # once each
            scale=self.number(data, (*k, "scale"), RunConfig.scale, minimum=0.0, maximum=MAX_SCALE),
            duration_s=self.duration(data, (*k, "duration")),
            processes=self.opt_integer(data, (*k, "processes"), minimum=1),
            results_dir=self.path(results_dir),
            workers=self.integer(data, (*k, "workers"), RunConfig.workers, minimum=1),
        )

    def monitor(self, raw: Mapping[str, Any]) -> MonitorConfig:
        data = self.table(raw.get("monitor", {}), ("monitor",), _MONITOR_KEYS)
        k = ("monitor",)
        return MonitorConfig(
            interval_s=self.interval(data, (*k, "interval_s")),
            pids=self.integers(data, (*k, "pids"), low=1, high=MAX_PID, example="[12345]"),
            ports=self.integers(data, (*k, "ports"), low=1, high=MAX_PORT, example="[8000]"),
        )

    def platform(self, raw: Mapping[str, Any]) -> PlatformConfig:
        given = raw.get("platform", {})
        if isinstance(given, dict):
            for name in given:
                if name in PLATFORM_SET_BY_SQUALL:
                    raise ConfigError(
                        f"{name!r} in [platform] ({self.origin(('platform', name))}) is set by "
                        f"squall for the platform it starts: {PLATFORM_SET_BY_SQUALL[name]}; "
                        "to test other values, start the platform yourself (squall target "
                        "serve) and pass --target"
                    )
        data = self.table(given, ("platform",), _PLATFORM_KEYS)
        settings = dict(GOLDEN_PATH_PLATFORM)
        for name, value in data.items():
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise self.error(("platform", name), value, "a string or a number")
            settings[name] = str(value)
        try:
            Settings.from_env(PlatformConfig(settings).env())
        except SettingsError as exc:
            named = [name for name in data if Settings.env_name(name) in str(exc)]
            where = self.origin(("platform", *named[:1]))
            raise ConfigError(f"invalid [platform] setting ({where}): {exc}") from None
        return PlatformConfig(MappingProxyType(settings))

    def results(self, raw: Mapping[str, Any]) -> ResultsConfig:
        data = self.table(raw.get("results", {}), ("results",), _RESULTS_KEYS)
        keys = ("results", "database_url")
        url = self.opt_string(data, keys)
        if url is not None and url != RESULTS_DB_OFF:
            problem = url_problem(url, POSTGRES_SCHEMES)
            if problem is not None:
                raise ConfigError(
                    f"invalid value for 'database_url' in [results] ({self.origin(keys)}): "
                    f"{problem}; expected a PostgreSQL URL or 'off'"
                )
        return ResultsConfig(database_url=url)

    def metrics(self, raw: Mapping[str, Any]) -> dict[str, MetricKind | None]:
        if "metrics" not in raw:
            return {}
        data = self.table(raw["metrics"], ("metrics",), _METRICS_KEYS)
        keys = ("metrics", "custom")
        value = data.get("custom", [])
        kinds = [k.value for k in MetricKind]
        custom: dict[str, MetricKind | None] = {}
        if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
            custom = dict.fromkeys(value)
        elif isinstance(value, dict):
            for name, kind in value.items():
                if kind not in kinds:
                    raise self.error((*keys, name), kind, "one of " + ", ".join(kinds))
                custom[name] = MetricKind(kind)
        else:
            raise self.error(
                keys, value, 'a list of names, or a table of name = "trend"|"counter"|...'
            )
        for name in custom:
            if standard_kind(name) is not None:
                raise self.error(
                    keys, name, "a name that is not a standard metric (it is already known)"
                )
        return custom

    def thresholds(
        self,
        data: Any,
        keys: tuple[str, ...],
        custom: Mapping[str, MetricKind | None],
    ) -> ThresholdSet:
        if not isinstance(data, dict):
            raise self.error(keys, data, "a table of metric = [expressions]")
        known = [*STANDARD_METRICS, *custom]
        rules: dict[str, tuple[Threshold, ...]] = {}
        for metric, value in _flatten_metrics(data).items():
            mkeys = (*keys, metric)
            kind = standard_kind(metric)
            if kind is None and metric not in custom:
                section = ".".join(keys)
                hint = _suggest(metric, known)
                raise ConfigError(
                    f"unknown metric {metric!r} in [{section}] ({self.origin(mkeys)}); {hint}"
                    + ("" if "did you mean" in hint else "; declare custom metrics in [metrics]")
                )
            if kind is None:
                kind = custom[metric]
            texts = self.expressions(value, mkeys)
            try:
                rules[metric] = tuple(Threshold.parse(metric, t, kind) for t in texts)
            except (ExpressionError, ThresholdError) as exc:
                section = ".".join(keys)
                raise ConfigError(f"[{section}] {exc} ({self.origin(mkeys)})") from None
        return ThresholdSet(rules)

    def expressions(self, value: Any, keys: tuple[str, ...]) -> list[str]:
        expected = (
            'a list of expressions like ["p(95) < 8s"], or a table '
            "{ enabled = false } / { expressions = [...] }"
        )
        if isinstance(value, dict):
            for key in value:
                if key not in _RULE_KEYS:
                    self.unknown((*keys, key), sorted(_RULE_KEYS))
            enabled = value.get("enabled", True)
            if not isinstance(enabled, bool):
                raise self.error((*keys, "enabled"), enabled, "true or false")
            if not enabled:
                return []
            value = value.get("expressions", [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(keys, value, expected)
        return list(value)

    def scenarios(
        self, raw: Mapping[str, Any], custom: Mapping[str, MetricKind | None]
    ) -> dict[str, ScenarioConfig]:
        data = raw.get("scenarios", {})
        if not isinstance(data, dict):
            raise self.error(("scenarios",), data, "a table of [scenarios.<name>] tables")
        result: dict[str, ScenarioConfig] = {}
        for name, table in data.items():
            keys = ("scenarios", name)
            if not isinstance(table, dict):
                raise self.error(keys, table, f"a table [scenarios.{name}]")
            params = {k: v for k, v in table.items() if k not in ("thresholds", "capacity")}
            capacity = table.get("capacity")
            if capacity is not None and not isinstance(capacity, bool):
                raise self.error((*keys, "capacity"), capacity, "true or false")
            thresholds = self.thresholds(
                table.get("thresholds", {}),
                (*keys, "thresholds"),
                {**custom, **SCENARIO_METRICS.get(name, {})},
            )
            result[name] = ScenarioConfig(
                name=name,
                params=MappingProxyType(params),
                thresholds=thresholds,
                capacity=capacity,
            )
        return result


def _flatten_metrics(data: Mapping[str, Any]) -> dict[str, Any]:
    """Undo TOML's dotted keys under ``errors``: ``errors.timeout = [...]`` is
    ``{"errors": {"timeout": ...}}``, ``errors.server.queue_full`` one level deeper."""
    flat: dict[str, Any] = {}

    def add(name: str, value: Any) -> None:
        nested = isinstance(value, dict) and value and not set(value) <= _RULE_KEYS
        if nested and (name == "errors" or name.startswith("errors.")):
            for sub, inner in value.items():
                add(f"{name}.{sub}", inner)
        else:
            flat[name] = value

    for key, value in data.items():
        add(key, value)
    return flat
