"""Reads: query helpers used by views, consumers, the CLI and the API."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from importlib import import_module
from pathlib import Path

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from integrations import gitutil
from integrations.base import IntegrationError
from integrations.registry import ConfigurationError, plugin_for
from reactions import rules as R
from reactions.facts import SessionFacts
from reactions.models import ReactionAttempt
from reactions.rules import merge_requirements
from sessions.domain import flaky, lifecycle
from sessions.domain.lifecycle import CheckFact, PRFact, PRState, Status, ThreadFact
from sessions.models import (
    CheckRun,
    Event,
    FlakyCheck,
    Lesson,
    Membership,
    Message,
    Project,
    PullRequest,
    ReviewThread,
    Session,
)


def projects_all() -> QuerySet[Project]:
    return Project.objects.all()


def sessions_for_board(*, project: Project | None = None, include_done: bool = True) -> QuerySet[Session]:
    qs = Session.objects.select_related("project", "pull_request").order_by("-created_at")
    if project is not None:
        qs = qs.filter(project=project)
    if not include_done:
        qs = qs.exclude(zone="done")
    return qs


class NotFound(Exception):
    """A project or session the caller named does not exist. The message says what exists."""


_caller_cwd: ContextVar[Path | None] = ContextVar("ao_caller_cwd", default=None)


@contextmanager
def caller_directory(cwd: Path | None) -> Iterator[None]:
    """A CLI command run in this process for another (``sessions.cli.cli_relay``): "here" is that
    process's working directory, not this one's."""
    token = _caller_cwd.set(cwd)
    try:
        yield
    finally:
        _caller_cwd.reset(token)


def project_resolve(*, key: str | None, cwd: Path | None = None) -> Project:
    """The project named ``key``; without a key, the only project, or with several the one whose
    checkout or session workspace holds ``cwd`` (default: the caller's directory: the current
    one, or the relayed command's, ``caller_directory``), else an error."""
    if key:
        project = Project.objects.filter(key=key).first()
        if project is None:
            known = ", ".join(Project.objects.values_list("key", flat=True)) or "none"
            raise NotFound(f"no project {key!r}; projects: {known}")
        return project
    projects = list(Project.objects.all()[:2])
    if not projects:
        raise NotFound("no projects yet: run `ao init` in your repository, then `ao start`")
    if len(projects) > 1:
        here = project_for_path(cwd or _caller_cwd.get() or Path.cwd())
        if here is not None:
            return here
        known = ", ".join(Project.objects.values_list("key", flat=True))
        raise NotFound(f"several projects ({known}) and none holds this directory: choose one with --project")
    return projects[0]


def project_for_path(path: Path) -> Project | None:
    """The project whose checkout, or one of whose sessions' workspaces, holds ``path`` (the
    innermost when they nest), or None."""
    try:
        path = path.resolve()
    except OSError:
        return None
    roots: list[tuple[Path, int]] = [(Path(p), pk) for pk, p in Project.objects.values_list("pk", "path")]
    roots += [
        (Path(w), pk)
        for pk, w in Session.objects.exclude(workspace_path="").values_list("project_id", "workspace_path")
    ]
    best: tuple[int, int] | None = None  # (depth, project pk)
    for root, pk in roots:
        try:
            root = root.resolve()
        except OSError:
            continue
        if path.is_relative_to(root) and (best is None or len(root.parts) > best[0]):
            best = (len(root.parts), pk)
    return Project.objects.get(pk=best[1]) if best else None


def issue_sessions_live(session: Session) -> list[str]:
    """The ids of the project's other live sessions on ``session``'s issue (none without one)."""
    if not session.issue_ref:
        return []
    return sorted(
        Session.objects.live()
        .filter(project_id=session.project_id, issue_ref=session.issue_ref)
        .exclude(pk=session.pk)
        .values_list("pk", flat=True)
    )


def session_summary(session: Session) -> dict:
    """The stable JSON shape of a session for `ao session ls --json` and `ao status --json`."""
    return {
        "id": session.id,
        "project": session.project.key,
        "kind": session.kind,
        "status": session.status,
        "zone": session.zone,
        "reason": session.status_reason,
        "agent": session.agent,
        "issue": session.issue_ref,
        "title": session.title,
        "branch": session.branch,
        "activity": session.activity,
        "created_at": session.created_at.isoformat(),
    }


# --- who may do what -----------------------------------------------------------------------------
VIEW, OPERATE, ADMIN = "viewer", "operator", "admin"


def role_for(user, project: Project) -> str | None:
    """The user's role in the project (superusers: admin), or None."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    if user.is_superuser:
        return ADMIN
    return Membership.objects.filter(user=user, project=project).values_list("role", flat=True).first()


def can(user, project: Project, need: str) -> bool:
    """Whether the user's role in the project is at least ``need`` (viewer < operator < admin)."""
    role = role_for(user, project)
    return role is not None and _RANK[role] >= _RANK[need]


# Membership.RANK by the role's stored value (what role_for returns and callers pass)
_RANK: dict[str, int] = {role.value: n for role, n in Membership.RANK.items()}


def projects_visible_to(user) -> QuerySet[Project]:
    if user is None or not getattr(user, "is_authenticated", False):
        return Project.objects.none()
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user).distinct()


