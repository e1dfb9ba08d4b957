"""PR facts: read them from the project's SCM (batched), store them, re-derive, record changes.

Called by the sweep (pull) and by webhook refreshes (push). A transient SCM failure leaves the
last known facts in place, marked stale with the time, and the next sweep tries again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from integrations.base import SCM, IntegrationError, PermanentIntegrationError, TransientIntegrationError
from integrations.gitutil import run_git
from integrations.records import CheckInfo, PullRequestInfo, PullRequestMark, ThreadInfo
from integrations.registry import ConfigurationError, plugin_for
from sessions.core import jobs, realtime, selectors, services
from sessions.domain.lifecycle import FAILED_CONCLUSIONS, CIState, Phase, PRState, ci_summary
from sessions.models import CheckRun, Event, Project, PullRequest, ReviewThread, Session, WebhookDelivery

log = logging.getLogger(__name__)

# A PR counts as opened after its session when its creation time is no more than this before the
# session's: GitHub's times have whole seconds, and the SCM's clock is not ao's.
CLOCK_SKEW = timedelta(seconds=5)
SHA_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
# A project with a webhook delivery this recent has webhooks flowing (pr_sync_plan).
WEBHOOKS_RECENT = timedelta(minutes=10)
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_MAX = timedelta(minutes=10)


@dataclass
class SyncResult:
    synced: list[int] = field(default_factory=list)  # PR numbers read
    opened: list[int] = field(default_factory=list)  # PRs newly linked to a session
    # sessions whose PR facts were recorded (pull_request_record): the caller's flow asks the
    # reactions to look at them (recording asks for nothing)
    recorded: list[str] = field(default_factory=list)
    stale: bool = False
    error: str = ""


def _watched_sessions(project: Project, session_ids: Iterable[str] | None):
    qs = (
        Session.objects.filter(project=project, kind=Session.Kind.WORKER)
        .exclude(branch="")
        .exclude(phase__in=[Phase.CLEANED, Phase.ERRORED, Phase.QUEUED])
        .select_related("project")
    )
    if session_ids is not None:
        qs = qs.filter(pk__in=list(session_ids))
    return list(qs)


def info_from_row(pr: PullRequest) -> PullRequestInfo:
    """The stored facts of a PR in the SCM interface's shape (the ``previous`` a plugin diffs against)."""
    checks = tuple(
        CheckInfo(
            name=c.name,
            source=c.source,
            status=c.status,
            conclusion=c.conclusion,
            url=c.url,
            external_id=c.external_id,
            log_excerpt=c.log_excerpt,
            started_at=c.started_at,
            completed_at=c.completed_at,
        )
        for c in pr.checks.all()
        if c.head_sha == pr.head_sha
    )
    threads = tuple(
        ThreadInfo(
            external_id=t.external_id,
            path=t.path,
            line=t.line,
            author=t.author,
            author_association=t.author_association,
            body=t.body,
            url=t.url,
            resolved=t.resolved,
            is_bot=t.is_bot,
            created_at=t.created_at,
            review_state=t.review_state,
            node_id=t.node_id,
        )
        for t in pr.threads.all()
    )
    return PullRequestInfo(
        number=pr.number,
        branch=pr.branch,
        url=pr.url,
        title=pr.title,
        base_branch=pr.base_branch,
        state=pr.state,
        draft=pr.draft,
        head_sha=pr.head_sha,
        mergeable=pr.mergeable,
        conflicts=pr.conflicts,
        behind=pr.behind,
        review_decision=pr.review_decision,
        checks=checks,
        threads=threads,
    )


