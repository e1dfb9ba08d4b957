"""REST endpoints. Thin: validate, check who is asking, call one service."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from integrations.base import IntegrationError
from sessions import prsync, services
from sessions.api.auth import AgentPrincipal, SessionTokenAuthentication
from sessions.lifecycle import Reported
from sessions.models import Session
from sessions.text import clean_text


class ReportSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=[c for c in Reported.values if c])
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")
    pr = serializers.URLField(required=False, allow_blank=True, max_length=1000, default="")

    def validate_note(self, value: str) -> str:
        return clean_text(value, max_chars=2000, what="note", allow_empty=True)


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


class ReportView(APIView):
    """An agent reports its own state (`ao report STATE`); only for its own session."""

    authentication_classes = [SessionTokenAuthentication]
    permission_classes = [IsAuthenticated]

    def post(self, request, session_id: str):
        session = _own_session(request, session_id)
        data = ReportSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.session_report(session=session, **data.validated_data)
        session.refresh_from_db()
        return Response(
            {"session": session.id, "status": session.status, "zone": session.zone, "url": settings.AO_URL},
            status=status.HTTP_200_OK,
        )


class PullRequestOpenSerializer(serializers.Serializer):
    title = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")
    body = serializers.CharField(required=False, allow_blank=True, max_length=65536, default="")
    force = serializers.BooleanField(required=False, default=False)

    def validate_title(self, value: str) -> str:
        return clean_text(value, max_chars=500, what="title", allow_empty=True).replace("\n", " ")

    def validate_body(self, value: str) -> str:
        return clean_text(value, max_chars=65536, what="body", allow_empty=True)


class PullRequestOpenView(APIView):
    """An agent opens the PR for its branch (`ao pr create` inside its worktree; local SCM)."""

    authentication_classes = [SessionTokenAuthentication]
    permission_classes = [IsAuthenticated]

    def post(self, request, session_id: str):
        session = _own_session(request, session_id)
        data = PullRequestOpenSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            result = prsync.session_pull_request_open(session=session, **data.validated_data)
        except IntegrationError as exc:
            raise ValidationError({"error": str(exc)}) from exc
        return Response(result, status=status.HTTP_201_CREATED if result["created"] else status.HTTP_200_OK)