def signed_in_user(*, user_id: int, session_key: str):
    """The person a browser login still belongs to, read afresh from the database: the active user
    ``user_id`` when the login session ``session_key`` still exists (not logged out, not expired),
    still names that user (not since signed in as someone else) and was made with their current
    password (Django's session hash, checked as on every page: a password change ends the other
    logins); else None. Long-lived connections (websockets, the event stream) ask this again
    every ``AO_ACCESS_RECHECK_SECONDS`` instead of trusting the user they were opened with."""
    if not session_key:
        return None
    data = import_module(settings.SESSION_ENGINE).SessionStore(session_key=session_key).load()
    if str(data.get(SESSION_KEY, "")) != str(user_id):
        return None
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        return None
    session_hash = str(data.get(HASH_SESSION_KEY) or "")
    hashes = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
    if not session_hash or not any(constant_time_compare(session_hash, h) for h in hashes):
        return None
    return user


def checks_passed_on_head(pr: PullRequest) -> frozenset[str]:
    """Names of the checks that passed on the PR's head commit (one query)."""
    return frozenset(
        CheckRun.objects.filter(
            pull_request=pr,
            head_sha=pr.head_sha,
            status="completed",
            conclusion__in=lifecycle.PASSED_CONCLUSIONS,
        ).values_list("name", flat=True)
    )


def pr_facts(pr: PullRequest, *, project: Project) -> PRFact:
    """The status derivation's view of a stored PR, with what "approved and green" requires in its
    project."""
    rule = merge_requirements(project)
    return _pr_fact_of(
        pr,
        required_checks=rule.required_checks,
        passed_checks=checks_passed_on_head(pr) if rule.required_checks else frozenset(),
        require_approval=rule.require_approval,
    )


def _pr_fact_of(pr: PullRequest, **more) -> PRFact:
    """A stored PR's row as the one PR fact type, with ``more`` facts beside its own."""
    return PRFact(
        number=pr.number,
        url=pr.url,
        title=pr.title,
        branch=pr.branch,
        state=pr.state,
        draft=pr.draft,
        head_sha=pr.head_sha,
        mergeable=pr.mergeable,
        conflicts=pr.conflicts,
        behind=pr.behind,
        review_decision=pr.review_decision,
        ci_state=pr.ci_state,
        **more,
    )


# The reaction rule that hands each PR problem to the agent.
HANDED_BY = {
    Status.CI_FAILED: R.CI_FAILED,
    Status.CHANGES_REQUESTED: R.CHANGES_REQUESTED,
    Status.MERGE_CONFLICTS: R.MERGE_CONFLICTS,
}


def agent_handles(session: Session) -> frozenset[Status]:
    """The PR problems (lifecycle.AGENT_HANDLED) the agent handles in this session: its project's
    rule sends them to the agent, and ao has not escalated that rule to people during the current
    status. The rest need a person (lifecycle.zone_for). One query."""
    rules = R.rules_for(session.project)
    sent = {
        status
        for status, rule in HANDED_BY.items()
        if rules[rule].enabled and rules[rule].effective_action == R.SEND
    }
    if sent and session.pk:
        preloaded = getattr(session, "escalated_handed", None)  # agent_handles_preload
        if preloaded is None:
            rows = ReactionAttempt.objects.filter(
                session_id=session.pk, rule__in=[HANDED_BY[s] for s in sent], escalated=True
            )
            preloaded = list(rows.values_list("rule", "escalated_at"))
        since = session.status_changed_at
        gone = {rule for rule, at in preloaded if since is None or (at is not None and at >= since)}
        sent = {status for status in sent if HANDED_BY[status] not in gone}
    return frozenset(sent)