def pull_requests_sync(
    *, project: Project, session_ids: Iterable[str] | None = None, complete: bool = False
) -> SyncResult:
    """Read the PRs of the project's sessions (all, or these) and store what changed. The result's
    ``recorded`` names the sessions whose PR facts were stored: the caller asks their reactions.
    Reading all is the SCM's complete read (``SCM.fetch_pull_requests``); ``complete`` asks it for
    these too."""
    result = SyncResult()
    started = timezone.now()  # a full sync's facts are as fresh as its start
    sessions = _watched_sessions(project, session_ids)
    if not sessions:
        return result
    known = {
        pr.session_id: pr
        for pr in PullRequest.objects.filter(session__in=sessions).prefetch_related("checks", "threads")
    }
    scm = plugin_for(project, "scm")
    try:
        without_pr = [s for s in sessions if s.pk not in known]
        since: dict[str, datetime] = {}  # per branch: opened after its earliest session without a PR
        for session in without_pr:
            since[session.branch] = min(since.get(session.branch, session.created_at), session.created_at)
        since = {branch: at - CLOCK_SKEW for branch, at in since.items()}
        found = scm.find_pull_requests(branches=list(since), since=since) if without_pr else {}
        session_for: dict[int, Session] = {}
        for pr in known.values():
            if pr.state == PRState.OPEN or session_ids is not None:
                session_for[pr.number] = next(s for s in sessions if s.pk == pr.session_id)
        previous = {pr.number: info_from_row(pr) for pr in known.values() if pr.number in session_for}
        infos = (
            scm.fetch_pull_requests(
                numbers=sorted(session_for), previous=previous, complete=complete or session_ids is None
            )
            if session_for
            else {}
        )
        # a PR found by its branch comes with its full state already: no second read
        for info, session in _adoptions(project, without_pr, found):
            if info.number not in infos:
                session_for[info.number] = session
                infos[info.number] = info
    except TransientIntegrationError as exc:
        now = timezone.now()
        PullRequest.objects.filter(session__in=sessions, stale_since__isnull=True).update(stale_since=now)
        failures = project.pr_sync_failures + 1
        backoff = min(BACKOFF_BASE * 2 ** (failures - 1), BACKOFF_MAX)
        Project.objects.filter(pk=project.pk).update(
            pr_sync_failures=failures,
            pr_sync_backoff_until=now + backoff,
            pr_sync_error=str(exc)[:500],
            scm_rate=_rate(scm),
        )
        result.stale, result.error = True, str(exc)
        log.warning(
            "PR sync of %s failed (%d in a row), keeping last known facts: %s", project.key, failures, exc
        )
        return result
    _versions_read(project, infos.values())
    # PRs whose facts are what ao stored: only their sync time moves (one statement for all);
    # nothing to record, derive or react to (the sweep re-derives and reacts on its own)
    same = [n for n, info in infos.items() if n in previous and _same_facts(info, previous[n])]
    if same:
        PullRequest.objects.filter(project=project, number__in=same).update(
            synced_at=timezone.now(), stale_since=None
        )
        result.synced += same
    # what the derivation asks of each changed PR's session, read for all of them in one query
    selectors.agent_handles_preload([s for n, s in session_for.items() if n in infos and n not in same])
    for number, info in infos.items():
        session = session_for.get(number)
        if session is None or number in same:
            continue
        created = pull_request_record(project=project, session=session, info=info)
        result.synced.append(number)
        result.recorded.append(session.pk)
        if created:
            result.opened.append(number)
    done: dict[str, object] = {
        "pr_sync_failures": 0,
        "pr_sync_backoff_until": None,
        "pr_sync_error": "",
        "scm_rate": _rate(scm),
    }
    if session_ids is None:  # a full sync restarts the safety interval; partial ones do not
        done["last_pr_sync_at"] = started
    Project.objects.filter(pk=project.pk).update(**done)
    return result


def _same_facts(info: PullRequestInfo, stored: PullRequestInfo) -> bool:
    """``info`` says nothing ``stored`` (``info_from_row``) does not: same state, checks and threads."""

    def facts(i: PullRequestInfo) -> PullRequestInfo:
        return replace(
            i,
            updated_at=None,
            created_at=None,
            opened_by="",
            checks=tuple(sorted(i.checks, key=lambda c: (c.source, c.name, c.external_id))),
            threads=tuple(sorted(i.threads, key=lambda t: t.external_id)),
        )

    return facts(info) == facts(stored)


def _adoptions(
    project: Project, without_pr: list[Session], found: dict[str, PullRequestInfo]
) -> list[tuple[PullRequestInfo, Session]]:
    """Which PR found by branch becomes which session's PR. A session's PR is one opened from its
    branch after the session was created (the SCM already left earlier ones out), not linked to
    another session, not opened by another ao session (when the SCM records who opened it), and,
    while open, whose head is a commit of the session's workspace (when the workspace is here to
    ask). Anything else is taken only by `claim-pr`. Of several sessions on one branch, the
    newest created before the PR was opened gets it."""
    held = set(
        PullRequest.objects.filter(project=project, number__in=[i.number for i in found.values()])
        .exclude(session=None)
        .values_list("number", flat=True)
    )
    out = []
    for branch, info in found.items():
        if info.number in held:
            continue  # another session's PR (it has one; a session without a PR is not it)
        candidates = sorted(
            (s for s in without_pr if s.branch == branch), key=lambda s: s.created_at, reverse=True
        )
        for session in candidates:
            if info.created_at is not None and info.created_at < session.created_at - CLOCK_SKEW:
                continue
            if info.opened_by and info.opened_by != session.pk:
                continue
            if not _head_is_the_sessions(session, info):
                _not_adopted(project, session, info)
                continue
            out.append((info, session))
            break
    return out


