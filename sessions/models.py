"""What ao stores: projects, sessions and the facts observed about them, and their timeline.

Models hold fields, constraints, choices and pure properties. Writes go through
``sessions.core.services``; the ``status``/``zone`` columns are written only from
``sessions.domain.lifecycle.derive``.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from integrations.gitutil import BranchNameError, validate_branch_name
from sessions.domain import lifecycle
from sessions.domain.lifecycle import (
    ENDED_PHASES,
    FAILED_CONCLUSIONS,
    PASSED_CONCLUSIONS,
    Activity,
    CIState,
    Phase,
    PRState,
    Reported,
    ReviewDecision,
    RuntimeState,
    Status,
    Zone,
)

SESSION_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,15}\Z")
SESSION_ID_RE = re.compile(r"^(?P<prefix>[a-z][a-z0-9]{0,15})-(?P<number>[1-9][0-9]{0,8}|orchestrator)\Z")
PROJECT_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}\Z")
# owner/name of a repository on the SCM (matched whole: fullmatch)
REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}/[A-Za-z0-9._-]{1,100}$")

prefix_validator = RegexValidator(
    SESSION_PREFIX_RE, "A session prefix is 1-16 lowercase letters or digits, starting with a letter."
)
project_key_validator = RegexValidator(
    PROJECT_KEY_RE, "A project key is lowercase letters, digits, '-' or '_' (at most 63), starting alnum."
)


def validate_repo(value: str) -> None:
    """``owner/name``, or empty (no repository on an SCM)."""
    if value and not REPO_RE.fullmatch(value):
        raise ValidationError(f"{value!r} is not owner/name (e.g. acme/web)")


def validate_default_branch(value: str) -> None:
    """A branch name git accepts and ao will pass to git (``gitutil.validate_branch_name``): never
    one that git would read as an option (``--output=...``)."""
    try:
        validate_branch_name(value)
    except BranchNameError as exc:
        raise ValidationError(str(exc)) from None


def validate_session_id(value: str) -> None:
    if not SESSION_ID_RE.match(value or ""):
        raise ValidationError(
            f"{value!r} is not a session id: expected <prefix>-<n> (e.g. ao-12) or <prefix>-orchestrator"
        )


class Project(models.Model):
    SLOTS = ("agent", "runtime", "workspace", "tracker", "scm")

    key = models.SlugField(max_length=63, unique=True, validators=[project_key_validator])
    name = models.CharField(max_length=200, blank=True)
    repo = models.CharField(
        max_length=200,
        blank=True,
        validators=[validate_repo],
        help_text="owner/name on the SCM, if any; only a superuser may change it (ao's tokens read and write there)",
    )
    path = models.CharField(max_length=1024, help_text="absolute path of the project's own checkout")
    default_branch = models.CharField(max_length=255, default="main", validators=[validate_default_branch])
    session_prefix = models.CharField(max_length=16, unique=True, validators=[prefix_validator])
    next_session_number = models.PositiveIntegerField(default=1, editable=False)

    agent = models.CharField(max_length=64, default="claude-code")
    runtime = models.CharField(max_length=64, default="tmux")
    workspace = models.CharField(max_length=64, default="worktree")
    tracker = models.CharField(max_length=64, default="local")
    scm = models.CharField(max_length=64, default="local")
    plugin_settings = models.JSONField(
        default=dict, blank=True, help_text="validated settings per slot: {slot: {...}}"
    )

    agent_rules = models.TextField(blank=True)
    agent_rules_file = models.CharField(max_length=1024, blank=True)
    symlinks = models.JSONField(default=list, blank=True)
    post_create = models.JSONField(default=list, blank=True)
    reactions = models.JSONField(default=dict, blank=True, help_text="per-project reaction overrides")
    max_sessions = models.PositiveIntegerField(null=True, blank=True, help_text="cap on live sessions")
    refuse_over_cap = models.BooleanField(
        default=False, help_text="refuse spawns over the cap instead of queueing them"
    )
    allow_agent_trust = models.BooleanField(
        default=True,
        help_text="let ao pre-answer the agent's folder-trust dialog through the agent's own settings files",
    )
    pass_tokens_to_agents = models.BooleanField(
        default=False, help_text="pass ao's SCM/tracker tokens into the agents' environment"
    )
    sweep_interval = models.FloatField(null=True, blank=True, help_text="seconds; default from settings")
    monthly_budget_usd = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="cap on this project's agent cost per calendar month (UTC); over it spawns are refused",
    )
    # Whose model credentials a person's session runs with (issue 19; sessions.core.secrets).
    credentials = models.CharField(
        max_length=24,
        default="project",
        choices=[(c, c) for c in ("project", "personal", "personal-or-project")],
        help_text="project: the project's model credentials; personal: the spawner's own; "
        "personal-or-project: the spawner's own when they stored any, else the project's",
    )
    agent_secrets = models.JSONField(
        default=dict,
        blank=True,
        help_text="the project's model credentials: {environment variable: stored secret's name}",
    )

    config_source = models.CharField(max_length=1024, blank=True, help_text="config file it came from")
    # Sweep lease: claimed by a conditional UPDATE so two sweeps of one project never overlap;
    # a crashed sweep's lease simply expires.
    sweep_lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    last_swept_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_pr_sync_at = models.DateTimeField(null=True, blank=True, editable=False)
    # After SCM failures the PR sync backs off (doubling, at most 10 minutes) and then resumes.
    pr_sync_failures = models.PositiveIntegerField(default=0, editable=False)
    pr_sync_backoff_until = models.DateTimeField(null=True, blank=True, editable=False)
    pr_sync_error = models.CharField(max_length=500, blank=True, editable=False)
    # The SCM credential's budget as last seen: {"limit", "remaining", "reset_at", "exhausted"}.
    scm_rate = models.JSONField(default=dict, blank=True, editable=False)
    # --- the orchestrator agent and backlog intake (sessions/watchers/orchestrator.py, sessions/watchers/intake.py) ---
    orchestrator_enabled = models.BooleanField(
        default=True, help_text="`ao start` starts the project's orchestrator agent and sweeps keep it alive"
    )
    orchestrator_agent = models.CharField(
        max_length=64, blank=True, help_text="agent plugin of the orchestrator; empty: the project's agent"
    )
    orchestrator_agent_settings = models.JSONField(default=dict, blank=True)
    orchestrator_rules = models.TextField(blank=True)
    orchestrator_rules_file = models.CharField(max_length=1024, blank=True)
    # Keep-alive bookkeeping: restarts since the orchestrator last ran healthy, next allowed restart.
    orchestrator_restarts = models.PositiveSmallIntegerField(default=0, editable=False)
    orchestrator_restart_after = models.DateTimeField(null=True, blank=True, editable=False)
    intake_enabled = models.BooleanField(
        default=False, help_text="claim issues carrying intake_label and spawn workers for them"
    )
    intake_label = models.CharField(max_length=100, default="agent:backlog")
    intake_in_progress_label = models.CharField(max_length=100, default="agent:in-progress")
    intake_done_label = models.CharField(max_length=100, default="agent:done")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key

    def plugin_key(self, slot: str) -> str:
        return getattr(self, slot)

    def settings_for(self, slot: str) -> dict:
        return dict((self.plugin_settings or {}).get(slot, {}))


class Membership(models.Model):
    """A person's role in a project. Superusers may do everything everywhere."""

    class Role(models.TextChoices):
        VIEWER = "viewer", "Viewer (read)"
        OPERATOR = "operator", "Operator (spawn, send, kill, restore, type in terminals)"
        ADMIN = "admin", "Admin (configure)"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    RANK = {Role.VIEWER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}

    class Meta:
        ordering = ["project", "user"]
        constraints = [models.UniqueConstraint(fields=["user", "project"], name="one_membership_per_project")]

    def __str__(self) -> str:
        return f"{self.user} {self.role} in {self.project}"


