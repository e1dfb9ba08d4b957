"""Pages and fragments. Thin: parse, check permission, call a selector or service, render."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from sessions import health, selectors
from sessions.models import Session


def render_card(session: Session) -> str:
    """The one card fragment: full page, HTMX response and websocket push all use it."""
    return render_to_string("sessions/_card.html", {"session": session, "oob": True})


@login_required
def index(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "sessions/index.html",
        {"projects": selectors.projects_all(), "sessions": selectors.sessions_for_board()},
    )


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    report = health.check_all()
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)
