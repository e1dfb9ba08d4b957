"""The facts the reactions engine decides on: plain frozen dataclasses, no Django, no I/O.

``sessions.selectors.reaction_facts`` reads a session's stored facts into them (the queries);
``reactions.engine.decide`` and ``reactions.messages`` read them (pure).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sessions.lifecycle import (
    Activity,
    CIState,
    Phase,
    PRState,
    ReviewDecision,
    RuntimeState,
    Status,
    Zone,
)


@dataclass(frozen=True)
class CheckFact:
    name: str
    conclusion: str
    url: str = ""
    log_excerpt: str = ""
    flaky: bool = False  # it also passed on this commit: still a failure, told with that note


@dataclass(frozen=True)
class ThreadFact:
    external_id: str
    path: str = ""
    line: int | None = None
    author: str = ""
    association: str = ""
    body: str = ""
    url: str = ""
    is_bot: bool = False
    review_state: str = ""  # a review's own text: its state (changes_requested | commented)


@dataclass(frozen=True)
class PRFact:
    number: int
    url: str = ""
    title: str = ""
    branch: str = ""
    base: str = "main"
    state: str = PRState.OPEN
    draft: bool = False
    head_sha: str = ""
    mergeable: bool | None = None
    conflicts: bool = False
    behind: bool = False
    review_decision: str = ReviewDecision.NONE
    ci_state: str = CIState.NONE
    failing: tuple[CheckFact, ...] = ()  # failed checks on head_sha
    threads: tuple[ThreadFact, ...] = ()  # unresolved threads
    conflict_episode: str = ""  # id of the timeline entry where the current conflicts began
    review_episode: str = ""  # id of the timeline entry where the review decision last changed
    passed_checks: frozenset[str] = frozenset()  # names of the checks that passed on head_sha
    remote: str = "origin"  # the git remote of the agent's worktree (read only when conflicts)


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
    # gives up (sessions/orchestrator.py): agent-exited stays quiet for it.
    kept_alive: bool = False
    # When every worker session of the project is done: their ids, newest last; else ().
    all_done: tuple[str, ...] = ()