class SessionQuerySet(models.QuerySet):
    def live(self) -> SessionQuerySet:
        """The live sessions (``lifecycle.is_live``): not done, not killed, errored or cleaned up."""
        return self.exclude(zone=Zone.DONE).exclude(phase__in=ENDED_PHASES)


class Session(models.Model):
    class Kind(models.TextChoices):
        WORKER = "worker", "Worker"
        ORCHESTRATOR = "orchestrator", "Orchestrator"

    id = models.CharField(max_length=40, primary_key=True, validators=[validate_session_id])
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="sessions")
    number = models.PositiveIntegerField(null=True, blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.WORKER)

    issue_ref = models.CharField(max_length=200, blank=True)
    issue_title = models.CharField(max_length=500, blank=True)
    issue_url = models.URLField(max_length=1000, blank=True)
    prompt = models.TextField(blank=True)
    branch = models.CharField(max_length=255, blank=True)
    workspace_path = models.CharField(max_length=1024, blank=True)
    host = models.CharField(max_length=255, blank=True, help_text="agent host whose worker owns the runtime")
    runtime_handle = models.JSONField(default=dict, blank=True)
    agent = models.CharField(max_length=64, blank=True)
    model = models.CharField(max_length=128, blank=True)
    agent_session_ref = models.CharField(max_length=255, blank=True, help_text="agent conversation id")

    # --- observed facts --------------------------------------------------------------------
    phase = models.CharField(max_length=16, choices=Phase.choices, default=Phase.SPAWNING)
    runtime_state = models.CharField(
        max_length=16, choices=RuntimeState.choices, default=RuntimeState.UNKNOWN
    )
    runtime_checked_at = models.DateTimeField(null=True, blank=True)
    detecting_attempts = models.PositiveSmallIntegerField(default=0)
    activity = models.CharField(max_length=16, choices=Activity.choices, default=Activity.UNKNOWN)
    activity_at = models.DateTimeField(null=True, blank=True)
    activity_weak = models.BooleanField(default=False)
    # the run of concordant readings the current activity belongs to (lifecycle.CONFIRM_READINGS)
    activity_since = models.DateTimeField(null=True, blank=True)
    activity_streak = models.PositiveIntegerField(default=0)
    activity_summary = models.CharField(max_length=500, blank=True)
    reported_state = models.CharField(
        max_length=16, choices=Reported.choices, default=Reported.NONE, blank=True
    )
    reported_at = models.DateTimeField(null=True, blank=True)
    tokens_in = models.BigIntegerField(default=0)
    tokens_out = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=4, default=0)
    error = models.TextField(blank=True)

    # --- derived (written only from lifecycle.derive) ------------------------------------------
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.SPAWNING, db_index=True)
    zone = models.CharField(max_length=16, choices=Zone.choices, default=Zone.WORKING, db_index=True)
    status_reason = models.CharField(max_length=300, blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)

    # Per-session API token for `ao report` (only its SHA-256 is kept).
    api_token_hash = models.CharField(max_length=64, blank=True, editable=False)
    # Set by the one worker that claims the start (tasks may be delivered twice).
    start_claimed_at = models.DateTimeField(null=True, blank=True, editable=False)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Whose model credentials its agent runs with, decided at spawn and kept on restore:
    # "project", or "personal" with credentials_of (the spawner; None once that person is deleted).
    credentials = models.CharField(max_length=8, default="project", editable=False)
    credentials_of = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    objects = SessionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="session_number_unique_per_project"),
            models.UniqueConstraint(
                fields=["project"],
                condition=models.Q(kind="orchestrator"),
                name="one_orchestrator_per_project",
            ),
        ]
        indexes = [
            models.Index(fields=["project", "zone"]),
            models.Index(fields=["project", "created_at"]),  # usage over time (sessions.core.usage)
        ]

    def __str__(self) -> str:
        return self.id

    @property
    def is_live(self) -> bool:
        return lifecycle.is_live(phase=self.phase, zone=self.zone)

    @property
    def activity_shown(self) -> str:
        """What its agent is doing, as the card and the page say it (``lifecycle.activity_shown``)."""
        return lifecycle.activity_shown(phase=self.phase, runtime=self.runtime_state, activity=self.activity)

    @property
    def ended_why(self) -> str:
        """Why its agent does not run because the session ended, "" when it has not."""
        return lifecycle.ended_why(phase=self.phase, error=self.error)

    @property
    def title(self) -> str:
        """What the session is about, as its card, its page and `ao session ls` say it: the
        orchestrator, its issue's title, or the prompt it was spawned with ("" with neither)."""
        if self.kind == self.Kind.ORCHESTRATOR:
            return "Orchestrator"
        return self.issue_title or self.prompt


