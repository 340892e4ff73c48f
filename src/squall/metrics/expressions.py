"""Threshold expressions such as ``"p(95) < 8s"``, parsed into plain data.

The grammar reads like k6's thresholds so that people who know k6 can write them
without a manual::

    expression  := aggregation operator limit
    aggregation := "avg" | "min" | "max" | "med" | "count" | "rate" | "passes"
                   | "total" | "value" | "p(" number ")"
    operator    := "<" | "<=" | ">" | ">=" | "==" | "!="
    limit       := number [unit]          unit := "us" | "µs" | "ms" | "s" | "m"

Durations are normalised to seconds, the unit every trend carries. Whether an
aggregation fits a metric, and whether its limit needs a unit, depends on the
metric's kind; that check lives in :mod:`squall.metrics.thresholds`. This module
only turns text into an :class:`Expression` or raises :class:`ExpressionError`
naming the text and what was expected.
"""

from __future__ import annotations

import enum
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal


class ExpressionError(ValueError):
    """A threshold expression cannot be parsed; the message quotes it and shows the form."""


class Operator(enum.Enum):
    """A comparison; the value is its spelling in an expression."""

    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    EQ = "=="
    NE = "!="

    def holds(self, observed: float, limit: float) -> bool:
        """Whether ``observed <op> limit`` is true."""
        return _COMPARE[self](observed, limit)


_COMPARE: dict[Operator, Callable[[float, float], bool]] = {
    Operator.LT: operator.lt,
    Operator.LE: operator.le,
    Operator.GT: operator.gt,
    Operator.GE: operator.ge,
    Operator.EQ: operator.eq,
    Operator.NE: operator.ne,
}


class Aggregation(enum.Enum):
    """What is read from a metric; ``PERCENTILE`` carries its N in the expression."""

    AVG = "avg"
    MIN = "min"
    MAX = "max"
    MED = "med"
    PERCENTILE = "p"
    COUNT = "count"
    RATE = "rate"
    PASSES = "passes"
    TOTAL = "total"
    VALUE = "value"


#: Seconds per duration unit, as decimals: a limit is converted in decimal and rounded to a
#: float once, so ``500us`` is the very float a measured 500 µs reads as (``500 / 10**6``),
#: while ``500 * 1e-6`` is a hair above it and ``max < 500us`` would pass at exactly 500 µs.
DURATION_UNITS: dict[str, Decimal] = {
    "us": Decimal("0.000001"),
    "µs": Decimal("0.000001"),
    "ms": Decimal("0.001"),
    "s": Decimal(1),
    "m": Decimal(60),
}

_FORM = "'<aggregation> <operator> <limit>', e.g. 'p(95) < 8s' or 'rate >= 0.9'"
_PATTERN = re.compile(
    r"""^\s*
    (?P<agg>[A-Za-z]+)\s*(?:\(\s*(?P<arg>[^)]*?)\s*\))?
    \s*(?P<op><=|>=|==|!=|<|>|=)?
    \s*(?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)?
    \s*(?P<unit>[A-Za-zµ]+)?
    \s*$""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Expression:
    """One parsed threshold expression.

    ``limit`` is in seconds when ``unit`` is a duration unit, otherwise the bare
    number as written. ``percentile`` is set only for ``p(N)``.
    """

    source: str
    aggregation: Aggregation
    operator: Operator
    limit: float
    unit: str | None = None
    percentile: float | None = None

    @property
    def is_duration(self) -> bool:
        return self.unit is not None

    @property
    def label(self) -> str:
        """The aggregation as written: ``p(95)``, ``avg``..."""
        if self.aggregation is Aggregation.PERCENTILE:
            return f"p({_number(self.percentile or 0.0)})"
        return str(self.aggregation.value)

    def __str__(self) -> str:
        return self.source


def parse_expression(text: str) -> Expression:
    """Parse ``text``; raise :class:`ExpressionError` quoting it and the expected form."""
    if not isinstance(text, str):
        raise ExpressionError(
            f"threshold expression {text!r} is a {type(text).__name__}; expected a string "
            f"of the form {_FORM}"
        )
    match = _PATTERN.match(text)
    if match is None or not text.strip():
        raise ExpressionError(f"cannot parse threshold expression {text!r}; expected {_FORM}")
    name = match["agg"].lower()
    arg = match["arg"]
    try:
        aggregation = Aggregation(name)
    except ValueError:
        known = ", ".join(
            a.value if a is not Aggregation.PERCENTILE else "p(N)" for a in Aggregation
        )
        raise ExpressionError(
            f"unknown aggregation {match['agg']!r} in threshold expression {text!r}; "
            f"expected one of {known}"
        ) from None
    percentile: float | None = None
    if aggregation is Aggregation.PERCENTILE:
        percentile = _percentile(arg, text)
    elif arg is not None:
        raise ExpressionError(
            f"aggregation {name!r} takes no argument in threshold expression {text!r}; "
            f"only p(N) does, e.g. 'p(95) < 8s'"
        )
    op_text = match["op"]
    if op_text is None:
        raise ExpressionError(
            f"missing comparison operator in threshold expression {text!r}; "
            f"expected one of < <= > >= == !=, e.g. '{name if arg is None else 'p(95)'} < 8s'"
        )
    if op_text == "=":
        raise ExpressionError(
            f"'=' is not an operator in threshold expression {text!r}; use '==' for equality"
        )
    if match["num"] is None:
        raise ExpressionError(
            f"missing numeric limit in threshold expression {text!r}; expected {_FORM}"
        )
    limit = float(match["num"])
    if not math.isfinite(limit):
        raise ExpressionError(
            f"limit {match['num']} in threshold expression {text!r} is not a finite number"
        )
    unit = match["unit"]
    if unit is not None:
        if unit not in DURATION_UNITS:
            raise ExpressionError(
                f"unknown unit {unit!r} in threshold expression {text!r}; expected one of "
                f"us, µs, ms, s, m (or no unit for rates, counts and gauges)"
            )
        limit = float(Decimal(match["num"]) * DURATION_UNITS[unit])
        if not math.isfinite(limit):
            raise ExpressionError(
                f"limit {match['num']}{unit} in threshold expression {text!r} is not a finite "
                "duration"
            )
        if limit < 0:
            raise ExpressionError(
                f"negative duration in threshold expression {text!r}: a duration is 0 or more, "
                "so the threshold could never pass (or never fail)"
            )
    return Expression(
        source=text.strip(),
        aggregation=aggregation,
        operator=Operator(op_text),
        limit=limit,
        unit=unit,
        percentile=percentile,
    )


def _percentile(arg: str | None, text: str) -> float:
    try:
        value = float(arg) if arg else math.nan
    except ValueError:
        raise ExpressionError(
            f"percentile {arg!r} is not a number in threshold expression {text!r}; "
            f"expected p(N) with 0 < N <= 100, e.g. p(95) or p(99.9)"
        ) from None
    if not 0.0 < value <= 100.0:  # also rejects NaN
        raise ExpressionError(
            f"percentile {arg!r} out of range in threshold expression {text!r}; "
            f"expected p(N) with 0 < N <= 100, e.g. p(95) or p(99.9)"
        )
    return value


def _number(value: float) -> str:
    return f"{value:g}"
