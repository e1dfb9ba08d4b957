"""Status and attention zone: derived from stored facts by one pure function.

Observers (runtime probes, activity detection, SCM sweeps and webhooks, agent reports) only
store *facts* on a session. :func:`derive` turns those facts into the session's status and its
board zone; services write its result to the ``status``/``zone`` columns and nothing else does.

Precedence, highest first (see docs/ARCHITECTURE.md, "Status model"):

1. ao's own lifecycle phase: queued, spawning, killed by a person, errored while spawning, cleaned up;
2. a merged PR (the work is done whatever happened to the agent afterwards);
3. runtime gone (tmux session missing);
4. conflicting/inconclusive probes -> ``detecting`` for a bounded number of sweeps, then ``stuck``;
5. the agent waiting for input, blocked, or exited (weak evidence never downgrades ``needs_input``
   or ``stuck``: a terminal heuristic alone cannot clear them);
6. PR facts: closed, CI failing, changes requested, conflicts, mergeable, approved, CI/review pending;
7. a fresh self-report from the agent (``ao report``);
8. idle beyond the stuck threshold -> ``stuck``; idle within it -> ``idle``;
9. otherwise ``working``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import models

MAX_DETECTING_ATTEMPTS = 3
DEFAULT_STUCK_AFTER = timedelta(minutes=10)
DEFAULT_REPORT_FRESH_FOR = timedelta(minutes=5)


class Phase(models.TextChoices):
    """ao's own intent for the session (set by services, not observed)."""

    QUEUED = "queued", "Queued (over the concurrency cap)"
    SPAWNING = "spawning", "Spawning"
    RUNNING = "running", "Running"
    KILLED = "killed", "Killed"
    ERRORED = "errored", "Errored"
    CLEANED = "cleaned", "Cleaned up"


class RuntimeState(models.TextChoices):
    UNKNOWN = "unknown", "Unknown"
    ALIVE = "alive", "Alive"
    EXITED = "exited", "Agent process exited"
    LOST = "lost", "Runtime lost"
    PROBE_FAILED = "probe_failed", "Probe failed"


class Activity(models.TextChoices):
    UNKNOWN = "unknown", "Unknown"
    ACTIVE = "active", "Active"
    READY = "ready", "Ready"
    IDLE = "idle", "Idle"
    WAITING_INPUT = "waiting_input", "Waiting for input"
    BLOCKED = "blocked", "Blocked"
    EXITED = "exited", "Exited"


class Reported(models.TextChoices):
    NONE = "", "None"
    WORKING = "working", "Working"
    NEEDS_INPUT = "needs_input", "Needs input"
    BLOCKED = "blocked", "Blocked"
    DONE = "done", "Done"


class PRState(models.TextChoices):
    OPEN = "open", "Open"
    MERGED = "merged", "Merged"
    CLOSED = "closed", "Closed"


class CIState(models.TextChoices):
    NONE = "none", "No checks"
    PENDING = "pending", "Pending"
    PASSING = "passing", "Passing"
    FAILING = "failing", "Failing"


class ReviewDecision(models.TextChoices):
    NONE = "none", "No review required"
    REQUIRED = "review_required", "Review required"
    APPROVED = "approved", "Approved"
    CHANGES_REQUESTED = "changes_requested", "Changes requested"


class Zone(models.TextChoices):
    WORKING = "working", "Working"
    PENDING = "pending", "Pending"
    REVIEW = "review", "Review"
    RESPOND = "respond", "Respond"
    MERGE = "merge", "Merge"
    DONE = "done", "Done"


class Status(models.TextChoices):
    QUEUED = "queued", "Queued"
    SPAWNING = "spawning", "Spawning"
    WORKING = "working", "Working"
    IDLE = "idle", "Idle"
    DETECTING = "detecting", "Detecting"
    CI_PENDING = "ci_pending", "CI pending"
    REVIEW_PENDING = "review_pending", "Review pending"
    APPROVED = "approved", "Approved"
    CI_FAILED = "ci_failed", "CI failed"
    CHANGES_REQUESTED = "changes_requested", "Changes requested"
    MERGE_CONFLICTS = "merge_conflicts", "Merge conflicts"
    MERGEABLE = "mergeable", "Ready to merge"
    NEEDS_INPUT = "needs_input", "Needs input"
    BLOCKED = "blocked", "Blocked"
    STUCK = "stuck", "Stuck"
    EXITED = "exited", "Agent exited"
    RUNTIME_LOST = "runtime_lost", "Runtime lost"
    ERRORED = "errored", "Errored"
    MERGED = "merged", "Merged"
    PR_CLOSED = "pr_closed", "PR closed"
    KILLED = "killed", "Killed"
    DONE = "done", "Done"


