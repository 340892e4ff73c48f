"""squall.engine: workload models, virtual users, WebSocket clients, worker processes.

Write a behaviour (``async def behaviour(session: Session) -> None``), wrap it
in a :class:`Scenario` with a workload, and call :func:`run_scenario` (or
:func:`run`). The result is a plain :class:`~squall.metrics.result.RunResult`.
"""

from squall.engine.client import WebSocket
from squall.engine.errors import (
    ConnectError,
    ConnectionClosed,
    EngineError,
    InboxOverflow,
    MessageTimeout,
    ScenarioError,
    SendTimeout,
    UnexpectedMessage,
    WorkerFailed,
)
from squall.engine.identity import Identity, UserID, anonymous_identities, jwt_identities
from squall.engine.run import run, run_scenario
from squall.engine.scenario import Behaviour, Scenario
from squall.engine.series import ProgressView
from squall.engine.session import Session
from squall.engine.workload import (
    ArrivalRate,
    Closed,
    Stages,
    Workload,
    WorkloadError,
    batches,
    closed,
    linear,
    open_rate,
    ramping_rate,
    stages,
)

__all__ = [
    "ArrivalRate",
    "Behaviour",
    "Closed",
    "ConnectError",
    "ConnectionClosed",
    "EngineError",
    "Identity",
    "InboxOverflow",
    "MessageTimeout",
    "ProgressView",
    "Scenario",
    "ScenarioError",
    "SendTimeout",
    "Session",
    "Stages",
    "UnexpectedMessage",
    "UserID",
    "WebSocket",
    "WorkerFailed",
    "Workload",
    "WorkloadError",
    "anonymous_identities",
    "batches",
    "closed",
    "jwt_identities",
    "linear",
    "open_rate",
    "ramping_rate",
    "run",
    "run_scenario",
    "stages",
]
