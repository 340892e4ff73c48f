"""Money invariants: balances match charges, nothing is charged twice, no update is lost.

Three separate checks, because each needs different data:

- :func:`check_balance` needs the debit operations and the final balance;
- :func:`check_unique_charges` needs the ledger rows the store holds;
- :func:`check_version_chain` needs, for each committed write, the version it
  read and the version it wrote (optimistic-lock style rows).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from squall.checks.history import JsonValue, OpPair, OpType
from squall.checks.verdict import Evidence, Verdict, verdict_from


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One charge as stored: its own row id, the run/operation it charges for, the amount."""

    row_id: str
    charge_id: str
    amount: int

    def to_dict(self) -> dict[str, JsonValue]:
        return {"row_id": self.row_id, "charge_id": self.charge_id, "amount": self.amount}


def check_balance(
    *, initial: int, final: int, debits: Sequence[OpPair], amount_key: str = "amount"
) -> Verdict:
    """Final balance = initial − Σ ok debits, allowing for each ``info`` debit either way.

    An ``info`` (or never completed) debit may or may not have been applied, so
    the final balance must lie in ``[initial − Σok − Σinfo, initial − Σok]``;
    ``fail`` debits were not applied. The balance must also never be negative.
    """
    sums = {OpType.OK: 0, OpType.FAIL: 0, OpType.INFO: 0}
    counts = {OpType.OK: 0, OpType.FAIL: 0, OpType.INFO: 0}
    for debit in debits:
        sums[debit.outcome] += debit.int_value(amount_key)
        counts[debit.outcome] += 1
    high = initial - sums[OpType.OK]
    low = high - sums[OpType.INFO]
    details: dict[str, JsonValue] = {
        "initial": initial,
        "final": final,
        "sum_ok": sums[OpType.OK],
        "sum_info": sums[OpType.INFO],
        "expected_min": low,
        "expected_max": high,
    }
    evidence = []
    if final > high:
        evidence.append(
            Evidence(
                "balance-too-high",
                f"final balance {final} is {final - high} above {high} (initial {initial} − "
                f"{sums[OpType.OK]} of acknowledged debits): acknowledged debits were lost",
                details=details,
            )
        )
    elif final < low:
        evidence.append(
            Evidence(
                "balance-too-low",
                f"final balance {final} is {low - final} below {low}, the least possible "
                f"(ok and unknown debits all applied): something was charged more than once",
                details=details,
            )
        )
    if final < 0:
        evidence.append(Evidence("negative-balance", f"final balance {final} < 0", details=details))
    return verdict_from(
        "ledger.balance",
        evidence=evidence,
        counts={
            "debits_ok": counts[OpType.OK],
            "debits_fail": counts[OpType.FAIL],
            "debits_info": counts[OpType.INFO],
        },
        ok_summary=f"final balance {final} within [{low}, {high}]",
    )


def check_unique_charges(rows: Sequence[LedgerRow]) -> Verdict:
    """No run (or operation) is charged twice: each ``charge_id`` appears in one row only."""
    by_charge: dict[str, list[LedgerRow]] = defaultdict(list)
    for row in rows:
        by_charge[row.charge_id].append(row)
    evidence = [
        Evidence(
            "double-charge",
            f"{charge_id} charged {len(found)} times (rows {', '.join(r.row_id for r in found)})",
            details={"charge_id": charge_id, "rows": [r.to_dict() for r in found]},
        )
        for charge_id, found in by_charge.items()
        if len(found) > 1
    ]
    return verdict_from(
        "ledger.unique_charges",
        evidence=evidence,
        counts={"rows": len(rows), "charges": len(by_charge)},
        ok_summary=f"{len(rows)} ledger rows, each charge once",
    )


def check_version_chain(
    writes: Sequence[OpPair],
    *,
    initial_version: int,
    read_key: str = "read_version",
    written_key: str = "version",
) -> Verdict:
    """Committed writes form one chain of versions: each reads the version the previous wrote.

    Only ``ok`` writes are known to be committed. Two commits from the same
    read version is a lost update (the later overwrote the earlier without
    seeing it); a commit that read a version nobody committed read something
    that never existed. A write of unknown outcome (``info``, or never
    completed) may have committed one version nobody saw acknowledged, so as
    many such versions as there are unknown writes are not phantoms.
    ``counts["lost_updates"]`` is the number of overwritten commits.
    """
    committed = [w for w in writes if w.outcome is OpType.OK]
    unknown = sum(1 for w in writes if w.outcome is OpType.INFO)
    by_read: dict[int, list[OpPair]] = defaultdict(list)
    for write in committed:
        by_read[write.int_value(read_key)].append(write)
    written = {initial_version} | {w.int_value(written_key) for w in committed}
    unexplained = sum(1 for version in by_read if version not in written)
    evidence = []
    lost = 0
    for read_version, group in sorted(by_read.items()):
        if len(group) > 1:
            lost += len(group) - 1
            names = ", ".join(w.invoke.describe() for w in group[:2])
            if len(group) > 2:
                names += f" and {len(group) - 2} more"
            evidence.append(
                Evidence(
                    "lost-update",
                    f"{len(group)} commits all read version {read_version}: {names}",
                    ops=tuple(w.completion for w in group if w.completion is not None),
                    details={"read_version": read_version, "commits": len(group)},
                )
            )
        if read_version not in written and unexplained > unknown:
            first = group[0]
            evidence.append(
                Evidence(
                    "phantom-version",
                    f"{first.invoke.describe()} read version {read_version}, which no commit "
                    f"wrote (initial {initial_version})"
                    + (
                        f"; {unknown} write(s) of unknown outcome explain at most {unknown} of "
                        f"the {unexplained} versions read that no commit wrote"
                        if unknown
                        else ""
                    ),
                    ops=first.ops,
                    details={"read_version": read_version, "unknown_writes": unknown},
                )
            )
    return verdict_from(
        "ledger.version_chain",
        evidence=evidence,
        counts={
            "commits": len(committed),
            "unknown_writes": unknown,
            "lost_updates": lost,
            "violations": len(evidence),
        },
        ok_summary=f"{len(committed)} commits form one version chain",
    )
