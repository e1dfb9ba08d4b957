"""Spawning a session, on the request side (dashboard, API, CLI): validate, fetch the issue, apply
admission control (the project's and the host's caps, serialised by ``admission_lock``) and write
the session row; then its start is enqueued on the agent host. Sessions queued over a cap are
admitted when a slot frees up; starts that never ran are recovered.
"""

from __future__ import annotations

import contextlib
import hashlib
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.utils import timezone

from integrations import gitutil
from integrations.base import IntegrationError, IssueNotFound, PermanentIntegrationError
from integrations.registry import ConfigurationError, plugin_for
from sessions.agents.plugins import agent_for, context_for, runtime_handle_for
from sessions.agents.starting import issue_keep, start_failed
from sessions.core import audit, hosts, jobs, services, usage
from sessions.core import secrets as secrets_store  # model credentials: the project's or a person's own
from sessions.core.hosts import live_sessions
from sessions.core.jobs import host_queue
from sessions.domain.lifecycle import Phase
from sessions.domain.text import clean_text
from sessions.models import Actor, Project, Session


class SpawnRefused(Exception):
    """The spawn was not accepted (over the cap with refusal configured, bad input)."""


class IssueMissing(SpawnRefused):
    """The issue named does not exist in the project's tracker (and the caller did not say to go
    ahead without it): a typo must not start an agent on nothing."""


def _host_lock_key(host: str) -> int:
    """A PostgreSQL advisory-lock key (signed 64-bit) standing for one agent host."""
    return int.from_bytes(
        hashlib.sha256(f"ao.admission.host:{host}".encode()).digest()[:8], "big", signed=True
    )


