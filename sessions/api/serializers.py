"""API shapes. Output serializers never include secrets: no plugin settings, no token hashes,
no runtime handles, no raw tokens (except the one response that creates a token)."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import ProhibitNullCharactersValidator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ao_site.links import http_url
from integrations.registry import agents as agent_registry
from sessions.agents import issues, messaging
from sessions.core import selectors
from sessions.domain.lifecycle import Reported, Status, Zone
from sessions.domain.text import TextRejected, clean_text
from sessions.models import (
    ApiToken,
    CheckRun,
    Message,
    Project,
    PullRequest,
    ReviewThread,
    Session,
)


class CleanTextField(serializers.CharField):
    """Untrusted text as ``sessions.domain.text.clean_text`` treats it: control characters stripped,
    newlines normalised, the size bounded (``AO_MAX_PROMPT_CHARS`` unless ``max_chars``)."""

    def __init__(self, *, what: str, max_chars: int | None = None, allow_empty: bool = False, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        kwargs.setdefault("allow_blank", allow_empty)
        super().__init__(**kwargs)
        self.validators = [v for v in self.validators if not isinstance(v, ProhibitNullCharactersValidator)]
        self.what, self.max_chars, self.allow_empty = what, max_chars, allow_empty

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        limit = self.max_chars or settings.AO_MAX_PROMPT_CHARS
        try:
            return clean_text(data, max_chars=limit, what=self.what, allow_empty=self.allow_empty)
        except TextRejected as exc:
            raise serializers.ValidationError(str(exc), code="invalid") from exc


# --- errors (for the schema) --------------------------------------------------------------------
class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    field = serializers.CharField(required=False)
    details = serializers.DictField(required=False)
    blockers = serializers.ListField(child=serializers.CharField(), required=False)


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


# --- projects -----------------------------------------------------------------------------------
class ProjectSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()
    live_sessions = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = [
            "key",
            "name",
            "repo",
            "default_branch",
            "session_prefix",
            "agent",
            "runtime",
            "workspace",
            "tracker",
            "scm",
            "max_sessions",
            "refuse_over_cap",
            "role",
            "live_sessions",
            "created_at",
            "updated_at",
        ]

    @extend_schema_field(OpenApiTypes.STR)
    def get_role(self, project: Project) -> str:
        return selectors.role_for(self.context["request"].user, project) or ""

    @extend_schema_field(OpenApiTypes.INT)
    def get_live_sessions(self, project: Project) -> int:
        return project.sessions.live().count()


# --- sessions -----------------------------------------------------------------------------------
class PullRequestSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = PullRequest
        fields = [
            "number",
            "url",
            "title",
            "branch",
            "base_branch",
            "state",
            "draft",
            "head_sha",
            "mergeable",
            "conflicts",
            "behind",
            "review_decision",
            "ci_state",
            "synced_at",
            "stale_since",
        ]


class CheckRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = CheckRun
        fields = ["name", "head_sha", "source", "status", "conclusion", "url", "log_excerpt", "completed_at"]


class ReviewThreadSerializer(serializers.ModelSerializer):
    class Meta:
        model = ReviewThread
        fields = ["id", "path", "line", "author", "author_association", "body", "url", "resolved", "is_bot"]


class PullRequestDetailSerializer(PullRequestSummarySerializer):
    checks = serializers.SerializerMethodField()
    threads = ReviewThreadSerializer(many=True, read_only=True)

    class Meta(PullRequestSummarySerializer.Meta):
        fields = [*PullRequestSummarySerializer.Meta.fields, "checks", "threads"]

    @extend_schema_field(CheckRunSerializer(many=True))
    def get_checks(self, pr: PullRequest) -> list[dict]:
        return CheckRunSerializer(pr.checks.filter(head_sha=pr.head_sha), many=True).data


class SessionSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="key", read_only=True)
    reason = serializers.CharField(source="status_reason", read_only=True)
    issue = serializers.CharField(source="issue_ref", read_only=True)
    title = serializers.CharField(source="issue_title", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    credentials = serializers.CharField(
        read_only=True, help_text="whose model credentials its agent runs with: project or personal"
    )
    credentials_of = serializers.SlugRelatedField(
        slug_field="username",
        read_only=True,
        allow_null=True,
        help_text="the person whose own credentials it runs with (its spawner); null: the project's",
    )
    pull_request = serializers.SerializerMethodField()

    class Meta:
        model = Session
        fields = [
            "id",
            "project",
            "kind",
            "status",
            "zone",
            "reason",
            "phase",
            "agent",
            "model",
            "issue",
            "title",
            "issue_url",
            "branch",
            "host",
            "runtime_state",
            "activity",
            "activity_at",
            "reported_state",
            "tokens_in",
            "tokens_out",
            "cost_usd",
            "error",
            "created_by",
            "credentials",
            "credentials_of",
            "created_at",
            "updated_at",
            "status_changed_at",
            "ended_at",
            "pull_request",
        ]

    @extend_schema_field(PullRequestSummarySerializer(allow_null=True))
    def get_pull_request(self, session: Session) -> dict | None:
        pr = getattr(session, "pull_request", None)
        return PullRequestSummarySerializer(pr).data if pr is not None else None


class SessionDetailSerializer(SessionSerializer):
    class Meta(SessionSerializer.Meta):
        fields = [*SessionSerializer.Meta.fields, "prompt", "workspace_path", "activity_summary"]

    @extend_schema_field(PullRequestDetailSerializer(allow_null=True))
    def get_pull_request(self, session: Session) -> dict | None:
        pr = getattr(session, "pull_request", None)
        return PullRequestDetailSerializer(pr).data if pr is not None else None


class SessionFilterSerializer(serializers.Serializer):
    project = serializers.CharField(required=False, max_length=63)
    status = serializers.ChoiceField(choices=Status.choices, required=False)
    zone = serializers.ChoiceField(choices=Zone.choices, required=False)
    agent = serializers.CharField(required=False, max_length=64)
    kind = serializers.ChoiceField(choices=Session.Kind.choices, required=False)
    include_done = serializers.BooleanField(required=False, default=True)


# --- actions ------------------------------------------------------------------------------------
def _validate_agent(value: str) -> str:
    if value and value not in agent_registry:
        raise serializers.ValidationError(
            f"unknown agent {value!r}; valid choices: {', '.join(agent_registry.keys())}"
        )
    return value


class SpawnSerializer(serializers.Serializer):
    issue = serializers.CharField(required=False, allow_blank=True, max_length=100)
    prompt = CleanTextField(what="prompt", required=False, allow_empty=True, default="")
    agent = serializers.CharField(required=False, allow_blank=True, max_length=64, default="")
    branch = serializers.CharField(required=False, allow_blank=True, max_length=255, default="")
    missing_issue_ok = serializers.BooleanField(
        required=False,
        default=False,
        help_text="spawn even if the tracker does not know the issue (else 409 refused)",
    )
    host = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=63,
        default="",
        help_text="agent host to run on (default: yours, then one you are allowed on, then a shared one, "
        "the first with room); a host you may not use is refused with the reason",
    )

    def validate_agent(self, value: str) -> str:
        return _validate_agent(value)

    def validate(self, attrs):
        if not (attrs.get("issue") or "").strip() and not attrs.get("prompt", "").strip():
            raise serializers.ValidationError({"issue": "give an issue, a prompt, or both"})
        return attrs


class BatchSpawnSerializer(serializers.Serializer):
    issues = serializers.ListField(
        child=serializers.CharField(max_length=100), min_length=1, max_length=50, allow_empty=False
    )
    agent = serializers.CharField(required=False, allow_blank=True, max_length=64, default="")

    def validate_agent(self, value: str) -> str:
        return _validate_agent(value)


class BatchSpawnResultSerializer(serializers.Serializer):
    issue = serializers.CharField()
    session = SessionSerializer(allow_null=True)
    error = ErrorDetailSerializer(allow_null=True)


class BatchSpawnResponseSerializer(serializers.Serializer):
    results = BatchSpawnResultSerializer(many=True)
    spawned = serializers.IntegerField()
    failed = serializers.IntegerField()


class MessageCreateSerializer(serializers.Serializer):
    text = CleanTextField(what="message")
    answers_prompt = serializers.BooleanField(required=False, default=False)


class KillSerializer(serializers.Serializer):
    reason = CleanTextField(what="reason", max_chars=300, required=False, allow_empty=True, default="")


class ClaimPullRequestSerializer(serializers.Serializer):
    number = serializers.IntegerField(required=False, min_value=1, max_value=2**31 - 1)
    url = serializers.CharField(required=False, max_length=1000)

    def validate(self, attrs):
        import re

        number = attrs.get("number")
        url = attrs.get("url")
        if number is None and url:
            match = re.search(r"(?:/pulls?/|#)([1-9][0-9]{0,9})/?(?:[?#].*)?$", url.strip())
            if not match:
                raise serializers.ValidationError({"url": "not a pull request URL (…/pull/<number>)"})
            number = int(match.group(1))
        if number is None:
            raise serializers.ValidationError({"number": "give the PR number or its URL"})
        attrs["number"] = number
        return attrs


class MergeResponseSerializer(serializers.Serializer):
    session = serializers.CharField()
    number = serializers.IntegerField()
    merged = serializers.BooleanField()
    state = serializers.CharField()


class ReviewSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["approve", "request_changes", "comment"])
    body = CleanTextField(what="body", max_chars=65536, required=False, allow_empty=True, default="")


class ReviewResponseSerializer(serializers.Serializer):
    session = serializers.CharField()
    number = serializers.IntegerField()
    state = serializers.CharField(help_text="the review stored: approved, changes_requested, commented")
    review_decision = serializers.CharField(help_text="the PR's review decision after it")


# --- messages ----------------------------------------------------------------------------------
class MessageSerializer(serializers.ModelSerializer):
    session = serializers.PrimaryKeyRelatedField(read_only=True)
    sender_user = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    delivery = serializers.SerializerMethodField(
        help_text='where it stands, in words: e.g. "waiting for restore" while its session is not running'
    )

    def get_delivery(self, message) -> str:
        return messaging.delivery_state(message)

    class Meta:
        model = Message
        fields = [
            "id",
            "session",
            "text",
            "sender",
            "sender_user",
            "sender_name",
            "answers_prompt",
            "state",
            "attempts",
            "last_error",
            "created_at",
            "delivered_at",
            "confirmed_at",
            "delivery",
        ]


class MessageSentSerializer(MessageSerializer):
    """A message a person just sent. ``restored``: what was done to its session, which was not
    running ("restored", or the request sent to its agent host); empty when it was running."""

    restored = serializers.CharField(read_only=True)

    class Meta(MessageSerializer.Meta):
        fields = [*MessageSerializer.Meta.fields, "restored"]


# --- issues -------------------------------------------------------------------------------------
class IssueSerializer(serializers.Serializer):
    ref = serializers.CharField()
    title = serializers.CharField()
    body = serializers.CharField()
    url = serializers.CharField()
    labels = serializers.ListField(child=serializers.CharField())
    state = serializers.CharField()
    session = serializers.CharField(allow_null=True, help_text="the live session working on it, if any")


class IssueCreateSerializer(serializers.Serializer):
    title = CleanTextField(what="the issue title", max_chars=issues.ISSUE_TITLE_MAX_CHARS)
    body = CleanTextField(
        what="the issue body",
        max_chars=issues.ISSUE_BODY_MAX_CHARS,
        required=False,
        allow_empty=True,
        default="",
    )
    labels = serializers.ListField(
        child=serializers.CharField(max_length=50), required=False, default=list, max_length=20
    )
    blocked_by = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        default=list,
        max_length=20,
        help_text="refs of the project's issues this one is blocked by (trackers that take links from ao)",
    )

    def validate_title(self, value: str) -> str:
        return value.replace("\n", " ").strip()


class IssueFilterSerializer(serializers.Serializer):
    label = serializers.CharField(required=False, max_length=100)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=200, default=50)


# --- tokens and who am I -----------------------------------------------------------------------
class ApiTokenSerializer(serializers.ModelSerializer):
    active = serializers.BooleanField(source="is_active", read_only=True)

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "revoked_at", "active"]


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="the raw token: shown once, never again")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]


class ApiTokenCreateSerializer(serializers.Serializer):
    name = CleanTextField(what="name", max_chars=100)


class MembershipSummarySerializer(serializers.Serializer):
    project = serializers.CharField()
    role = serializers.CharField()


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    is_superuser = serializers.BooleanField()
    auth = serializers.CharField(help_text="token, session")
    token = serializers.CharField(allow_null=True, help_text="the prefix of the token in use")
    projects = MembershipSummarySerializer(many=True)


# --- the agent's own endpoints (session token) ----------------------------------------------------
class ReportSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=[c for c in Reported.values if c])
    note = CleanTextField(what="note", max_chars=2000, required=False, allow_empty=True, default="")
    pr = serializers.URLField(required=False, allow_blank=True, max_length=1000, default="")

    def validate_pr(self, value: str) -> str:
        if value and not http_url(value):  # shown to people: http(s) only (ao_site/links.py)
            raise serializers.ValidationError("the PR URL must be an http(s) URL")
        return value


class ReportResponseSerializer(serializers.Serializer):
    session = serializers.CharField()
    status = serializers.CharField()
    zone = serializers.CharField()
    url = serializers.CharField()


class PullRequestOpenSerializer(serializers.Serializer):
    title = CleanTextField(what="title", max_chars=500, required=False, allow_empty=True, default="")
    body = CleanTextField(what="body", max_chars=65536, required=False, allow_empty=True, default="")
    force = serializers.BooleanField(required=False, default=False)

    def validate_title(self, value: str) -> str:
        return value.replace("\n", " ")


class PullRequestOpenResponseSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    created = serializers.BooleanField()
    branch = serializers.CharField()
    title = serializers.CharField()
    url = serializers.CharField(allow_blank=True)
