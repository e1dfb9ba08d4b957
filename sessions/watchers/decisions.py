"""Decisions, not data: the few things that most need a person now, each with its reason.

``decisions_for(user, project=None, limit=5)`` ranks, over the projects the user may view:

| kind | what | base score |
| --- | --- | --- |
| ``blocking`` | an open PR other live sessions wait on: live sessions whose files overlap it (``sessions.watchers.conflicts.overlaps_for``) and that have no PR yet or a newer one (the older PR merges first, the others rebase), and live sessions whose issue the tracker says is blocked by the PR's issue (``Tracker.blocked_by``: GitHub issue dependencies, Linear "blocks" relations, local ``ao issue add --blocked-by``) | 90, +2 per session it blocks |
| ``stuck`` | a session in the respond zone (stuck, needs input, blocked, exited, runtime lost, errored, a PR problem the agent is not handling or that was escalated) | 70 |
| ``review-requested`` | a PR waiting for a person's review (the review zone) | 55 |
| ``flaky-check`` | a check failing on a live PR's head commit after it passed on that same commit (``FlakyCheck``), or one that flipped on a live PR recently | 60 |
| ``review-comment`` | the oldest unresolved review thread from a trusted author on an open PR | 50 |
| ``merge-ready`` | a PR approved and green, waiting for someone to merge it | 40 |

Only sessions that need a person (``lifecycle.needs_person``: the review, respond and merge
zones) are listed, so the list is empty exactly when the board's "need you" pill says 0; the
other kinds add their reason to such a session (a blocking PR ranks first).

Within a kind the oldest situation ranks first: the score adds up to 19.9 for its age in hours
(since the status changed, the thread was opened, the flag was raised). One decision per session
(its highest). ``decisions_digest(project)`` is the same list as text, for the orchestrator's
status digest and for chat replies.

Tracker links cost requests, so they are read sparingly: only while some worker has an open PR
(nothing else can block), for at most ``BLOCKED_BY_LOOKUPS`` live sessions per project, each answer
cached ``BLOCKED_BY_CACHE_SECONDS`` (GitHub's reads are conditional besides, so an unchanged list
costs no quota). Refs are compared loosely (``#12``, ``12`` and an issue URL match; case is
ignored). A tracker that fails or has no links leaves the file overlaps as the only evidence.

Flaky checks (what a flip is: ``sessions/domain/flaky.py``). ``CheckRun`` keeps one row per (PR, commit,
source, name), updated in place, so a re-run that flips a check on the same commit would leave no
trace. ``services.check_flips_record`` is called by ``sessions.prs.prsync`` before it stores a PR's
checks: a check that goes failed → success (or success → failed) on the same commit is recorded as
a ``FlakyCheck`` (reason ``flip``) with a ``ci.flaky`` timeline entry. That is the only evidence of
flakiness, and it holds for that check on that commit only: ``selectors.is_flaky(project, name,
head_sha=...)`` and ``selectors.flaky_checks(project, shas=...)`` answer per (check, commit), while
a flag is younger than ``AO_FLAKY_CHECK_HOURS``. A
check failing on several PRs, or on another commit, proves nothing about this failure (the base
branch may be broken, the change may be wrong): nothing is silenced by it. A flaky failure is
still a failure: the reactions engine still tells the agent (and, on escalation, people), with
the note that the check flipped on this commit and a re-run may pass; the drift watch does not
count a flaky commit's failure towards "the same check failed N commits in a row". Delete the row
in the admin to clear a flag. (ao once also flagged a check failing across unrelated sessions as
``spread``; such rows have no commit and no longer count.)
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime

from django.core.cache import cache
from django.utils import timezone

from ao_site import served
from integrations.base import IssueNotFound
from integrations.registry import plugin_for
from reactions import rules as R
from sessions.core import selectors
from sessions.domain.lifecycle import (
    FAILED_CONCLUSIONS,
    Phase,
    PRState,
    Status,
    Zone,
    needs_person,
    ready_words,
)
from sessions.models import CheckRun, FlakyCheck, Project, Session
from sessions.watchers import conflicts

log = logging.getLogger(__name__)

BLOCKING, STUCK, FLAKY, REVIEW, MERGE_READY = (
    "blocking",
    "stuck",
    "flaky-check",
    "review-comment",
    "merge-ready",
)
REVIEW_REQUESTED = "review-requested"
LABELS = {
    BLOCKING: "blocking",
    STUCK: "stuck",
    FLAKY: "flaky check",
    REVIEW_REQUESTED: "review requested",
    REVIEW: "review",
    MERGE_READY: "ready to merge",
}
BASE_SCORE = {
    BLOCKING: 90.0,
    STUCK: 70.0,
    FLAKY: 60.0,
    REVIEW_REQUESTED: 55.0,
    REVIEW: 50.0,
    MERGE_READY: 40.0,
}
AGE_CAP = 19.9  # hours of age that still add to the score (kinds stay 10+ points apart otherwise)
BLOCKED_BY_LOOKUPS = 25  # tracker "blocked by" reads per project per ranking, at most
BLOCKED_BY_CACHE_SECONDS = 300
_ISSUE_URL_RE = re.compile(r"/issues/(\d+)/?$")


@dataclass(frozen=True)
class Decision:
    kind: str
    session: Session
    reason: str
    score: float
    url: str

    def as_text(self) -> str:
        return f"[{self.kind}] {self.session.pk}: {self.reason}"

    @property
    def label(self) -> str:
        """What the badge says: a respond-zone session's own status ("errored", "needs input"), else
        the kind in words."""
        if self.kind == STUCK:
            return self.session.get_status_display().lower()
        return LABELS[self.kind]


# --- the decisions ---------------------------------------------------------------------------------------
def _session_url(session: Session) -> str:
    return served.agent_url() + served.dashboard_path("detail", session_id=session.pk)


def _hours(now: datetime, since: datetime | None) -> float:
    if since is None:
        return 0.0
    return max(0.0, (now - since).total_seconds() / 3600)


def _score(kind: str, *, now: datetime, since: datetime | None, extra: float = 0.0) -> float:
    return round(BASE_SCORE[kind] + extra + min(_hours(now, since), AGE_CAP), 3)


def _age(now: datetime, since: datetime | None) -> str:
    if since is None:
        return ""
    minutes = int((now - since).total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60:02d} min"
    return f"{minutes // 1440} days"


def _live(project: Project):
    return (
        Session.objects.filter(project=project)
        .exclude(zone=Zone.DONE)
        .exclude(phase__in=[Phase.KILLED, Phase.CLEANED])
        .select_related("project", "pull_request")
    )


def _overlaps(session: Session) -> set[str]:
    """Sessions the conflict watch (``sessions.watchers.conflicts.overlaps_for``) says share files with
    this one."""
    try:
        return {o.other for o in conflicts.overlaps_for(session)}
    except Exception:  # advice only: a failing conflict watch must not hide the other decisions
        log.exception("overlaps_for(%s) failed", session.pk)
        return set()


def _overlap_blocked(session: Session, by_id: dict[str, Session]) -> set[str]:
    """Live sessions whose changes overlap this one's open PR and that come after it: no PR of
    their own yet, or a newer one. The older PR merges first; the others rebase onto it."""
    pr = getattr(session, "pull_request", None)
    out: set[str] = set()
    if pr is None:
        return out
    for other_id in _overlaps(session):
        other = by_id.get(other_id)
        if other is None:
            continue
        other_pr = getattr(other, "pull_request", None)
        if other_pr is None or other_pr.state != PRState.OPEN or other_pr.number > pr.number:
            out.add(other_id)
    return out


def _issue_key(ref: str) -> str:
    """An issue ref as both sides of a "blocked by" link can be compared: ``#12``, ``12`` and a
    GitHub issue URL are ``12``; ``eng-7`` is ``ENG-7``."""
    text = str(ref).strip()
    match = _ISSUE_URL_RE.search(text)
    return match.group(1) if match else text.lstrip("#").upper()


def _tracker_blocked(project: Project, live: list[Session]) -> dict[str, set[str]]:
    """{session id: live sessions its open PR blocks}, from the tracker's "blocked by" links
    (``Tracker.blocked_by``): a live session whose issue is blocked by the issue of a worker with an
    open PR. Asked only when such a PR exists, for at most ``BLOCKED_BY_LOOKUPS`` sessions, each
    answer cached ``BLOCKED_BY_CACHE_SECONDS``; a tracker that fails leaves the overlaps alone."""
    blockers = {
        _issue_key(s.issue_ref): s.pk
        for s in live
        if s.issue_ref
        and s.kind == Session.Kind.WORKER
        and getattr(s, "pull_request", None) is not None
        and s.pull_request.state == PRState.OPEN
    }
    if not blockers:
        return {}
    try:
        tracker = plugin_for(project, "tracker")
    except Exception:
        return {}
    blocked_by = getattr(tracker, "blocked_by", None)
    if blocked_by is None:
        return {}
    out: dict[str, set[str]] = {}
    lookups = 0
    for session in sorted(live, key=lambda s: (s.created_at, s.pk)):
        if not session.issue_ref:
            continue
        digest = hashlib.sha256(session.issue_ref.encode()).hexdigest()[:16]
        key = f"ao:decisions:blocked-by:{project.pk}:{project.tracker}:{digest}"
        refs = cache.get(key)
        if refs is None:
            if lookups >= BLOCKED_BY_LOOKUPS:
                continue
            lookups += 1
            try:
                refs = [str(ref) for ref in blocked_by(session.issue_ref) or []]
            except IssueNotFound:
                refs = []  # its issue is gone: nothing to be blocked
            except Exception as exc:  # advice only: the overlaps still count
                log.info("tracker blocked-by for %s unavailable: %s", session.pk, exc)
                return out
            cache.set(key, refs, BLOCKED_BY_CACHE_SECONDS)
        for ref in refs:
            blocker = blockers.get(_issue_key(ref))
            if blocker and blocker != session.pk:
                out.setdefault(blocker, set()).add(session.pk)
    return out


def _project_decisions(project: Project, *, now: datetime) -> list[Decision]:
    live = list(_live(project))
    by_id = {s.pk: s for s in live}
    return [
        *_blocking(project, live, by_id, now=now),
        *_stuck(live, now=now),
        *_flaky(project, live, by_id, now=now),
        *_review_comments(project, live, now=now),
        *_reviews_requested(live, now=now),
        *_merge_ready(live, now=now),
    ]


def _blocking(
    project: Project, live: list[Session], by_id: dict[str, Session], *, now: datetime
) -> list[Decision]:
    """Open worker PRs that block other live sessions (the tracker's "blocked by" links, or files
    they share): review and merge them first."""
    out: list[Decision] = []
    blocks = _tracker_blocked(project, live)
    for session in live:
        pr = getattr(session, "pull_request", None)
        if session.kind != Session.Kind.WORKER or pr is None or pr.state != PRState.OPEN:
            continue
        linked = {b for b in blocks.get(session.pk, set()) if b in by_id}
        blocked = linked | {b for b in _overlap_blocked(session, by_id) if b in by_id}
        if blocked:
            names = ", ".join(sorted(blocked))
            via = ""
            if linked:
                issue = session.issue_ref if not session.issue_ref.isdigit() else f"#{session.issue_ref}"
                via = f" (the tracker has {', '.join(sorted(linked))} blocked by its issue {issue})"
            out.append(
                Decision(
                    BLOCKING,
                    session,
                    f"PR #{pr.number} blocks {names}{via}: review and merge it first",
                    _score(BLOCKING, now=now, since=pr.created_at, extra=2.0 * len(blocked)),
                    pr.url or _session_url(session),
                )
            )
    return out


def _stuck(live: list[Session], *, now: datetime) -> list[Decision]:
    """Sessions that wait for a person (the respond zone); the longer, the higher they rank."""
    out: list[Decision] = []
    for session in live:
        if session.zone != Zone.RESPOND:
            continue
        since = session.status_changed_at or session.activity_at or session.created_at
        age = _age(now, since)
        what = session.get_status_display().lower()
        reason = f"{what} for {age}" if age else what
        if session.status_reason:
            reason += f": {session.status_reason}"
        out.append(
            Decision(STUCK, session, reason[:300], _score(STUCK, now=now, since=since), _session_url(session))
        )
    return out


def _flaky(
    project: Project, live: list[Session], by_id: dict[str, Session], *, now: datetime
) -> list[Decision]:
    """Flaky checks: failing on a live PR's head commit after passing on it, or flipped recently on one."""
    out: list[Decision] = []
    flags = list(selectors.flaky_flips(project, now).select_related("pull_request").order_by("detected_at"))
    if flags:
        flag_by_key: dict[tuple[str, str], FlakyCheck] = {}
        for flag in flags:
            flag_by_key.setdefault((flag.name, flag.head_sha), flag)
        seen: set[str | None] = set()
        failing = CheckRun.objects.filter(
            pull_request__session__in=live, name__in={f.name for f in flags},
            head_sha__in={f.head_sha for f in flags}, status="completed", conclusion__in=FAILED_CONCLUSIONS,
        ).select_related("pull_request")  # fmt: skip
        for check in failing:
            pr = check.pull_request
            flipped = flag_by_key.get((check.name, check.head_sha))
            if flipped is None or check.head_sha != pr.head_sha or pr.session_id not in by_id:
                continue
            seen.add(pr.session_id)
            out.append(
                Decision(
                    FLAKY,
                    by_id[pr.session_id],
                    f"check {check.name} fails on PR #{pr.number} but flipped on this commit ({flipped.detail}); "
                    "its agent was told a re-run may pass: re-run it, or fix or quarantine the test",
                    _score(FLAKY, now=now, since=flipped.detected_at, extra=1.0),
                    check.url or _session_url(by_id[pr.session_id]),
                )
            )
        for flag in flags:
            sid = flag.pull_request.session_id if flag.pull_request is not None else None
            if sid in by_id and sid not in seen:
                seen.add(sid)
                out.append(
                    Decision(
                        FLAKY,
                        by_id[sid],
                        f"check {flag.name} is flaky: {flag.detail}; fix or quarantine the test",
                        _score(FLAKY, now=now, since=flag.detected_at),
                        _session_url(by_id[sid]),
                    )
                )
    return out