def _head_is_the_sessions(session: Session, info: PullRequestInfo) -> bool:
    """An open PR's head commit is one the session's workspace has (its own work, pushed), or
    the session has no commits of its own to compare with. True when that cannot be known here:
    no workspace (yet), one on another host, a closed PR, git unable to answer."""
    if info.state != PRState.OPEN or not info.head_sha or not session.workspace_path:
        return True
    if (session.host or settings.AO_HOST_NAME) != settings.AO_HOST_NAME:
        return True
    workspace = Path(session.workspace_path)
    if not workspace.is_dir():
        return True
    try:
        if SHA_RE.fullmatch(info.head_sha):
            known = run_git(
                ["rev-parse", "--verify", "--quiet", f"{info.head_sha}^{{commit}}"],
                cwd=workspace,
                check=False,
            )
            if known.returncode != 1:
                return True  # the session's repository has the commit (or git could not say)
        # against the base the worktree was made from (the remote's), not a stale local branch
        base = selectors.base_ref(project=session.project, repo=workspace)
        if base is None:
            return True
        own = run_git(
            # --end-of-options: the branches are data, never options (a branch "--output=F" wrote F)
            ["rev-list", "--count", "--end-of-options", f"refs/heads/{session.branch}", f"^{base}"],
            cwd=workspace,
            check=False,
        )
    except IntegrationError:
        return True
    # the session made commits, and the PR's head is none of them: someone else's work
    return not (own.returncode == 0 and own.stdout.strip() not in ("", "0"))


def _not_adopted(project: Project, session: Session, info: PullRequestInfo) -> None:
    """Say once on the session's timeline why a PR on its branch is not taken as its PR."""
    if Event.objects.filter(session=session, kind="pr.not_adopted", data__number=info.number).exists():
        return
    services.event_record(
        project=project,
        session=session,
        kind="pr.not_adopted",
        summary=(
            f"PR #{info.number} on {info.branch} is not taken as this session's PR: its head "
            f"{info.head_sha[:7]} is not a commit of the session's workspace "
            f"(POST /api/v1/sessions/{session.pk}/claim-pr links it)"
        ),
        data={"number": info.number, "sha": info.head_sha},
    )


def session_pull_request_find(*, session: Session) -> bool | None:
    """Ask the SCM now whether the session has a PR (found by its branch and adopted as a sync
    does): True or False; None when the SCM could not answer. Called before ao tells an agent
    there is no PR, so a missed webhook or a sync not yet due never makes that message false.
    A PR found is stored; the reaction that asked looks at it again (it asks for that itself)."""
    if PullRequest.objects.filter(session=session).exists():
        return True
    try:
        result = pull_requests_sync(project=session.project, session_ids=[session.pk])
    except (ConfigurationError, IntegrationError) as exc:
        log.warning("checking %s for a PR failed: %s", session.pk, exc)
        return None
    if result.stale:
        return None
    return PullRequest.objects.filter(session=session).exists()


def _session_pull_request_reread(session: Session, *, why: str) -> bool:
    """Read the session's PR now, the complete way, and store what changed: whether it was read.
    What the read found is stored; the reaction that asked looks again at a changed PR itself."""
    try:
        result = pull_requests_sync(project=session.project, session_ids=[session.pk], complete=True)
    except (ConfigurationError, IntegrationError) as exc:
        log.warning("checking %s's %s failed: %s", session.pk, why, exc)
        return False
    return not result.stale


def session_threads_open(*, session: Session, thread_ids: Iterable[str]) -> bool | None:
    """Ask the SCM now whether the review threads ``thread_ids`` of the session's PR are all still
    unresolved: True or False; None when the SCM could not answer. Called before ao acts again on
    threads it told the agent about (a retry, an escalation to a person): a thread's resolution is
    in no conditional read (GitHub's REST API does not show it and it does not move the PR), so
    without a webhook only the complete read sees it."""
    wanted = set(thread_ids)
    if not _session_pull_request_reread(session, why="review threads"):
        return None
    still = ReviewThread.objects.filter(
        pull_request__session=session, resolved=False, external_id__in=wanted
    ).count()
    return still == len(wanted)


