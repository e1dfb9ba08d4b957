"""An operator's actions on a session's runtime and workspace: kill, restore, clean up (never
losing unpushed work), and deleting a project. Each runs on the session's agent host: called
elsewhere in scale-out, the service records the request and enqueues ``sessions.operate`` on the
host's queue, where ``session_operate`` runs the same code; inline otherwise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from integrations import gitutil
from integrations.base import IntegrationError, WorkspaceRefused
from integrations.registry import ConfigurationError, plugin_for
from sessions.agents.plugins import AgentContext, context_for, runtime_handle_for, workspaces_root
from sessions.agents.spawning import SpawnRefused, queued_sessions_admit
from sessions.agents.starting import agent_installed, launch, worker_prompt
from sessions.core import audit, jobs, services
from sessions.core import secrets as secrets_store  # model credentials: the project's or a person's own
from sessions.core.jobs import host_queue
from sessions.domain.lifecycle import Activity, Phase, RuntimeState
from sessions.models import Actor, Event, Project, Session

log = logging.getLogger(__name__)


# --- kill / restore / cleanup ------------------------------------------------------------------
# Each runs on the session's agent host: called elsewhere in scale-out (another `ao web`, a worker
# of another machine), the service records the request and enqueues `sessions.operate` on the
# host's queue; there `session_operate` runs the same code (`_kill_here`, ...). Inline otherwise.
@dataclass(frozen=True)
class Requested:
    """A kill, restore or clean-up enqueued on the session's agent host; its result lands on the
    session's timeline when it has run there."""

    action: str
    host: str

    def __str__(self) -> str:
        return f"{self.action} requested; runs on host {self.host}"


OPERATIONS = ("kill", "restore", "cleanup")


# the timeline entries that end an operation (a redelivered task whose request has one does nothing)
OPERATION_RESULTS = {
    "kill": ("session.killed", "session.kill_failed"),
    "restore": ("session.restored", "session.restore_failed"),
    "cleanup": (
        "session.cleaned",
        "session.cleanup_failed",
        "session.cleanup_refused",
        "reaction.cleanup_refused",
    ),
}


def runs_elsewhere(session: Session) -> str:
    """The session's host when its runtime must be driven there (scale-out, another host), else ''."""
    host = session.host or settings.AO_HOST_NAME
    if settings.AO_EMBEDDED or host == settings.AO_HOST_NAME:
        return ""
    return host


def _request_on_host(session: Session, action: str, *, host: str, by, actor: str, params: dict) -> Requested:
    """Record the request on the timeline (and the audit log) and enqueue it on the host's queue."""
    here = settings.AO_HOST_NAME
    with transaction.atomic():
        event = services.event_record(
            project=session.project,
            session=session,
            kind=f"session.{action}_requested",
            summary=f"{action} requested from {here}; runs on host {host}",
            actor=actor,
            actor_user=by,
            data={"from": here, "host": host, **params},
        )
        audit.record(
            action=f"session.{action}",
            target=session,
            project=session.project,
            data={**params, "host": host, "requested": True},
        )
        kwargs = {"request_event": event.pk, "by": getattr(by, "pk", None), "actor": actor, "params": params}
        session_id, queue = session.pk, host_queue(host)
        transaction.on_commit(
            lambda: jobs.enqueue(jobs.SESSION_OPERATE, args=[session_id, action], kwargs=kwargs, queue=queue)
        )
    return Requested(action=action, host=host)


def session_operate(
    *, session_id: str, action: str, request_event: int = 0, by=None, actor: str = Actor.USER, params=None
) -> None:
    """Run a requested kill, restore or clean-up here, on the session's host (the `sessions.operate`
    task). Skipped when the request already has its result (the task may be delivered twice);
    a failure is recorded on the timeline (an auto-cleanup's refusal also tells people)."""
    if action not in OPERATIONS:
        raise ValueError(f"unknown session operation {action!r}")
    session = Session.objects.select_related("project").filter(pk=session_id).first()
    if session is None:
        return
    if Event.objects.filter(
        session=session, pk__gt=request_event, kind__in=OPERATION_RESULTS[action]
    ).exists():
        return
    params = params or {}
    user = get_user_model().objects.filter(pk=by).first() if by else None
    try:
        if action == "kill":
            _kill_here(session=session, by=user, actor=actor, reason=params.get("reason", ""))
        elif action == "restore":
            _restore_here(session=session, by=user, actor=actor)
        else:
            _cleanup_here(session=session, force=bool(params.get("force")), by=user, actor=actor)
    except Exception as exc:
        if not isinstance(exc, IntegrationError | ConfigurationError | SpawnRefused):
            log.exception("%s of %s failed", action, session_id)
        session.refresh_from_db()
        if action == "cleanup" and actor == Actor.REACTION:
            services.auto_cleanup_refused(session=session, exc=exc)
            return
        if Event.objects.filter(
            session=session, pk__gt=request_event, kind__in=OPERATION_RESULTS[action]
        ).exists():
            return  # the operation put its own result on the timeline (a clean-up's refusal)
        services.event_record(
            project=session.project,
            session=session,
            kind=f"session.{action}_failed",
            summary=f"{action} failed on host {settings.AO_HOST_NAME}: {exc}"[:500],
            actor=actor,
            actor_user=user,
            data={"error": str(exc)[:1000]},
        )


