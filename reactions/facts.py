"""The facts the reactions engine decides on: plain frozen dataclasses, no Django, no I/O. A
session's PR, its checks and threads are the one set of PR facts the status derivation reads too
(``sessions.domain.lifecycle.PRFact``).

``sessions.core.selectors.reaction_facts`` reads a session's stored facts into them (the queries);
``reactions.engine.decide`` and ``reactions.messages`` read them (pure).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sessions.domain.lifecycle import Activity, Phase, PRFact, RuntimeState, Status, Zone


@dataclass(frozen=True)
class SessionFacts:
    session_id: str
    project_key: str
    now: datetime
    kind: str = "worker"
    phase: str = Phase.RUNNING
    runtime_state: str = RuntimeState.ALIVE
    status: str = Status.WORKING
    zone: str = Zone.WORKING
    status_reason: str = ""
    status_changed_at: datetime | None = None
    activity: str = Activity.UNKNOWN
    activity_at: datetime | None = None
    activity_summary: str = ""
    branch: str = ""
    has_runtime: bool = True  # a runtime handle to type into
    pr: PRFact | None = None
    pending_messages: int = 0  # queued or delivered but not yet taken up
    # The orchestrator's keep-alive restarts this session when it stops and tells people once when it
    # gives up (sessions/watchers/orchestrator.py): agent-exited stays quiet for it.
    kept_alive: bool = False
    # When every worker session of the project is done: their ids, newest last; else ().
    all_done: tuple[str, ...] = ()