class PullRequest(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="pull_requests")
    session = models.OneToOneField(
        Session, null=True, blank=True, on_delete=models.SET_NULL, related_name="pull_request"
    )
    number = models.PositiveIntegerField()
    url = models.URLField(max_length=1000, blank=True)
    title = models.CharField(max_length=500, blank=True)
    branch = models.CharField(max_length=255)
    base_branch = models.CharField(max_length=255, blank=True)
    state = models.CharField(max_length=16, choices=PRState.choices, default=PRState.OPEN)
    draft = models.BooleanField(default=False)
    head_sha = models.CharField(max_length=64, blank=True)
    mergeable = models.BooleanField(null=True, blank=True)
    conflicts = models.BooleanField(default=False)
    behind = models.BooleanField(default=False)
    review_decision = models.CharField(
        max_length=24, choices=ReviewDecision.choices, default=ReviewDecision.NONE
    )
    # Summary of the check runs on head_sha, recomputed whenever they are recorded.
    ci_state = models.CharField(max_length=16, choices=CIState.choices, default=CIState.NONE)
    synced_at = models.DateTimeField(null=True, blank=True)
    facts_changed_at = models.DateTimeField(
        null=True, blank=True, help_text="when state, head, CI, review or conflicts last changed"
    )
    stale_since = models.DateTimeField(null=True, blank=True, help_text="last sync failed since then")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="pr_number_unique_per_project"),
        ]

    def __str__(self) -> str:
        return f"{self.project.key}#{self.number}"