def agent_handles_preload(sessions: list[Session]) -> None:
    """Read what ``agent_handles`` needs for all of ``sessions`` in one query (a sweep's observed
    sessions), kept on each as ``escalated_handed``: the (rule, escalated_at) of its escalated
    PR-problem reactions."""
    by_session: dict[str, list] = {s.pk: [] for s in sessions}
    if not by_session:
        return
    rows = ReactionAttempt.objects.filter(
        session_id__in=list(by_session), rule__in=list(HANDED_BY.values()), escalated=True
    ).values_list("session_id", "rule", "escalated_at")
    for session_id, rule, at in rows:
        by_session[session_id].append((rule, at))
    for session in sessions:
        setattr(session, "escalated_handed", by_session[session.pk])  # noqa: B010 (not a field)


def merge_blockers(session: Session) -> list[str]:
    """Why the session's PR cannot be merged now; empty when it can."""
    pr = getattr(session, "pull_request", None)
    if pr is None:
        return ["no pull request yet"]
    blockers = []
    if pr.state != PRState.OPEN:
        blockers.append(f"the PR is {pr.get_state_display().lower()}")
    if pr.draft:
        blockers.append("the PR is a draft")
    facts = pr_facts(pr, project=session.project)
    for why in (lifecycle.ci_not_green(facts), lifecycle.review_not_approved(facts)):
        if why:
            blockers.append(why)
    if pr.conflicts:
        blockers.append("it conflicts with its base branch")
    if pr.behind:
        blockers.append("it is behind its base branch")
    if pr.mergeable is False and not pr.conflicts:
        blockers.append("the SCM reports it not mergeable")
    elif pr.mergeable is None and not blockers:
        blockers.append("mergeability not computed yet")
    if not blockers and session.status != Status.MERGEABLE:
        blockers.append(f"status is {session.get_status_display().lower()}")
    return blockers


SCM_NAMES = {"github": "GitHub", "gitlab": "GitLab"}


def scm_budgets_exhausted(projects, *, now=None) -> list[dict]:
    """The projects whose SCM API budget is used up (``Project.scm_rate`` as the last sync saw it) until
    a reset still to come: ``{"project", "scm", "reset_at"}`` each, for the board's banner. No queries."""
    from datetime import UTC

    from django.utils.dateparse import parse_datetime

    now = now or timezone.now()
    out = []
    for project in projects:
        rate = project.scm_rate or {}
        if not rate.get("exhausted"):
            continue
        try:
            reset_at = parse_datetime(rate.get("reset_at") or "")
        except (TypeError, ValueError):
            reset_at = None
        if reset_at is not None and timezone.is_naive(reset_at):
            reset_at = timezone.make_aware(reset_at, UTC)
        if reset_at is not None and reset_at <= now:
            continue  # the budget is back; the next sync records it
        scm = SCM_NAMES.get(project.scm, project.scm)
        out.append({"project": project, "scm": scm, "reset_at": reset_at})
    return out


# --- flaky checks (sessions/domain/flaky.py) ------------------------------------------------------------------
def flaky_window_start(now: datetime | None = None) -> datetime:
    return flaky.window_start(now or timezone.now(), settings.AO_FLAKY_CHECK_HOURS)


def flaky_flips(project: Project, now: datetime | None = None) -> QuerySet[FlakyCheck]:
    """Flags backed by evidence: the check passed and failed on one commit (reason ``flip``),
    younger than AO_FLAKY_CHECK_HOURS."""
    return FlakyCheck.objects.filter(
        project=project, reason=FlakyCheck.Reason.FLIP, detected_at__gte=flaky_window_start(now)
    ).exclude(head_sha="")


def is_flaky(project: Project, check_name: str, *, head_sha: str, now: datetime | None = None) -> bool:
    """Whether ``check_name`` both passed and failed on commit ``head_sha`` (a flag younger than
    AO_FLAKY_CHECK_HOURS). Evidence on another commit or another check says nothing about this one."""
    if not head_sha:
        return False
    return (
        flaky_flips(project, now)
        .filter(name=check_name[: flaky.NAME_MAX], head_sha=head_sha[: flaky.SHA_MAX])
        .exists()
    )