def session_checks_failing(*, session: Session, sha: str, names: Iterable[str]) -> bool | None:
    """Ask the SCM now whether the checks ``names`` still fail on ``sha``, the PR's head: True or
    False (a new head, a check re-run and running or passed); None when the SCM could not answer.
    Called before ao tells the agent again that CI fails (a retry, an escalation): a person
    re-running a job moves neither the PR nor its head, so without a webhook the probe sees it
    only at its next look at the runs (5 minutes)."""
    wanted = set(names)
    if not _session_pull_request_reread(session, why="checks"):
        return None
    pr = PullRequest.objects.filter(session=session).only("pk", "head_sha").first()
    if pr is None or pr.head_sha != sha:
        return False
    failing = set(
        CheckRun.objects.filter(
            pull_request=pr,
            head_sha=sha,
            name__in=wanted,
            status="completed",
            conclusion__in=FAILED_CONCLUSIONS,
        ).values_list("name", flat=True)
    )
    return failing == wanted


def _rate(scm) -> dict:
    status = scm.rate_status()
    if status is None:
        return {}
    return {
        "limit": status.limit,
        "remaining": status.remaining,
        "reset_at": status.reset_at.isoformat() if status.reset_at else None,
        "exhausted": status.exhausted,
    }


def pull_request_record(*, project: Project, session: Session, info: PullRequestInfo) -> bool:
    """Store one PR's facts, its checks and threads; record what changed; re-derive. True if new.

    It asks no reactions: the flow that records a PR's facts asks them to look at its session
    (``reactions.services.session_react_after_commit``).

    A statement or two per kind of row, whatever the PR's number of checks and threads: its stored
    checks (of this commit) and threads are read at once, new ones inserted at once, changed ones
    updated at once, and its timeline entries inserted together."""
    now = timezone.now()
    with transaction.atomic():
        stored = PullRequest.objects.select_for_update().filter(project=project, number=info.number).first()
        created = stored is None
        before = None if stored is None else _snapshot(stored)
        pr = PullRequest(project=project, number=info.number) if stored is None else stored
        pr.session = session
        pr.url, pr.title, pr.branch, pr.base_branch = (
            info.url,
            info.title[:500],
            info.branch,
            info.base_branch,
        )
        pr.state, pr.draft, pr.head_sha = info.state, info.draft, info.head_sha
        pr.mergeable, pr.conflicts, pr.behind = info.mergeable, info.conflicts, info.behind
        pr.review_decision = info.review_decision
        pr.synced_at, pr.stale_since = now, None
        pr.ci_state = ci_summary([(c.status, c.conclusion) for c in info.checks])
        if before is None or _snapshot(pr) != before:  # a new PR fact (it can end needs_input/stuck)
            pr.facts_changed_at = now
        pr.save()
        # a new PR has no rows yet: nothing to read
        checks = [] if created else list(CheckRun.objects.filter(pull_request=pr, head_sha=info.head_sha))
        threads = [] if created else list(ReviewThread.objects.filter(pull_request=pr))
        # Flaky checks: before the stored results for this commit are overwritten, flag checks that
        # flipped failed <-> passed on it (sessions/domain/flaky.py; never raises).
        services.check_flips_record(
            pr=pr, info=info, stored={(c.source, c.name): (c.status, c.conclusion) for c in checks}
        )
        _record_checks(pr, info, checks, now)
        _record_threads(pr, info.threads, threads, now)
        after = _snapshot(pr)
        if before != after:  # the card and the session page show facts that make no timeline entry
            session_id = session.pk
            transaction.on_commit(lambda: realtime.card_changed(session_id))
        # its facts as stored now (its project with them, one query); its PR is the row at hand
        session.refresh_from_db(from_queryset=Session.objects.select_related("project"))
        session.pull_request = pr
        # the timeline entries of what changed, and the status change they make, in one INSERT
        entries = list(_changes(before, after, pr, info))
        services.session_rederive(session=session, events=entries)
        services.events_record(project=project, session=session, entries=entries)
    return created


CHECK_FIELDS = ("status", "conclusion", "url", "log_excerpt", "external_id", "started_at", "completed_at")
THREAD_FIELDS = ("path", "line", "author", "author_association", "body", "url", "resolved", "is_bot",
                 "created_at", "review_state", "node_id")  # fmt: skip


