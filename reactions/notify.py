"""Telling people things: the inbox row, routing by priority, and delivery through notifiers.

``notify`` always writes a ``Notification`` (it *is* the in-app inbox), picks notifier instances
for its priority, records one ``NotificationDelivery`` per instance and, after commit, sends each
in its own background task (``reactions.tasks.notification_delivery_send_task``). A failing
notifier never raises into the caller: its delivery ends ``failed`` with ``last_error``.

Routing (``notificationRouting`` and ``defaults.notifiers`` in ao.config.yaml, stored by
``notifiers_apply``) for a notification of priority P:

1. P is routed: exactly those notifiers (an empty list: the inbox only);
2. else ``defaults.notifiers`` when set;
3. else, when no routing is configured at all: ``in-app`` plus every configured notifier
   instance — setting up a notifier means you want to hear from it, without writing routes;
4. else (some priorities routed, not P, no defaults): ``in-app`` only — routing ``urgent`` to
   Slack must not send every ``info`` there too.

A name is a configured instance (``notifiers:``) or a bare plugin key with default settings
(``desktop``, ``in-app``). Retries: transient failures (network, timeouts, 5xx, 429) are retried
``retries`` times with exponential backoff from ``backoff`` seconds, or after the server's
Retry-After, each wait capped at ``max_delay`` (all per-instance settings); other 4xx, missing
binaries and bad settings fail at once.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, QuerySet
from django.urls import NoReverseMatch
from django.utils import timezone

from ao_site import served
from integrations.base import IntegrationError, Notifier, TransientIntegrationError
from integrations.notifier import NotifierConfig, OutboundNotification
from integrations.registry import ConfigurationError, notifiers
from reactions.models import (  # noqa: F401  delivery_error_shown: re-exported
    Notification,
    NotificationDelivery,
    NotificationRoute,
    NotifierInstance,
    Priority,
    delivery_error_shown,
)
from sessions.core import jobs, realtime
from sessions.core.selectors import projects_visible_to

log = logging.getLogger(__name__)

IN_APP = "in-app"
RESUME_AFTER = timedelta(minutes=15)  # longer than any backoff wait (max_delay <= 1 h is per try)


# --- notify --------------------------------------------------------------------------------------
def notify(
    *,
    project,
    session=None,
    title: str,
    body: str = "",
    priority: str = "info",
    rule: str = "",
    url: str = "",
    recipient=None,
) -> Notification:
    """Record a notification (the in-app inbox) and send it, after commit, to its routed notifiers.

    ``recipient``: the person it concerns; by default a session's owner (who spawned it), none for
    a session ao spawned by itself or a notification about the project."""
    if priority not in Priority.values:
        log.warning("notify: unknown priority %r, using info", priority)
        priority = Priority.INFO
    url = url or _default_url(session)
    if recipient is None and session is not None:
        recipient = session.created_by if session.created_by_id else None
    with transaction.atomic():
        notification = Notification.objects.create(
            project=project,
            session=session,
            priority=priority,
            rule=rule[:64],
            title=_clip(" ".join(title.split()), 300) or "(untitled)",
            body=body,
            url=url if len(url) <= 1000 else "",
            recipient=recipient,
        )
        to_send = _deliveries_create(notification=notification, names=route_for(priority))
    if to_send:
        transaction.on_commit(lambda: _enqueue(to_send), robust=True)
    transaction.on_commit(lambda: realtime.inbox_changed(project_id=project.pk), robust=True)
    return notification


def route_for(priority: str) -> list[str]:
    """Notifier names for a priority, by the rules in this module's docstring."""
    routes = dict(NotificationRoute.objects.values_list("priority", "notifiers"))
    if priority in routes:
        names = list(routes[priority])
    elif NotificationRoute.DEFAULT in routes:
        names = list(routes[NotificationRoute.DEFAULT])
    elif not routes:
        names = [IN_APP, *NotifierInstance.objects.values_list("name", flat=True)]
    else:
        names = [IN_APP]
    return list(dict.fromkeys(names))


