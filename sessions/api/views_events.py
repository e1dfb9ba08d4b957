"""What happened, under /api/v1/: the timeline of events, reaction attempts, notifications (and
marking one read) and the audit log, each filtered to the projects visible to the caller.
"""

from __future__ import annotations

from django.db.models import Exists, OuterRef
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.response import Response

from reactions.models import Notification, ReactionAttempt
from sessions.api import serializers_events as s
from sessions.api.pagination import cursor_by
from sessions.api.permissions import project_for
from sessions.api.views import AoAPIView, AoListView
from sessions.core import selectors
from sessions.models import AuditEntry, Event, Membership


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
