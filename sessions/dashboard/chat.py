"""Talk to ao from chat: the commands, independent of the platform.

The endpoints (``sessions/dashboard/views_chat.py``) verify the platform's signature, dedupe, and map the
chat account to an ao user through ``ChatIdentity``; then they call :func:`handle` with the text
and render the :class:`Reply` in the platform's format. Everything here runs as that ao user,
with their project roles (``selectors.can``), through the same services as the dashboard and the
API, and is audited (source ``webhook``, actor ``<platform>:<id>``).

Commands (a leading ``/`` and a Telegram ``@botname`` suffix are ignored):

- ``status [project]`` (viewer): sessions per zone and what needs a person (``sessions.watchers.decisions``);
- ``spawn <project> <issue>`` (operator): ``spawning.session_spawn`` for the tracker issue;
- ``send <session|project|orchestrator> <text>`` (operator): ``messaging.session_send`` (a session
  that is not running is restored first, one that cannot be is refused with the reason); a project
  key (or ``orchestrator`` when you see one project) means that project's orchestrator session;
- ``merge <session>`` (operator): when the PR is mergeable, asks the same person to confirm (a
  button on Slack, ``confirm <code>`` on Telegram) within 10 minutes; the confirmation merges
  through the project's SCM plugin with the head commit the person saw
  (``merge(number=, expected_head_sha=)``); a head that moved since refuses;
- ``confirm <code>`` / ``cancel <code>``; ``help``.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import timezone

from integrations.base import IntegrationError
from integrations.registry import ConfigurationError
from sessions.agents import messaging, spawning
from sessions.core import audit, selectors
from sessions.domain.lifecycle import Zone
from sessions.domain.text import TextRejected
from sessions.models import (
    SESSION_ID_RE,
    Actor,
    ChatConfirmation,
    ChatDelivery,
    ChatIdentity,
    Project,
    Session,
)
from sessions.prs import merge
from sessions.watchers.decisions import decisions_for, decisions_text

log = logging.getLogger(__name__)

CONFIRM_TTL = timedelta(minutes=10)
DIGEST_LIMIT = 5
FOOTER_LIMIT = 3
HELP = (
    "Commands:\n"
    "• status [project] — sessions and what needs you\n"
    "• spawn <project> <issue> — start an agent on an issue\n"
    "• send <session|project> <text> — message a session (a project: its orchestrator)\n"
    "• merge <session> — merge its PR (asks you to confirm)"
)


@dataclass(frozen=True)
class Confirm:
    """A merge waiting for the person who asked to confirm it."""

    token: str
    session_id: str
    number: int
    head_sha: str


@dataclass(frozen=True)
class Reply:
    text: str
    ok: bool = True
    confirm: Confirm | None = None
    public: bool = False  # Slack: visible to the channel (in_channel) instead of only to the asker


def refusal_unknown(platform: str, external_id: str) -> Reply:
    return Reply(
        f"Sorry, this {platform.title()} account is not linked to an ao user, so I cannot act on it. "
        f"Ask an ao admin to add a chat identity for {platform} id {external_id} in the admin.",
        ok=False,
    )


def identity_user(platform: str, external_id: str):
    """The active ao user a chat account is mapped to, or None."""
    if not platform or not external_id:
        return None
    identity = (
        ChatIdentity.objects.select_related("user")
        .filter(platform=platform, external_id=external_id[:64])
        .first()
    )
    if identity is None or not identity.user.is_active:
        return None
    return identity.user


def delivery_record(*, platform: str, delivery_id: str, summary: str = "") -> bool:
    """Record a chat request; False if it was handled before (a retry or a replay)."""
    try:
        with transaction.atomic():
            ChatDelivery.objects.create(
                platform=platform, delivery_id=delivery_id[:128], summary=summary[:300]
            )
    except IntegrityError:
        return False
    return True


# --- the commands ------------------------------------------------------------------------------------
def normalise(text: str) -> tuple[str, list[str], str]:
    """``"/Status@ao_bot web"`` → ("status", ["web"], rest-after-verb). Pure."""
    text = (text or "").strip()
    if not text:
        return "", [], ""
    head, _, rest = text.partition(" ")
    verb = head.lstrip("/").split("@", 1)[0].lower()
    return verb, rest.split(), rest.strip()


def handle(*, platform: str, external_id: str, text: str) -> Reply:
    """Run one chat command for the ao user the account maps to."""
    user = identity_user(platform, external_id)
    if user is None:
        return refusal_unknown(platform, external_id)
    verb, args, rest = normalise(text)
    who = f"{platform}:{external_id}"[:150]
    with audit.audit_context(source=audit.WEBHOOK, user=user, actor=audit.USER, actor_name=who):
        try:
            if verb in ("", "help", "start"):
                return Reply(HELP)
            if verb == "status":
                return _status(user, args)
            if verb == "spawn":
                return _spawn(user, args, who=who)
            if verb == "send":
                return _send(user, rest, who=who)
            if verb == "merge":
                return _merge_ask(user, args, platform=platform, external_id=external_id)
            if verb in ("confirm", "cancel"):
                if len(args) != 1:
                    return Reply(f"Usage: {verb} <code>", ok=False)
                return confirm(
                    platform=platform, external_id=external_id, token=args[0], approve=verb == "confirm"
                )
        except Exception:  # a bug must not become a platform retry that runs the command again
            log.exception("chat command %r from %s failed", verb, who)
            return Reply("Sorry, that failed inside ao; the error is in ao's log.", ok=False)
    return Reply(f"I don't know “{verb[:40]}”.\n{HELP}", ok=False)


def _project_for(user, key: str) -> Project | None:
    return selectors.projects_visible_to(user).filter(key=key[:63]).first()


def _unknown_project(user, key: str) -> Reply:
    known = ", ".join(selectors.projects_visible_to(user).values_list("key", flat=True)) or "none"
    return Reply(f"No project “{key[:63]}” that you can see. Your projects: {known}.", ok=False)


def _session_for(user, session_id: str) -> Session | None:
    session = Session.objects.select_related("project").filter(pk=session_id[:40]).first()
    if session is None or not selectors.can(user, session.project, selectors.VIEW):
        return None  # the same answer as "does not exist": no probing other projects
    return session


def _needs(user, project: Project | None, limit: int) -> str:
    return decisions_text(decisions_for(user, project, limit=limit))


def _footer(user, project: Project) -> str:
    return "\n\nNeeds a person:\n" + _needs(user, project, FOOTER_LIMIT)


def _status(user, args: list[str]) -> Reply:
    if len(args) > 1:
        return Reply("Usage: status [project]", ok=False)
    if args:
        project = _project_for(user, args[0])
        if project is None:
            return _unknown_project(user, args[0])
        projects = [project]
    else:
        projects = list(selectors.projects_visible_to(user))
        project = projects[0] if len(projects) == 1 else None
    if not projects:
        return Reply("You are not a member of any project yet.")
    counts_by_project: dict[int, dict[str, int]] = {p.pk: {} for p in projects}
    for project_id, zone, n in (
        Session.objects.filter(project__in=[p.pk for p in projects])
        .exclude(zone=Zone.DONE)
        .values_list("project_id", "zone")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        counts_by_project[project_id][zone] = n
    lines = []
    for each in projects:
        counts = counts_by_project[each.pk]
        live = sum(counts.values())
        parts = [f"{zone.label.lower()} {counts[zone.value]}" for zone in Zone if counts.get(zone.value)]
        lines.append(
            f"{each.key}: {live} live session{'s' if live != 1 else ''}"
            + (f" ({', '.join(parts)})" if parts else "")
        )
    text = "\n".join(lines) + "\n\nNeeds a person:\n" + _needs(user, project, DIGEST_LIMIT)
    return Reply(text)


def _spawn(user, args: list[str], *, who: str) -> Reply:
    if len(args) != 2:
        return Reply("Usage: spawn <project> <issue>", ok=False)
    project = _project_for(user, args[0])
    if project is None:
        return _unknown_project(user, args[0])
    if not selectors.can(user, project, selectors.OPERATE):
        return Reply(f"You need the operator role in {project.key} to spawn sessions.", ok=False)
    issue = args[1].lstrip("#")
    busy = (
        Session.objects.live()
        .filter(project=project, kind=Session.Kind.WORKER, issue_ref=issue)
        .values_list("pk", flat=True)
        .first()
    )
    if busy:
        return Reply(f"{busy} is already working on issue #{issue} in {project.key}.", ok=False)
    try:
        session = spawning.session_spawn(
            project=project, issue_ref=issue, by=user, actor=Actor.USER, actor_name=who
        )
    except (spawning.SpawnRefused, ConfigurationError, IntegrationError, ValueError) as exc:
        return Reply(f"Not spawned: {exc}", ok=False)
    title = f" “{session.issue_title}”" if session.issue_title else ""
    state = "queued (over the cap)" if session.phase == "queued" else "starting"
    return Reply(
        f"Spawned {session.pk} on issue #{issue}{title}: {state}." + _footer(user, project), public=True
    )


def _send_target(user, name: str) -> tuple[Session | None, str]:
    if SESSION_ID_RE.match(name):
        session = _session_for(user, name)
        return session, "" if session else f"No session {name} that you can see."
    if name.lower() == "orchestrator":
        projects = list(selectors.projects_visible_to(user)[:2])
        if len(projects) != 1:
            return None, "You see several projects: name the project (send <project> <text>)."
        project = projects[0]
    else:
        project = _project_for(user, name)
        if project is None:
            return None, f"No session or project “{name[:63]}” that you can see."
    orchestrator = Session.objects.filter(project=project, kind=Session.Kind.ORCHESTRATOR).first()
    if orchestrator is None:
        return None, f"{project.key} has no orchestrator session."
    return orchestrator, ""


def _send(user, rest: str, *, who: str) -> Reply:
    name, _, text = rest.partition(" ")
    if not name or not text.strip():
        return Reply("Usage: send <session|project> <text>", ok=False)
    session, problem = _send_target(user, name)
    if session is None:
        return Reply(problem, ok=False)
    if not selectors.can(user, session.project, selectors.OPERATE):
        return Reply(f"You need the operator role in {session.project.key} to message sessions.", ok=False)
    try:
        sent = messaging.session_send(
            session=session, text=text.strip(), sender=Actor.USER, sender_user=user, sender_name=who
        )
    except (TextRejected, ValueError) as exc:  # SendRefused: it cannot be restored, and says why
        return Reply(f"Not sent: {exc}", ok=False)
    restored = f"{session.pk} {sent.restored} (it was not running). " if sent.restored else ""
    return Reply(
        f"{restored}Queued for {session.pk} (message {sent.message.pk}); it is delivered when the agent is ready."
    )


def _merge_ask(user, args: list[str], *, platform: str, external_id: str) -> Reply:
    if len(args) != 1:
        return Reply("Usage: merge <session>", ok=False)
    session = _session_for(user, args[0])
    if session is None:
        return Reply(f"No session {args[0][:40]} that you can see.", ok=False)
    if not selectors.can(user, session.project, selectors.OPERATE):
        return Reply(f"You need the operator role in {session.project.key} to merge.", ok=False)
    blockers = selectors.merge_blockers(session)
    if blockers:
        return Reply(f"{session.pk} cannot be merged now: " + "; ".join(blockers) + ".", ok=False)
    pr = session.pull_request
    row = ChatConfirmation.objects.create(
        token=secrets.token_hex(5),
        platform=platform,
        external_id=external_id[:64],
        user=user,
        session=session,
        number=pr.number,
        head_sha=pr.head_sha,
        expires_at=timezone.now() + CONFIRM_TTL,
    )
    title = f" “{pr.title}”" if pr.title else ""
    return Reply(
        f"Merge PR #{pr.number}{title} of {session.pk} at {pr.head_sha[:7]}?",
        confirm=Confirm(token=row.token, session_id=session.pk, number=pr.number, head_sha=pr.head_sha),
    )


def confirm(*, platform: str, external_id: str, token: str, approve: bool) -> Reply:
    """Confirm (or cancel) a pending merge. Only the person who asked, within its time, once."""
    user = identity_user(platform, external_id)
    if user is None:
        return refusal_unknown(platform, external_id)
    who = f"{platform}:{external_id}"[:150]
    with audit.audit_context(source=audit.WEBHOOK, user=user, actor=audit.USER, actor_name=who):
        return _confirm(user, platform=platform, external_id=external_id, token=token, approve=approve)


def _confirm(user, *, platform: str, external_id: str, token: str, approve: bool) -> Reply:
    now = timezone.now()
    claimed = ChatConfirmation.objects.filter(
        token=token[:32],
        platform=platform,
        external_id=external_id[:64],
        used_at__isnull=True,
        expires_at__gt=now,
    ).update(used_at=now)
    if claimed != 1:
        return Reply(
            "No pending merge with that code for you (it expired, was used, or is someone else's).", ok=False
        )
    row = ChatConfirmation.objects.select_related("session__project").get(token=token[:32])

    def done(text: str, ok: bool = True, public: bool = False) -> Reply:
        ChatConfirmation.objects.filter(pk=row.pk).update(outcome=text[:300])
        return Reply(text, ok=ok, public=public)

    if not approve:
        return done(f"Cancelled: PR #{row.number} of {row.session_id} was not merged.")
    session = Session.objects.select_related("project", "pull_request").get(pk=row.session_id)
    project = session.project
    if user.pk != row.user_id or not selectors.can(user, project, selectors.OPERATE):
        return done(f"You need the operator role in {project.key} to merge.", ok=False)
    pr = getattr(session, "pull_request", None)
    if pr is None or pr.number != row.number:
        return done(f"{session.pk} no longer has PR #{row.number}.", ok=False)
    if pr.head_sha != row.head_sha:
        return done(
            f"Not merged: PR #{pr.number} moved to {pr.head_sha[:7]} since you asked (you saw {row.head_sha[:7]}). "
            f"Ask again with merge {session.pk}.",
            ok=False,
        )
    try:  # the one merge path (dashboard, API, chat): blockers re-checked, event, audit, refresh
        merge.session_pull_request_merge(
            session=session, by=user, via=platform.title(), expected_head_sha=row.head_sha
        )
    except merge.MergeRefused as exc:
        return done("Not merged: " + "; ".join(exc.blockers) + ".", ok=False)
    except (IntegrationError, ConfigurationError) as exc:
        return done(f"Merge failed: {exc}", ok=False)
    return done(f"Merged PR #{pr.number} of {session.pk} at {row.head_sha[:7]}.", public=True)
