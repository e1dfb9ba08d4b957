"""GitHub webhooks: verify, dedupe, and turn an event into the sessions it concerns.

The view answers within milliseconds; the refresh of the affected sessions runs in the
background. Nothing is recorded for a delivery that fails verification. A delivery is verified
with the project's own webhook secret when its github SCM names one (``webhook_secret``: a
secret stored in ao), else with ``AO_GITHUB_WEBHOOK_SECRET``.

Refreshes are coalesced: a delivery is recorded with its refs and marked ``refresh_pending``;
the first delivery of a quiet project schedules one task ``AO_WEBHOOK_COALESCE_SECONDS`` later
(a cache key debounces the rest), and that task refreshes the union of every pending delivery's
sessions with one batched SCM read, then observes their runtime and activity as a sweep does.
Nothing is lost: the task clears the debounce key before it reads the pending deliveries (a
delivery after that schedules a new task), a delivery is marked done only after its refresh,
and the sweep tick re-queues refreshes still pending after ``REFRESH_OVERDUE``.

``issues`` events refresh the issue title of the sessions working on the issue and, when the
project's intake label was put on an issue, queue the project's intake sweep (debounced alike).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from integrations.base import IntegrationError
from integrations.registry import ConfigurationError, plugin_for
from reactions import services as reactions
from sessions.agents import observing
from sessions.core import jobs, realtime
from sessions.models import IntakeClaim, Project, Session, WebhookDelivery
from sessions.prs import prsync

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

REFRESH_KEY = "ao:webhook-refresh:{}"  # set while a coalesced refresh of the project is queued
INTAKE_KEY = "ao:webhook-intake:{}"  # set while an intake sweep of the project is queued
REFRESH_OVERDUE = timedelta(seconds=60)  # pending this long: its task was lost, queue another
DRAIN_LIMIT = 1000  # deliveries one refresh takes; more are left to a follow-up task


class WebhookRejected(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


# The one answer to a delivery that is not proven to come from GitHub for this project: an unknown
# project, no secret configured, a missing, malformed or wrong signature. The same status and body
# for all, after the same work (an HMAC is computed for an unknown project too), so the URL does not
# tell anyone which projects exist; the reason is in ao's log.
UNAUTHENTICATED = "signature missing or invalid"
_UNKNOWN_PROJECT_KEY = secrets.token_bytes(32)  # an unknown project's "secret": nothing matches it


def _unauthenticated(project_key: str, why: str) -> WebhookRejected:
    log.warning("webhook for project %r refused: %s", project_key[:63], why)
    return WebhookRejected(401, UNAUTHENTICATED)


@dataclass
class Refs:
    numbers: set[int] = field(default_factory=set)
    branches: set[str] = field(default_factory=set)
    shas: set[str] = field(default_factory=set)
    bases: set[str] = field(default_factory=set)  # pushed branches: open PRs based on them may now conflict
    # PRs with a change only the SCM's complete read shows (a review thread resolved or reopened:
    # GitHub's REST API has no resolution), read that way
    complete: set[int] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.numbers or self.branches or self.shas or self.bases)

    def as_dict(self) -> dict:
        return {
            "numbers": sorted(self.numbers),
            "branches": sorted(self.branches),
            "shas": sorted(self.shas),
            "bases": sorted(self.bases),
            "complete": sorted(self.complete),
        }


def signature_problem(*, secret: str | bytes, body: bytes, header: str) -> str:
    """Why ``X-Hub-Signature-256`` is not ``sha256=`` + HMAC-SHA256(secret, raw body); "" when it
    is. The HMAC is computed whatever the header or the secret, so every refusal costs the same."""
    key = secret.encode() if isinstance(secret, str) else secret
    expected = "sha256=" + hmac.new(key or _UNKNOWN_PROJECT_KEY, body, hashlib.sha256).hexdigest()
    matches = hmac.compare_digest(expected.encode(), header.strip().encode("latin-1", "replace"))
    if not secret:
        return "webhook secret not configured on this ao (AO_GITHUB_WEBHOOK_SECRET)"
    if not header.startswith("sha256="):
        return "missing or malformed X-Hub-Signature-256"
    return "" if matches else "signature does not match"


def webhook_secret_for(project: Project) -> str:
    """The secret GitHub signs this project's deliveries with, read now (a replaced secret counts
    at once): the github SCM's ``webhook_secret`` when set, else ``AO_GITHUB_WEBHOOK_SECRET``.

    A named secret that is missing or unreadable refuses the delivery (401) and logs why, naming
    the secret (never a value); it does not fall back to the global secret.
    """
    if project.plugin_key("scm") == "github" and project.settings_for("scm").get("webhook_secret"):
        try:
            value = plugin_for(project, "scm").webhook_signing_secret()
        except (ConfigurationError, IntegrationError) as exc:
            raise _unauthenticated(project.key, f"its webhook secret is not available: {exc}") from None
        if value:
            return value
    return settings.AO_GITHUB_WEBHOOK_SECRET


def _object(data: dict[str, Any], key: str) -> dict[str, Any]:
    """``data[key]`` when it is a JSON object, else {}: a payload's shape is never taken on trust."""
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _text(data: dict[str, Any], key: str) -> str:
    """``data[key]`` when it is a string, else ""."""
    value = data.get(key)
    return value if isinstance(value, str) else ""


