"""REST endpoints under /api/v1/. Thin: validate, check who is asking, call one service.

Every endpoint filters by the projects visible to the caller (``selectors.projects_visible_to``)
and checks the caller's role in the project: viewer reads, operator acts, admin configures.
Actions go through the same services as the dashboard and the CLI.

This module holds the base views (``AoAPIView``, ``AoListView``), projects, issues, tokens and
``me``; the other resources are beside it: ``views_sessions`` (spawn and the sessions),
``views_events`` (timeline, reaction attempts, notifications, audit), ``views_agent`` (the
agent's own ``report`` and ``pr``), ``views_credentials``, ``views_hosts``, ``views_reactions``
and ``views_usage``.
"""

from __future__ import annotations

import logging

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.generics import GenericAPIView
from rest_framework.mixins import ListModelMixin
from rest_framework.response import Response

from integrations.base import IssueNotFound, PermanentIntegrationError
from integrations.registry import plugin_for
from sessions.agents import issues as issue_service
from sessions.api import serializers as s
from sessions.api.auth import AgentPrincipal
from sessions.api.errors import Conflict, PayloadTooLarge
from sessions.api.pagination import cursor_by
from sessions.api.permissions import IsPersonOrBot, TokenRateThrottle, project_for
from sessions.api.tokens import api_token_create, api_token_revoke, api_tokens_for
from sessions.core import audit, selectors
from sessions.models import ApiToken, Membership, Session

log = logging.getLogger(__name__)

VIEW, OPERATE, ADMIN = selectors.VIEW, selectors.OPERATE, selectors.ADMIN


def _audit_context_for(request) -> audit.AuditContext:
    user, auth = request.user, request.auth
    if isinstance(user, AgentPrincipal):
        kind = audit.ORCHESTRATOR if user.session.kind == Session.Kind.ORCHESTRATOR else audit.AGENT
        return audit.AuditContext(source=audit.API, actor=kind, actor_name=user.session.id)
    if isinstance(auth, ApiToken):
        if request.headers.get("X-AO-Client", "").lower() == "cli":
            return audit.AuditContext(
                source=audit.CLI, actor=audit.USER, actor_name=f"token {auth.name}", user=user
            )
        return audit.AuditContext(
            source=audit.API, actor=audit.BOT, actor_name=f"token {auth.name}", user=user
        )
    return audit.AuditContext(source=audit.BROWSER, actor=audit.USER, user=user)


class AoAPIView(GenericAPIView):
    """Base of every ao endpoint: body size limit, throttling per token, audit context."""

    permission_classes = [IsPersonOrBot]
    throttle_classes = [TokenRateThrottle]

    def initial(self, request, *args, **kwargs):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.AO_API_MAX_BODY_BYTES:
            raise PayloadTooLarge(
                f"the request body is {length:,} bytes; the limit is {settings.AO_API_MAX_BODY_BYTES:,}"
            )
        super().initial(request, *args, **kwargs)
        self._audit_token = audit.push(_audit_context_for(request))

    def finalize_response(self, request, response, *args, **kwargs):
        token = getattr(self, "_audit_token", None)
        if token is not None:
            audit.pop(token)
            self._audit_token = None
        return super().finalize_response(request, response, *args, **kwargs)

    def query(self, serializer_class):
        data = serializer_class(data=self.request.query_params)
        data.is_valid(raise_exception=True)
        return data.validated_data

    def body(self, serializer_class):
        data = serializer_class(data=self.request.data)
        data.is_valid(raise_exception=True)
        return data.validated_data

    def page(self, queryset, serializer_class, **context):
        page = self.paginate_queryset(queryset)
        data = serializer_class(page, many=True, context={"request": self.request, **context}).data
        return self.get_paginated_response(data)


class AoListView(ListModelMixin, AoAPIView):
    """A cursor-paginated list (ListModelMixin tells the schema generator the response is paginated)."""


# --- projects -------------------------------------------------------------------------------------
class ProjectListView(AoListView):
    """Projects visible to you, with your role in each."""

    pagination_class = cursor_by("key")
    serializer_class = s.ProjectSerializer

    @extend_schema(operation_id="projects_list")
    def get(self, request):
        return self.page(selectors.projects_visible_to(request.user).order_by("key"), s.ProjectSerializer)


class ProjectDetailView(AoAPIView):
    serializer_class = s.ProjectSerializer

    @extend_schema(operation_id="projects_retrieve")
    def get(self, request, key: str):
        return Response(s.ProjectSerializer(project_for(request, key), context={"request": request}).data)