class CheckRun(models.Model):
    class Source(models.TextChoices):
        CHECK_RUN = "check_run", "Check run"
        STATUS = "status", "Commit status"
        LOCAL = "local", "Local CI"

    pull_request = models.ForeignKey(PullRequest, on_delete=models.CASCADE, related_name="checks")
    head_sha = models.CharField(max_length=64)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.CHECK_RUN)
    name = models.CharField(max_length=255)
    status = models.CharField(max_length=16, default="queued", help_text="queued / in_progress / completed")
    conclusion = models.CharField(max_length=32, blank=True)
    url = models.URLField(max_length=1000, blank=True)
    log_excerpt = models.TextField(blank=True)
    external_id = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["pull_request", "head_sha", "source", "name"], name="check_unique_per_commit"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name}: {self.conclusion or self.status}"

    @property
    def failed(self) -> bool:
        return self.status == "completed" and self.conclusion in FAILED_CONCLUSIONS

    @property
    def passed(self) -> bool:  # as selectors.checks_passed_on_head counts it
        return self.status == "completed" and self.conclusion in PASSED_CONCLUSIONS


class ReviewThread(models.Model):
    pull_request = models.ForeignKey(PullRequest, on_delete=models.CASCADE, related_name="threads")
    external_id = models.CharField(max_length=128)
    path = models.CharField(max_length=1024, blank=True)
    line = models.PositiveIntegerField(null=True, blank=True)
    author = models.CharField(max_length=255, blank=True)
    author_association = models.CharField(max_length=32, blank=True)
    body = models.TextField(blank=True)
    url = models.URLField(max_length=1000, blank=True)
    resolved = models.BooleanField(default=False)
    is_bot = models.BooleanField(default=False)
    created_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    review_state = models.CharField(
        max_length=32, blank=True, help_text="a review's own text: its state (changes_requested | commented)"
    )
    node_id = models.CharField(
        max_length=128,
        blank=True,
        help_text="the SCM's other name for the thread (GitHub: GraphQL's thread id)",
    )

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["pull_request", "external_id"], name="thread_unique_per_pr"),
        ]

    def __str__(self) -> str:
        return f"{self.path}:{self.line} ({self.author})"


