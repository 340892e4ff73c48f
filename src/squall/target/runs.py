"""Run states and the run a worker has claimed."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from squall.target.ids import MessageID, RunID, ThreadID, UserID


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


@dataclass(frozen=True)
class ClaimedRun:
    run_id: RunID
    thread_id: ThreadID
    user_id: UserID
    message_id: MessageID
