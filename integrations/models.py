"""Data owned by integrations: issues of the `local` tracker; PRs, reviews and CI runs of the `local` SCM."""

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
    blocked_by = models.JSONField(
        default=list, blank=True, help_text="numbers of the project's issues this one is blocked by"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="local_issue_number_unique")
        ]

    def __str__(self) -> str:
        return f"#{self.number} {self.title}"


class LocalPullRequest(models.Model):
    """A branch under review in the `local` SCM: pushed to a bare remote ao manages, numbered per project."""

    class State(models.TextChoices):
        OPEN = "open", "Open"
        MERGED = "merged", "Merged"
        CLOSED = "closed", "Closed"

    project = models.ForeignKey(
        "agent_sessions.Project", on_delete=models.CASCADE, related_name="local_pull_requests"
    )
    number = models.PositiveIntegerField()
    branch = models.CharField(max_length=255)
    base = models.CharField(max_length=255)
    title = models.CharField(max_length=500)
    body = models.TextField(blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN)
    head_sha = models.CharField(max_length=64, blank=True, help_text="last head seen in the remote")
    created_by = models.CharField(max_length=40, blank=True, help_text="session id that opened it")
    # Kept equal to the decision derived from the reviews (see LocalSCM.review).
    review_decision = models.CharField(max_length=24, default="none")
    merged_sha = models.CharField(max_length=64, blank=True)
    merged_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="local_pr_number_unique"),
            models.UniqueConstraint(
                fields=["project", "branch"],
                condition=models.Q(state="open"),
                name="local_pr_one_open_per_branch",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.number} {self.title}"


class LocalReview(models.Model):
    """A review or comment on a local PR; with ``path`` (and ``line``) it is a review thread."""

    class State(models.TextChoices):
        APPROVED = "approved", "Approved"
        CHANGES_REQUESTED = "changes_requested", "Changes requested"
        COMMENTED = "commented", "Commented"

    pr = models.ForeignKey(LocalPullRequest, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.CharField(max_length=150)
    association = models.CharField(max_length=32, default="MEMBER")
    is_bot = models.BooleanField(default=False)
    state = models.CharField(max_length=24, choices=State.choices)
    body = models.TextField(blank=True)
    path = models.CharField(max_length=1024, blank=True)
    line = models.PositiveIntegerField(null=True, blank=True)
    resolved = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.reviewer}: {self.state}"


class LocalCIRun(models.Model):
    """One run of a project's check command on a pushed head; at most one per (PR, sha, check)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETED = "completed", "Completed"

    class Conclusion(models.TextChoices):
        NONE = "", "—"
        SUCCESS = "success", "Success"
        FAILURE = "failure", "Failure"
        ERROR = "error", "Error"
        TIMED_OUT = "timed_out", "Timed out"

    project = models.ForeignKey(
        "agent_sessions.Project", on_delete=models.CASCADE, related_name="local_ci_runs"
    )
    pr = models.ForeignKey(LocalPullRequest, on_delete=models.CASCADE, related_name="ci_runs")
    name = models.CharField(max_length=255, default="ci")
    head_sha = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    conclusion = models.CharField(max_length=16, choices=Conclusion.choices, blank=True, default="")
    exit_code = models.IntegerField(null=True, blank=True)
    log_excerpt = models.TextField(blank=True, help_text="the tail of the output, bounded")
    attempts = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    duration = models.FloatField(null=True, blank=True, help_text="seconds")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    FAILED_CONCLUSIONS = frozenset({"failure", "error", "timed_out"})

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["pr", "head_sha", "name"], name="local_ci_run_once_per_sha"),
        ]

    def __str__(self) -> str:
        return f"{self.name}@{self.head_sha[:8]}: {self.conclusion or self.status}"

    @property
    def failed(self) -> bool:
        return self.status == self.Status.COMPLETED and self.conclusion in self.FAILED_CONCLUSIONS