def _dig(data, *path):
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _add_number(target: set[int], value) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 10**9:
        target.add(value)


def _add_str(target: set[str], value, *, limit: int = 255) -> None:
    if isinstance(value, str) and 0 < len(value) <= limit:
        target.add(value)


def extract_refs(event: str, payload: dict[str, Any]) -> Refs:
    """The PR numbers, head branches and head SHAs an event is about (pure)."""
    refs = Refs()
    if event in (
        "pull_request",
        "pull_request_review",
        "pull_request_review_comment",
        "pull_request_review_thread",
    ):
        _add_number(refs.numbers, _dig(payload, "pull_request", "number"))
        _add_str(refs.branches, _dig(payload, "pull_request", "head", "ref"))
        _add_str(refs.shas, _dig(payload, "pull_request", "head", "sha"), limit=64)
        if event == "pull_request_review_thread":
            refs.complete |= refs.numbers
    elif event in ("check_run", "check_suite", "workflow_run", "workflow_job"):
        obj = _object(payload, event)
        _add_str(refs.shas, obj.get("head_sha"), limit=64)
        _add_str(refs.branches, obj.get("head_branch") or _dig(obj, "check_suite", "head_branch"))
        for pr in obj.get("pull_requests") or []:
            if isinstance(pr, dict):
                _add_number(refs.numbers, pr.get("number"))
    elif event == "status":
        _add_str(refs.shas, payload.get("sha"), limit=64)
        for branch in payload.get("branches") or []:
            if isinstance(branch, dict):
                _add_str(refs.branches, branch.get("name"))
    elif event == "issue_comment":
        if _dig(payload, "issue", "pull_request"):
            _add_number(refs.numbers, _dig(payload, "issue", "number"))
    elif event == "push":
        ref = payload.get("ref")
        if isinstance(ref, str) and ref.startswith("refs/heads/"):
            _add_str(refs.branches, ref.removeprefix("refs/heads/"))
            # a push to a base branch (the default branch, or a stacked PR's base) changes whether
            # the open PRs on it merge cleanly: GitHub sends no pull_request event for that
            _add_str(refs.bases, ref.removeprefix("refs/heads/"))
        _add_str(refs.shas, payload.get("after"), limit=64)
    return refs


def repository_matches(project: Project, payload: dict[str, Any], *, event: str = "") -> bool:
    """The delivery is about the repository this project's GitHub plugin reads for that event: the
    tracker's for ``issues``, the SCM's for the rest (a plugin's own ``repo`` setting, else the
    project's repo, as the plugins take it). A project naming no repository accepts any."""
    slot = "tracker" if event == "issues" else "scm"
    expected = str(project.settings_for(slot).get("repo") or project.repo or "").strip()
    full_name = _dig(payload, "repository", "full_name")
    if not expected or not isinstance(full_name, str):
        return not expected  # a project without a repo cannot be matched; accept only then
    return full_name.lower() == expected.lower()


def delivery_record(
    *, project: Project, delivery_id: str, event: str, summary: str, refs: Refs | None = None
) -> bool:
    """Record the delivery (with a pending refresh when it has refs); False if it was seen
    before (a redelivery or a replay)."""
    try:
        with transaction.atomic():
            WebhookDelivery.objects.create(
                project=project,
                delivery_id=delivery_id[:100],
                event=event[:64],
                summary=summary[:300],
                refs=refs.as_dict() if refs else {},
                refresh_pending=bool(refs),
            )
    except IntegrityError:
        return False
    return True


def _debounced(key: str, task: str, project_id: int) -> None:
    """Queue the task named ``task`` for ``project_id`` in ``AO_WEBHOOK_COALESCE_SECONDS`` unless one is queued already
    (``key`` in the cache; the task deletes it when it starts). Without a usable cache, queue."""
    window = max(0.0, float(settings.AO_WEBHOOK_COALESCE_SECONDS))
    if window:
        try:
            if not cache.add(key, 1, timeout=max(30, int(window * 10))):
                return
        except Exception as exc:  # a cache outage must not lose the refresh
            log.warning("webhook debounce unavailable (%s): queueing without it", exc)
    jobs.enqueue(task, args=[project_id], countdown=window or None)


