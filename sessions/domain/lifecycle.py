"""Status and attention zone: derived from stored facts by one pure function.

Observers (runtime probes, activity detection, SCM sweeps and webhooks, agent reports) only
store *facts* on a session. :func:`derive` turns those facts into the session's status and its
board zone; services write its result to the ``status``/``zone`` columns and nothing else does.

Precedence, highest first (see docs/ARCHITECTURE.md, "Status model"):

1. ao's own lifecycle phase: queued, spawning, killed by a person, errored while spawning, cleaned up;
2. a merged PR (the work is done whatever happened to the agent afterwards);
3. runtime gone (tmux session missing);
4. conflicting/inconclusive probes -> ``detecting`` for a bounded number of sweeps, then ``stuck``;
5. the agent: exited; waiting for input; blocked -- from the newest *strong* evidence of what the
   agent is doing (its transcript, a fresh ``ao report``, a confirmed run of terminal readings),
   else from the latest terminal reading;
6. PR facts: closed, CI failing, changes requested, conflicts, mergeable, approved, CI/review pending;
7. the agent at its prompt beyond the stuck threshold -> ``stuck``; within it -> ``idle``;
8. otherwise ``working``.

Hysteresis: ``needs_input`` and ``stuck`` (:data:`STICKY`) stay until there is *conclusive*
evidence of a change (:func:`_conclusive`): strong evidence produced after the status began that
contradicts it, or a PR fact that changed after it began. One terminal reading is never
conclusive; ``CONFIRM_READINGS`` concordant ones spanning ``CONFIRM_SPAN`` are.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.db import models

MAX_DETECTING_ATTEMPTS = 3
DEFAULT_STUCK_AFTER = timedelta(minutes=10)
DEFAULT_REPORT_FRESH_FOR = timedelta(minutes=5)
# A run of terminal readings (weak evidence) that all say the same thing is conclusive once it has
# this many readings spanning at least this long: one noisy screen never moves a sticky status.
CONFIRM_READINGS = 3
CONFIRM_SPAN = timedelta(seconds=20)


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
    """Who acts next. The values are stable (URLs, API, config); the labels say what they mean."""

    WORKING = "working", "Agent working"  # incl. fixing what ao sent it: CI, review comments, conflicts
    PENDING = "pending", "Waiting"  # on CI, a free slot, the SCM computing mergeability
    REVIEW = "review", "Review requested"  # a person's review of the PR
    RESPOND = "respond", "Needs a decision"  # an answer, a rescue, an escalated PR problem
    MERGE = "merge", "Ready to merge"
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
    Status.REVIEW_PENDING: Zone.REVIEW,
    Status.APPROVED: Zone.PENDING,
    # handed to the agent (the default rules send them): see zone_for
    Status.CI_FAILED: Zone.WORKING,
    Status.CHANGES_REQUESTED: Zone.WORKING,
    Status.MERGE_CONFLICTS: Zone.WORKING,
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

# --- who acts: the one definition of "needs a person" (pill, banner, columns, inbox, notifications)
# PR problems ao hands to the agent when the project's rule for them is send-to-agent; when it is
# not, or ao escalated the situation to people, they need a person.
AGENT_HANDLED = frozenset({Status.CI_FAILED, Status.CHANGES_REQUESTED, Status.MERGE_CONFLICTS})
NEEDS_PERSON = frozenset({Zone.REVIEW, Zone.RESPOND, Zone.MERGE})


def zone_for(status: Status, *, agent_handles: frozenset[Status] = AGENT_HANDLED) -> Zone:
    """The zone of a status: who acts next. ``agent_handles``: the PR problems of AGENT_HANDLED
    that the agent is handling now (sent to it by their rule, not escalated)."""
    if status in AGENT_HANDLED and status not in agent_handles:
        return Zone.RESPOND
    return ZONE_OF[status]


def needs_person(zone: str) -> bool:
    """Whether a session in ``zone`` needs a person: a review requested, an answer or a decision
    (needs input, blocked, stuck, exited, runtime lost, errored, a PR problem the agent is not
    handling or that was escalated), or a merge."""
    return zone in NEEDS_PERSON


# --- ended: ao's lifecycle says the session's agent does not run (until a restore) ------------------
# Killed by a person, errored (its agent did not start: e.g. the agent CLI is not on PATH), cleaned
# up. An errored session waits for a person in "needs a decision", yet nothing runs there.
ENDED_PHASES = frozenset({Phase.KILLED, Phase.ERRORED, Phase.CLEANED})


def is_live(*, phase: str, zone: str) -> bool:
    """Whether a session is live: not done, and not ended by ao's lifecycle (its agent runs, is on
    its way or waits for a slot). The one definition: ``ao status``'s "N live", the API's
    ``live_sessions``, the issue a live session works on, intake (query: ``Session.objects.live()``)."""
    return zone != Zone.DONE and phase not in ENDED_PHASES


def ended_why(*, phase: str, error: str = "") -> str:
    """Why an ended session's agent does not run, in a few words ("" when it has not ended); an
    errored one's error follows (one line, at most 300 characters)."""
    if phase == Phase.ERRORED:
        error = " ".join(error.split())
        error = error if len(error) <= 300 else error[:299] + "…"
        return f"its agent did not start: {error}" if error else "its agent did not start"
    if phase == Phase.KILLED:
        return "its agent was killed"
    if phase == Phase.CLEANED:
        return "it was cleaned up"
    return ""


