"""History model and correctness checkers: pure functions from records to verdicts."""

from squall.checks.fairness import check_fairness, jain_index
from squall.checks.history import (
    HistoryError,
    HistoryRecorder,
    JsonValue,
    Op,
    OpPair,
    OpType,
    pair_ops,
)
from squall.checks.isolation import check_isolation
from squall.checks.ledger import (
    LedgerRow,
    check_balance,
    check_unique_charges,
    check_version_chain,
)
from squall.checks.locks import check_locks, critical_sections
from squall.checks.ordering import check_ordering
from squall.checks.verdict import Evidence, RaceTally, Verdict, combine

__all__ = [
    "Evidence",
    "HistoryError",
    "HistoryRecorder",
    "JsonValue",
    "LedgerRow",
    "Op",
    "OpPair",
    "OpType",
    "RaceTally",
    "Verdict",
    "check_balance",
    "check_fairness",
    "check_isolation",
    "check_locks",
    "check_ordering",
    "check_unique_charges",
    "check_version_chain",
    "combine",
    "critical_sections",
    "jain_index",
    "pair_ops",
]
