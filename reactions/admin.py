"""Reactions and notifications in the admin. Notifier instances and routing are written by the config
file (``reactions.notify.notifiers_apply``) and editable here: settings are checked by the notifier
plugin's settings model, routes must name known notifiers. A later change of the config file replaces
them (the file wins when it changes; ``ao start`` does not re-apply an unchanged file)."""

from django import forms
from django.contrib import admin

from integrations.registry import ConfigurationError, notifiers
from reactions.models import (
    Notification,
    NotificationDelivery,
    NotificationRoute,
    NotifierInstance,
    ReactionAttempt,
)
from sessions.dashboard.admin_audit import AuditedModelAdmin
from sessions.dashboard.admin_scope import ProjectScopedAdminMixin


class ReadOnlyAdmin(AuditedModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ReactionAttempt)
class ReactionAttemptAdmin(ProjectScopedAdminMixin, AuditedModelAdmin):
    project_path = "session__project"
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
class NotificationAdmin(ProjectScopedAdminMixin, ReadOnlyAdmin):
    list_display = ("created_at", "project", "session", "priority", "rule", "title")
    list_filter = ("priority", "project", "rule")
    search_fields = ("title", "body", "session__id")
    exclude = ("read_by",)
    inlines = [NotificationDeliveryInline]


# Settings holding a credential written inline (not as an env var or secret name): masked in the form.
MASKED = "********"
INLINE_CREDENTIALS = ("webhookUrl", "webhook_url", "url")


class NotifierInstanceForm(forms.ModelForm):
    """The notifier plugin validates the settings (as in ao.config.yaml). Inline credentials are shown
    as ``********``; leaving that in place keeps the stored value."""

    class Meta:
        model = NotifierInstance
        fields = ("name", "plugin", "settings")
        help_texts = {
            "settings": 'The plugin\'s settings, e.g. {"webhookUrlSecret": "slack-agents", "channel": "#agents"}; '
            "prefer …Secret / …Env over a URL written here.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stored = dict(self.instance.settings or {}) if self.instance.pk else {}
        if stored:
            self.initial["settings"] = {
                k: (MASKED if k in INLINE_CREDENTIALS and v else v) for k, v in stored.items()
            }

    def clean(self):
        cleaned = super().clean()
        plugin = cleaned.get("plugin")
        value = cleaned.get("settings") or {}
        if not isinstance(value, dict):
            self.add_error("settings", "a mapping {setting: value}")
            return cleaned
        stored = dict(self.instance.settings or {}) if self.instance.pk else {}
        value = {k: (stored.get(k, "") if v == MASKED else v) for k, v in value.items()}
        if not plugin:
            return cleaned
        try:
            validated = notifiers.validate_settings(
                plugin, value, where=f"notifiers.{cleaned.get('name') or 'notifier'}"
            )
        except ConfigurationError as exc:
            self.add_error("plugin" if exc.choices else "settings", str(exc))
            return cleaned
        dump = getattr(validated, "model_dump", None)
        cleaned["settings"] = (
            dump(mode="json", by_alias=True, exclude_unset=True) if dump is not None else dict(value)
        )
        return cleaned


@admin.register(NotifierInstance)
class NotifierInstanceAdmin(AuditedModelAdmin):
    # Editable: `ao start` re-applies the config file only when it changed, so admin edits stay.
    form = NotifierInstanceForm
    list_display = ("name", "plugin", "setting_keys", "updated_at")
    readonly_fields = ("updated_at",)

    @admin.display(description="settings (keys; values may be secrets)")
    def setting_keys(self, obj: NotifierInstance) -> str:
        return ", ".join(sorted(obj.settings or {})) or "-"


class NotificationRouteForm(forms.ModelForm):
    class Meta:
        model = NotificationRoute
        fields = ("priority", "notifiers")
        help_texts = {
            "notifiers": 'Names of notifiers (above) or notifier plugin keys, e.g. ["desktop", "team"].'
        }

    def clean_notifiers(self):
        names = self.cleaned_data.get("notifiers")
        if names in (None, ""):
            return []
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise forms.ValidationError('a list of notifier names, e.g. ["desktop", "team"]')
        known = set(NotifierInstance.objects.values_list("name", flat=True))
        unknown = [n for n in names if n not in known and n not in notifiers]
        if unknown:
            raise forms.ValidationError(
                f"unknown notifier(s) {', '.join(unknown)}: add them under Notifier instances, or use a "
                f"notifier plugin: {', '.join(notifiers.keys())}"
            )
        return names


@admin.register(NotificationRoute)
class NotificationRouteAdmin(AuditedModelAdmin):
    form = NotificationRouteForm
    list_display = ("priority", "targets", "updated_at")
    readonly_fields = ("updated_at",)

    @admin.display(description="notifiers")
    def targets(self, obj: NotificationRoute) -> str:
        return ", ".join(obj.notifiers) or "-"
