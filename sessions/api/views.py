"""REST endpoints under /api/v1/. Thin: validate, check who is asking, call one service.

Every endpoint filters by the projects visible to the caller (``selectors.projects_visible_to``)
and checks the caller's role in the project: viewer reads, operator acts, admin configures.
Actions go through the same services as the dashboard and the CLI.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db.models import Exists, OuterRef
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.generics import GenericAPIView
from rest_framework.mixins import ListModelMixin
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from ao_site import served
from integrations.base import IntegrationError, IssueNotFound, PermanentIntegrationError
from integrations.registry import ConfigurationError, plugin_for
from reactions.models import Notification, ReactionAttempt
from sessions import agents, audit, merge, messaging, prsync, reviews, selectors, services
from sessions import issues as issue_service
from sessions.api import serializers as s
from sessions.api.auth import AgentPrincipal, SessionTokenAuthentication
from sessions.api.errors import Conflict, PayloadTooLarge, _translate, error_body
from sessions.api.pagination import cursor_by
from sessions.api.permissions import IsPersonOrBot, TokenRateThrottle, project_for, session_for
from sessions.api.tokens import api_token_create, api_token_revoke, api_tokens_for
from sessions.lifecycle import Zone
from sessions.models import Actor, ApiToken, AuditEntry, Event, Membership, Message, Session

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


def _actor_fields(request) -> dict:
    """How services record who acted on the timeline: a person (or their bot token) is a user."""
    return {"by": request.user, "actor": Actor.USER}


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
        Session.objects.filter(project=project, kind=Session.Kind.WORKER)
        .exclude(zone=Zone.DONE)
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


# --- spawning -------------------------------------------------------------------------------------
class SpawnView(AoAPIView):
    """Spawn a session on an issue and/or with a prompt (operator). Queued when over the cap."""

    serializer_class = s.SpawnSerializer

    @extend_schema(
        operation_id="sessions_spawn", request=s.SpawnSerializer, responses={201: s.SessionSerializer}
    )
    def post(self, request, key: str):
        project = project_for(request, key, OPERATE)
        data = self.body(s.SpawnSerializer)
        session = agents.session_spawn(
            project=project,
            issue_ref=data.get("issue") or None,
            prompt=data.get("prompt") or None,
            agent=data.get("agent") or None,
            branch=data.get("branch") or None,
            missing_issue_ok=data.get("missing_issue_ok", False),
            host=data.get("host") or None,
            **_actor_fields(request),
        )
        session.refresh_from_db()
        return Response(s.SessionSerializer(session).data, status=status.HTTP_201_CREATED)


class BatchSpawnView(AoAPIView):
    """One session per issue, in the order given (each issue once). Failures are per issue."""

    serializer_class = s.BatchSpawnSerializer

    @extend_schema(
        operation_id="sessions_batch_spawn",
        request=s.BatchSpawnSerializer,
        responses=s.BatchSpawnResponseSerializer,
    )
    def post(self, request, key: str):
        project = project_for(request, key, OPERATE)
        data = self.body(s.BatchSpawnSerializer)
        results = []
        for ref in dict.fromkeys(data["issues"]):
            try:
                session = agents.session_spawn(
                    project=project, issue_ref=ref, agent=data.get("agent") or None, **_actor_fields(request)
                )
            except (agents.SpawnRefused, ConfigurationError, IntegrationError, ValueError) as exc:
                translated = _translate(exc)
                code = getattr(getattr(translated, "detail", None), "code", None) or "invalid"
                results.append({"issue": ref, "session": None, "error": error_body(code, str(exc))["error"]})
                continue
            session.refresh_from_db()
            results.append({"issue": ref, "session": s.SessionSerializer(session).data, "error": None})
        failed = sum(1 for r in results if r["error"])
        return Response({"results": results, "spawned": len(results) - failed, "failed": failed})


# --- sessions -------------------------------------------------------------------------------------
class SessionListView(AoListView):
    """Sessions of your projects, newest first; filter by project, status, zone, agent, kind."""

    pagination_class = cursor_by("-created_at")
    serializer_class = s.SessionSerializer

    @extend_schema(operation_id="sessions_list", parameters=[s.SessionFilterSerializer])
    def get(self, request):
        filters = self.query(s.SessionFilterSerializer)
        qs = Session.objects.select_related("project", "pull_request", "created_by", "credentials_of").filter(
            project__in=selectors.projects_visible_to(request.user)
        )
        if filters.get("project"):
            qs = qs.filter(project=project_for(request, filters["project"]))
        for name in ("status", "zone", "agent", "kind"):
            if filters.get(name):
                qs = qs.filter(**{name: filters[name]})
        if not filters["include_done"]:
            qs = qs.exclude(zone=Zone.DONE)
        return self.page(qs, s.SessionSerializer)


class SessionDetailView(AoAPIView):
    serializer_class = s.SessionDetailSerializer

    @extend_schema(operation_id="sessions_retrieve")
    def get(self, request, session_id: str):
        return Response(s.SessionDetailSerializer(session_for(request, session_id)).data)


SEND_DESCRIPTION = (
    "Queue a message for the agent (operator). A session that is not running (killed, its runtime "
    "gone) is restored first and the message is delivered once the agent is ready (`restored` says "
    "so); 409 `refused` when it cannot be restored (cleaned up, worktree gone), with the reason: "
    "nothing is queued then."
)


class SessionMessagesView(AoListView):
    """A session's messages (oldest first); POST queues one (operator), like `ao send`."""

    pagination_class = cursor_by("pk")
    serializer_class = s.MessageSerializer

    @extend_schema(operation_id="messages_list")
    def get(self, request, session_id: str):
        session = session_for(request, session_id)
        return self.page(
            Message.objects.filter(session=session).select_related("sender_user", "session"),
            s.MessageSerializer,
        )

    @extend_schema(
        operation_id="messages_create",
        request=s.MessageCreateSerializer,
        responses={201: s.MessageSentSerializer},
        description=SEND_DESCRIPTION,
    )
    def post(self, request, session_id: str):
        return _send(self, request, session_id)


