"""Spawning sessions from the dashboard: one (for an issue of the backlog or a prompt) or a batch."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from integrations.base import IntegrationError
from integrations.registry import ConfigurationError, plugin_for
from sessions.agents import spawning
from sessions.core import hosts, selectors
from sessions.dashboard import forms
from sessions.dashboard.views_common import page_context, project_for
from sessions.domain.text import TextRejected
from sessions.models import Project, Session


# --- spawn and backlog -----------------------------------------------------------------------------
def _backlog(project: Project) -> tuple[list, str]:
    try:
        issues = plugin_for(project, "tracker").list_issues(limit=50)
    except (IntegrationError, ConfigurationError) as exc:
        return [], f"The {project.tracker} tracker could not list issues: {exc}"
    return issues, ""


def spawn_context(request: HttpRequest, project: Project, form=None, **extra) -> dict:
    issues, backlog_error = _backlog(project)
    live = dict(
        Session.objects.live()
        .filter(project=project, kind=Session.Kind.WORKER)
        .exclude(issue_ref="")
        .values_list("issue_ref", "id")
    )
    agent_keys = forms.agent_keys()
    return page_context(
        request,
        project=project,
        form=form
        or forms.SpawnForm(agents=agent_keys, default_agent=project.agent, hosts=_host_choices(request)),
        issues=[(issue, live.get(issue.ref)) for issue in issues],
        backlog_error=backlog_error,
        agent_keys=agent_keys,
        **extra,
    )


def _spawn_one(
    request: HttpRequest,
    project: Project,
    *,
    issue: str | None,
    prompt: str | None,
    agent: str | None,
    branch: str | None = None,
    host: str | None = None,
):
    """Call the spawn service; return (session, error message)."""
    try:
        session = spawning.session_spawn(
            project=project,
            issue_ref=issue or None,
            prompt=prompt or None,
            agent=agent or None,
            branch=branch or None,
            by=request.user,
            host=host or None,
        )
    except (spawning.SpawnRefused, ConfigurationError, IntegrationError, TextRejected) as exc:
        return None, str(exc) or exc.__class__.__name__
    except ValidationError as exc:  # e.g. a session id taken behind ao's back
        return None, "; ".join(exc.messages)
    return session, ""


def _host_choices(request: HttpRequest) -> list[tuple[str, str]]:
    """The agent hosts the person may spawn on now, in the order a spawn tries them."""
    return [(choice.name, choice.label) for choice in hosts.hosts_for(user=request.user)]


@login_required
def spawn(request: HttpRequest, key: str) -> HttpResponse:
    project = project_for(request, key, selectors.OPERATE)
    if request.method == "GET":
        return render(request, "sessions/spawn.html", spawn_context(request, project))
    if request.method != "POST":
        return HttpResponse(status=405)
    agent_keys = forms.agent_keys()
    form = forms.SpawnForm(
        request.POST, agents=agent_keys, default_agent=project.agent, hosts=_host_choices(request)
    )
    if not form.is_valid():
        return render(request, "sessions/spawn.html", spawn_context(request, project, form), status=422)
    data = form.cleaned_data
    session, error = _spawn_one(
        request,
        project,
        issue=data["issue"].strip(),
        prompt=data["prompt"],
        agent=data["agent"],
        branch=data["branch"],
        host=data["host"],
    )
    if error:
        form.add_error(None, error)
        return render(request, "sessions/spawn.html", spawn_context(request, project, form), status=422)
    messages.success(
        request, f"Spawned {session.id}" + (f" for {session.issue_ref}" if session.issue_ref else "")
    )
    return redirect("sessions:detail", session_id=session.pk)


@login_required
@require_POST
def spawn_batch(request: HttpRequest, key: str) -> HttpResponse:
    project = project_for(request, key, selectors.OPERATE)
    batch = forms.BatchSpawnForm(request.POST)
    if not batch.is_valid():
        return render(
            request,
            "sessions/spawn.html",
            spawn_context(request, project, batch_errors=batch.non_field_errors()),
            status=422,
        )
    spawned, failed = [], []
    for ref in batch.issues:
        session, error = _spawn_one(
            request, project, issue=ref, prompt=None, agent=batch.cleaned_data.get("agent")
        )
        if session is not None:
            spawned.append(session.id)
        else:
            failed.append(f"{ref}: {error}")
    if spawned:
        messages.success(request, "Spawned " + ", ".join(spawned))
    if failed:
        return render(
            request,
            "sessions/spawn.html",
            spawn_context(request, project, batch_errors=failed, batch_spawned=spawned),
            status=422,
        )
    return redirect("sessions:project", key=project.key)