def refresh_schedule(project_id: int) -> None:
    """After a delivery with refs was recorded: queue the project's coalesced refresh."""
    _debounced(REFRESH_KEY.format(project_id), jobs.WEBHOOK_REFRESH, project_id)


def intake_schedule(project_id: int) -> None:
    """Queue the project's intake sweep soon (coalesced like refreshes)."""
    _debounced(INTAKE_KEY.format(project_id), jobs.INTAKE_SWEEP, project_id)


def _forget(key: str) -> None:
    try:
        cache.delete(key)
    except Exception as exc:
        log.warning("webhook debounce key not cleared (%s)", exc)


def intake_sweep_started(project_id: int) -> None:
    """The intake task begins: a label put on after this queues another one."""
    _forget(INTAKE_KEY.format(project_id))


def webhook_refresh(*, project: Project, extra: dict | None = None) -> list[str]:
    """Refresh the sessions every pending delivery of the project points at (plus ``extra`` refs):
    one batched PR sync, then the runtime and activity of the running ones, as a sweep observes
    them (on their own host). Returns the session ids refreshed."""
    _forget(REFRESH_KEY.format(project.pk))  # from here on, a new delivery queues a new task
    pending = list(
        WebhookDelivery.objects.filter(project=project, refresh_pending=True)
        .order_by("received_at")
        .values_list("pk", "refs")[:DRAIN_LIMIT]
    )
    union = Refs()
    for data in [refs for _pk, refs in pending] + [extra or {}]:
        for number in (data or {}).get("numbers", ()):
            _add_number(union.numbers, number)
        for branch in (data or {}).get("branches", ()):
            _add_str(union.branches, branch)
        for sha in (data or {}).get("shas", ()):
            _add_str(union.shas, sha, limit=64)
        for base in (data or {}).get("bases", ()):
            _add_str(union.bases, base)
        for number in (data or {}).get("complete", ()):
            _add_number(union.complete, number)
    session_ids = prsync.sessions_for_refs(
        project=project, numbers=union.numbers, branches=union.branches, shas=union.shas, bases=union.bases
    )
    if session_ids:
        thorough = set(prsync.sessions_for_refs(project=project, numbers=union.complete)) & set(session_ids)
        for ids, complete in (
            (sorted(thorough), True),
            ([s for s in session_ids if s not in thorough], False),
        ):
            if not ids:
                continue
            try:
                pull_requests_refresh(project=project, session_ids=ids, complete=complete)
            except (ConfigurationError, IntegrationError) as exc:
                log.warning("webhook refresh of %s: PR sync skipped: %s", project.key, exc)
        sessions_observe(project=project, session_ids=session_ids)
    WebhookDelivery.objects.filter(pk__in=[pk for pk, _refs in pending]).update(refresh_pending=False)
    if len(pending) == DRAIN_LIMIT:
        refresh_schedule(project.pk)
    return session_ids


def pull_requests_refresh(*, project: Project, session_ids, complete: bool = False) -> prsync.SyncResult:
    """Read these sessions' PRs now (``prsync.pull_requests_sync``; ``complete``: the SCM's
    complete read), then have the reactions look at the sessions whose PR facts were stored, after
    commit: a webhook refresh's PR read, and local CI's after a run (``sessions.run_checks``)."""
    synced = prsync.pull_requests_sync(project=project, session_ids=session_ids, complete=complete)
    for session_id in synced.recorded:
        reactions.session_react_after_commit(session_id=session_id)
    return synced


def sessions_observe(*, project: Project, session_ids) -> int:
    """Observe the runtime and activity of these sessions the sweep observes (running ones, and
    finished ones until their runtime is gone: observing.observed_sessions), as the sweep does:
    observing.session_observe here, or its task on the session's own host. Returns changes."""
    changes = 0
    running = (
        observing.observed_sessions(project=project)
        .filter(pk__in=list(session_ids))
        .select_related("project")
    )
    for session in running:
        if (session.host or settings.AO_HOST_NAME) != settings.AO_HOST_NAME:
            jobs.enqueue(jobs.SESSION_OBSERVE, args=[session.pk], queue=jobs.host_queue(session.host))
            continue
        try:
            changes += int(observing.session_observe(session=session))
        except (IntegrationError, ConfigurationError) as exc:
            log.warning("observing %s failed: %s", session.pk, exc)
            continue
        reactions.session_react_after_commit(session_id=session.pk)  # they look at what was observed
    return changes