def _send(view: AoAPIView, request, session_id: str) -> Response:
    session = session_for(request, session_id, OPERATE)
    data = view.body(s.MessageCreateSerializer)
    try:
        sent = messaging.session_send(
            session=session,
            text=data["text"],
            sender=Actor.USER,
            sender_user=request.user,
            sender_name=getattr(request.auth, "name", "") if isinstance(request.auth, ApiToken) else "",
            answers_prompt=data["answers_prompt"],
        )
    except messaging.SendRefused as exc:
        raise Conflict(str(exc), code="refused") from exc
    except ValueError as exc:
        raise serializers.ValidationError({"text": [str(exc)]}) from exc
    message = sent.message
    message.refresh_from_db()
    message.restored = sent.restored
    return Response(s.MessageSentSerializer(message).data, status=status.HTTP_201_CREATED)


class SessionSendView(AoAPIView):
    serializer_class = s.MessageCreateSerializer

    @extend_schema(
        operation_id="sessions_send",
        request=s.MessageCreateSerializer,
        responses={201: s.MessageSentSerializer},
        description=SEND_DESCRIPTION,
    )
    def post(self, request, session_id: str):
        return _send(self, request, session_id)


class SessionKillView(AoAPIView):
    serializer_class = s.KillSerializer

    @extend_schema(
        operation_id="sessions_kill",
        request=s.KillSerializer,
        responses={200: s.SessionSerializer, 202: s.SessionSerializer},
        description="200: killed. 202: the session runs on another agent host; the kill was "
        "requested there and its result lands on the session's timeline.",
    )
    def post(self, request, session_id: str):
        session = session_for(request, session_id, OPERATE)
        data = self.body(s.KillSerializer)
        reason = data["reason"] or f"by {request.user.get_username()} via the API"
        requested = agents.session_kill(session=session, reason=reason, **_actor_fields(request))
        session.refresh_from_db()
        return Response(s.SessionSerializer(session).data, status=202 if requested else 200)


class SessionRestoreView(AoAPIView):
    serializer_class = s.SessionSerializer

    @extend_schema(
        operation_id="sessions_restore",
        request=None,
        responses={200: s.SessionSerializer, 202: s.SessionSerializer},
        description="200: restored. 202: the session runs on another agent host; the restore was "
        "requested there and its result lands on the session's timeline.",
    )
    def post(self, request, session_id: str):
        session = session_for(request, session_id, OPERATE)
        requested = agents.session_restore(session=session, **_actor_fields(request))
        session.refresh_from_db()
        return Response(s.SessionSerializer(session).data, status=202 if requested else 200)