def session_kill(*, session: Session, by=None, actor: str = Actor.USER, reason: str = "") -> Requested | None:
    """Stop the agent. The workspace and branch stay, so the session can be restored.
    On another agent host (scale-out): requested there, returns ``Requested``."""
    host = runs_elsewhere(session)
    if host:
        return _request_on_host(session, "kill", host=host, by=by, actor=actor, params={"reason": reason})
    _kill_here(session=session, by=by, actor=actor, reason=reason)
    return None


def _kill_here(*, session: Session, by=None, actor: str = Actor.USER, reason: str = "") -> None:
    handle = runtime_handle_for(session)
    if handle is not None:
        context_for(session).runtime.kill(handle)
    with transaction.atomic():
        Session.objects.filter(pk=session.pk).update(
            phase=Phase.KILLED, runtime_state=RuntimeState.LOST, runtime_checked_at=timezone.now()
        )
        session.refresh_from_db()
        services.event_record(
            project=session.project,
            session=session,
            kind="session.killed",
            summary=f"killed{': ' + reason if reason else ''}",
            actor=actor,
            actor_user=by,
        )
        audit.record(action="session.kill", target=session, project=session.project, data={"reason": reason})
        services.session_rederive(session=session, actor=actor)
        queued_project = session.project
    queued_sessions_admit(project=queued_project)


def session_restore(*, session: Session, by=None, actor: str = Actor.USER) -> Requested | None:
    """Bring a killed, exited or lost session back in the same workspace and branch.

    Resumes the agent's conversation where the agent supports it; otherwise starts it afresh
    with a note to continue the work already on the branch. On another agent host (scale-out):
    requested there, returns ``Requested``.
    """
    refusal = restore_refusal(session)
    if refusal:
        raise SpawnRefused(refusal)
    host = runs_elsewhere(session)
    if host:
        return _request_on_host(session, "restore", host=host, by=by, actor=actor, params={})
    _restore_here(session=session, by=by, actor=actor)
    return None


def restore_refusal(session: Session) -> str:
    """Why ``session_restore`` cannot bring the session back, or "" when it can: the one answer
    `ao send`, `ao session kill`, `ao session restore` and the session page's Restore give. Looks
    at the worktree on disk when it is on this host (the restore there looks again)."""
    sid = session.pk
    if session.phase == Phase.CLEANED:
        return f"{sid} was cleaned up (its worktree is gone): spawn a new session"
    if not session.workspace_path:
        if session.error.strip():  # its start failed and removed what it had made
            why = " ".join(session.error.split())[:200]
            return (
                f"{sid} errored while starting ({why}) and left no worktree to restore: spawn a new session"
            )
        return f"{sid} has no worktree to restore: spawn a new session"
    if not runs_elsewhere(session) and not Path(session.workspace_path).is_dir():
        return f"{sid}'s worktree {session.workspace_path} is gone: spawn a new session"
    return ""