class WebhookDelivery(models.Model):
    """One received webhook delivery, kept to drop redeliveries (GitHub's X-GitHub-Delivery)."""

    source = models.CharField(max_length=16, default="github")
    delivery_id = models.CharField(max_length=100)
    event = models.CharField(max_length=64)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="webhook_deliveries")
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    summary = models.CharField(max_length=300, blank=True)
    # What the delivery points at (PR numbers, head branches, head SHAs) and whether the refresh
    # of those sessions is still to run: one delayed task drains every pending delivery of a
    # project at once (sessions/flows/webhooks.py webhook_refresh), so a burst costs one SCM read.
    refs = models.JSONField(default=dict, blank=True)
    refresh_pending = models.BooleanField(default=False)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["source", "delivery_id"], name="webhook_delivery_unique"),
        ]
        indexes = [
            models.Index(
                fields=["project", "received_at"],
                condition=models.Q(refresh_pending=True),
                name="webhook_refresh_pending",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.event} {self.delivery_id}"


class Actor(models.TextChoices):
    USER = "user", "User"
    REACTION = "reaction", "Reaction"
    ORCHESTRATOR = "orchestrator", "Orchestrator"
    AGENT = "agent", "Agent"
    SYSTEM = "system", "System"


class Event(models.Model):
    """Append-only timeline entry. Never updated or deleted by ao."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="events")
    session = models.ForeignKey(
        Session, null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
    kind = models.CharField(max_length=64, db_index=True, help_text="e.g. status.changed, message.queued")
    actor = models.CharField(max_length=16, choices=Actor.choices, default=Actor.SYSTEM)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=255, blank=True, help_text="rule name, agent id, bot name")
    summary = models.CharField(max_length=500)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["session", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.kind}: {self.summary}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise ValueError("events are append-only")
        super().save(*args, **kwargs)


class Message(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        DELIVERED = "delivered", "Delivered"
        CONFIRMED = "confirmed", "Confirmed"
        # typed, and neither taken (as far as ao could see) nor shown lost: left to a person
        UNCONFIRMED = "unconfirmed", "Unconfirmed"
        FAILED = "failed", "Failed"

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="messages")
    text = models.TextField()
    sender = models.CharField(max_length=16, choices=Actor.choices, default=Actor.USER)
    sender_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    sender_name = models.CharField(max_length=255, blank=True)
    # A human may choose to answer a permission prompt; nothing else is ever typed into one.
    answers_prompt = models.BooleanField(default=False)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # A deliverer claims a message (state "delivered", ``claimed_at``) before typing it and records
    # ``delivered_at`` only once the keys were sent: a claim without it that outlives
    # ``messaging.CLAIM_LEASE`` belonged to a deliverer that died, and the message is queued again.
    claimed_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    # A digest of the agent's screen just before the keys were typed (``messaging.screen_digest``;
    # "" when it could not be read): a screen still the same later shows the keys went nowhere.
    screen_before = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.session_id}: {self.text[:40]}"


# --- API tokens, audit, secrets (the API/admin issue) ------------------------------------------------
class ApiToken(models.Model):
    """A person's (or a bot account's) API token. Only its SHA-256 is stored; the raw token is
    shown once, at creation. ``prefix`` (e.g. ``ao_AbCdEfGh``) identifies it in lists."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, editable=False)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class AuditEntry(models.Model):
    """Who did what, from where: every human, bot and orchestrator action. Append-only."""

    class Kind(models.TextChoices):
        USER = "user", "User"
        BOT = "bot", "Bot (API token)"
        ORCHESTRATOR = "orchestrator", "Orchestrator"
        AGENT = "agent", "Agent"
        SYSTEM = "system", "System"

    class Source(models.TextChoices):
        BROWSER = "browser", "Browser"
        API = "api", "API"
        CLI = "cli", "CLI"
        WEBHOOK = "webhook", "Webhook"
        ADMIN = "admin", "Admin"
        SYSTEM = "system", "System"

    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.SYSTEM)
    actor_name = models.CharField(max_length=150, blank=True, help_text="token name, session id, OS user")
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.SYSTEM)
    action = models.CharField(max_length=64, db_index=True, help_text="e.g. session.spawn, token.create")
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=100, blank=True)
    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_entries"
    )
    data = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.action} {self.target_type}:{self.target_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise ValueError("audit entries are append-only")
        super().save(*args, **kwargs)


class Secret(models.Model):
    """A named secret (e.g. ``github-prod``) that plugin settings refer to by name. The value is
    encrypted at rest (``sessions.core.secrets``) and never shown back."""

    name = models.SlugField(max_length=100, unique=True)
    ciphertext = models.TextField(editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class PersonalSecret(models.Model):
    """A person's own model credential (e.g. ``ANTHROPIC_API_KEY``), named by the environment
    variable their sessions' agents get it in. Encrypted like ``Secret``, write-only, and handed
    only to the agents of sessions that run with this person's credentials (``sessions.core.secrets``)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="personal_secrets"
    )
    name = models.CharField(max_length=100)
    ciphertext = models.TextField(editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["user", "name"]
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="personal_secret_unique")]

    def __str__(self) -> str:
        return f"{self.user}: {self.name}"


class UserBudget(models.Model):
    """A person's cap on the cost of the sessions they spawn, across all projects, per calendar
    month (UTC). Set by a superuser (admin, ``ao budget set``); over it, their spawns are refused
    (``sessions.core.usage.budget_refusal``)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="budget")
    monthly_budget_usd = models.DecimalField(max_digits=12, decimal_places=2)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["user__username"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(monthly_budget_usd__gte=0), name="user_budget_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user}: ${self.monthly_budget_usd}/month"


class Host(models.Model):
    """An agent host: a machine whose ``ao worker --host NAME`` consumes queue ``host.NAME`` and runs
    the agents of the sessions recorded there (``Session.host``). Registered when that worker
    starts (sessions/core/hosts.py): with a person's ``AO_TOKEN`` it is that person's personal host,
    without a token (the machine's operator) or with a superuser's and ``--shared`` it is shared.
    A personal host runs only its owner's sessions and those of the people the owner allows; a
    shared one any operator's. ``last_seen`` is its worker's heartbeat."""

    name = models.CharField(max_length=63, unique=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="hosts"
    )
    shared = models.BooleanField(
        default=False, help_text="any operator's sessions (else: the owner's and allowed)"
    )
    allowed = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="hosts_allowed",
        help_text="may run sessions here too",
    )
    max_sessions = models.PositiveIntegerField(
        null=True, blank=True, help_text="live sessions at most (empty: AO_MAX_SESSIONS_PER_HOST)"
    )
    last_seen = models.DateTimeField(null=True, blank=True)
    gone_since = models.DateTimeField(null=True, blank=True, help_text="marked gone by the sweep")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(shared=True) | models.Q(owner__isnull=False),
                name="host_personal_has_owner",
            ),
        ]

    def __str__(self) -> str:
        return self.name