def _record_checks(pr: PullRequest, info: PullRequestInfo, stored: list[CheckRun], now: datetime) -> None:
    """Store the commit's checks: one row per (source, name), the last reported wins. ``stored``:
    the commit's rows as read under the PR's lock."""
    reported = [
        (
            (check.source, check.name[:255]),
            {
                "status": check.status,
                "conclusion": check.conclusion,
                "url": check.url[:1000],
                "log_excerpt": check.log_excerpt,
                "external_id": check.external_id[:64],
                "started_at": check.started_at,
                "completed_at": check.completed_at,
            },
        )
        for check in info.checks
    ]
    _store_rows(
        CheckRun,
        {(c.source, c.name): c for c in stored},
        reported,
        lambda key, values: CheckRun(
            pull_request=pr, head_sha=info.head_sha, source=key[0], name=key[1], **values
        ),
        CHECK_FIELDS,
        now,
    )


def _record_threads(
    pr: PullRequest, threads: Iterable[ThreadInfo], stored: list[ReviewThread], now: datetime
) -> None:
    """Store the PR's threads, one row per external id (the last reported wins). ``stored``: the
    PR's rows as read under its lock. A review's text the SCM no longer reports is no longer the
    reviewer's latest word: it is resolved."""
    reported = [
        (
            thread.external_id[:128],
            {
                "path": thread.path[:1024],
                "line": thread.line,
                "author": thread.author[:255],
                "author_association": thread.author_association[:32],
                "body": thread.body,
                "url": thread.url[:1000],
                "resolved": thread.resolved,
                "is_bot": thread.is_bot,
                "created_at": thread.created_at,
                "review_state": thread.review_state[:32],
                "node_id": thread.node_id[:128],
            },
        )
        for thread in threads
    ]
    _store_rows(
        ReviewThread,
        {t.external_id: t for t in stored},
        reported,
        lambda key, values: ReviewThread(pull_request=pr, external_id=key, **values),
        THREAD_FIELDS,
        now,
        unreported=lambda row: _assign(row, {"resolved": True}) if row.review_state else False,
    )


def _store_rows(
    model, rows: dict, reported: list[tuple], make, fields: tuple[str, ...], now, unreported=None
) -> None:
    """Store ``reported`` (key, values) pairs over ``rows`` (the stored rows by key): one INSERT for
    the new, one UPDATE for the changed; an unchanged row is not written (its ``updated_at`` is when
    its facts last changed). ``unreported(row)`` may change a stored row the SCM no longer reports
    (True: it changed)."""
    new, changed = {}, {}
    for key, values in reported:
        row = rows.get(key)
        if row is None:
            rows[key] = new[key] = make(key, values)
        elif _assign(row, values) and key not in new:
            changed[key] = row
    if unreported is not None:
        keys = {key for key, _ in reported}
        changed.update((key, row) for key, row in rows.items() if key not in keys and unreported(row))
    if new:
        model.objects.bulk_create(new.values())
    if changed:
        for row in changed.values():
            row.updated_at = now
        model.objects.bulk_update(changed.values(), [*fields, "updated_at"])


def _assign(row, values: dict) -> bool:
    """Set ``values`` on ``row``; True if any differed."""
    differ = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            differ = True
    return differ


def _snapshot(pr: PullRequest) -> dict:
    return {
        "state": pr.state,
        "draft": pr.draft,
        "head_sha": pr.head_sha,
        "ci_state": pr.ci_state,
        "review_decision": pr.review_decision,
        "conflicts": pr.conflicts,
        "mergeable": pr.mergeable,
    }


def _changes(before: dict | None, after: dict, pr: PullRequest, info: PullRequestInfo):
    """Timeline entries for what changed between two snapshots of a PR."""
    label = f"PR #{pr.number}"
    if before is None:
        yield "pr.opened", f"{label} opened: {pr.title}", {"number": pr.number, "url": pr.url}
        before = {"state": "open", "draft": False, "head_sha": "", "ci_state": CIState.NONE,
                  "review_decision": "none", "conflicts": False, "mergeable": None}  # fmt: skip
    if after["state"] != before["state"]:
        yield f"pr.{after['state']}", f"{label} {after['state']}", {"number": pr.number}
    if after["head_sha"] != before["head_sha"] and before["head_sha"]:
        yield "pr.pushed", f"{label}: new commit {after['head_sha'][:7]}", {"sha": after["head_sha"]}
    if after["ci_state"] != before["ci_state"] or (
        after["ci_state"] == CIState.FAILING and after["head_sha"] != before["head_sha"]
    ):
        failed = sorted(
            c.name for c in info.checks if c.status == "completed" and c.conclusion in FAILED_CONCLUSIONS
        )
        detail = f": {', '.join(failed)}" if failed else ""
        yield (
            "ci.changed",
            f"{label} CI {after['ci_state']}{detail} ({after['head_sha'][:7]})",
            {"ci": after["ci_state"], "failed": failed, "sha": after["head_sha"]},
        )
    if after["review_decision"] != before["review_decision"]:
        yield (
            "review.changed",
            f"{label} review: {after['review_decision'].replace('_', ' ')}",
            {"review": after["review_decision"]},
        )
    if after["conflicts"] != before["conflicts"]:
        yield (
            "pr.conflicts",
            f"{label} {'conflicts with' if after['conflicts'] else 'no longer conflicts with'} {pr.base_branch}",
            {"conflicts": after["conflicts"]},
        )