def _deliveries_create(*, notification: Notification, names: list[str]) -> list[int]:
    """One delivery per name; the inbox and unknown names are settled here. Returns ids to send."""
    instances = dict(NotifierInstance.objects.filter(name__in=names).values_list("name", "plugin"))
    to_send = []
    for name in names:
        plugin = instances.get(name) or (name if name in notifiers else None)
        if plugin is None:
            NotificationDelivery.objects.create(
                notification=notification,
                notifier=name,
                state=NotificationDelivery.State.FAILED,
                last_error=f"unknown notifier {name!r}: define it under notifiers: in ao.config.yaml",
            )
        elif plugin == IN_APP:  # the row is the inbox: nothing to send
            NotificationDelivery.objects.create(
                notification=notification, notifier=name, state=NotificationDelivery.State.SENT, attempts=1
            )
        else:
            to_send.append(NotificationDelivery.objects.create(notification=notification, notifier=name).pk)
    return to_send


def _enqueue(delivery_ids: Iterable[int]) -> None:
    for delivery_id in delivery_ids:
        try:
            jobs.enqueue(jobs.NOTIFICATION_DELIVER, args=[delivery_id])
        except Exception as exc:  # a broker outage must not break the caller; the sweep resumes it
            log.warning("could not enqueue notification delivery %s (%s); it stays pending", delivery_id, exc)


def _default_url(session) -> str:
    if session is None:
        return ""
    try:
        path = served.dashboard_path("detail", session_id=session.pk)
    except NoReverseMatch:
        path = "/"
    return f"{served.agent_url()}{path}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- delivery ------------------------------------------------------------------------------------
def notifier_build(name: str, *, spec: tuple[str, dict[str, Any]] | None = None) -> Notifier:
    """The notifier instance ``name`` (configured, or a bare plugin key) with validated settings.

    Raises ConfigurationError for unknown names and invalid settings.
    """
    if spec is None:
        row = NotifierInstance.objects.filter(name=name).values_list("plugin", "settings").first()
        spec = row if row is not None else (name, {}) if name in notifiers else None
    if spec is None:
        raise ConfigurationError(
            f"unknown notifier {name!r}: define it under notifiers: in ao.config.yaml, or use a notifier "
            f"plugin: {', '.join(notifiers.keys())}"
        )
    plugin, plugin_settings = spec
    return notifiers.create(plugin, plugin_settings, where=f"notifiers.{name}")


def outbound(notification: Notification) -> OutboundNotification:
    """What the notifiers get: the row, with ao's page for its session and the session's PR, and the
    person it concerns with their e-mail address (read at send time: the PR may have been opened
    since, the person may have changed their address; a deactivated person gets nothing)."""
    session = notification.session
    pr = getattr(session, "pull_request", None) if session is not None else None  # None: no PR
    person = notification.recipient
    if person is not None and not person.is_active:
        person = None  # a deactivated person is told nothing
    return OutboundNotification(
        title=notification.title,
        body=notification.body,
        priority=notification.priority,
        url=notification.url,
        session_id=notification.session_id or "",
        project_key=notification.project.key,
        session_url=_default_url(session),
        pr_url=pr.url if pr is not None else "",
        pr_number=pr.number if pr is not None else None,
        id=notification.pk,
        rule=notification.rule,
        project_name=notification.project.name,
        created_at=notification.created_at,
        recipient=person.get_username() if person else "",
        recipient_email=(person.email or "") if person else "",
    )