class SessionMergeView(AoAPIView):
    """Merge the session's PR through the project's SCM, only when it is mergeable (else 409)."""

    serializer_class = s.MergeResponseSerializer

    @extend_schema(operation_id="sessions_merge", request=None, responses=s.MergeResponseSerializer)
    def post(self, request, session_id: str):
        session = session_for(request, session_id, OPERATE)
        try:
            pr = merge.session_pull_request_merge(session=session, by=request.user, via="the API")
        except merge.MergeRefused as exc:
            raise Conflict(f"not mergeable: {exc}", code="not_mergeable", blockers=exc.blockers) from exc
        return Response(
            {"session": session.id, "number": pr.number, "merged": pr.state == "merged", "state": pr.state}
        )


class SessionReviewView(AoAPIView):
    """Approve, request changes on or comment on the session's PR (operator; `local` SCM only, else 409).
    Requesting changes needs a ``body``. The review is on the timeline and the PR's facts are re-read."""

    serializer_class = s.ReviewSerializer

    @extend_schema(
        operation_id="sessions_review", request=s.ReviewSerializer, responses=s.ReviewResponseSerializer
    )
    def post(self, request, session_id: str):
        session = session_for(request, session_id, OPERATE)
        data = self.body(s.ReviewSerializer)
        pr = getattr(session, "pull_request", None)
        if pr is None:
            raise Conflict(f"{session.id} has no pull request", code="no_pr")
        try:
            review = reviews.pull_request_review(
                project=session.project,
                number=pr.number,
                state=reviews.DECISIONS[data["decision"]],
                reviewer=request.user.get_username(),
                body=data["body"],
                **_actor_fields(request),
                via="the API",
            )
        except reviews.ReviewNotSupported as exc:
            raise Conflict(str(exc), code="not_supported") from exc
        except (ValueError, PermanentIntegrationError) as exc:
            raise Conflict(str(exc), code="review_refused") from exc
        pr.refresh_from_db()
        return Response(
            {
                "session": session.id,
                "number": pr.number,
                "state": review.state,
                "review_decision": pr.review_decision,
            }
        )


class SessionClaimPullRequestView(AoAPIView):
    """Link an existing PR (number or URL) to the session: its facts are read from the SCM and stored."""

    serializer_class = s.ClaimPullRequestSerializer

    @extend_schema(
        operation_id="sessions_claim_pr",
        request=s.ClaimPullRequestSerializer,
        responses=s.SessionDetailSerializer,
    )
    def post(self, request, session_id: str):
        session = session_for(request, session_id, OPERATE)
        number = self.body(s.ClaimPullRequestSerializer)["number"]
        try:
            agents.session_pr_claim(session=session, number=number, **_actor_fields(request))
        except agents.ClaimedPullRequestMissing as exc:
            raise NotFound(str(exc)) from exc
        except agents.SessionHasPullRequest as exc:
            raise Conflict(str(exc), code="has_pr") from exc
        except agents.PullRequestHeld as exc:
            raise Conflict(str(exc), code="claimed") from exc
        except (agents.ClaimRefused, PermanentIntegrationError) as exc:
            raise Conflict(str(exc), code="claim_refused") from exc
        session = session_for(request, session_id)
        return Response(s.SessionDetailSerializer(session).data)


# --- timeline, reactions, notifications ------------------------------------------------------------
class EventListView(AoListView):
    """The timeline of your projects, newest first; filter by project, session, kind, since."""

    pagination_class = cursor_by("-pk")
    serializer_class = s.EventSerializer

    @extend_schema(operation_id="events_list", parameters=[s.EventFilterSerializer])
    def get(self, request):
        filters = self.query(s.EventFilterSerializer)
        qs = Event.objects.select_related("project", "actor_user").filter(
            project__in=selectors.projects_visible_to(request.user)
        )
        if filters.get("project"):
            qs = qs.filter(project=project_for(request, filters["project"]))
        if filters.get("session"):
            qs = qs.filter(session_id=filters["session"])
        if filters.get("kind"):
            qs = qs.filter(kind=filters["kind"])
        if filters.get("since"):
            qs = qs.filter(created_at__gt=filters["since"])
        return self.page(qs, s.EventSerializer)