def admission_lock(*, project: Project, host: str) -> None:
    """Serialise admission decisions: call inside the transaction that then counts
    (``admission_check``) and creates or admits the session, so that concurrent spawns cannot
    both see room under a cap. PostgreSQL: the project's row lock, then a transaction-scoped
    advisory lock standing for the host (always in this order). SQLite: the IMMEDIATE
    transaction already holds the database's write lock from its BEGIN."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("admission_lock must run inside the transaction that creates the session")
    if connection.vendor == "sqlite":
        return
    list(Project.objects.select_for_update().filter(pk=project.pk).values_list("pk", flat=True))
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_host_lock_key(host)])


def admission_check(*, project: Project, host: str) -> str:
    """Empty when a new session may start now, else the reason it may not. Only a hint unless
    called after ``admission_lock`` in the transaction that creates or admits the session."""
    if project.max_sessions is not None:
        count = live_sessions(project=project).count()
        if count >= project.max_sessions:
            return f"project {project.key} has {count} live sessions (cap {project.max_sessions})"
    host_count, host_cap = live_sessions(host=host).count(), hosts.host_cap(host)
    if host_count >= host_cap:
        return f"host {host} runs {host_count} live sessions (cap {host_cap})"
    return ""


# --- spawn (request side) ----------------------------------------------------------------------
def session_spawn(
    *,
    project: Project,
    issue_ref: str | None = None,
    prompt: str | None = None,
    agent: str | None = None,
    branch: str | None = None,
    by=None,
    actor: str = Actor.USER,
    actor_name: str = "",
    missing_issue_ok: bool = False,
    host: str | None = None,
) -> Session:
    """Accept a spawn request: validate, fetch the issue, admit or queue, write the session.

    The start itself runs in the background on the agent host. Raises SpawnRefused,
    ConfigurationError or PermanentIntegrationError without writing anything; IssueMissing (a
    SpawnRefused) when the tracker does not know ``issue_ref``, unless ``missing_issue_ok`` (then
    the agent starts without issue context and the timeline says so).
    """
    agent_key, configured_model, task, issue_ref = _spawn_inputs(
        project=project, agent=agent, prompt=prompt, branch=branch, issue_ref=issue_ref
    )
    credentials, credentials_of, host = _spawn_allowance(project=project, by=by, host=host)
    issue, issue_note = _spawn_issue(project=project, issue_ref=issue_ref, missing_issue_ok=missing_issue_ok)

    if branch:
        taken = branch_refusal(project=project, branch=branch)
        if taken:
            raise SpawnRefused(f"not spawned: {taken}")

    with transaction.atomic():
        admission_lock(project=project, host=host)  # count and create atomically
        rival = _session_on_branch(project=project, branch=branch) if branch else None
        if rival is not None:  # spawned meanwhile on the same branch: its worktree is not made yet
            raise SpawnRefused(
                f"not spawned: branch {branch} is taken by session {rival.pk} ({rival.phase}); "
                + _instead(rival)
            )
        reason = admission_check(project=project, host=host)
        if reason and project.refuse_over_cap:
            raise SpawnRefused(f"not spawned: {reason}")
        session = services.session_create(
            project=project,
            issue_ref=issue_ref or "",
            issue_title=issue.title if issue else "",
            prompt=task,
            agent=agent_key,
            by=by,
        )
        session.issue_url = issue.url if issue else ""
        session.host = host
        session.branch = branch or ""
        session.model = configured_model[:128]  # until the agent says which model it runs
        session.phase = Phase.QUEUED if reason else Phase.SPAWNING
        session.runtime_handle = {"runtime": project.runtime}
        session.credentials, session.credentials_of = credentials, credentials_of
        session.save(
            update_fields=[
                *("issue_url", "host", "branch", "model", "phase", "runtime_handle", "updated_at"),
                *("credentials", "credentials_of"),
            ]
        )
        _spawn_record(
            project=project,
            session=session,
            issue_ref=issue_ref,
            by=by,
            issue=issue,
            issue_note=issue_note,
            reason=reason,
            actor=actor,
        )
        if not reason:
            _enqueue_start(session)
    return session


def _spawn_inputs(
    *, project: Project, agent: str | None, prompt: str | None, branch: str | None, issue_ref: str | None
) -> tuple[str, str, str, str | None]:
    """The request's checks: the agent, the prompt, the branch name and the issue reference.
    Returns the agent key, its configured model, the prompt and the issue reference, cleaned."""
    agent_key = agent or project.agent
    # unknown agent or bad settings: ConfigurationError, nothing written
    configured_model = getattr(agent_for(project, agent_key).config, "model", None) or ""
    task = clean_text(prompt or "", max_chars=settings.AO_MAX_PROMPT_CHARS, what="prompt", allow_empty=True)
    if branch:
        try:
            gitutil.validate_branch_name(branch)
        except ValueError as exc:
            raise SpawnRefused(str(exc)) from exc
    if issue_ref is not None:
        issue_ref = issue_ref.strip().lstrip("#")
        if not issue_ref or len(issue_ref) > 100 or any(c.isspace() for c in issue_ref):
            raise SpawnRefused(f"{issue_ref!r} is not an issue reference")
    return agent_key, configured_model, task, issue_ref


# --- an explicit branch: one session per branch --------------------------------------------------
def branch_refusal(*, project: Project, branch: str) -> str:
    """Why a new session cannot have ``branch``, or "". git allows a branch in one worktree only:
    one checked out in the project's checkout or in a session's worktree (live, or killed with its
    worktree kept) would fail the start with git's "already checked out". Reads the checkout's
    worktrees when it is on this host (the workspace plugin checks again on the agent host)."""
    repo = Path(project.path)
    if repo.is_dir():
        try:
            where = gitutil.checked_out_at(repo, branch, timeout=30)
        except IntegrationError:
            where = None  # not a repository here: the start says so
        if where is not None:
            return f"branch {branch} is checked out in {where} ({_whose_worktree(project, where)}"
    rival = _session_on_branch(project=project, branch=branch)
    if rival is not None:
        return f"branch {branch} is taken by session {rival.pk} ({rival.phase}); {_instead(rival)}"
    return ""


def _session_on_branch(*, project: Project, branch: str) -> Session | None:
    """A session of the project that runs on ``branch`` or is about to (its worktree may not exist
    yet). An ended session keeps the branch's name on its row without holding it: its worktree,
    when kept, is what ``branch_refusal`` finds."""
    return (
        Session.objects.filter(project=project, branch=branch)
        .filter(phase__in=[Phase.QUEUED, Phase.SPAWNING, Phase.RUNNING])
        .order_by("created_at")
        .first()
    )


def _whose_worktree(project: Project, where: Path) -> str:
    """Whose checkout ``where`` is, a closing parenthesis and what to do instead."""
    if where == Path(project.path).resolve():
        return "the project's checkout); a session needs a branch of its own"
    kept = Session.objects.filter(project=project).exclude(workspace_path="").exclude(phase=Phase.CLEANED)
    for session in kept:
        if Path(session.workspace_path).resolve() == where:
            return f"the worktree of session {session.pk}, {session.phase}); {_instead(session)}"
    return "a worktree ao did not make); pick another branch, or remove that worktree"


def _instead(session: Session) -> str:
    """What to do instead of a second session on ``session``'s branch."""
    if session.phase in (Phase.QUEUED, Phase.SPAWNING, Phase.RUNNING):
        return f"send {session.pk} a message instead"
    return f"`ao session restore {session.pk}` continues it, or `ao session cleanup` removes the worktree"


def _spawn_allowance(*, project: Project, by, host: str | None) -> tuple[str, User | None, str]:
    """Within budget, whose model credentials and which host: (credentials, credentials_of, host)."""
    over_budget = usage.spawn_budget_refusal(project=project, by=by)  # monthly cost caps; members told
    if over_budget:
        raise SpawnRefused(f"not spawned: {over_budget}")
    try:  # whose model credentials it runs with (kept for restores); refused without any
        credentials, credentials_of = secrets_store.spawn_credentials(project=project, by=by)
    except ValueError as exc:
        raise SpawnRefused(f"not spawned: {exc}") from exc
    try:  # ``host`` asked for, else theirs, allowed, shared: the first with room (sessions/core/hosts.py)
        host = hosts.host_for_spawn(user=by, requested=host)
    except hosts.HostRefused as exc:
        raise SpawnRefused(f"not spawned: {exc}") from exc
    return credentials, credentials_of, host


