"""Reactions and notifications in the admin. Notifier instances and routing come from the config
file (``reactions.notify.notifiers_apply``): shown read-only here, settings by key only."""

from django.contrib import admin

from reactions.models import (
    Notification,
    NotificationDelivery,
    NotificationRoute,
    NotifierInstance,
    ReactionAttempt,
)
from sessions.admin_audit import AuditedModelAdmin


class ReadOnlyAdmin(AuditedModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ReactionAttempt)
class ReactionAttemptAdmin(AuditedModelAdmin):
    list_display = ("session", "rule", "fingerprint", "attempts", "escalated", "last_at")
    list_filter = ("rule", "escalated")
    search_fields = ("session__id", "rule", "fingerprint")


class NotificationDeliveryInline(admin.TabularInline):
    model = NotificationDelivery
    extra = 0
    readonly_fields = ("notifier", "state", "attempts", "last_error", "updated_at")
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "project", "session", "priority", "rule", "title")
    list_filter = ("priority", "project", "rule")
    search_fields = ("title", "body", "session__id")
    exclude = ("read_by",)
    inlines = [NotificationDeliveryInline]


@admin.register(NotifierInstance)
class NotifierInstanceAdmin(ReadOnlyAdmin):
    list_display = ("name", "plugin", "setting_keys", "updated_at")
    fields = ("name", "plugin", "setting_keys", "updated_at")
    readonly_fields = fields

    @admin.display(description="settings (keys; values may be secrets)")
    def setting_keys(self, obj: NotifierInstance) -> str:
        return ", ".join(sorted(obj.settings or {})) or "-"


@admin.register(NotificationRoute)
class NotificationRouteAdmin(ReadOnlyAdmin):
    list_display = ("priority", "targets", "updated_at")

    @admin.display(description="notifiers")
    def targets(self, obj: NotificationRoute) -> str:
        return ", ".join(obj.notifiers) or "-"