class ReactionAttemptListView(AoListView):
    pagination_class = cursor_by("-pk")
    serializer_class = s.ReactionAttemptSerializer

    @extend_schema(
        operation_id="reaction_attempts_list",
        parameters=[
            OpenApiParameter("session", str, required=False),
            OpenApiParameter("project", str, required=False),
            OpenApiParameter("rule", str, required=False),
        ],
    )
    def get(self, request):
        qs = ReactionAttempt.objects.filter(session__project__in=selectors.projects_visible_to(request.user))
        params = request.query_params
        if params.get("session"):
            qs = qs.filter(session_id=params["session"][:40])
        if params.get("project"):
            qs = qs.filter(session__project=project_for(request, params["project"]))
        if params.get("rule"):
            qs = qs.filter(rule=params["rule"][:64])
        return self.page(qs, s.ReactionAttemptSerializer)


class NotificationListView(AoListView):
    """Notifications of your projects, newest first; ``?unread=true`` for the unread ones,
    ``?mine=true`` for those about you (your sessions, your refused spawns)."""

    pagination_class = cursor_by("-pk")
    serializer_class = s.NotificationSerializer

    @extend_schema(
        operation_id="notifications_list",
        parameters=[
            OpenApiParameter("unread", bool, required=False),
            OpenApiParameter("mine", bool, required=False),
            OpenApiParameter("project", str, required=False),
        ],
    )
    def get(self, request):
        read = Notification.read_by.through.objects.filter(
            notification=OuterRef("pk"), user_id=request.user.pk
        )
        qs = (
            Notification.objects.filter(project__in=selectors.projects_visible_to(request.user))
            .select_related("project", "recipient")
            .prefetch_related("deliveries")
            .annotate(is_read=Exists(read))
        )
        unread = request.query_params.get("unread", "").lower()
        if unread in ("1", "true", "yes"):
            qs = qs.filter(is_read=False)
        if request.query_params.get("mine", "").lower() in ("1", "true", "yes"):
            qs = qs.filter(recipient_id=request.user.pk)
        if request.query_params.get("project"):
            qs = qs.filter(project=project_for(request, request.query_params["project"]))
        return self.page(qs, s.NotificationSerializer)


class NotificationReadView(AoAPIView):
    serializer_class = s.NotificationSerializer

    @extend_schema(operation_id="notifications_mark_read", request=None, responses=s.NotificationSerializer)
    def post(self, request, pk: int):
        notification = (
            Notification.objects.filter(pk=pk, project__in=selectors.projects_visible_to(request.user))
            .select_related("project")
            .first()
        )
        if notification is None:
            raise NotFound(f"no notification {pk} visible to you")
        notification.read_by.add(request.user)
        notification.is_read = True
        return Response(s.NotificationSerializer(notification, context={"request": request}).data)


# --- audit ----------------------------------------------------------------------------------------
class AuditListView(AoListView):
    """The audit log: superusers see all of it, project admins their projects' entries."""

    pagination_class = cursor_by("-pk")
    serializer_class = s.AuditEntrySerializer

    @extend_schema(
        operation_id="audit_list",
        parameters=[
            OpenApiParameter(name, str, required=False)
            for name in ("project", "action", "actor_kind", "source", "user")
        ]
        + [OpenApiParameter("since", OpenApiTypes.DATETIME, required=False)],
    )
    def get(self, request):
        user = request.user
        qs = AuditEntry.objects.select_related("project", "actor_user")
        if not user.is_superuser:
            admin_of = Membership.objects.filter(user=user, role=Membership.Role.ADMIN).values("project")
            if not admin_of.exists():
                raise PermissionDenied("the audit log needs the admin role in a project")
            qs = qs.filter(project__in=admin_of)
        params = request.query_params
        if params.get("project"):
            qs = qs.filter(project__key=params["project"][:63])
        for name in ("action", "actor_kind", "source"):
            if params.get(name):
                qs = qs.filter(**{name: params[name][:64]})
        if params.get("user"):
            qs = qs.filter(actor_user__username=params["user"][:150])
        if params.get("since"):
            since = serializers.DateTimeField().run_validation(params["since"])
            qs = qs.filter(at__gt=since)
        return self.page(qs, s.AuditEntrySerializer)


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
    """Your API tokens (prefix only); POST creates one and returns the raw token once."""

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