ZONE_OF: dict[Status, Zone] = {
    Status.QUEUED: Zone.PENDING,
    Status.SPAWNING: Zone.WORKING,
    Status.WORKING: Zone.WORKING,
    Status.IDLE: Zone.WORKING,
    Status.DETECTING: Zone.WORKING,
    Status.CI_PENDING: Zone.PENDING,
    Status.REVIEW_PENDING: Zone.PENDING,
    Status.APPROVED: Zone.PENDING,
    Status.CI_FAILED: Zone.REVIEW,
    Status.CHANGES_REQUESTED: Zone.REVIEW,
    Status.MERGE_CONFLICTS: Zone.REVIEW,
    Status.MERGEABLE: Zone.MERGE,
    Status.NEEDS_INPUT: Zone.RESPOND,
    Status.BLOCKED: Zone.RESPOND,
    Status.STUCK: Zone.RESPOND,
    Status.EXITED: Zone.RESPOND,
    Status.RUNTIME_LOST: Zone.RESPOND,
    Status.ERRORED: Zone.RESPOND,
    Status.MERGED: Zone.DONE,
    Status.PR_CLOSED: Zone.DONE,
    Status.KILLED: Zone.DONE,
    Status.DONE: Zone.DONE,
}

# Statuses that only strong evidence may clear.
STICKY = frozenset({Status.NEEDS_INPUT, Status.STUCK})


@dataclass(frozen=True)
class PRFacts:
    state: PRState = PRState.OPEN
    draft: bool = False
    ci: CIState = CIState.NONE
    review: ReviewDecision = ReviewDecision.NONE
    mergeable: bool | None = None  # None: GitHub has not computed it yet
    conflicts: bool = False
    behind: bool = False


@dataclass(frozen=True)
class Facts:
    now: datetime
    phase: Phase = Phase.RUNNING
    runtime: RuntimeState = RuntimeState.ALIVE
    activity: Activity = Activity.UNKNOWN
    activity_at: datetime | None = None
    activity_weak: bool = False  # terminal heuristics rather than the agent's own transcript
    reported: Reported = Reported.NONE
    reported_at: datetime | None = None
    pr: PRFacts | None = None
    detecting_attempts: int = 0
    previous: Status = Status.SPAWNING
    stuck_after: timedelta = DEFAULT_STUCK_AFTER
    report_fresh_for: timedelta = DEFAULT_REPORT_FRESH_FOR


@dataclass(frozen=True)
class Derived:
    status: Status
    zone: Zone
    reason: str


def _result(status: Status, reason: str) -> Derived:
    return Derived(status=status, zone=ZONE_OF[status], reason=reason)


_PHASE_STATUS = {
    Phase.QUEUED: (Status.QUEUED, "waiting for a free slot under the concurrency cap"),
    Phase.SPAWNING: (Status.SPAWNING, "workspace and agent are being started"),
    Phase.KILLED: (Status.KILLED, "killed"),
    Phase.ERRORED: (Status.ERRORED, "failed to start"),
    Phase.CLEANED: (Status.DONE, "session ended and cleaned up"),
}


