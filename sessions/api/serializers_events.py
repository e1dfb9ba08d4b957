"""Serializers of what happened (``views_events``): timeline events, reaction attempts,
notifications with their deliveries, and audit entries."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from reactions.models import Notification, NotificationDelivery, ReactionAttempt
from sessions.models import AuditEntry, Event


class EventSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="key", read_only=True)
    session = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    actor_user = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = Event
        fields = [
            "id",
            "project",
            "session",
            "kind",
            "actor",
            "actor_user",
            "actor_name",
            "summary",
            "data",
            "created_at",
        ]


class EventFilterSerializer(serializers.Serializer):
    project = serializers.CharField(required=False, max_length=63)
    session = serializers.CharField(required=False, max_length=40)
    kind = serializers.CharField(required=False, max_length=64)
    since = serializers.DateTimeField(required=False)


class ReactionAttemptSerializer(serializers.ModelSerializer):
    session = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = ReactionAttempt
        fields = [
            "id",
            "session",
            "rule",
            "fingerprint",
            "attempts",
            "first_at",
            "last_at",
            "escalated",
            "escalated_at",
            "detail",
        ]


class NotificationDeliverySerializer(serializers.ModelSerializer):
    """One notifier's delivery of a notification: failures are visible to every member."""

    state = serializers.ChoiceField(
        source="shown_state",
        read_only=True,
        choices=["pending", "retrying", "sent", "failed"],
        help_text="retrying: a try failed and another is scheduled",
    )
    error = serializers.CharField(
        source="shown_error", read_only=True, help_text="the last error (URLs reduced to their host)"
    )

    class Meta:
        model = NotificationDelivery
        fields = ["notifier", "state", "attempts", "error", "updated_at"]


class NotificationSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="key", read_only=True)
    session = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    read = serializers.SerializerMethodField()
    deliveries = NotificationDeliverySerializer(many=True, read_only=True)
    recipient = serializers.SlugRelatedField(
        slug_field="username",
        read_only=True,
        allow_null=True,
        help_text="the person it concerns (a session's owner, a refused spawner); null: the project's members",
    )

    class Meta:
        model = Notification
        fields = [
            "id",
            "project",
            "session",
            "priority",
            "rule",
            "title",
            "body",
            "url",
            "created_at",
            "recipient",
            "read",
            "deliveries",
        ]

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_read(self, notification: Notification) -> bool:
        flagged = getattr(notification, "is_read", None)
        if flagged is not None:
            return bool(flagged)
        return notification.read_by.filter(pk=self.context["request"].user.pk).exists()


class AuditEntrySerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="key", read_only=True, allow_null=True)
    actor_user = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "at",
            "actor_kind",
            "actor_user",
            "actor_name",
            "source",
            "action",
            "target_type",
            "target_id",
            "project",
            "data",
        ]
