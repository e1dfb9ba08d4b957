"""The values plugins take and return: frozen dataclasses that hold what a runtime, agent,
tracker, SCM or notifier reports, with no behaviour beyond dropping non-http(s) URLs from outside
data (ao_site/links.py). The slot interfaces that use them are in ``integrations.base``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ao_site.links import http_url
from sessions.domain.text import strip_controls


# --- runtime --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RuntimeHandle:
    """Enough to find a running agent again, stored as JSON on the session."""

    runtime: str
    name: str
    data: dict[str, Any] = field(default_factory=dict)


# --- agent ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ActivityReading:
    """One observation of what an agent is doing, from ``Agent.detect_activity``.

    ``at`` is when the evidence was produced (the transcript entry's time for native readings,
    the observation time for terminal heuristics), so the lifecycle can tell a fresh "ready"
    from one that has sat for an hour. Token and cost figures are the conversation's running
    totals where the agent's transcript has them, else None.
    """

    state: str  # a sessions.domain.lifecycle.Activity value
    at: datetime | None
    weak: bool = False  # True for terminal heuristics
    summary: str = ""  # one line: "Editing src/app.py", or the start of the last reply
    tokens_in: int | None = None  # input incl. cache reads and writes
    tokens_out: int | None = None
    cost_usd: float | None = None
    source: str = ""  # "transcript" | "terminal" | "process"
    conversation_id: str = ""  # the agent's own conversation id, for resume_command
    model: str = ""  # the model the agent says it is running, where its records say
    evidence: str = ""  # what decided the state, for the timeline and for debugging


# --- tracker --------------------------------------------------------------------------------------
class IssueState:
    """Where an issue stands, the same for every tracker: each tracker plugin maps its own states
    (GitHub's open/closed, Linear's workflow state types, ...) to one of these, once."""

    OPEN = "open"  # not started: intake may claim it
    IN_PROGRESS = "in_progress"
    DONE = "done"  # completed or cancelled


@dataclass(frozen=True)
class Issue:
    ref: str
    title: str
    body: str = ""
    url: str = ""
    labels: tuple[str, ...] = ()
    branch_name: str = ""
    state: str = IssueState.OPEN  # an IssueState value
    state_name: str = ""  # the tracker's own name for it ("Todo", "closed"), for people

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", http_url(self.url))  # outside data: http(s) only (ao_site/links.py)
        # outside text: no control characters (terminal escapes), as stored and printed
        object.__setattr__(self, "title", strip_controls(self.title, one_line=True))
        object.__setattr__(self, "body", strip_controls(self.body))
        object.__setattr__(
            self, "labels", tuple(strip_controls(label, one_line=True) for label in self.labels)
        )
        object.__setattr__(self, "state_name", strip_controls(self.state_name, one_line=True))


# --- scm ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckInfo:
    """One CI check on a commit: a GitHub check run, a commit status, or a local CI run."""

    name: str
    source: str = "check_run"  # check_run | status | local
    status: str = "queued"  # queued | in_progress | completed
    conclusion: str = (
        ""  # success | failure | neutral | cancelled | skipped | timed_out | action_required | error
    )
    url: str = ""
    external_id: str = ""
    log_excerpt: str = ""  # bounded excerpt of the failing step's log (failed checks only)
    started_at: datetime | None = None
    completed_at: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", http_url(self.url))  # outside data: http(s) only (ao_site/links.py)


@dataclass(frozen=True)
class ThreadInfo:
    """One review thread (or top-level review comment) on a pull request."""

    external_id: str
    path: str = ""
    line: int | None = None
    author: str = ""
    author_association: str = ""  # OWNER | MEMBER | COLLABORATOR | CONTRIBUTOR | NONE ...
    body: str = ""
    url: str = ""
    resolved: bool = False
    is_bot: bool = False
    created_at: datetime | None = None
    # A review's own text (its body) rather than a thread of line comments: the review's state
    # (changes_requested | commented), and resolved once it is no longer the reviewer's latest word.
    review_state: str = ""
    # the SCM's other name for the thread, when ao's is not it (GitHub: a thread first seen through
    # REST is named by its first comment; GraphQL's thread id is kept here once a GraphQL read saw it)
    node_id: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", http_url(self.url))  # outside data: http(s) only (ao_site/links.py)
        object.__setattr__(self, "body", strip_controls(self.body))  # outside text: no terminal escapes
        object.__setattr__(self, "author", strip_controls(self.author, one_line=True))


@dataclass(frozen=True)
class PullRequestInfo:
    """What the SCM says about one pull request right now."""

    number: int
    branch: str
    url: str = ""
    title: str = ""
    base_branch: str = ""
    state: str = "open"  # open | merged | closed
    draft: bool = False
    head_sha: str = ""
    mergeable: bool | None = None  # None: not computed yet
    conflicts: bool = False
    behind: bool = False
    review_decision: str = "none"  # none | review_required | approved | changes_requested
    checks: tuple[CheckInfo, ...] = ()
    threads: tuple[ThreadInfo, ...] = ()
    updated_at: datetime | None = None
    created_at: datetime | None = None  # when the PR was opened (None: the SCM does not say)
    opened_by: str = ""  # the ao session that opened it, when the SCM records that (`local`)
    from_fork: bool = False  # its head is another repository's branch (a fork's)

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", http_url(self.url))  # outside data: http(s) only (ao_site/links.py)
        object.__setattr__(self, "title", strip_controls(self.title, one_line=True))  # no terminal escapes


@dataclass(frozen=True)
class RateStatus:
    """The SCM credential's budget, for the dashboard and `ao doctor`."""

    limit: int
    remaining: int
    reset_at: datetime | None
    exhausted: bool = False


@dataclass(frozen=True)
class PullRequestMark:
    """What ao has stored of one watched PR, for an SCM's change probe."""

    number: int
    head_sha: str
    state: str = "open"
    base_branch: str = ""
    ci_state: str = ""  # none | pending | passing | failing (sessions.domain.lifecycle.CIState)
    updated_at: datetime | None = None  # the SCM's last-update time as of ao's last read of it
    checks: tuple[CheckInfo, ...] = ()  # the head's checks, while CI runs or none reported yet


@dataclass(frozen=True)
class PullRequestChanges:
    """What an SCM's cheap look (``SCM.pull_request_changes``) says must be read."""

    numbers: frozenset[int] = frozenset()  # watched PRs that changed: read them
    branches: frozenset[str] = frozenset()  # watched branches that have a new PR: find it
    everything: bool = False  # nothing to compare with (first look, lost state): read all
    state: Mapping[str, Any] = field(default_factory=dict)  # keep for the next look, once read


# --- notifier -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Notification:
    """What a notifier sends. ``url`` is what it is about (the PR, a failed check, a review thread);
    ``session_url`` is ao's page for the session (absolute, at the address ao gives out) and
    ``pr_url``/``pr_number`` the session's pull request: notifiers offer all three links."""

    title: str
    body: str
    priority: str = "info"  # urgent | action | warning | info
    url: str = ""
    session_id: str = ""
    project_key: str = ""
    session_url: str = ""
    pr_url: str = ""
    pr_number: int | None = None

    def __post_init__(self) -> None:
        for name in ("url", "session_url", "pr_url"):  # outside data: http(s) only (ao_site/links.py)
            object.__setattr__(self, name, http_url(getattr(self, name)))