def derive(facts: Facts) -> Derived:
    """Return the status and zone the stored facts imply. Pure: no I/O, no clock."""
    if facts.phase in _PHASE_STATUS:
        return _result(*_PHASE_STATUS[facts.phase])

    pr = facts.pr
    if pr is not None and pr.state == PRState.MERGED:
        return _result(Status.MERGED, "PR merged")

    if facts.runtime == RuntimeState.LOST:
        return _result(Status.RUNTIME_LOST, "the runtime session is gone")
    if facts.runtime == RuntimeState.PROBE_FAILED:
        if facts.detecting_attempts >= MAX_DETECTING_ATTEMPTS:
            return _result(Status.STUCK, f"runtime probes inconclusive {facts.detecting_attempts} times")
        return _result(Status.DETECTING, "runtime probes disagree; checking again")

    agent = _from_agent(facts)
    if agent is not None:
        return agent
    if facts.activity_weak and facts.previous in STICKY:
        return _result(facts.previous, "only weak evidence since; keeping the previous status")

    if pr is not None:
        from_pr = _from_pr(pr)
        if from_pr is not None:
            return from_pr

    if _report_is_fresh(facts):
        reported = {
            Reported.NEEDS_INPUT: (Status.NEEDS_INPUT, "the agent reports it needs input"),
            Reported.BLOCKED: (Status.BLOCKED, "the agent reports it is blocked"),
            Reported.DONE: (Status.IDLE, "the agent reports it is done"),
            Reported.WORKING: (Status.WORKING, "the agent reports it is working"),
        }[facts.reported]
        return _result(*reported)

    if facts.activity in (Activity.IDLE, Activity.READY):
        if facts.activity_at is not None and facts.now - facts.activity_at >= facts.stuck_after:
            return _result(Status.STUCK, f"idle for longer than {_minutes(facts.stuck_after)}")
        return _result(Status.IDLE, "the agent is at its prompt")

    return _result(Status.WORKING, "the agent is working")


def _from_agent(facts: Facts) -> Derived | None:
    if facts.runtime == RuntimeState.EXITED or facts.activity == Activity.EXITED:
        return _result(Status.EXITED, "the agent process exited")
    if facts.activity == Activity.WAITING_INPUT:
        return _result(Status.NEEDS_INPUT, "the agent is waiting for an answer")
    if facts.activity == Activity.BLOCKED:
        return _result(Status.BLOCKED, "the agent hit an error it cannot get past")
    return None


def _from_pr(pr: PRFacts) -> Derived | None:
    if pr.state == PRState.CLOSED:
        return _result(Status.PR_CLOSED, "PR closed without merging")
    if pr.ci == CIState.FAILING:
        return _result(Status.CI_FAILED, "CI is failing")
    if pr.review == ReviewDecision.CHANGES_REQUESTED:
        return _result(Status.CHANGES_REQUESTED, "a reviewer requested changes")
    if pr.conflicts:
        return _result(Status.MERGE_CONFLICTS, "the PR conflicts with its base branch")
    if pr.draft:
        return None  # a draft is work in progress: the agent's own state decides
    if pr.ci == CIState.PENDING:
        return _result(Status.CI_PENDING, "CI is running")
    if pr.review == ReviewDecision.REQUIRED:
        return _result(Status.REVIEW_PENDING, "waiting for a review")
    # Approved, or no review required; CI green or absent.
    if pr.behind:
        return _result(Status.APPROVED, "approved but behind its base branch")
    if pr.mergeable is False:
        return _result(Status.APPROVED, "approved but GitHub reports it not mergeable")
    if pr.mergeable is None:
        return _result(Status.APPROVED, "approved; waiting for GitHub to compute mergeability")
    return _result(Status.MERGEABLE, "approved, green and mergeable")


FAILED_CONCLUSIONS = frozenset(
    {"failure", "timed_out", "cancelled", "action_required", "startup_failure", "error"}
)


def ci_summary(checks: list[tuple[str, str]]) -> CIState:
    """Summarise (status, conclusion) pairs of the checks on one commit."""
    if not checks:
        return CIState.NONE
    if any(status == "completed" and conclusion in FAILED_CONCLUSIONS for status, conclusion in checks):
        return CIState.FAILING
    if any(status != "completed" for status, _ in checks):
        return CIState.PENDING
    return CIState.PASSING


def _report_is_fresh(facts: Facts) -> bool:
    return (
        facts.reported != Reported.NONE
        and facts.reported_at is not None
        and facts.now - facts.reported_at <= facts.report_fresh_for
    )


def _minutes(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes} min" if minutes else f"{int(delta.total_seconds())} s"
