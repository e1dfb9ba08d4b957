"""Data owned by integrations: issues of the `local` tracker."""

from __future__ import annotations

from django.db import models


class LocalIssue(models.Model):
    """An issue kept in ao itself (the `local` tracker), numbered per project like GitHub's."""

    class State(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    project = models.ForeignKey(
        "agent_sessions.Project", on_delete=models.CASCADE, related_name="local_issues"
    )
    number = models.PositiveIntegerField()
    title = models.CharField(max_length=500)
    body = models.TextField(blank=True)
    labels = models.JSONField(default=list, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN)
    comments = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="local_issue_number_unique")
        ]

    def __str__(self) -> str:
        return f"#{self.number} {self.title}"
