"""API authentication: the per-session token an agent gets in AO_TOKEN."""

from __future__ import annotations

import hmac

from rest_framework import authentication, exceptions

from sessions.agents import token_hash
from sessions.models import Session


class AgentPrincipal:
    """Who is calling when an agent uses its session token: that session, nothing more."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, session: Session) -> None:
        self.session = session

    def __str__(self) -> str:
        return f"agent {self.session.id}"


class SessionTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <token>`` plus ``X-AO-Session: <id>``; the token is compared by hash."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        session_id = request.headers.get("X-AO-Session", "")
        if not header.startswith(self.keyword + " ") or not session_id:
            return None
        token = header[len(self.keyword) + 1 :].strip()
        session = Session.objects.select_related("project").filter(pk=session_id[:40]).first()
        if session is None or not session.api_token_hash:
            raise exceptions.AuthenticationFailed("invalid session token")
        if not hmac.compare_digest(session.api_token_hash, token_hash(token)):
            raise exceptions.AuthenticationFailed("invalid session token")
        return AgentPrincipal(session), None

    def authenticate_header(self, request) -> str:
        return self.keyword
