"""The session page: its card, live panels (terminal, git, agent state), messages and timeline."""

from __future__ import annotations

import shlex
from pathlib import Path

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from integrations import gitutil
from integrations.base import IntegrationError
from reactions.models import Notification
from sessions.agents import messaging, operating
from sessions.core import selectors
from sessions.core.selectors import merge_blockers
from sessions.dashboard import forms
from sessions.dashboard.views_board import card_session
from sessions.dashboard.views_common import page_context, session_for
from sessions.domain.lifecycle import Phase, RuntimeState, Zone
from sessions.models import CheckRun, Event, Message, ReviewThread, Session
from sessions.watchers import conflicts

# --- session detail --------------------------------------------------------------------------------
TIMELINE_PAGE = 40
GIT_TIMEOUT = 5.0
GIT_MAX_CHARS = 6000


def _git_section(session: Session) -> dict | None:
    """Recent commits and the diff stat against the base the worktree was made from (the remote's
    default branch, ``selectors.base_ref``), bounded; None without a workspace."""
    if not session.workspace_path or not Path(session.workspace_path).is_dir():
        return None
    cwd = session.workspace_path
    out: dict = {"log": "", "stat": "", "error": ""}
    try:
        base = selectors.base_ref(project=session.project, repo=cwd)
        merge_base = (
            gitutil.run_git(
                ["merge-base", "--end-of-options", base, "HEAD"], cwd=cwd, timeout=GIT_TIMEOUT, check=False
            )
            if base
            else None
        )
        against = merge_base.stdout.strip() if merge_base and merge_base.returncode == 0 else "HEAD"
        # the branch's own commits (not the base branch's history)
        own = "HEAD" if against == "HEAD" else f"{against}..HEAD"
        out["log"] = gitutil.git_out(
            ["log", "--no-color", "--no-decorate", "--format=%h %s (%cr)", "-n", "15", own],
            cwd=cwd,
            timeout=GIT_TIMEOUT,
        )[:GIT_MAX_CHARS]
        out["stat"] = gitutil.git_out(
            ["diff", "--no-color", "--stat=100", against], cwd=cwd, timeout=GIT_TIMEOUT
        )[:GIT_MAX_CHARS]
    except (IntegrationError, OSError) as exc:
        out["error"] = str(exc)[:300]
    return out


def _attach_command(session: Session) -> str:
    handle = session.runtime_handle or {}
    if handle.get("runtime") != "tmux" or not handle.get("name"):
        return ""
    argv = ["tmux"]
    socket = (handle.get("data") or {}).get("socket_name")
    if socket:
        argv += ["-L", socket]
    return shlex.join([*argv, "attach", "-t", f"={handle['name']}"])


def timeline_context(request: HttpRequest, session: Session) -> dict:
    events = Event.objects.filter(session=session).select_related("actor_user").order_by("-created_at", "-pk")
    page = Paginator(events, TIMELINE_PAGE).get_page(request.GET.get("page"))
    # queued messages of a session that is not running wait for it to be restored: shown so
    return {"session": session, "page": page, "waits_for_restore": messaging.needs_restore(session)}


def _agent_down(session: Session) -> str:
    """Why messages cannot reach the session's agent now, or "" when they can.

    The page then hides Send and the quick replies and says why (restorable sessions offer
    Restore instead). Same facts as ``messaging``'s restore-before-send rule: killed, errored,
    or a running session whose agent exited or whose runtime is gone; a finished session (merged,
    cleaned up) takes no messages either.
    """
    if session.phase == Phase.KILLED:
        return "The agent was killed"
    if session.phase == Phase.ERRORED:
        return "The agent stopped with an error"
    if session.phase == Phase.CLEANED:
        return "This session was cleaned up"
    if session.runtime_state == RuntimeState.EXITED:
        return "The agent exited"
    if session.runtime_state == RuntimeState.LOST:
        return "The agent's terminal is gone"
    if session.zone == Zone.DONE:
        return "This session is done"
    return ""


def live_context(session: Session) -> dict:
    """What the live panels of the session page show (sessions/_detail_*.html): the same facts for
    the page and for the change push. ``session`` comes from ``card_session`` (the card's row)."""
    pr = getattr(session, "pull_request", None)
    checks: list[CheckRun] = []
    threads: list[ReviewThread] = []
    if pr is not None:
        checks = list(pr.checks.filter(head_sha=pr.head_sha)) if pr.head_sha else list(pr.checks.all())
        threads = list(pr.threads.filter(resolved=False))
    down = _agent_down(session)
    return {
        "session": session,
        "card": session,
        "project": session.project,
        "pr": pr,
        "checks": checks,
        "threads": threads,
        "blockers": merge_blockers(session),
        "overlaps": getattr(session, "card_overlaps", None) or [],
        "attach": _attach_command(session),
        "agent_down": down,
        # what `ao send` would restore first, when a restore can bring it back
        "restorable": messaging.needs_restore(session) and not operating.restore_refusal(session),
        "show_project": True,
    }


def detail_context(request: HttpRequest, session: Session, **extra) -> dict:
    card = card_session(session.pk)
    live = live_context(card) if card is not None else {}
    can_operate = selectors.can(request.user, session.project, selectors.OPERATE)
    context = {
        **live,
        "session": session if card is None else card,
        "git": _git_section(session),
        "messages_list": list(
            Message.objects.filter(session=session)
            .select_related("sender_user")
            .order_by("-created_at", "-pk")[:20]
        ),
        "notifications": _notifications_for(session),
        "can_operate": can_operate,
        "message_form": forms.MessageForm(),
        "quick_replies": forms.QUICK_REPLIES,
        **timeline_context(request, session),
    }
    context.update(extra)
    return page_context(request, **context)


def _overlaps_for(session: Session) -> list:
    return conflicts.overlaps_for(session)


def _notifications_for(session: Session) -> list:
    return list(Notification.objects.filter(session=session).order_by("-created_at")[:10])


@login_required
@require_GET
def session_detail(request: HttpRequest, session_id: str) -> HttpResponse:
    session = session_for(request, session_id, selectors.VIEW)
    return render(request, "sessions/detail.html", detail_context(request, session))


@login_required
@require_GET
def session_timeline(request: HttpRequest, session_id: str) -> HttpResponse:
    session = session_for(request, session_id, selectors.VIEW)
    context = timeline_context(request, session)
    context["messages_list"] = list(
        Message.objects.filter(session=session)
        .select_related("sender_user")
        .order_by("-created_at", "-pk")[:20]
    )
    if request.htmx:
        return render(request, "sessions/_timeline.html", context)
    return redirect(
        reverse("sessions:detail", args=[session.pk])
        + (f"?page={request.GET['page']}" if request.GET.get("page") else "")
    )
