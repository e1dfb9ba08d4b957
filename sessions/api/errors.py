"""One error shape for the whole API: ``{"error": {"code", "message", "field"?, "details"?}}``.

DRF's own exceptions keep their status codes (401 for missing or bad credentials, 403, 404,
405, 415, 429 with Retry-After); ao's domain errors map to 400 (bad input), 404 (unknown
project, session or issue), 409 (refused in the current state), 413 (body too large) and
502/503 (a plugin's service failed). Anything else is a 500 in the same shape, logged.
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from integrations.base import IntegrationError, IssueNotFound, TransientIntegrationError
from integrations.registry import ConfigurationError
from sessions.agents.spawning import SpawnRefused
from sessions.core import selectors
from sessions.domain.text import TextRejected

log = logging.getLogger(__name__)


class Conflict(exceptions.APIException):
    """Refused in the current state (not mergeable, still running, over the cap...)."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "refused in the current state"

    def __init__(self, detail=None, code=None, *, blockers: list[str] | None = None) -> None:
        super().__init__(detail, code)
        self.blockers = blockers or []


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"
    default_detail = "the request body is too large"


class UpstreamError(exceptions.APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_code = "integration_error"
    default_detail = "a plugin's service failed"


class UpstreamUnavailable(UpstreamError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "integration_unavailable"


def error_body(code: str, message: str, *, field: str | None = None, **extra) -> dict:
    error = {"code": code, "message": message}
    if field:
        error["field"] = field
    error.update({k: v for k, v in extra.items() if v})
    return {"error": error}


def _first_message(detail) -> tuple[str | None, str, str]:
    """(field, message, code) of the first problem in a DRF ValidationError detail."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            field, message, code = _first_message(value)
            name = key if key not in ("non_field_errors", "detail") else None
            if field and name:
                name = f"{name}.{field}"
            return (name or field), message, code
        return None, "invalid input", "invalid"
    if isinstance(detail, list):
        return _first_message(detail[0]) if detail else (None, "invalid input", "invalid")
    return None, str(detail), getattr(detail, "code", None) or "invalid"


def to_api_error(exc: Exception) -> Exception:
    """ao's domain errors (and Django's) as DRF exceptions with the right status."""
    if isinstance(exc, Http404):
        return exceptions.NotFound(str(exc) or "not found")
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied(str(exc) or None)
    if isinstance(exc, RequestDataTooBig | TooManyFieldsSent):
        return PayloadTooLarge()
    if isinstance(exc, selectors.NotFound | IssueNotFound):
        return exceptions.NotFound(str(exc))
    if isinstance(exc, TextRejected):
        return exceptions.ValidationError({"text": [str(exc)]})
    if isinstance(exc, DjangoValidationError):
        return exceptions.ValidationError({"non_field_errors": exc.messages})
    if isinstance(exc, SpawnRefused):
        return Conflict(str(exc), code="refused")
    if isinstance(exc, ConfigurationError):
        return Conflict(str(exc), code="configuration_error")
    if isinstance(exc, TransientIntegrationError):
        return UpstreamUnavailable(str(exc))
    if isinstance(exc, IntegrationError):
        return UpstreamError(str(exc))
    return exc


def exception_handler(exc: Exception, context: dict) -> Response:
    """DRF ``EXCEPTION_HANDLER``: every failure as ``{"error": {...}}``."""
    exc = to_api_error(exc)
    if not isinstance(exc, exceptions.APIException):
        view = context.get("view")
        log.exception("unhandled error in %s", type(view).__name__ if view else "API view", exc_info=exc)
        return Response(
            error_body("server_error", "ao failed to handle this request; the server log has the details"),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    headers = {}
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        exc.status_code = status.HTTP_401_UNAUTHORIZED
        headers["WWW-Authenticate"] = 'Bearer realm="ao"'
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        headers["Retry-After"] = str(int(exc.wait) + 1)
    if isinstance(exc, exceptions.ValidationError):
        field, message, code = _first_message(exc.detail)
        details = exc.detail if isinstance(exc.detail, dict) else None
        body = error_body(code or "invalid", message, field=field, details=details)
    else:
        detail = exc.detail
        message = str(detail) if not isinstance(detail, dict | list) else _first_message(detail)[1]
        code = getattr(detail, "code", None) or exc.default_code
        body = error_body(code, message, blockers=getattr(exc, "blockers", None))
    return Response(body, status=exc.status_code, headers=headers)