def _restore_here(*, session: Session, by=None, actor: str = Actor.USER) -> None:
    refusal = restore_refusal(session)
    if refusal:
        raise SpawnRefused(refusal)
    workspace = Path(session.workspace_path)
    ctx = context_for(session)
    old = runtime_handle_for(session)
    if old is not None and ctx.runtime.probe(old) == RuntimeState.ALIVE:
        raise SpawnRefused(f"{session.id} is still running")
    if old is not None:
        ctx.runtime.kill(old)
    agent_installed(ctx.agent)
    argv = None
    if session.agent_session_ref:
        argv = ctx.agent.resume_command(workspace=workspace, conversation_id=session.agent_session_ref)
    note = "resumed its conversation" if argv else "started afresh"
    first_message = None
    if argv is None:
        prompt = worker_prompt(session) + (
            "\nYou are being restored: the work so far is committed on your branch or in the working tree. "
            "Review `git status` and `git log`, then continue.\n"
        )
        argv = ctx.agent.launch_command(
            workspace=workspace, prompt=prompt if ctx.agent.prompt_in_command else None
        )
        first_message = None if ctx.agent.prompt_in_command else prompt
    with transaction.atomic():
        launch(
            session,
            ctx,
            cwd=workspace,
            argv=argv,
            activity=Activity.UNKNOWN,
            detecting_attempts=0,
            ended_at=None,
        )
        services.event_record(
            project=session.project,
            session=session,
            kind="session.restored",
            summary=f"restored ({note}); runs with {secrets_store.credentials_label(session)}",
            actor=actor,
            actor_user=by,
        )
        audit.record(action="session.restore", target=session, project=session.project, data={"how": note})
        if first_message:
            services.message_queue(session=session, text=first_message, sender=Actor.SYSTEM, sender_name="ao")
        services.session_rederive(session=session, actor=actor)


def cleanup_candidates(*, project: Project | None = None):
    """Worker sessions whose PR merged or closed, or whose runtime is gone. Never orchestrators."""
    qs = (
        Session.objects.filter(kind=Session.Kind.WORKER)
        .exclude(phase=Phase.CLEANED)
        .select_related("project")
    )
    if project is not None:
        qs = qs.filter(project=project)
    return qs.filter(
        Q(pull_request__state__in=["merged", "closed"])
        | Q(runtime_state=RuntimeState.LOST)
        | Q(phase__in=[Phase.KILLED, Phase.ERRORED])
    )


def session_cleanup(
    *, session: Session, force: bool = False, by=None, actor: str = Actor.USER
) -> str | Requested:
    """End the session and remove its workspace; refuses unpushed work unless forced. Returns
    the session id; on another agent host (scale-out): requested there, returns ``Requested``."""
    if session.kind == Session.Kind.ORCHESTRATOR:
        raise SpawnRefused("orchestrator sessions are never cleaned up")
    host = runs_elsewhere(session)
    if host:
        return _request_on_host(session, "cleanup", host=host, by=by, actor=actor, params={"force": force})
    return _cleanup_here(session=session, force=force, by=by, actor=actor)


def cleanup_refusal(*, session: Session, force: bool = False) -> str:
    """Why cleaning up ``session`` would be refused now, or "" when it would go ahead: the check
    the clean-up itself makes before touching anything, so a dry run says what the real run does."""
    if session.kind == Session.Kind.ORCHESTRATOR:
        return "orchestrator sessions are never cleaned up"
    workspace = existing_workspace(session)
    if workspace is None:
        return ""
    try:
        _check_removable(session, context_for(session), workspace=workspace, force=force)
    except WorkspaceRefused as exc:
        return str(exc)
    return ""


def existing_workspace(session: Session) -> Path | None:
    path = Path(session.workspace_path) if session.workspace_path else None
    return path if path is not None and (path.exists() or path.is_symlink()) else None


def _check_removable(session: Session, ctx: AgentContext, *, workspace: Path, force: bool) -> list[str]:
    """WorkspaceRefused unless the workspace may go: with no work that is on no remote, counting a
    merged PR's head as on the remote (a squash merge leaves it on no branch). Returns those heads."""
    pr = getattr(session, "pull_request", None)
    safe = [pr.head_sha] if pr is not None and pr.state == "merged" and pr.head_sha else []
    if not force:
        try:  # what the remote has now, so work merged or pushed since the last fetch counts
            remote = plugin_for(session.project, "scm").workspace_remote(create=False)
            gitutil.fetch_remote(workspace, remote=remote)
        except (IntegrationError, ConfigurationError) as exc:
            log.info("clean-up of %s: could not fetch the remote: %s", session.pk, exc)
    ctx.workspace.check_remove(
        repo_path=Path(session.project.path),
        root=workspaces_root(session.project),
        path=workspace,
        force=force,
        safe=safe,
    )
    return safe