def _review_comments(project: Project, live: list[Session], *, now: datetime) -> list[Decision]:
    """The review comment that matters most: unresolved, trusted, oldest (one per session)."""
    out: list[Decision] = []
    rules = R.rules_for(project)
    bots_rule = rules.get(R.BOT_REVIEW_COMMENTS)
    trusted_bots = bots_rule.trusted_bots if bots_rule else ()
    for session in live:
        pr = getattr(session, "pull_request", None)
        if pr is None or pr.state != PRState.OPEN:
            continue
        for thread in pr.threads.filter(resolved=False).order_by("created_at", "pk"):
            if not R.is_trusted(
                author=thread.author,
                association=thread.author_association,
                is_bot=thread.is_bot,
                trusted_bots=trusted_bots,
            ):
                continue
            since = thread.created_at or pr.created_at
            where = f"{thread.path}:{thread.line}" if thread.path else f"PR #{pr.number}"
            body = " ".join(thread.body.split())[:120]
            age = _age(now, since)
            out.append(
                Decision(
                    REVIEW,
                    session,
                    f"@{thread.author} on {where}{f' ({age} open)' if age else ''}: “{body}”",
                    _score(REVIEW, now=now, since=since),
                    thread.url or pr.url or _session_url(session),
                )
            )
            break
    return out