def notification_delivery_attempt(*, delivery_id: int) -> float | None:
    """Make one try at a pending delivery. Returns seconds to wait before the next try, or None
    when there is nothing more to do (sent, failed for good, gone, or claimed by another worker).
    Never raises for notifier failures."""
    delivery = (
        NotificationDelivery.objects.select_related(
            "notification__project", "notification__session", "notification__recipient"
        )
        .filter(pk=delivery_id, state=NotificationDelivery.State.PENDING)
        .first()
    )
    if delivery is None:
        return None
    claimed = NotificationDelivery.objects.filter(
        pk=delivery_id, state=NotificationDelivery.State.PENDING, attempts=delivery.attempts
    ).update(attempts=F("attempts") + 1, updated_at=timezone.now())
    if claimed != 1:
        return None  # another delivery of this task got there first
    attempt = delivery.attempts + 1
    notifier: Notifier | None = None
    failed = NotificationDelivery.State.FAILED
    try:
        notifier = notifier_build(delivery.notifier)
        notifier.send(outbound(delivery.notification))
    except TransientIntegrationError as exc:
        # Third-party notifiers whose settings lack a retry policy get the default one.
        config = getattr(notifier, "config", None)
        policy = config if isinstance(config, NotifierConfig) else NotifierConfig()
        if attempt <= policy.retries:
            delay = policy.retry_delay(attempt=attempt, retry_after=getattr(exc, "retry_after", None))
            _record(
                delivery,
                state=None,
                error=f"try {attempt} of {policy.retries + 1} failed: {exc}; retrying in {delay:g} s",
            )
            return delay
        tries = "1 try" if attempt == 1 else f"{attempt} tries"
        _record(delivery, state=failed, error=f"{exc} (gave up after {tries})")
    except (IntegrationError, ConfigurationError) as exc:  # permanent: never retried
        _record(delivery, state=failed, error=str(exc))
    except Exception as exc:  # a bug in a plugin: record the type only (messages may hold URLs)
        frames = "".join(traceback.format_tb(exc.__traceback__))
        log.error("notifier %r crashed with %s:\n%s", delivery.notifier, type(exc).__name__, frames)
        _record(
            delivery,
            state=failed,
            error=f"the {delivery.notifier} notifier crashed ({type(exc).__name__}); see ao's log",
        )
    else:
        _record(delivery, state=NotificationDelivery.State.SENT, error="")
    return None


def _record(delivery: NotificationDelivery, *, state: str | None, error: str) -> None:
    values: dict[str, Any] = {"last_error": error, "updated_at": timezone.now()}
    if state is not None:
        values["state"] = state
    NotificationDelivery.objects.filter(pk=delivery.pk).update(**values)
    if state == NotificationDelivery.State.FAILED:
        log.warning("notification %s via %s failed: %s", delivery.notification_id, delivery.notifier, error)


def notification_deliveries_resume(*, older_than: timedelta = RESUME_AFTER) -> int:
    """Re-enqueue deliveries left pending (broker down at enqueue, worker lost with a retry
    scheduled). For a periodic task; returns how many were enqueued."""
    stale = list(
        NotificationDelivery.objects.filter(
            state=NotificationDelivery.State.PENDING, updated_at__lt=timezone.now() - older_than
        ).values_list("pk", flat=True)
    )
    _enqueue(stale)
    return len(stale)


# --- config --------------------------------------------------------------------------------------
def notifiers_apply(config) -> list[str]:
    """Store the config's ``notifiers``, ``notificationRouting`` and ``defaults.notifiers``.

    The applied file replaces what is stored (also edits made in the admin): instances and routes it
    does not have are removed. Only called when a file is applied (``ao start`` skips an unchanged
    file). One transaction. Returns human-readable lines (never settings values: they may be secrets).
    """
    wanted = {name: (spec.plugin, dict(spec.settings)) for name, spec in (config.notifiers or {}).items()}
    routes = {str(priority): list(names) for priority, names in (config.notification_routing or {}).items()}
    defaults = list(getattr(getattr(config, "defaults", None), "notifiers", None) or [])
    if defaults:
        routes[NotificationRoute.DEFAULT] = defaults
    changes: list[str] = []
    with transaction.atomic():
        existing = {row.name: row for row in NotifierInstance.objects.select_for_update()}
        for name, (plugin, plugin_settings) in sorted(wanted.items()):
            row = existing.pop(name, None)
            if row is None:
                NotifierInstance.objects.create(name=name, plugin=plugin, settings=plugin_settings)
                changes.append(f"created notifier {name} ({plugin})")
            elif (row.plugin, row.settings) != (plugin, plugin_settings):
                what = f"plugin {row.plugin} → {plugin}" if row.plugin != plugin else "settings changed"
                row.plugin, row.settings = plugin, plugin_settings
                row.save(update_fields=["plugin", "settings", "updated_at"])
                changes.append(f"updated notifier {name}: {what}")
            else:
                changes.append(f"unchanged notifier {name}")
        for name in sorted(existing):
            existing[name].delete()
            changes.append(f"removed notifier {name}")

        old_routes = {row.priority: row for row in NotificationRoute.objects.select_for_update()}
        for priority, names in sorted(routes.items()):
            route = old_routes.pop(priority, None)
            shown = ", ".join(names) or "(inbox only)"
            if route is None:
                NotificationRoute.objects.create(priority=priority, notifiers=names)
                changes.append(f"routing {priority}: {shown}")
            elif route.notifiers != names:
                route.notifiers = names
                route.save(update_fields=["notifiers", "updated_at"])
                changes.append(f"routing {priority}: {shown}")
        for priority in sorted(old_routes):
            old_routes[priority].delete()
            changes.append(f"routing {priority}: removed")
    return changes