ALL = None  # a plan that reads every watched PR


def pr_sync_plan(*, project: Project, now: datetime | None = None) -> list[str] | None:
    """What this sweep should read from the SCM: ALL (None), some session ids, or nothing ([]).

    - backing off after failures: nothing;
    - the safety interval is up: ALL (`AO_PR_SYNC_IDLE_INTERVAL`, or `AO_PR_SYNC_WEBHOOK_INTERVAL`
      while webhooks are arriving for the project; both 60 s by default: a conflict or a missed
      delivery is seen within a minute). "Up" means waiting for the next sweep would overrun it
      by more than half a sweep interval, so full syncs stay that far apart whatever the ticks'
      jitter;
    - otherwise open PRs whose mergeability the SCM had not computed yet (GitHub computes it
      after a push to the head or the base), and, without recent webhooks, sessions still without
      a PR or with CI pending: unchanged PRs cost nothing between safety syncs. With webhooks,
      those changes are pushed.
    """
    now = now or timezone.now()
    if project.pr_sync_backoff_until is not None and now < project.pr_sync_backoff_until:
        return []
    hooked = WebhookDelivery.objects.filter(project=project, received_at__gte=now - WEBHOOKS_RECENT).exists()
    interval = settings.AO_PR_SYNC_WEBHOOK_INTERVAL if hooked else settings.AO_PR_SYNC_IDLE_INTERVAL
    sweep = project.sweep_interval or settings.AO_SWEEP_INTERVAL
    last = project.last_pr_sync_at
    if last is None or now - last >= timedelta(seconds=max(0.0, interval - sweep / 2)):
        return ALL
    sessions = Session.objects.filter(project=project, kind=Session.Kind.WORKER, phase=Phase.RUNNING).exclude(
        branch=""
    )
    wanted = Q(pull_request__state=PRState.OPEN, pull_request__mergeable__isnull=True)
    if not hooked:
        wanted |= Q(pull_request__isnull=True) | Q(pull_request__ci_state=CIState.PENDING)
    return list(sessions.filter(wanted).values_list("pk", flat=True))


def _due(at: str | None, interval: float, now: datetime, sweep: float) -> bool:
    """``interval`` seconds are up since ``at`` (an ISO time), with the same half-sweep allowance
    as the safety sync."""
    if not at:
        return True
    return now - datetime.fromisoformat(at) >= timedelta(seconds=max(0.0, interval - sweep / 2))


def _probe_key(project: Project) -> str:
    """Where a project's change-probe state (ETags, marks) is kept: the cache, shared by every
    worker in scale-out (Redis) and surviving sweeps; its name follows the SCM's settings, so a
    project pointed at another repository starts afresh."""
    scm = json.dumps([project.scm, project.repo, (project.plugin_settings or {}).get("scm")], sort_keys=True)
    return f"ao:pr-probe:{project.pk}:{hashlib.sha256(scm.encode()).hexdigest()[:16]}"


def _versions_key(project: Project) -> str:
    return f"ao:pr-read:{project.pk}"


def _versions_read(project: Project, infos: Iterable[PullRequestInfo]) -> None:
    """Remember the SCM's last-update time of each PR as read (GitHub's clock, not ao's), so the
    change probe does not read again a version a webhook's refresh (or any read) already got."""
    from django.core.cache import cache

    read = {str(i.number): i.updated_at.isoformat() for i in infos if i.updated_at is not None}
    if read:
        cache.set(_versions_key(project), {**(cache.get(_versions_key(project)) or {}), **read}, timeout=None)


