"""Dashboard actions for the offline loop: review a `local` PR, add an issue to the `local` tracker.

Operators only (``selectors.can``), like every other action; both go through the same services as the
API and the CLI (``sessions.prs.reviews``, ``sessions.agents.issues``).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from integrations.base import IntegrationError
from integrations.registry import ConfigurationError
from sessions.agents import issues
from sessions.core import selectors
from sessions.dashboard import forms
from sessions.dashboard.views_common import project_for, session_for
from sessions.dashboard.views_session import detail_context
from sessions.dashboard.views_spawn import spawn_context
from sessions.models import Actor, Session
from sessions.prs import reviews


# --- reviewing a local PR from the session page ------------------------------------------------------
def _review_response(
    request: HttpRequest, session: Session, *, ok: str = "", error: str = "", body: str = ""
) -> HttpResponse:
    """HTMX: the session page again (the form takes its ``#pr-panel`` with ``hx-select``), with the
    outcome in the form; otherwise back to the page (PRG)."""
    if request.htmx:
        session = Session.objects.select_related("project", "pull_request").get(pk=session.pk)
        context = detail_context(request, session, review_ok=ok, review_error=error, review_body=body)
        response = render(request, "sessions/detail.html", context)  # 200: htmx swaps only 2xx
        response["HX-Trigger"] = "ao:resync"  # the timeline shows the review
        return response
    if error:
        messages.error(request, error)
    else:
        messages.success(request, ok)
    return redirect(reverse("sessions:detail", args=[session.pk]) + "#pr-panel")


@login_required
@require_POST
def session_review(request: HttpRequest, session_id: str) -> HttpResponse:
    session = session_for(request, session_id, selectors.OPERATE)
    form = forms.ReviewForm(request.POST)
    body = request.POST.get("body", "")
    pr = getattr(session, "pull_request", None)
    if pr is None:
        return _review_response(request, session, error=f"{session.id} has no pull request to review")
    if not form.is_valid():
        error = "; ".join(msg for msgs in form.errors.values() for msg in msgs)
        return _review_response(request, session, error=f"Not reviewed: {error}", body=body)
    data = form.cleaned_data
    try:
        review = reviews.pull_request_review(
            project=session.project,
            number=pr.number,
            state=reviews.DECISIONS[data["decision"]],
            reviewer=request.user.get_username(),
            body=data["body"],
            by=request.user,
            actor=Actor.USER,
            via="the dashboard",
        )
    except (reviews.ReviewNotSupported, ValueError, IntegrationError, ConfigurationError) as exc:
        return _review_response(request, session, error=f"Not reviewed: {exc}", body=body)
    label = reviews.LABELS.get(review.state, review.state)
    return _review_response(request, session, ok=f"#{pr.number} {label} by {review.reviewer}")


# --- adding an issue to the local tracker from the spawn page -------------------------------------------
@login_required
@require_POST
def issue_add(request: HttpRequest, key: str) -> HttpResponse:
    project = project_for(request, key, selectors.OPERATE)
    form = forms.IssueForm(request.POST, auto_id="issue_%s")
    error = ""
    if form.is_valid():
        data = form.cleaned_data
        try:
            issue, _blockers = issues.issue_create(
                project=project, title=data["title"], body=data["body"], labels=data["labels"]
            )
        except (ValueError, IntegrationError, ConfigurationError) as exc:
            error = f"Not added: {exc}"
        else:
            messages.success(request, f"Added #{issue.ref}: {issue.title}")
            return redirect(reverse("sessions:spawn", args=[project.key]) + f"#issue-{issue.ref}")
    context = spawn_context(request, project, issue_form=form, issue_error=error)
    return render(request, "sessions/spawn.html", context, status=422)
