"""The agent's own endpoints under /api/v1/sessions/<id>/: ``report`` and ``pr``, taken only with
that session's token (``SessionTokenAuthentication``), for that session only.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from ao_site import served
from integrations.base import PermanentIntegrationError
from sessions.api import serializers as s
from sessions.api.auth import AgentPrincipal, SessionTokenAuthentication
from sessions.api.errors import Conflict
from sessions.api.views import AoAPIView
from sessions.core import services
from sessions.models import Session
from sessions.prs import prsync


# --- the agent's own endpoints (per-session token) ------------------------------------------------
def _own_session(request, session_id: str) -> Session:
    principal = request.user
    if not isinstance(principal, AgentPrincipal):
        raise PermissionDenied("this endpoint takes a session token")
    if principal.session.pk != session_id:
        raise PermissionDenied("a session token may only act for its own session")
    session = Session.objects.select_related("project").filter(pk=session_id).first()
    if session is None:
        raise NotFound(f"no session {session_id}")
    return session


class AgentAPIView(AoAPIView):
    authentication_classes = [SessionTokenAuthentication]
    permission_classes = [IsAuthenticated]


class ReportView(AgentAPIView):
    """An agent reports its own state (`ao report STATE`); only for its own session."""

    serializer_class = s.ReportSerializer

    @extend_schema(
        operation_id="agent_report", request=s.ReportSerializer, responses=s.ReportResponseSerializer
    )
    def post(self, request, session_id: str):
        session = _own_session(request, session_id)
        data = self.body(s.ReportSerializer)
        services.session_report(session=session, **data)
        session.refresh_from_db()
        return Response(
            {"session": session.id, "status": session.status, "zone": session.zone, "url": served.agent_url()}
        )


class PullRequestOpenView(AgentAPIView):
    """An agent opens the PR for its branch (`ao pr create` inside its worktree; local SCM)."""

    serializer_class = s.PullRequestOpenSerializer

    @extend_schema(
        operation_id="agent_pr_open",
        request=s.PullRequestOpenSerializer,
        responses={200: s.PullRequestOpenResponseSerializer, 201: s.PullRequestOpenResponseSerializer},
    )
    def post(self, request, session_id: str):
        session = _own_session(request, session_id)
        data = self.body(s.PullRequestOpenSerializer)
        try:
            result = prsync.session_pull_request_open(session=session, **data)
        except PermanentIntegrationError as exc:
            raise Conflict(str(exc), code="not_supported") from exc
        return Response(result, status=status.HTTP_201_CREATED if result["created"] else status.HTTP_200_OK)