# --- ao doctor --test-notify ---------------------------------------------------------------------
@dataclass(frozen=True)
class NotifierCheck:
    name: str
    plugin: str
    ok: bool
    detail: str
    fix: str = ""


def notifiers_test(*, config=None) -> list[NotifierCheck]:
    """Send a test notification through each notifier once (no retries) and report each result.

    With ``config`` (a loaded AoConfig) its notifiers are tested, else the stored ones; bare
    plugin keys named in routing are included.
    """
    if config is not None:
        specs = {name: (spec.plugin, dict(spec.settings)) for name, spec in config.notifiers.items()}
        routed = [n for names in config.notification_routing.values() for n in names]
        routed += list(config.defaults.notifiers)
    else:
        specs = {row.name: (row.plugin, row.settings) for row in NotifierInstance.objects.all()}
        routed = [n for names in NotificationRoute.objects.values_list("notifiers", flat=True) for n in names]
    for name in routed:
        if name not in specs and name in notifiers:
            specs[name] = (name, {})
    message = OutboundNotification(
        title="ao test notification",
        body="If you can read this, this notifier works. Sent by `ao doctor --test-notify`.",
        priority="info",
        url=f"{served.agent_url()}/",
        project_key="ao",
    )
    results = []
    for name, (plugin, plugin_settings) in sorted(specs.items()):
        try:
            notifier_build(name, spec=(plugin, plugin_settings)).send(message)
        except ConfigurationError as exc:
            results.append(
                NotifierCheck(name, plugin, False, str(exc), "fix the notifier's settings in ao.config.yaml")
            )
        except IntegrationError as exc:
            fix = getattr(exc, "fix", "") or "check the notifier's settings"
            results.append(NotifierCheck(name, plugin, False, str(exc), fix))
        except Exception as exc:
            results.append(
                NotifierCheck(name, plugin, False, f"crashed ({type(exc).__name__})", "report this bug")
            )
        else:
            detail = "in the ao inbox" if plugin == IN_APP else "test notification sent"
            results.append(NotifierCheck(name, plugin, True, detail))
    return results


# --- the inbox -----------------------------------------------------------------------------------
def inbox_for(user, *, unread_only: bool = False) -> QuerySet[Notification]:
    """Notifications of the projects the user can see, newest first."""
    notifications = (
        Notification.objects.filter(project__in=projects_visible_to(user))
        .select_related("project", "session", "recipient")
        .prefetch_related("deliveries")
    )
    if unread_only:
        notifications = notifications.exclude(read_by=user)
    return notifications


def unread_count(user) -> int:
    return inbox_for(user, unread_only=True).count()


def mark_read(user, ids: Iterable[int]) -> int:
    """Mark these notifications read for the user (ignoring ones they cannot see); returns how many
    were newly marked."""
    wanted = {int(pk) for pk in ids}
    if not wanted:
        return 0
    unread = list(inbox_for(user, unread_only=True).filter(pk__in=wanted).values_list("pk", flat=True))
    through = Notification.read_by.through
    through.objects.bulk_create(
        [through(notification_id=pk, user_id=user.pk) for pk in unread], ignore_conflicts=True
    )
    if unread:
        transaction.on_commit(lambda: realtime.inbox_changed(user_ids=[user.pk]), robust=True)
    return len(unread)