def _probe_inputs(
    project: Project,
) -> tuple[dict[int, PullRequestMark], dict[int, str], dict[str, list[str]]]:
    """The watched PRs as marks (with the head's unfinished checks), their sessions, and the
    watched branches without a PR with their sessions: three queries, whatever the count."""
    watched = (
        Session.objects.filter(project=project, kind=Session.Kind.WORKER)
        .exclude(branch="")
        .exclude(phase__in=[Phase.CLEANED, Phase.ERRORED, Phase.QUEUED])
    )
    rows = list(
        PullRequest.objects.filter(session__in=watched)
        .exclude(state=PRState.MERGED)
        .values_list("pk", "number", "head_sha", "state", "base_branch", "ci_state", "session_id")
    )
    running = [r[0] for r in rows if r[3] == PRState.OPEN and r[5] in (CIState.PENDING, CIState.NONE)]
    checks: dict[tuple[int, str], list[CheckInfo]] = {}  # (PR, commit) -> its checks, while CI runs
    for pr_id, sha, name, source, status, url, external_id in CheckRun.objects.filter(
        pull_request_id__in=running
    ).values_list("pull_request_id", "head_sha", "name", "source", "status", "url", "external_id"):
        checks.setdefault((pr_id, sha), []).append(
            CheckInfo(name=name, source=source, status=status, url=url, external_id=external_id)
        )
    from django.core.cache import cache

    versions = cache.get(_versions_key(project)) or {}
    marks, session_of = {}, {}
    for pk, number, head, state, base, ci, session_id in rows:
        seen = versions.get(str(number))
        marks[number] = PullRequestMark(number=number, head_sha=head, state=state, base_branch=base,
                                        ci_state=ci, checks=tuple(checks.get((pk, head), ())),
                                        updated_at=datetime.fromisoformat(seen) if seen else None)  # fmt: skip
        session_of[number] = session_id
    without: dict[str, list[str]] = {}
    for session_pk, branch in watched.filter(pull_request__isnull=True).values_list("pk", "branch"):
        without.setdefault(branch, []).append(session_pk)
    return marks, session_of, without


def pull_requests_sweep(*, project: Project, now: datetime | None = None) -> SyncResult | None:
    """The sweep's PR read: detect change before paying for it. None when nothing was read.

    An SCM with a change probe (``SCM.pull_request_changes``: GitHub's ETag-guarded REST reads,
    where a 304 costs no quota) is asked every sweep which watched PRs changed, and only those
    are read (one batched read); while webhooks arrive for the project they bring the changes,
    and the probe runs every `AO_PR_SYNC_WEBHOOK_INTERVAL` only, to catch a missed delivery.
    Base branches are looked at every `AO_PR_SYNC_BASE_INTERVAL`; everything is read every
    `AO_PR_SYNC_FULL_INTERVAL`, and whenever the probe has nothing to compare with (its kept
    state is gone). The probe's state is kept only once what it reported was read, so a failed
    read is reported again. Other SCMs follow ``pr_sync_plan``."""
    from django.core.cache import cache

    now = now or timezone.now()
    if project.pr_sync_backoff_until is not None and now < project.pr_sync_backoff_until:
        return None
    scm = plugin_for(project, "scm")
    if type(scm).pull_request_changes is SCM.pull_request_changes:
        plan = pr_sync_plan(project=project, now=now)
        return pull_requests_sync(project=project, session_ids=plan) if plan is ALL or plan else None
    sweep = project.sweep_interval or settings.AO_SWEEP_INTERVAL
    hooked = WebhookDelivery.objects.filter(project=project, received_at__gte=now - WEBHOOKS_RECENT).exists()
    key = _probe_key(project)
    kept = cache.get(key) or {}
    last = project.last_pr_sync_at
    full = last is None or now - last >= timedelta(
        seconds=max(0.0, settings.AO_PR_SYNC_FULL_INTERVAL - sweep / 2)
    )
    # PRs whose mergeability GitHub had not computed yet at the last read
    ids = set(
        Session.objects.filter(project=project, kind=Session.Kind.WORKER, phase=Phase.RUNNING)
        .filter(pull_request__state=PRState.OPEN, pull_request__mergeable__isnull=True)
        .values_list("pk", flat=True)
    )
    keep = None
    if full or not hooked or _due(kept.get("at"), settings.AO_PR_SYNC_WEBHOOK_INTERVAL, now, sweep):
        marks, session_of, without = _probe_inputs(project)
        bases = _due(kept.get("bases_at"), settings.AO_PR_SYNC_BASE_INTERVAL, now, sweep)
        try:
            changes = scm.pull_request_changes(
                prs=marks, branches=sorted(without), state=kept.get("state") or {}, bases=bases
            )
        except TransientIntegrationError as exc:
            log.warning("PR change probe of %s failed, trying again next sweep: %s", project.key, exc)
            return SyncResult(stale=True, error=str(exc))
        if changes is not None:
            full = full or changes.everything
            ids |= {session_of[n] for n in changes.numbers if n in session_of}
            ids |= {pk for branch in changes.branches for pk in without.get(branch, ())}
            keep = {
                "state": changes.state,
                "at": now.isoformat(),
                "bases_at": now.isoformat() if bases else kept.get("bases_at"),
            }
    result = None
    if full or ids:
        result = pull_requests_sync(project=project, session_ids=ALL if full else sorted(ids))
    if keep is not None and (result is None or not result.stale):
        cache.set(key, keep, timeout=None)
    return result


