"""Durable reaction bookkeeping: one row per (session, rule, fingerprint)."""

from __future__ import annotations

from django.db import models


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
