"""Pages and fragments. Thin: parse, check permission, call a selector or service, render."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from sessions import health, selectors, webhooks
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


@csrf_exempt  # authenticated by the HMAC signature instead
@require_POST
def github_webhook(request: HttpRequest, project_key: str) -> JsonResponse:
    limit = settings.AO_WEBHOOK_MAX_BYTES
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        declared = -1
    if declared < 0 or declared > limit:
        return _webhook_error(413, f"body larger than {limit} bytes")
    body = request.read(limit + 1)
    if len(body) > limit:
        return _webhook_error(413, f"body larger than {limit} bytes")
    try:
        status, data = webhooks.github_webhook_receive(
            project_key=project_key,
            event=request.headers.get("X-GitHub-Event", ""),
            delivery_id=request.headers.get("X-GitHub-Delivery", ""),
            signature=request.headers.get("X-Hub-Signature-256", ""),
            content_type=request.headers.get("Content-Type", ""),
            body=body,
        )
    except webhooks.WebhookRejected as exc:
        return _webhook_error(exc.status, str(exc))
    return JsonResponse(data, status=status)


def _webhook_error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": status, "message": message}}, status=status)