def _reviews_requested(live: list[Session], *, now: datetime) -> list[Decision]:
    """PRs that wait for a person's review (the review zone)."""
    out: list[Decision] = []
    for session in live:
        pr = getattr(session, "pull_request", None)
        if session.zone == Zone.REVIEW and pr is not None:
            since = session.status_changed_at or pr.created_at
            age = _age(now, since)
            reason = (
                f"PR #{pr.number} waits for a review{f' ({age})' if age else ''}: {session.status_reason}"
            )
            out.append(
                Decision(
                    REVIEW_REQUESTED,
                    session,
                    reason[:300],
                    _score(REVIEW_REQUESTED, now=now, since=since),
                    pr.url or _session_url(session),
                )
            )
    return out


def _merge_ready(live: list[Session], *, now: datetime) -> list[Decision]:
    """PRs that are approved and green: merge them."""
    out: list[Decision] = []
    for session in live:
        pr = getattr(session, "pull_request", None)
        if session.status == Status.MERGEABLE and pr is not None:
            since = session.status_changed_at
            out.append(
                Decision(
                    MERGE_READY,
                    session,
                    f"PR #{pr.number} is {ready_words(pr.review_decision)}: merge it (`merge {session.pk}`)",
                    _score(MERGE_READY, now=now, since=since),
                    pr.url or _session_url(session),
                )
            )
    return out


