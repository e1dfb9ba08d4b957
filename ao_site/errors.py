"""Site-wide 404 and 500 answers: ``{"error": ...}`` JSON for machine paths (the API, webhooks,
chat), the styled pages ``templates/404.html`` / ``500.html`` for people."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from sessions.api.errors import error_body

MACHINE_PREFIXES = ("/api/", "/webhooks/", "/chat/")


def _for_machines(request: HttpRequest) -> bool:
    return request.path.startswith(MACHINE_PREFIXES)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _for_machines(request):
        return JsonResponse(error_body("not_found", f"no such endpoint: {request.path}"), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _for_machines(request):
        return JsonResponse(error_body("server_error", "ao failed on this request; see its log"), status=500)
    return defaults.server_error(request)
