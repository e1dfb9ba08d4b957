"""The project's orchestrator page: its session, and starting or stopping it."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from integrations.base import IntegrationError
from integrations.registry import ConfigurationError
from sessions.agents import spawning
from sessions.core import selectors
from sessions.dashboard import forms
from sessions.dashboard.views_common import page_context, project_for
from sessions.dashboard.views_session import timeline_context
from sessions.domain.lifecycle import Phase
from sessions.models import Message, Project, Session
from sessions.watchers import orchestrator as orch


# --- orchestrator ----------------------------------------------------------------------------------
def _orchestrator_context(request: HttpRequest, project: Project, **extra) -> dict:
    session = (
        Session.objects.select_related("project", "pull_request")
        .filter(project=project, kind=Session.Kind.ORCHESTRATOR)
        .first()
    )
    can_operate = selectors.can(request.user, project, selectors.OPERATE)
    context = {"project": project, "session": session, "can_operate": can_operate}
    if session is not None:
        context.update(
            message_form=forms.MessageForm(),
            quick_replies=forms.QUICK_REPLIES,
            **timeline_context(request, session),
            messages_list=list(
                Message.objects.filter(session=session)
                .select_related("sender_user")
                .order_by("-created_at", "-pk")[:20]
            ),
        )
    context.update(extra)
    return page_context(request, **context)


@login_required
@require_GET
def orchestrator(request: HttpRequest, key: str) -> HttpResponse:
    project = project_for(request, key, selectors.VIEW)
    return render(request, "sessions/orchestrator.html", _orchestrator_context(request, project))


def _orchestrator_error(request: HttpRequest, project: Project, error: str) -> HttpResponse:
    context = _orchestrator_context(request, project, orchestrator_error=error)
    return render(request, "sessions/orchestrator.html", context, status=422)


ORCHESTRATOR_ERRORS = (IntegrationError, ConfigurationError, ValueError, OSError)


@login_required
@require_POST
def orchestrator_start_view(request: HttpRequest, key: str) -> HttpResponse:
    project = project_for(request, key, selectors.OPERATE)
    try:
        session = orch.orchestrator_start(project=project, by=request.user)
    except (*ORCHESTRATOR_ERRORS, spawning.SpawnRefused) as exc:
        return _orchestrator_error(request, project, f"The orchestrator did not start: {exc}")
    except ValidationError as exc:
        return _orchestrator_error(
            request, project, "The orchestrator did not start: " + "; ".join(exc.messages)
        )
    if session is None:  # another start won a race and its session is gone again
        return _orchestrator_error(request, project, "The orchestrator did not start: try again")
    session.refresh_from_db()
    if session.phase == Phase.ERRORED:  # launched at once (no worker queue) and failed
        return _orchestrator_error(
            request, project, f"The orchestrator did not start: {session.error or 'its launch failed'}"
        )
    messages.success(request, f"{session.id}: {session.get_status_display().lower()}")
    return redirect("sessions:orchestrator", key=project.key)


@login_required
@require_POST
def orchestrator_stop_view(request: HttpRequest, key: str) -> HttpResponse:
    project = project_for(request, key, selectors.OPERATE)
    try:
        session = orch.orchestrator_stop(project=project, by=request.user)
    except (*ORCHESTRATOR_ERRORS, spawning.SpawnRefused) as exc:
        return _orchestrator_error(request, project, f"The orchestrator did not stop: {exc}")
    if session is None:
        return _orchestrator_error(request, project, f"{project.key} has no orchestrator to stop")
    messages.success(request, f"{session.id} stopped; its workspace is kept")
    return redirect("sessions:orchestrator", key=project.key)
