"""Failed logins in the admin (superusers only): who is locked out, from where, until when; and
the action that lifts a lockout (``sessions.core.login_lockout``; ``ao login-unlock`` does the same)."""

from __future__ import annotations

from axes.models import AccessAttempt
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Max, OuterRef, Subquery, Sum
from django.utils import timezone

from sessions.core.login_lockout import lockout_rules, login_lockouts_lift, recent_attempts
from sessions.dashboard.admin_audit import AuditedModelAdmin


@admin.register(AccessAttempt)
class AccessAttemptAdmin(AuditedModelAdmin):
    """A row per account name, address and browser that failed to log in within the cool-off.

    "Status" counts every rule the row falls under: an address locked for all accounts shows as
    locked on each of its rows. Search by an address to see all of its rows.
    """

    list_display = ("username", "ip_address", "failures_since_start", "attempt_time", "status", "path_info")
    list_filter = ("path_info",)
    search_fields = ("username", "ip_address")
    ordering = ("-attempt_time",)
    fields = ("username", "ip_address", "user_agent", "path_info", "failures_since_start", "attempt_time")
    readonly_fields = fields
    actions = ["lift_lockouts"]

    def get_queryset(self, request):
        rows = super().get_queryset(request)
        for index, (rule_fields, _limit) in enumerate(lockout_rules()):
            group = (
                recent_attempts()
                .filter(**{name: OuterRef(name) for name in rule_fields})
                .values(*rule_fields)
                .annotate(n=Sum("failures_since_start"), last=Max("attempt_time"))
            )
            rows = rows.annotate(
                **{
                    f"rule{index}_failures": Subquery(group.values("n")[:1]),
                    f"rule{index}_last": Subquery(group.values("last")[:1]),
                }
            )
        return rows

    @admin.display(description="Status")
    def status(self, obj: AccessAttempt) -> str:
        until = max(
            (
                getattr(obj, f"rule{index}_last") + settings.AXES_COOLOFF_TIME
                for index, (_fields, limit) in enumerate(lockout_rules())
                if (getattr(obj, f"rule{index}_failures", None) or 0) >= limit
            ),
            default=None,
        )
        if until is None or until <= timezone.now():
            return "Counting"
        return f"Locked out until {timezone.localtime(until):%Y-%m-%d %H:%M %Z}"

    @admin.action(description="Lift the lockout (clear these failed logins)", permissions=["delete"])
    def lift_lockouts(self, request, queryset) -> None:
        lifted = login_lockouts_lift(attempts=queryset)
        messages.success(request, f"Cleared {len(lifted)} record(s) of failed logins.")

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # lifting is the one way, recorded as login.unlock
        return actions

    # Who guessed which name from where is for superusers only, and the rows are facts: no edits.
    def has_module_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
