"""Durable reaction bookkeeping: one row per (session, rule, fingerprint)."""

from __future__ import annotations

import re

from django.conf import settings
from django.db import models

from ao_site.links import host_of

_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]*[^\s'\"<>.,:;)\]]")  # not the ending "." or ":"
SHOWN_ERROR_CHARS = 300


def delivery_error_shown(text: str) -> str:
    """A delivery's error as members see it (inbox, API): any URL reduced to its host, since a
    webhook URL is a credential; clipped."""
    shown = _URL.sub(lambda match: host_of(match.group(0)), text or "")
    return shown if len(shown) <= SHOWN_ERROR_CHARS else shown[: SHOWN_ERROR_CHARS - 1] + "…"


class ReactionAttempt(models.Model):
    """How often a rule has acted on one distinct fact set of one session.

    The unique constraint is what makes reactions exactly-once across restarts, duplicate
    webhooks and concurrent workers: a sender first claims the row, then acts.
    """

    session = models.ForeignKey(
        "agent_sessions.Session", on_delete=models.CASCADE, related_name="reaction_attempts"
    )
    rule = models.CharField(max_length=64)
    fingerprint = models.CharField(max_length=128)
    attempts = models.PositiveIntegerField(default=0)
    first_at = models.DateTimeField(auto_now_add=True)
    last_at = models.DateTimeField(auto_now=True)
    escalated = models.BooleanField(default=False)
    escalated_at = models.DateTimeField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-last_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["session", "rule", "fingerprint"], name="reaction_attempt_unique_fingerprint"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.session_id} {self.rule} {self.fingerprint[:12]} x{self.attempts}"


class Priority(models.TextChoices):
    URGENT = "urgent", "Urgent"
    ACTION = "action", "Action"
    WARNING = "warning", "Warning"
    INFO = "info", "Info"


class Notification(models.Model):
    """Something a person should know, recorded once and sent through the routed notifiers.

    Also the in-app inbox: every notification is listed for the project's members; ``read_by``
    holds who has seen it. ``recipient`` is the person it concerns (a session's owner: whoever
    spawned it; a person whose spawn was refused): notifiers that reach people one by one (the
    email notifier with ``toRecipient``) send it to them; empty: the project as a whole.
    """

    project = models.ForeignKey(
        "agent_sessions.Project", on_delete=models.CASCADE, related_name="notifications"
    )
    session = models.ForeignKey(
        "agent_sessions.Session",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notifications",
    )
    priority = models.CharField(max_length=16, choices=Priority.choices, default=Priority.INFO, db_index=True)
    rule = models.CharField(max_length=64, blank=True, help_text="the reaction rule that raised it, if any")
    title = models.CharField(max_length=300)
    body = models.TextField(blank=True)
    url = models.URLField(max_length=1000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    read_by = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="notifications_read")
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="notifications_for",
        help_text="the person it concerns (a session's owner, a refused spawner); empty: the project's members",
    )

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"[{self.priority}] {self.title}"


class NotificationDelivery(models.Model):
    """One notifier's attempt(s) to deliver one notification; failures stay visible."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="deliveries")
    notifier = models.CharField(max_length=100, help_text="the notifier instance's name from config")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["notification", "notifier"]
        constraints = [
            models.UniqueConstraint(fields=["notification", "notifier"], name="one_delivery_per_notifier"),
        ]

    def __str__(self) -> str:
        return f"{self.notifier}: {self.state}"

    @property
    def shown_state(self) -> str:
        """What people see: sent, pending (not tried yet), retrying (a try failed, another is
        scheduled) or failed."""
        if self.state == self.State.PENDING and self.last_error:
            return "retrying"
        return self.state

    @property
    def shown_error(self) -> str:
        """The last error, safe to show every member of the project (URLs reduced to their host)."""
        return delivery_error_shown(self.last_error)


class NotifierInstance(models.Model):
    """A named notifier from config (``notifiers:``): a plugin key plus its validated settings.

    Written by ``reactions.notify.notifiers_apply`` when a config file is applied, and editable in the
    admin (settings validated by the plugin); the file wins when it changes.
    Settings may hold a webhook URL until secrets management exists; they are never logged.
    """

    name = models.CharField(max_length=100, unique=True)
    plugin = models.CharField(max_length=64)
    settings = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.plugin})"


class NotificationRoute(models.Model):
    """Which notifier instances get one priority (``notificationRouting``), in order.

    ``priority`` "default" holds ``defaults.notifiers``: used for priorities with no route.
    """

    DEFAULT = "default"

    priority = models.CharField(
        max_length=16, unique=True, choices=[*Priority.choices, (DEFAULT, "Default (unrouted priorities)")]
    )
    notifiers = models.JSONField(default=list, blank=True, help_text="notifier instance names, in order")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["priority"]

    def __str__(self) -> str:
        return f"{self.priority}: {', '.join(self.notifiers)}"
