"""Endpoints for machines rather than people: the health check, the realtime relay (HMAC-signed
broadcasts from processes without a channel layer) and GitHub's webhooks (HMAC-signed).
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from sessions.core import realtime
from sessions.dashboard import health
from sessions.flows import webhooks


# --- health and webhooks -----------------------------------------------------------------------------
@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Anyone may ask; a failed check's reason only signed-in staff (docs/SECURITY.md, Anonymous)."""
    report = health.check_all()
    user = request.user
    staff = bool(user.is_authenticated and user.is_active and user.is_staff)
    return JsonResponse(
        health.for_caller(report, staff=staff), status=200 if report["status"] == "ok" else 503
    )


@csrf_exempt  # authenticated by the HMAC signature instead
@require_POST
def realtime_relay(request: HttpRequest) -> HttpResponse:
    """A CLI command beside the running `ao start` hands over what it changed (realtime._relay)."""
    if len(request.body) > 64 * 1024 or not realtime.relay_receive(
        request.body, request.headers.get("X-Ao-Relay-Signature", "")
    ):
        return JsonResponse({"error": "signature missing or invalid"}, status=401)
    return HttpResponse(status=204)


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