def flaky_checks(
    project: Project, *, shas: Iterable[str] | None = None, now: datetime | None = None
) -> set[tuple[str, str]]:
    """The (check, commit) pairs that flipped on their commit, among ``shas`` (all when None)."""
    rows = flaky_flips(project, now)
    if shas is not None:
        wanted = {sha[: flaky.SHA_MAX] for sha in shas if sha}
        if not wanted:
            return set()
        rows = rows.filter(head_sha__in=wanted)
    return set(rows.values_list("name", "head_sha"))


# --- the facts the reactions engine decides on (reactions/facts.py) --------------------------------------
def workspace_remote(project: Project) -> str:
    """The remote the project's worktrees fetch from and push to (the rebase commands name it)."""
    try:
        return plugin_for(project, "scm").workspace_remote(create=False)
    except (IntegrationError, ConfigurationError):
        return "origin"


def base_ref(*, project: Project, repo: Path | str, remote: str | None = None) -> str | None:
    """The ref a session's branch in ``repo`` (the checkout, a worktree of it, or a clone) is
    compared with: the project's default branch as its remote has it, else the local one
    (``gitutil.base_ref``); ``remote`` when the caller already knows it."""
    return gitutil.base_ref(repo, remote=remote or workspace_remote(project), branch=project.default_branch)


def _zone_of(status: str) -> str:
    try:
        return lifecycle.zone_for(Status(status))
    except ValueError:
        return ""


def reaction_facts(session: Session, *, now: datetime) -> SessionFacts:
    """The stored facts of a session, as the reactions engine sees them (a few queries, no writes).
    ``session`` may carry ``pending_messages`` (annotated by ``reactions.session_react``)."""
    return reaction_facts_many([session], now=now)[session.pk]


def reaction_facts_many(sessions: list[Session], *, now: datetime) -> dict[str, SessionFacts]:
    """``reaction_facts`` of several sessions by id, their PRs' head checks and unresolved threads
    read in one query each for all of them (a sweep's reactions: a constant number of queries,
    not a few per session)."""
    with_pr = [pr for s in sessions if (pr := getattr(s, "pull_request", None)) is not None]
    checks: dict[int, list[CheckRun]] = {pr.pk: [] for pr in with_pr}
    threads: dict[int, list] = {pr.pk: [] for pr in with_pr}
    if with_pr:
        heads = {pr.pk: pr.head_sha for pr in with_pr}
        rows = CheckRun.objects.filter(
            pull_request_id__in=list(heads), head_sha__in=set(heads.values())
        ).order_by("name", "pk")
        for check in rows:
            if heads[check.pull_request_id] == check.head_sha:
                checks[check.pull_request_id].append(check)
        open_threads = ReviewThread.objects.filter(pull_request_id__in=list(heads), resolved=False)
        for thread in open_threads.order_by("created_at", "pk"):
            threads[thread.pull_request_id].append(thread)
    # the checks that flipped on their commit, one query per project with failing heads
    failing_heads: dict[int, tuple[Project, set[str]]] = {}
    for s in sessions:
        pr = getattr(s, "pull_request", None)
        if pr is not None and any(c.failed for c in checks[pr.pk]):
            failing_heads.setdefault(s.project_id, (s.project, set()))[1].add(pr.head_sha)
    flipped = {
        project_id: flaky_checks(project, shas=shas, now=now)
        for project_id, (project, shas) in failing_heads.items()
    }
    out = {}
    for s in sessions:
        pr = getattr(s, "pull_request", None)
        out[s.pk] = _reaction_facts(
            s,
            now=now,
            head_checks=checks[pr.pk] if pr is not None else [],
            open_threads=threads[pr.pk] if pr is not None else [],
            flipped=flipped.get(s.project_id, set()),
        )
    return out