def sessions_for_refs(
    *,
    project: Project,
    numbers: Iterable[int] = (),
    branches: Iterable[str] = (),
    shas: Iterable[str] = (),
    bases: Iterable[str] = (),
) -> list[str]:
    """Session ids a webhook's PR numbers, head branches or head SHAs point at, and those whose
    open PR is based on one of ``bases`` (a pushed branch)."""
    numbers, branches, shas, bases = set(numbers), set(branches), set(shas), set(bases)
    if not (numbers or branches or shas or bases):
        return []
    query = Q()
    if numbers:
        query |= Q(pull_request__number__in=numbers)
    if branches:
        query |= Q(branch__in=branches)
    if shas:
        query |= Q(pull_request__head_sha__in=shas)
    if bases:
        query |= Q(pull_request__base_branch__in=bases, pull_request__state=PRState.OPEN)
    return list(Session.objects.filter(project=project).filter(query).values_list("pk", flat=True).distinct())


def session_pull_request_open(
    *, session: Session, title: str = "", body: str = "", force: bool = False
) -> dict:
    """Open (or update) the PR for a session's branch, for SCMs where ao opens PRs (`local`).

    Pushes the branch from the session's workspace to the SCM's remote first. Raises
    PermanentIntegrationError when the SCM has agents open PRs with its own tools (GitHub: gh).
    """
    scm = plugin_for(session.project, "scm")
    if not session.branch or not session.workspace_path:
        raise PermanentIntegrationError(f"{session.id} has no branch or workspace")
    scm.push_branch(source=Path(session.workspace_path), branch=session.branch, force=force)
    # The issue title is only a first title: re-running `ao pr create` without --title keeps the
    # one the PR has (perhaps the agent's own).
    has_pr = PullRequest.objects.filter(session=session, state=PRState.OPEN).exists()
    row, created = scm.open_pull_request(
        branch=session.branch,
        title=title or ("" if has_pr else session.issue_title or session.branch),
        body=body,
        created_by=session.id,
        claimed=has_pr,  # its open PR (opened or claimed) is the branch's open PR
    )
    result = pull_requests_sync(project=session.project, session_ids=[session.id])
    for session_id in result.recorded:  # an operator's action: it asks the reactions about what it stored
        services.session_react_after_commit(session_id=session_id)
    return {"number": row.number, "created": created, "branch": session.branch, "title": row.title, "url": ""}


def _started_at(session: Session) -> str | None:
    """The commit the session's workspace started at (its ``workspace.created`` entry), if known."""
    data = (
        Event.objects.filter(session=session, kind="workspace.created")
        .order_by("-pk")
        .values_list("data", flat=True)
        .first()
    )
    return data.get("head") if isinstance(data, dict) else None


def scm_housekeeping(*, project: Project) -> list[str]:
    """Once per sweep, for SCMs where ao hosts PRs and CI: open PRs for session branches that were
    pushed without one, and schedule checks for new heads. Returns notes of what it did."""
    scm = plugin_for(project, "scm")
    notes = []
    pushed = set(scm.detect_pushed_branches())
    if pushed:
        for session in _watched_sessions(project, None):
            if session.branch in pushed and not PullRequest.objects.filter(session=session).exists():
                if scm.branch_sha(session.branch) == _started_at(session):
                    continue  # pushed before the session took it up (`--branch`): none of its work yet
                row, _created = scm.open_pull_request(
                    branch=session.branch, title=session.issue_title or session.branch, created_by=session.id
                )
                notes.append(f"opened PR #{row.number} for {session.id} (pushed {session.branch})")
    for number in scm.checks_due():
        jobs.enqueue(jobs.CHECKS_RUN, args=[project.pk, number])
        notes.append(f"checks scheduled for PR #{number}")
    return notes