def _spawn_issue(*, project: Project, issue_ref: str | None, missing_issue_ok: bool):
    """The issue from the tracker (None without ``issue_ref``), and a note when it is missing
    and ``missing_issue_ok``; IssueMissing otherwise."""
    issue = None
    issue_note = ""
    if issue_ref:
        tracker = plugin_for(project, "tracker")
        try:
            issue = tracker.get_issue(issue_ref)
        except IssueNotFound as exc:
            if not missing_issue_ok:
                raise IssueMissing(str(exc) or f"issue {issue_ref} not found") from exc
            issue_note = f"issue {issue_ref} not found ({exc}); spawned without issue context"
        # Any other tracker error (auth, network) propagates: nothing has been written.
    return issue, issue_note


def _spawn_record(
    *,
    project: Project,
    session: Session,
    issue_ref: str | None,
    by,
    issue,
    issue_note: str,
    reason: str,
    actor: str,
) -> None:
    """The new session's timeline and audit: its credentials, its issue, why it is queued."""
    services.event_record(
        project=project,
        session=session,
        kind="session.credentials",
        summary=f"runs with {secrets_store.credentials_label(session)}"
        + (f" (spawned by {by.get_username()})" if getattr(by, "pk", None) else " (spawned on the host)"),
        data={
            "credentials": session.credentials,
            "of": session.credentials_of.get_username() if session.credentials_of else None,
        },
    )
    if issue is not None:
        # Kept for the start (branch name, prompt): the issue is read once per spawn.
        issue_keep(session, issue)
    if issue_note:
        services.event_record(
            project=project, session=session, kind="spawn.issue_missing", summary=issue_note
        )
    if reason:
        services.event_record(
            project=project, session=session, kind="spawn.queued", summary=f"queued: {reason}"
        )
    services.session_rederive(session=session, actor=actor)
    audit.record(action="session.spawn", target=session, project=project, data={"issue": issue_ref or ""})


def _enqueue_start(session: Session) -> None:
    session_id, queue = session.id, host_queue(session.host or settings.AO_HOST_NAME)
    transaction.on_commit(lambda: jobs.enqueue(jobs.SESSION_START, args=[session_id], queue=queue))


# A start that no worker has begun this long after the spawn was never enqueued (the broker was
# unreachable) or its task was lost with a broker that restarted empty: the sweep enqueues it again
# (a minute unless AO_START_RETRY_AFTER says otherwise).
START_RETRY_AFTER = timedelta(seconds=settings.AO_START_RETRY_AFTER)


# A start begun longer ago than this (the workspace's set-up steps time out after 10 minutes) whose
# session is still spawning died with its worker: the session fails with that reason.
START_LEASE = timedelta(minutes=15)


def unstarted_sessions_recover(*, project: Project, now=None) -> list[str]:
    """Spawned worker sessions left behind by a fault: enqueue starts nobody began, and fail the
    ones whose starter died part-way (cleaning up what it made), so none stays "spawning" forever.
    Returns the ids it acted on."""
    now = now or timezone.now()
    spawning = Session.objects.filter(project=project, kind=Session.Kind.WORKER, phase=Phase.SPAWNING)
    acted = []
    for session in spawning.filter(start_claimed_at__isnull=True, created_at__lt=now - START_RETRY_AFTER):
        _enqueue_start(session)  # a second delivery of the task is harmless: the start is claimed
        acted.append(session.pk)
    for session in spawning.filter(start_claimed_at__lt=now - START_LEASE).select_related("project"):
        ctx = None
        with contextlib.suppress(ConfigurationError, IntegrationError):
            ctx = context_for(session)
        start_failed(
            session,
            PermanentIntegrationError(
                f"its start was abandoned: the process starting it stopped more than "
                f"{int(START_LEASE.total_seconds() // 60)} minutes ago; restore or spawn again"
            ),
            ctx=ctx,
            handle=runtime_handle_for(session) if ctx is not None else None,
            workspace=Path(session.workspace_path) if ctx is not None and session.workspace_path else None,
        )
        acted.append(session.pk)
    return acted


def queued_sessions_admit(*, project: Project) -> list[str]:
    """Start queued sessions of the project while there is room under the caps. Oldest first."""
    started = []
    for session in Session.objects.filter(project=project, phase=Phase.QUEUED).order_by("created_at"):
        with transaction.atomic():
            host = session.host or settings.AO_HOST_NAME
            admission_lock(project=project, host=host)
            if admission_check(project=project, host=host):
                break
            claimed = Session.objects.filter(pk=session.pk, phase=Phase.QUEUED).update(phase=Phase.SPAWNING)
            if claimed != 1:
                continue
            session.refresh_from_db()
            services.event_record(
                project=project, session=session, kind="spawn.admitted", summary="a slot freed up: starting"
            )
            services.session_rederive(session=session)
            _enqueue_start(session)
            started.append(session.id)
    return started