def activity_shown(*, phase: str, runtime: str, activity: str) -> str:
    """What the agent is doing, as the board's card and the session page say it: the stored reading
    while its session runs; ``errored`` when it never started; ``exited`` when the session was
    killed or cleaned up or its agent or runtime is gone (the last reading is no longer true);
    before the first reading ``queued`` or ``starting``. An Activity value or one of those words."""
    if phase == Phase.ERRORED:
        return "errored"
    if phase in ENDED_PHASES or runtime in (RuntimeState.LOST, RuntimeState.EXITED):
        return Activity.EXITED.value
    if activity != Activity.UNKNOWN:
        return str(activity)
    return "queued" if phase == Phase.QUEUED else "starting"


# Statuses that only conclusive evidence of a change may clear (see _conclusive).
STICKY = frozenset({Status.NEEDS_INPUT, Status.STUCK})


@dataclass(frozen=True)
class CheckFact:
    name: str
    conclusion: str
    url: str = ""
    log_excerpt: str = ""
    flaky: bool = False  # it also passed on this commit: still a failure, told with that note


# GitHub's author associations of people who can write to the repository: only their reviews
# count in a review decision, and (by default) only their review comments reach an agent
WRITER_ASSOCIATIONS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})


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
    """A session's PR as ao holds it: what the status derivation, the reactions engine and its
    messages read (one type for all three; ``integrations.base.PullRequestInfo`` is what an SCM
    plugin says, before ao stores it)."""

    number: int = 0
    url: str = ""
    title: str = ""
    branch: str = ""
    base: str = "main"
    state: str = PRState.OPEN
    draft: bool = False
    head_sha: str = ""
    mergeable: bool | None = None  # None: GitHub has not computed it yet
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
    # What "approved and green" requires (the approved-and-green rule's requiredChecks and
    # requireApproval): None = at least one check reported on the head commit, all passing;
    # a tuple = these checks passed on the head commit (empty: no checks needed).
    required_checks: tuple[str, ...] | None = None
    require_approval: bool = False  # an approval even when the SCM requires no review


@dataclass(frozen=True)
class Facts:
    now: datetime
    phase: Phase = Phase.RUNNING
    runtime: RuntimeState = RuntimeState.ALIVE
    activity: Activity = Activity.UNKNOWN
    activity_at: datetime | None = None
    activity_weak: bool = False  # terminal heuristics rather than the agent's own transcript
    # The run of concordant readings the current one belongs to: when its first reading was taken
    # and how many readings (this one included) said the same state in a row.
    activity_since: datetime | None = None
    activity_streak: int = 0
    reported: Reported = Reported.NONE
    reported_at: datetime | None = None
    pr: PRFact | None = None
    pr_changed_at: datetime | None = None  # when the PR's facts last changed (prsync)
    detecting_attempts: int = 0
    previous: Status = Status.SPAWNING
    previous_since: datetime | None = None  # when ``previous`` began (status_changed_at)
    agent_handles: frozenset[Status] = AGENT_HANDLED  # see zone_for
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
    derived = _derive(facts)
    return replace(derived, zone=zone_for(derived.status, agent_handles=facts.agent_handles))


def _derive(facts: Facts) -> Derived:
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

    if facts.runtime == RuntimeState.EXITED or facts.activity == Activity.EXITED:
        return _result(Status.EXITED, "the agent process exited")  # the process table is strong evidence

    agent = agent_evidence(facts)
    status, reason = _candidate(facts, agent)
    if facts.previous in STICKY and status != facts.previous and not _conclusive(facts, agent):
        return _result(facts.previous, f"{_held(facts.previous)}: no conclusive evidence of a change yet")
    return _result(status, reason)


# --- the agent's own state: evidence and its strength ------------------------------------------
TRANSCRIPT, REPORT, TERMINAL = "transcript", "report", "terminal"