def _reaction_facts(
    session: Session, *, now: datetime, head_checks: list, open_threads: list, flipped: set[tuple[str, str]]
) -> SessionFacts:
    pr_row = getattr(session, "pull_request", None)
    pr = None
    if pr_row is not None:
        pr = _pr_fact(session, pr_row, head_checks=head_checks, open_threads=open_threads, flipped=flipped)
    all_done = _all_workers_done(session)
    pending = getattr(session, "pending_messages", None)  # annotated by reactions.session_react
    if pending is None:
        pending = Message.objects.filter(
            session=session, state__in=[Message.State.QUEUED, Message.State.DELIVERED]
        ).count()
    return SessionFacts(
        session_id=session.pk,
        project_key=session.project.key,
        now=now,
        kind=session.kind,
        phase=session.phase,
        runtime_state=session.runtime_state,
        status=session.status,
        zone=session.zone,
        status_reason=session.status_reason,
        status_changed_at=session.status_changed_at,
        activity=session.activity,
        activity_at=session.activity_at,
        activity_summary=session.activity_summary,
        branch=session.branch,
        has_runtime=bool((session.runtime_handle or {}).get("name")),
        pr=pr,
        pending_messages=pending,
        kept_alive=session.kind == Session.Kind.ORCHESTRATOR and session.project.orchestrator_enabled,
        all_done=all_done,
    )


def _pr_fact(
    session: Session,
    pr_row: PullRequest,
    *,
    head_checks: list,
    open_threads: list,
    flipped: set[tuple[str, str]],
) -> PRFact:
    """What the reactions engine knows of the session's PR: its state, the head commit's failing
    checks (flaky ones marked) and passed names, the open threads, and the episodes (of conflicts,
    of review) a reaction is keyed by."""
    # one read of the head commit's checks: the failing ones and the passed names both come from it
    failed = [c for c in head_checks if c.failed]
    # flaky = flipped on this very commit; the agent is still told, with that noted
    flaky_here = {name for name, sha in flipped if sha == pr_row.head_sha[: flaky.SHA_MAX]}
    failing = tuple(
        CheckFact(
            name=c.name,
            conclusion=c.conclusion,
            url=c.url,
            log_excerpt=c.log_excerpt,
            flaky=c.name in flaky_here,
        )
        for c in failed
    )
    passed_checks = frozenset(c.name for c in head_checks if c.passed)
    threads = tuple(
        ThreadFact(
            external_id=t.external_id,
            path=t.path,
            line=t.line,
            author=t.author,
            association=t.author_association,
            body=t.body,
            url=t.url,
            is_bot=t.is_bot,
            review_state=t.review_state,
        )
        for t in open_threads
    )
    episode, remote = "", "origin"
    if pr_row.conflicts:
        began = (
            Event.objects.filter(session=session, kind="pr.conflicts", data__conflicts=True)
            .order_by("-created_at", "-pk")
            .values_list("pk", flat=True)
            .first()
        )
        episode = f"e{began}" if began else ""
        remote = workspace_remote(session.project)
    review_episode = ""
    if _zone_of(session.status) == lifecycle.Zone.REVIEW:
        changed = (
            Event.objects.filter(session=session, kind="review.changed")
            .order_by("-created_at", "-pk")
            .values_list("pk", flat=True)
            .first()
        )
        review_episode = f"e{changed}" if changed else ""
    return _pr_fact_of(
        pr_row,
        base=pr_row.base_branch or session.project.default_branch,
        failing=failing,
        threads=threads,
        conflict_episode=episode,
        review_episode=review_episode,
        remote=remote,
        passed_checks=passed_checks,
    )


def _all_workers_done(session: Session) -> tuple[str, ...]:
    """Every worker of the project, when this one is done and so are all the others; else ()."""
    if session.kind != Session.Kind.WORKER or session.zone != lifecycle.Zone.DONE:
        return ()
    workers = list(
        Session.objects.filter(project_id=session.project_id, kind=Session.Kind.WORKER)
        .order_by("number", "created_at")
        .values_list("pk", "zone")
    )
    if workers and all(zone == lifecycle.Zone.DONE for _, zone in workers):
        return tuple(pk for pk, _ in workers)
    return ()


# --- the learning loop: what workers are told (sessions/watchers/lessons.py decides it) -----------------------
PROMPT_LESSONS_MAX = 20


def lessons_for_prompt(*, project: Project) -> tuple[str, ...]:
    """The accepted worker rules of the project, oldest decision first, for the worker prompt."""
    texts = (
        Lesson.objects.filter(project=project, status=Lesson.State.ACCEPTED, kind=Lesson.Kind.WORKER_RULE)
        .exclude(prompt_text="")
        .order_by("decided_at", "pk")
        .values_list("prompt_text", flat=True)[:PROMPT_LESSONS_MAX]
    )
    return tuple(texts)