def _rank(decisions: list[Decision], limit: int) -> list[Decision]:
    best: dict[str, Decision] = {}
    for decision in decisions:
        if not needs_person(decision.session.zone):
            continue  # the agent is on it, or it waits on CI: not a person's (the pill agrees)
        current = best.get(decision.session.pk)
        if current is None or decision.score > current.score:
            best[decision.session.pk] = decision
    ranked = sorted(best.values(), key=lambda d: (-d.score, d.session.created_at, d.session.pk))
    return ranked[: max(0, limit)]


def decisions_for(
    user, project: Project | None = None, limit: int = 5, *, now: datetime | None = None
) -> list[Decision]:
    """The ``limit`` things that most need a person, over the projects ``user`` may view (or just
    ``project``, if they may view it). Highest score first."""
    now = now or timezone.now()
    projects = selectors.projects_visible_to(user)
    if project is not None:
        projects = projects.filter(pk=project.pk)
    out: list[Decision] = []
    for visible in projects:
        out += _project_decisions(visible, now=now)
    return _rank(out, limit)


def project_decisions(project: Project, *, limit: int = 5, now: datetime | None = None) -> list[Decision]:
    """``decisions_for`` without a person (the orchestrator's digest, the drift watch)."""
    return _rank(_project_decisions(project, now=now or timezone.now()), limit)


def decisions_text(decisions: list[Decision]) -> str:
    if not decisions:
        return "Nothing needs a person right now."
    lines = [f"{i}. {d.as_text()} — {d.url}" for i, d in enumerate(decisions, 1)]
    return "\n".join(lines)


def decisions_digest(project: Project, *, limit: int = 5, now: datetime | None = None) -> str:
    """What needs a person in ``project``, ranked, as plain text (one line each, with its link)."""
    decisions = project_decisions(project, limit=limit, now=now)
    head = f"{project.key}: " + (
        f"{len(decisions)} thing{'s' if len(decisions) != 1 else ''} need{'s' if len(decisions) == 1 else ''} a person"
        if decisions
        else "nothing needs a person right now"
    )
    if not decisions:
        return head + "."
    return head + ":\n" + decisions_text(decisions)