_REPORTED_ACTIVITY = {
    Reported.WORKING: Activity.ACTIVE,
    Reported.NEEDS_INPUT: Activity.WAITING_INPUT,
    Reported.BLOCKED: Activity.BLOCKED,
    Reported.DONE: Activity.READY,
}


@dataclass(frozen=True)
class Evidence:
    """What one source says the agent is doing, when that was established, and how strongly."""

    state: Activity
    at: datetime | None  # transcript: the entry's time; report: when made; terminal: the run's start
    source: str  # TRANSCRIPT | REPORT | TERMINAL
    strong: bool


def confirmed(facts: Facts) -> bool:
    """Whether the current run of terminal readings is long enough to count as strong evidence."""
    return (
        facts.activity_streak >= CONFIRM_READINGS
        and facts.activity_since is not None
        and facts.now - facts.activity_since >= CONFIRM_SPAN
    )


def agent_evidence(facts: Facts) -> Evidence | None:
    """The evidence that decides what the agent is doing: the newest strong one (the transcript's
    reading, a fresh report, a confirmed run of terminal readings); without any, the latest
    terminal reading (weak). None when nothing is known."""
    candidates: list[Evidence] = []
    if facts.activity != Activity.UNKNOWN:
        if facts.activity_weak:
            candidates.append(
                Evidence(
                    facts.activity, facts.activity_since or facts.activity_at, TERMINAL, confirmed(facts)
                )
            )
        else:
            candidates.append(Evidence(facts.activity, facts.activity_at, TRANSCRIPT, True))
    if _report_is_fresh(facts):
        candidates.append(Evidence(_REPORTED_ACTIVITY[facts.reported], facts.reported_at, REPORT, True))
    strong = [e for e in candidates if e.strong]
    if strong:  # the newest wins; on a tie the agent's own word (the report) does
        return max(
            strong, key=lambda e: (e.at or datetime.min.replace(tzinfo=facts.now.tzinfo), e.source == REPORT)
        )
    return candidates[0] if candidates else None


_WAITING_REASON = {
    REPORT: "the agent reports it needs input",
    TRANSCRIPT: "the agent is waiting for an answer",
    TERMINAL: "the agent is waiting for an answer",
}
_BLOCKED_REASON = {
    REPORT: "the agent reports it is blocked",
    TRANSCRIPT: "the agent hit an error it cannot get past",
    TERMINAL: "the agent hit an error it cannot get past",
}


def _candidate(facts: Facts, agent: Evidence | None) -> tuple[Status, str]:
    """(status, reason) the current facts imply, before hysteresis."""
    if agent is not None and agent.state == Activity.WAITING_INPUT:
        return Status.NEEDS_INPUT, _WAITING_REASON[agent.source]
    if agent is not None and agent.state == Activity.BLOCKED:
        return Status.BLOCKED, _BLOCKED_REASON[agent.source]

    if facts.pr is not None:
        from_pr = _from_pr(facts.pr)
        if from_pr is not None:
            return from_pr.status, from_pr.reason

    if agent is not None and agent.state in (Activity.IDLE, Activity.READY):
        if agent.at is not None and facts.now - agent.at >= facts.stuck_after:
            return Status.STUCK, f"idle for longer than {_minutes(facts.stuck_after)}"
        return (
            Status.IDLE,
            "the agent reports it is done" if agent.source == REPORT else "the agent is at its prompt",
        )
    if agent is not None and agent.source == REPORT:
        return Status.WORKING, "the agent reports it is working"
    return Status.WORKING, "the agent is working"


def _after(at: datetime | None, since: datetime | None) -> bool:
    """Whether evidence from ``at`` is newer than a status that began at ``since`` (unknown: yes)."""
    return since is None or (at is not None and at > since)


def _conclusive(facts: Facts, agent: Evidence | None) -> bool:
    """Whether the facts show the sticky ``facts.previous`` has really ended.

    - a PR fact that changed after the status began (a push, CI, a review, a conflict);
    - strong evidence of what the agent does (transcript, fresh report, confirmed terminal run),
      produced after the status began and contradicting it: the agent working, blocked or gone,
      or a report of any kind. For ``stuck``, an agent at its prompt only contradicts it through
      its transcript (a new turn); by its screen it has been idle all along.
    """
    since = facts.previous_since
    if facts.pr is not None and facts.pr_changed_at is not None and _after(facts.pr_changed_at, since):
        return True
    if agent is None or not agent.strong or not _after(agent.at, since):
        return False
    if agent.source == REPORT or agent.state in (Activity.ACTIVE, Activity.WAITING_INPUT, Activity.BLOCKED):
        return True
    if agent.state in (Activity.READY, Activity.IDLE):
        return facts.previous == Status.NEEDS_INPUT or agent.source == TRANSCRIPT
    return False


