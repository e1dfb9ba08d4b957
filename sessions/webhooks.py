"""GitHub webhooks: verify, dedupe, and turn an event into the sessions it concerns.

The view answers within milliseconds; the refresh of the affected sessions runs in the
background. Nothing is recorded for a delivery that fails verification. A delivery is verified
with the project's own webhook secret when its github SCM names one (``webhook_secret``: a
secret stored in ao), else with ``AO_GITHUB_WEBHOOK_SECRET``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction

from sessions.models import Project, WebhookDelivery

# Events whose payload points at PRs, branches or commits ao watches.
REFRESH_EVENTS = frozenset(
    {
        "pull_request",
        "pull_request_review",
        "pull_request_review_comment",
        "pull_request_review_thread",
        "check_run",
        "check_suite",
        "status",
        "workflow_run",
        "workflow_job",
        "issue_comment",
        "push",
    }
)
KNOWN_EVENTS = REFRESH_EVENTS | {"issues", "ping"}

log = logging.getLogger(__name__)


class WebhookRejected(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


@dataclass
class Refs:
    numbers: set[int] = field(default_factory=set)
    branches: set[str] = field(default_factory=set)
    shas: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.numbers or self.branches or self.shas)

    def as_dict(self) -> dict:
        return {"numbers": sorted(self.numbers), "branches": sorted(self.branches), "shas": sorted(self.shas)}


def verify_signature(*, secret: str, body: bytes, header: str) -> None:
    """``X-Hub-Signature-256`` must be ``sha256=`` + HMAC-SHA256(secret, raw body)."""
    if not secret:
        raise WebhookRejected(401, "webhook secret not configured on this ao (AO_GITHUB_WEBHOOK_SECRET)")
    if not header.startswith("sha256="):
        raise WebhookRejected(401, "missing or malformed X-Hub-Signature-256")
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), header.strip().encode("latin-1", "replace")):
        raise WebhookRejected(401, "signature does not match")


def webhook_secret_for(project: Project) -> str:
    """The secret GitHub signs this project's deliveries with, read now (a replaced secret counts
    at once): the github SCM's ``webhook_secret`` when set, else ``AO_GITHUB_WEBHOOK_SECRET``.

    A named secret that is missing or unreadable refuses the delivery (401) and logs why, naming
    the secret (never a value); it does not fall back to the global secret.
    """
    from django.conf import settings

    from integrations.base import IntegrationError
    from integrations.registry import ConfigurationError, plugin_for

    if project.plugin_key("scm") == "github" and project.settings_for("scm").get("webhook_secret"):
        try:
            value = plugin_for(project, "scm").webhook_signing_secret()
        except (ConfigurationError, IntegrationError) as exc:
            log.warning("webhook for project %s refused: %s", project.key, exc)
            raise WebhookRejected(
                401, f"the webhook secret of project {project.key} is not available on this ao (see its log)"
            ) from None
        if value:
            return value
    return settings.AO_GITHUB_WEBHOOK_SECRET


def _dig(data, *path):
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _add_number(refs: Refs, value) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 10**9:
        refs.numbers.add(value)


def _add_str(target: set[str], value, *, limit: int = 255) -> None:
    if isinstance(value, str) and 0 < len(value) <= limit:
        target.add(value)


def extract_refs(event: str, payload: dict) -> Refs:
    """The PR numbers, head branches and head SHAs an event is about (pure)."""
    refs = Refs()
    if event in (
        "pull_request",
        "pull_request_review",
        "pull_request_review_comment",
        "pull_request_review_thread",
    ):
        _add_number(refs, _dig(payload, "pull_request", "number"))
        _add_str(refs.branches, _dig(payload, "pull_request", "head", "ref"))
        _add_str(refs.shas, _dig(payload, "pull_request", "head", "sha"), limit=64)
    elif event in ("check_run", "check_suite", "workflow_run", "workflow_job"):
        obj = payload.get(event) if isinstance(payload.get(event), dict) else {}
        _add_str(refs.shas, obj.get("head_sha"), limit=64)
        _add_str(refs.branches, obj.get("head_branch") or _dig(obj, "check_suite", "head_branch"))
        for pr in obj.get("pull_requests") or []:
            if isinstance(pr, dict):
                _add_number(refs, pr.get("number"))
    elif event == "status":
        _add_str(refs.shas, payload.get("sha"), limit=64)
        for branch in payload.get("branches") or []:
            if isinstance(branch, dict):
                _add_str(refs.branches, branch.get("name"))
    elif event == "issue_comment":
        if _dig(payload, "issue", "pull_request"):
            _add_number(refs, _dig(payload, "issue", "number"))
    elif event == "push":
        ref = payload.get("ref")
        if isinstance(ref, str) and ref.startswith("refs/heads/"):
            _add_str(refs.branches, ref.removeprefix("refs/heads/"))
        _add_str(refs.shas, payload.get("after"), limit=64)
    return refs


def repository_matches(project: Project, payload: dict) -> bool:
    full_name = _dig(payload, "repository", "full_name")
    if not project.repo or not isinstance(full_name, str):
        return not project.repo  # a project without a repo cannot be matched; accept only then
    return full_name.lower() == project.repo.lower()


def delivery_record(*, project: Project, delivery_id: str, event: str, summary: str) -> bool:
    """Record the delivery; False if it was seen before (a redelivery or a replay)."""
    try:
        with transaction.atomic():
            WebhookDelivery.objects.create(
                project=project, delivery_id=delivery_id[:100], event=event[:64], summary=summary[:300]
            )
    except IntegrityError:
        return False
    return True


def github_webhook_receive(
    *, project_key: str, event: str, delivery_id: str, signature: str, content_type: str, body: bytes
) -> tuple[int, dict]:
    """Verify and record one GitHub delivery; enqueue the refresh of what it concerns.

    Returns (HTTP status, JSON body). Raises WebhookRejected for deliveries to refuse.
    """
    import json

    project = Project.objects.filter(key=project_key[:63]).first()
    if project is None:
        raise WebhookRejected(404, f"no project {project_key!r}")
    verify_signature(secret=webhook_secret_for(project), body=body, header=signature)
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        raise WebhookRejected(415, "send webhooks as application/json (Content type in the webhook settings)")
    if not event or len(event) > 64:
        raise WebhookRejected(400, "missing X-GitHub-Event")
    if not delivery_id or len(delivery_id) > 100:
        raise WebhookRejected(400, "missing X-GitHub-Delivery")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookRejected(400, f"body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise WebhookRejected(400, "body must be a JSON object")
    if event == "ping":
        return 200, {"ok": True, "zen": "pong"}
    if not repository_matches(project, payload):
        return 202, {"ignored": f"repository is not {project.repo}"}
    refs = extract_refs(event, payload) if event in REFRESH_EVENTS else Refs()
    action = payload.get("action") if isinstance(payload.get("action"), str) else ""
    summary = f"{event}{'.' + action if action else ''} {refs.as_dict()}"
    if not delivery_record(project=project, delivery_id=delivery_id, event=event, summary=summary):
        return 200, {"duplicate": True}
    if not refs:
        return 202, {"accepted": True, "refresh": False}
    from sessions import tasks

    project_id, ref_data = project.pk, refs.as_dict()
    transaction.on_commit(lambda: tasks.webhook_refresh_task.delay(project_id, ref_data))
    return 202, {"accepted": True, "refresh": True}