# --- issues (the project's tracker) ---------------------------------------------------------------
def _issue_data(issue, live: dict[str, str]) -> dict:
    return {
        "ref": issue.ref,
        "title": issue.title,
        "body": issue.body,
        "url": issue.url,
        "labels": list(issue.labels),
        "state": issue.state,
        "session": live.get(issue.ref),
    }


def _live_by_issue(project) -> dict[str, str]:
    return dict(
        Session.objects.live()
        .filter(project=project, kind=Session.Kind.WORKER)
        .exclude(issue_ref="")
        .values_list("issue_ref", "id")
    )


class IssueListView(AoAPIView):
    """The project's backlog from its tracker; POST creates an issue (trackers that take them: local)."""

    pagination_class = None
    serializer_class = s.IssueSerializer

    @extend_schema(
        operation_id="issues_list",
        parameters=[s.IssueFilterSerializer],
        responses=s.IssueSerializer(many=True),
    )
    def get(self, request, key: str):
        project = project_for(request, key)
        filters = self.query(s.IssueFilterSerializer)
        issues = plugin_for(project, "tracker").list_issues(
            label=filters.get("label"), limit=filters["limit"]
        )
        live = _live_by_issue(project)
        return Response([_issue_data(issue, live) for issue in issues])

    @extend_schema(
        operation_id="issues_create", request=s.IssueCreateSerializer, responses={201: s.IssueSerializer}
    )
    def post(self, request, key: str):
        project = project_for(request, key, OPERATE)
        data = self.body(s.IssueCreateSerializer)
        try:
            issue, blockers = issue_service.issue_create(
                project=project,
                title=data["title"],
                body=data["body"],
                labels=data["labels"],
                blocked_by=data["blocked_by"],
            )
        except IssueNotFound as exc:
            raise serializers.ValidationError({"blocked_by": [str(exc)]}) from exc
        except PermanentIntegrationError as exc:
            raise Conflict(str(exc), code="not_supported") from exc
        return Response({**_issue_data(issue, {}), "blocked_by": blockers}, status=status.HTTP_201_CREATED)


class IssueDetailView(AoAPIView):
    serializer_class = s.IssueSerializer

    @extend_schema(operation_id="issues_retrieve")
    def get(self, request, key: str, ref: str):
        project = project_for(request, key)
        issue = plugin_for(project, "tracker").get_issue(ref[:100])
        return Response(_issue_data(issue, _live_by_issue(project)))


# --- tokens and who am I --------------------------------------------------------------------------
class MeView(AoAPIView):
    serializer_class = s.MeSerializer

    @extend_schema(operation_id="me")
    def get(self, request):
        user = request.user
        if user.is_superuser:
            projects = [{"project": p.key, "role": ADMIN} for p in selectors.projects_visible_to(user)]
        else:
            projects = [
                {"project": m.project.key, "role": m.role}
                for m in Membership.objects.filter(user=user).select_related("project")
            ]
        token = request.auth if isinstance(request.auth, ApiToken) else None
        return Response(
            {
                "username": user.get_username(),
                "is_superuser": user.is_superuser,
                "auth": "token" if token else "session",
                "token": token.prefix if token else None,
                "projects": projects,
            }
        )


class TokenListView(AoAPIView):
    """Your API tokens (prefix only); POST creates one and returns the raw token once (a person
    signed in, not an API token)."""

    pagination_class = None
    serializer_class = s.ApiTokenSerializer

    @extend_schema(operation_id="tokens_list", responses=s.ApiTokenSerializer(many=True))
    def get(self, request):
        return Response(s.ApiTokenSerializer(api_tokens_for(user=request.user), many=True).data)

    @extend_schema(
        operation_id="tokens_create",
        request=s.ApiTokenCreateSerializer,
        responses={201: s.ApiTokenCreatedSerializer},
    )
    def post(self, request):
        if isinstance(request.auth, ApiToken):
            # a leaked token must not outlive its revocation through tokens it made
            raise PermissionDenied(
                "an API token cannot create tokens: sign in and use /tokens/, or run `ao token create` on the ao host"
            )
        data = self.body(s.ApiTokenCreateSerializer)
        token, raw = api_token_create(user=request.user, name=data["name"])
        token.token = raw
        return Response(s.ApiTokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)


class TokenDetailView(AoAPIView):
    serializer_class = s.ApiTokenSerializer

    @extend_schema(
        operation_id="tokens_revoke",
        request=None,
        responses={204: OpenApiResponse(description="revoked (or already revoked); no body")},
    )
    def delete(self, request, pk: int):
        token = api_tokens_for(user=request.user).filter(pk=pk).first()
        if token is None:
            raise NotFound(f"you have no token {pk}")
        api_token_revoke(token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)