def _cleanup_here(*, session: Session, force: bool = False, by=None, actor: str = Actor.USER) -> str:
    """Check first, then stop the agent and remove the workspace. A refusal changes nothing (the
    agent keeps running) and says why on the timeline; the session's row says what really happened."""
    if session.kind == Session.Kind.ORCHESTRATOR:
        raise SpawnRefused("orchestrator sessions are never cleaned up")
    ctx = context_for(session)
    workspace = existing_workspace(session)
    safe: list[str] = []
    if workspace is not None:
        try:
            safe = _check_removable(session, ctx, workspace=workspace, force=force)
        except WorkspaceRefused as exc:
            if actor != Actor.REACTION:  # an auto-cleanup's refusal is recorded by the reaction
                services.event_record(
                    project=session.project,
                    session=session,
                    kind="session.cleanup_refused",
                    summary=f"clean-up refused, nothing changed: {exc}"[:500],
                    actor=actor,
                    actor_user=by,
                    data={"error": str(exc)[:1000]},
                )
            raise
    handle = runtime_handle_for(session)
    if handle is not None and ctx.runtime.probe(handle) == RuntimeState.ALIVE:
        ctx.runtime.kill(handle)
    if workspace is not None:
        try:
            ctx.workspace.remove(
                repo_path=Path(session.project.path),
                root=workspaces_root(session.project),
                path=workspace,
                force=force,
                safe=safe,
            )
        except Exception as exc:
            _cleanup_failed(session, exc, killed=handle is not None, by=by, actor=actor)
            raise
    with transaction.atomic():
        Session.objects.filter(pk=session.pk).update(phase=Phase.CLEANED, runtime_state=RuntimeState.LOST)
        session.refresh_from_db()
        services.event_record(
            project=session.project,
            session=session,
            kind="session.cleaned",
            summary="session ended and workspace removed" + (" (forced)" if force else ""),
            actor=actor,
            actor_user=by,
        )
        audit.record(action="session.cleanup", target=session, project=session.project, data={"force": force})
        services.messages_abandon(
            session=session, reason="the session was cleaned up before the agent took it"
        )
        services.session_rederive(session=session, actor=actor)
    return session.id


def _cleanup_failed(session: Session, exc: Exception, *, killed: bool, by, actor: str) -> None:
    """The agent was stopped but the workspace could not be removed: the row says so."""
    with transaction.atomic():
        if killed:
            Session.objects.filter(pk=session.pk, phase=Phase.RUNNING).update(phase=Phase.KILLED)
            Session.objects.filter(pk=session.pk).update(
                runtime_state=RuntimeState.LOST, runtime_checked_at=timezone.now()
            )
        session.refresh_from_db()
        services.event_record(
            project=session.project,
            session=session,
            kind="session.cleanup_failed",
            summary=(f"agent stopped, workspace kept: {exc}" if killed else f"clean-up failed: {exc}")[:500],
            actor=actor,
            actor_user=by,
            data={"error": str(exc)[:1000]},
        )
        services.session_rederive(session=session, actor=actor)


# --- project deletion -----------------------------------------------------------------------------
def project_delete(*, project: Project, by=None) -> list[str]:
    """Delete a project with its sessions, timeline, PRs and messages, after stopping every agent
    of it that still has a runtime here (workspaces stay on disk: they may hold unpushed work).
    Refuses (SpawnRefused, nothing changed) while one of its agents runs on another agent host.
    Returns notes of what it stopped."""
    sessions = list(Session.objects.filter(project=project).exclude(phase=Phase.CLEANED))
    with_runtime = [
        (s, handle)
        for s in sessions
        if (handle := runtime_handle_for(s)) is not None and s.runtime_state != RuntimeState.LOST
    ]
    elsewhere = sorted({host for s, _handle in with_runtime if (host := runs_elsewhere(s))})
    if elsewhere:
        raise SpawnRefused(
            f"project {project.key} has agents on host(s) {', '.join(elsewhere)}: kill its sessions first "
            "(`ao session kill ID`), then delete it"
        )
    notes = []
    for session, handle in with_runtime:
        try:
            context_for(session).runtime.kill(handle)
        except (IntegrationError, ConfigurationError) as exc:  # already gone, or a broken runtime config
            notes.append(f"{session.id}: could not stop its runtime ({exc})")
            continue
        notes.append(f"stopped {session.id}")
    key, count = project.key, len(sessions)
    with transaction.atomic():
        audit.record(
            action="project.delete", target=project, project=None, data={"key": key, "sessions": count}
        )
        project.delete()
    return notes
