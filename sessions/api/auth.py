"""API authentication.

- ``ApiTokenAuthentication``: ``Authorization: Bearer ao_...``, a person's (or bot account's)
  token; ``request.user`` is that user and ``request.auth`` the ``ApiToken``.
- ``SessionTokenAuthentication``: the per-session token an agent gets in AO_TOKEN, with
  ``X-AO-Session``; it may only act for its own session, on the report and pr endpoints.
- Browsers use Django's session with CSRF (DRF's ``SessionAuthentication``).
"""

from __future__ import annotations

import hmac

from rest_framework import authentication, exceptions

from sessions.agents.plugins import token_hash
from sessions.api.tokens import TOKEN_PREFIX, api_token_authenticate
from sessions.models import Session


class AgentPrincipal:
    """Who is calling when an agent uses its session token: that session, nothing more."""

    is_authenticated = True
    is_anonymous = False
    is_superuser = False
    is_active = True
    pk = None

    def __init__(self, session: Session) -> None:
        self.session = session

    def __str__(self) -> str:
        return f"agent {self.session.id}"

    def get_username(self) -> str:
        return self.session.id


def _bearer(request) -> str | None:
    header = authentication.get_authorization_header(request).decode("latin-1")
    if not header.startswith("Bearer "):
        return None
    return header[len("Bearer ") :].strip()


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer ao_...``: a user's API token, compared by SHA-256."""

    keyword = "Bearer"

    def authenticate(self, request):
        raw = _bearer(request)
        if raw is None or request.headers.get("X-AO-Session") or not raw.startswith(TOKEN_PREFIX):
            return None  # not ours: an agent's session token, or no token at all
        token = api_token_authenticate(raw)
        if token is None:
            raise exceptions.AuthenticationFailed("invalid or revoked API token")
        return token.user, token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="ao"'


class SessionTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <token>`` plus ``X-AO-Session: <id>``; the token is compared by hash."""

    keyword = "Bearer"

    def authenticate(self, request):
        token = _bearer(request)
        session_id = request.headers.get("X-AO-Session", "")
        if token is None or not session_id:
            return None
        session = Session.objects.select_related("project").filter(pk=session_id[:40]).first()
        if session is None or not session.api_token_hash:
            raise exceptions.AuthenticationFailed("invalid session token")
        if not hmac.compare_digest(session.api_token_hash, token_hash(token)):
            raise exceptions.AuthenticationFailed("invalid session token")
        return AgentPrincipal(session), None

    def authenticate_header(self, request) -> str:
        return self.keyword


class CsrfSessionAuthentication(authentication.SessionAuthentication):
    """The browser's Django session; unsafe methods need the CSRF token (DRF enforces it)."""