def refreshes_overdue(*, now=None) -> list[int]:
    """Projects with a delivery whose refresh is still pending after ``REFRESH_OVERDUE`` (its
    task was lost: a restart of an in-memory broker, a crashed worker): the sweep tick re-queues."""
    now = now or timezone.now()
    return list(
        WebhookDelivery.objects.filter(refresh_pending=True, received_at__lt=now - REFRESH_OVERDUE)
        .values_list("project_id", flat=True)
        .distinct()
    )


def _title_differs(project: Project, refs: list[str], title: str) -> bool:
    sessions = Session.objects.filter(project=project, issue_ref__in=refs).exclude(issue_title=title)
    claims = IntakeClaim.objects.filter(project=project, issue_ref__in=refs).exclude(issue_title=title)
    return sessions.exists() or claims.exists()


def _current_title(project: Project, number: int) -> str | None:
    """The issue's title as its tracker says now; None when it cannot be read."""
    try:
        return plugin_for(project, "tracker").get_issue(str(number)).title
    except (ConfigurationError, IntegrationError) as exc:
        log.warning("reading the title of issue #%s of %s failed: %s", number, project.key, exc)
        return None


def issue_event_apply(*, project: Project, payload: dict[str, Any], action: str) -> dict[str, Any]:
    """An ``issues`` delivery: the sessions working on the issue get its current title (read from
    GitHub when the delivery's differs from theirs, never taken from the delivery); an issue
    given the project's intake label (labelled, or opened/reopened with it) queues the intake
    sweep soon while intake is on. Only for projects whose tracker is GitHub's issues."""
    issue = _object(payload, "issue")
    number, title = issue.get("number"), issue.get("title")
    if project.plugin_key("tracker") != "github" or not isinstance(number, int) or isinstance(number, bool):
        return {"accepted": True, "refresh": False}
    refs = [str(number), f"#{number}"]
    renamed: list[str] = []
    if isinstance(title, str) and title and _title_differs(project, refs, title[:500]):
        # the delivery says the title changed; what it is now comes from GitHub: deliveries can
        # arrive out of order, and a captured body can be replayed under a new delivery id. When
        # GitHub cannot be read, the delivery's title (nothing else would bring the rename)
        title = _current_title(project, number) or title
    else:
        title = None
    if title:
        title = title[:500]
        stale = Session.objects.filter(project=project, issue_ref__in=refs).exclude(issue_title=title)
        renamed = list(stale.values_list("pk", flat=True))
        if renamed:
            Session.objects.filter(pk__in=renamed).update(issue_title=title)
            for session_id in renamed:
                transaction.on_commit(partial(realtime.card_changed, session_id))
        IntakeClaim.objects.filter(project=project, issue_ref__in=refs).exclude(issue_title=title).update(
            issue_title=title
        )
    label = project.intake_label.lower()
    names = {
        (lbl.get("name") or "").lower() if isinstance(lbl, dict) else "" for lbl in issue.get("labels") or ()
    }
    labelled = (action == "labeled" and str(_dig(payload, "label", "name") or "").lower() == label) or (
        action in ("opened", "reopened") and label in names
    )
    intake = bool(label and labelled and project.intake_enabled and issue.get("state", "open") == "open")
    if intake:
        project_id = project.pk
        transaction.on_commit(lambda: intake_schedule(project_id))
    return {"accepted": True, "refresh": False, "renamed": renamed, "intake": intake}


def github_webhook_receive(
    *, project_key: str, event: str, delivery_id: str, signature: str, content_type: str, body: bytes
) -> tuple[int, dict]:
    """Verify and record one GitHub delivery; queue the (coalesced) refresh of what it concerns.

    Returns (HTTP status, JSON body). Raises WebhookRejected for deliveries to refuse.
    """
    import json

    project = Project.objects.filter(key=project_key[:63]).first()
    if project is None:  # answered like a bad signature, after the same work
        signature_problem(secret=_UNKNOWN_PROJECT_KEY, body=body, header=signature)
        raise _unauthenticated(project_key, "no such project")
    problem = signature_problem(secret=webhook_secret_for(project), body=body, header=signature)
    if problem:
        raise _unauthenticated(project.key, problem)
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
    if not repository_matches(project, payload, event=event):
        return 202, {"ignored": "the delivery's repository is not this project's"}
    refs = extract_refs(event, payload) if event in REFRESH_EVENTS else Refs()
    action = _text(payload, "action")
    summary = f"{event}{'.' + action if action else ''} {refs.as_dict()}"
    if not delivery_record(project=project, delivery_id=delivery_id, event=event, summary=summary, refs=refs):
        return 200, {"duplicate": True}
    if event == "issues":
        return 202, issue_event_apply(project=project, payload=payload, action=action)
    if not refs:
        return 202, {"accepted": True, "refresh": False}
    project_id = project.pk
    transaction.on_commit(lambda: refresh_schedule(project_id))
    return 202, {"accepted": True, "refresh": True}