# --- backlog intake and conflict watch (sessions/watchers/intake.py, sessions/watchers/conflicts.py) ------------------
class IntakeClaim(models.Model):
    """One backlog issue claimed by intake. The unique row is taken *before* the worker is spawned,
    so two sweeps never spawn twice for one issue."""

    class State(models.TextChoices):
        CLAIMED = "claimed", "Claimed"
        SPAWNED = "spawned", "Worker spawned"
        DONE = "done", "Done (PR merged)"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="intake_claims")
    issue_ref = models.CharField(max_length=200)
    issue_title = models.CharField(max_length=500, blank=True)
    session = models.ForeignKey(
        Session, null=True, blank=True, on_delete=models.SET_NULL, related_name="intake_claims"
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.CLAIMED, db_index=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["project", "issue_ref"], name="intake_claim_unique_per_issue"),
        ]

    def __str__(self) -> str:
        return f"{self.project_id}#{self.issue_ref}: {self.state}"


class FileOverlap(models.Model):
    """Two live workers of a project changing the same files (``session_a`` < ``session_b`` by id).

    ``fingerprint`` identifies the current set of files: people and the orchestrator are told once
    per set. ``rebase_sent_at`` marks the one rebase message after one side merged."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="file_overlaps")
    session_a = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="+")
    session_b = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="+")
    files = models.JSONField(default=list, blank=True)
    fingerprint = models.CharField(max_length=64, blank=True)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    rebase_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_seen", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["session_a", "session_b"], name="file_overlap_unique_pair"),
        ]

    def __str__(self) -> str:
        return f"{self.session_a_id} ∩ {self.session_b_id}: {len(self.files)} files"


# --- the learning loop: outcomes and lessons (sessions/watchers/outcomes.py, sessions/watchers/lessons.py) --------------
class Outcome(models.Model):
    """What one finished worker session came to, computed from its timeline and rows by
    ``sessions.watchers.outcomes.outcome_compute``; recomputed (same row) if the session changes again."""

    class Result(models.TextChoices):
        MERGED = "merged", "Merged"
        ABANDONED = "abandoned", "Abandoned"

    session = models.OneToOneField(Session, on_delete=models.CASCADE, related_name="outcome")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="outcomes")
    result = models.CharField(max_length=16, choices=Result.choices, db_index=True)
    end_status = models.CharField(max_length=24, blank=True, help_text="the session's status when it ended")
    agent = models.CharField(max_length=64, blank=True)
    model = models.CharField(max_length=128, blank=True)
    started_at = models.DateTimeField(db_index=True)
    ended_at = models.DateTimeField(null=True, blank=True, db_index=True)
    first_pr_seconds = models.FloatField(null=True, blank=True, help_text="session start → first PR")
    merge_seconds = models.FloatField(null=True, blank=True, help_text="session start → merged")
    ci_ran = models.BooleanField(default=False, help_text="any CI result was seen")
    ci_failure_cycles = models.PositiveIntegerField(
        default=0, help_text="distinct head commits with failing CI"
    )
    failed_checks = models.JSONField(default=dict, blank=True, help_text="{check name: failing cycles}")
    first_failed_checks = models.JSONField(
        default=list, blank=True, help_text="checks of the first failing cycle"
    )
    review_rounds = models.PositiveIntegerField(default=0, help_text="times changes were requested")
    human_messages = models.PositiveIntegerField(default=0)
    reaction_messages = models.PositiveIntegerField(default=0)
    orchestrator_messages = models.PositiveIntegerField(default=0)
    escalations = models.PositiveIntegerField(default=0)
    needed_human = models.BooleanField(default=False)
    human_reasons = models.JSONField(default=list, blank=True, help_text="why people were needed")
    tokens_in = models.BigIntegerField(default=0)
    tokens_out = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=4, default=0)
    data = models.JSONField(default=dict, blank=True, help_text="the rest of outcome_compute's result")
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["-ended_at", "-pk"]
        indexes = [models.Index(fields=["project", "ended_at"])]

    def __str__(self) -> str:
        return f"{self.session_id}: {self.result}"


class Lesson(models.Model):
    """A change ao proposes from the outcomes, with its evidence; people accept or reject it.

    ``pattern`` identifies what was seen (e.g. ``first-failing-check:lint``): one lesson per
    pattern and project, so proposing again refreshes the evidence instead of duplicating it.
    Accepted ``worker_rule`` lessons are added to the prompt of later workers of the project.
    """

    class Kind(models.TextChoices):
        WORKER_RULE = "worker_rule", "Worker rule"
        AGENT_SETTINGS = "agent_settings", "Agent settings"

    class State(models.TextChoices):
        PROPOSED = "proposed", "Proposed"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="lessons")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    pattern = models.CharField(max_length=200)
    text = models.TextField(help_text="the proposal, for people")
    prompt_text = models.TextField(blank=True, help_text="what later workers are told, once accepted")
    evidence = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=State.choices, default=State.PROPOSED, db_index=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    baseline = models.JSONField(default=dict, blank=True, help_text="the metric before acceptance")
    later = models.JSONField(default=dict, blank=True, help_text="the same metric since acceptance")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["status", "-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["project", "pattern"], name="lesson_unique_pattern_per_project"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.pattern} ({self.status})"


# --- chat and the learning loop (talk from anywhere; decisions; drift) ---------------------------------
class ChatIdentity(models.Model):
    """Who a chat account is in ao: a Slack user id or a Telegram user id mapped to an ao user.

    Only mapped accounts may use the chat commands, and only with their ao user's project roles.
    Managed in the admin."""

    class Platform(models.TextChoices):
        SLACK = "slack", "Slack"
        TELEGRAM = "telegram", "Telegram"

    platform = models.CharField(max_length=16, choices=Platform.choices)
    external_id = models.CharField(
        max_length=64, help_text="Slack user id (U…/W…) or Telegram numeric user id (from.id)"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_identities"
    )
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["platform", "external_id"]
        verbose_name_plural = "chat identities"
        constraints = [
            models.UniqueConstraint(fields=["platform", "external_id"], name="chat_identity_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.platform}:{self.external_id} → {self.user}"


class ChatDelivery(models.Model):
    """One chat request handled (Telegram ``update_id``, Slack ``trigger_id``), kept so a retry
    or a replay never runs a command twice."""

    platform = models.CharField(max_length=16)
    delivery_id = models.CharField(max_length=128)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    summary = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["platform", "delivery_id"], name="chat_delivery_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.platform} {self.delivery_id}"


class ChatConfirmation(models.Model):
    """A merge asked for in chat, waiting for the same person to confirm it (a Slack button or a
    Telegram reply). It merges exactly the head the person saw."""

    token = models.CharField(max_length=32, unique=True)
    platform = models.CharField(max_length=16)
    external_id = models.CharField(max_length=64)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="chat_confirmations")
    action = models.CharField(max_length=16, default="merge")
    number = models.PositiveIntegerField()
    head_sha = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.action} {self.session_id} ({self.token[:6]}…)"


class FlakyCheck(models.Model):
    """A check that failed and passed (either order) on the same commit (``flip``): flaky on that
    commit only. Its failures there still reach the agent, noted as flaky. ``spread`` rows (no
    commit) were written by an older ao and count as no evidence. Delete a row in the admin to
    clear the flag."""

    class Reason(models.TextChoices):
        FLIP = "flip", "Failed and passed on the same commit"
        SPREAD = "spread", "Failing across unrelated sessions"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="flaky_checks")
    name = models.CharField(max_length=255)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    head_sha = models.CharField(max_length=64, blank=True, help_text="the commit it flipped on (flip)")
    pull_request = models.ForeignKey(
        PullRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="flaky_checks"
    )
    sessions = models.JSONField(default=list, blank=True, help_text="the sessions it failed on (spread)")
    detail = models.CharField(max_length=500, blank=True)
    detected_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-detected_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "name", "reason", "head_sha"], name="flaky_check_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project.key}: {self.name} ({self.reason})"


class AppliedConfig(models.Model):
    """The config file last applied to the database, by resolved path: its sha256 and when.

    ``ao start`` applies the file only when its sha256 differs from the one recorded here, so
    edits made in the admin survive restarts; ``ao config apply`` always applies (and records).
    """

    path = models.CharField(max_length=1024, unique=True)
    sha256 = models.CharField(max_length=64)
    applied_at = models.DateTimeField()
    applied_by = models.CharField(max_length=100, blank=True, help_text="ao start, ao config apply, ...")

    class Meta:
        ordering = ["-applied_at"]

    def __str__(self) -> str:
        return f"{self.path} ({self.sha256[:12]}, {self.applied_at:%Y-%m-%d %H:%M})"