def _held(status: Status) -> str:
    return {Status.NEEDS_INPUT: "still waiting for input", Status.STUCK: "still stuck"}.get(
        status, str(status)
    )


def _from_pr(pr: PRFact) -> Derived | None:
    if pr.state == PRState.CLOSED:
        return _result(Status.PR_CLOSED, "PR closed without merging")
    if pr.ci_state == CIState.FAILING:
        return _result(Status.CI_FAILED, "CI is failing")
    if pr.review_decision == ReviewDecision.CHANGES_REQUESTED:
        return _result(Status.CHANGES_REQUESTED, "a reviewer requested changes")
    if threads := reviewers_threads_open(pr):  # forwarded to the agent as changes requested
        return _result(Status.CHANGES_REQUESTED, _threads_open(threads))
    if pr.conflicts:
        return _result(Status.MERGE_CONFLICTS, "the PR conflicts with its base branch")
    if pr.draft:
        return None  # a draft is work in progress: the agent's own state decides
    not_green = ci_not_green(pr)
    if not_green:
        return _result(Status.CI_PENDING, not_green)
    not_approved = review_not_approved(pr)
    if not_approved:
        return _result(Status.REVIEW_PENDING, not_approved)
    # Approved as the project requires; green on the head commit.
    if pr.behind:
        return _result(Status.APPROVED, "approved but behind its base branch")
    if pr.mergeable is False:
        return _result(Status.APPROVED, "approved but GitHub reports it not mergeable")
    if pr.mergeable is None:
        return _result(Status.APPROVED, "approved; waiting for GitHub to compute mergeability")
    return _result(Status.MERGEABLE, f"{ready_words(pr.review_decision)}, and mergeable")


# --- approved and green: one definition for the status, the reaction and a person's merge --------
def ci_not_green(pr: PRFact) -> str:
    """Why the PR's head commit is not green yet ("" when it is). Green: the required checks passed
    on the head commit; by default at least one check reported there and every one passed. No
    checks at all is not green: CI may simply not have started on a fresh push."""
    if pr.ci_state == CIState.FAILING:
        return "CI is failing"
    if pr.required_checks is None:
        if pr.ci_state == CIState.NONE:
            return "no check has reported on the head commit yet"
        if pr.ci_state == CIState.PENDING:
            return "CI is running"
        return ""
    missing = [name for name in pr.required_checks if name not in pr.passed_checks]
    if missing:
        return f"required check{'s' if len(missing) > 1 else ''} {', '.join(missing)} not passed on the head commit yet"
    return ""


def review_not_approved(pr: PRFact) -> str:
    """Why the PR is not approved as the project requires ("" when it is). By default an approval
    is needed when the SCM says a review is required (GitHub branch protection, the local SCM's
    requireReview); with ``require_approval`` always."""
    if pr.review_decision == ReviewDecision.CHANGES_REQUESTED:
        return "a reviewer requested changes"
    if threads := reviewers_threads_open(pr):
        return _threads_open(threads)
    if pr.review_decision == ReviewDecision.REQUIRED:
        return "waiting for a review"
    if pr.require_approval and pr.review_decision != ReviewDecision.APPROVED:
        return "waiting for an approval"
    return ""


def ready_words(review_decision: str) -> str:
    """How a PR ready to merge is described: "approved" only when someone approved it."""
    if review_decision == ReviewDecision.APPROVED:
        return "approved and green"
    return "green (no review required)"


def reviewers_threads_open(pr: PRFact) -> tuple[ThreadFact, ...]:
    """The PR's unresolved review threads of people who can write to the repository: ao forwards
    them to the agent as changes requested, so the PR is not approved while one is open (an
    approval given with threads left open included; a bot's comments never hold it)."""
    return tuple(t for t in pr.threads if not t.is_bot and t.association.upper() in WRITER_ASSOCIATIONS)


def _threads_open(threads: tuple[ThreadFact, ...]) -> str:
    n = len(threads)
    return f"{n} review thread{'s' if n != 1 else ''} of a reviewer still open"


def approved_and_green(pr: PRFact) -> bool:
    """Open, not a draft, no conflicts, green and approved as the project requires (mergeability
    and being behind its base are judged separately: they decide between merge and notify)."""
    return (
        pr.state == PRState.OPEN
        and not pr.draft
        and not pr.conflicts
        and not ci_not_green(pr)
        and not review_not_approved(pr)
    )


PASSED_CONCLUSIONS = frozenset({"success", "neutral", "skipped"})


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
