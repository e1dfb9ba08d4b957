"""Audit: who did what, from where.

The interface layers say who is acting and through what: the API (``sessions.api.views``), the
browser (``AuditContextMiddleware``) and each CLI command (``_common.cli_audit``) wrap their work
in :func:`audit_context`. Services then call :func:`record` with what was done; it writes an
``AuditEntry`` with the actor from the context. Without a context (sweeps, reactions, Celery
tasks on their own) nothing is recorded: the timeline (``Event``) already tells what ao did by
itself, and the audit log is for the actions of people, bots and orchestrators.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.db import models

from sessions.models import AuditEntry

log = logging.getLogger(__name__)

USER, BOT, ORCHESTRATOR, AGENT, SYSTEM = "user", "bot", "orchestrator", "agent", "system"
BROWSER, API, CLI, WEBHOOK, ADMIN = "browser", "api", "cli", "webhook", "admin"


@dataclass(frozen=True)
class AuditContext:
    source: str
    actor: str = USER
    actor_name: str = ""
    # the user, or a callable returning it (the browser's user is only looked up when needed)
    user: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def resolved_user(self):
        user = self.user() if callable(self.user) else self.user
        return user if getattr(user, "is_authenticated", False) and getattr(user, "pk", None) else None


_current: ContextVar[AuditContext | None] = ContextVar("ao_audit_context", default=None)


@contextmanager
def audit_context(
    *, source: str, user: Any = None, actor: str = USER, actor_name: str = ""
) -> Iterator[AuditContext]:
    """Everything recorded inside this block is attributed to this actor and source."""
    context = AuditContext(source=source, actor=actor, actor_name=actor_name[:150], user=user)
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def current() -> AuditContext | None:
    return _current.get()


def push(context: AuditContext):
    """Set the context without a block (DRF views: set in ``initial``, reset in ``finalize_response``)."""
    return _current.set(context)


def pop(token) -> None:
    _current.reset(token)


def _target(target: Any) -> tuple[str, str]:
    if target is None:
        return "", ""
    if isinstance(target, models.Model):
        return target._meta.model_name or "", str(target.pk)
    if isinstance(target, tuple) and len(target) == 2:
        return str(target[0]), str(target[1])
    return type(target).__name__.lower(), str(target)


def record(*, action: str, target: Any = None, project: Any = None, data: dict | None = None):
    """Write an audit entry for ``action`` on ``target`` (a model instance or ``(type, id)``).

    Returns the entry, or None when no interface set a context (ao acting on its own).
    Never raises: a failing audit write is logged, the action itself stands.
    """
    context = _current.get()
    if context is None:
        return None
    target_type, target_id = _target(target)
    user = context.resolved_user()
    try:
        return AuditEntry.objects.create(
            actor_user=user,
            actor_kind=context.actor,
            actor_name=context.actor_name or (user.get_username() if user else ""),
            source=context.source,
            action=action[:64],
            target_type=target_type[:64],
            target_id=target_id[:100],
            project=project if getattr(project, "pk", None) else None,
            data=data or {},
        )
    except Exception:  # the audit log never breaks the action it records
        log.exception("could not record audit entry %s", action)
        return None


_cli_caller: ContextVar[dict[str, str] | None] = ContextVar("ao_cli_caller", default=None)


@contextmanager
def cli_caller(env: dict[str, str]) -> Iterator[None]:
    """A CLI command run in this process for another (the running ao, for a local ``ao status``,
    ``ao session ls`` or ``ao send``: ``sessions.cli.cli_relay``): who runs it is read from that
    process's environment (USER, LOGNAME, AO_SESSION), not this one's."""
    token = _cli_caller.set(env)
    try:
        yield
    finally:
        _cli_caller.reset(token)


def cli_context_kwargs() -> dict[str, Any]:
    """Who runs a CLI command: an orchestrator or agent inside an ao session (AO_SESSION set),
    else the person at the terminal (their OS login name)."""
    env = _cli_caller.get() or os.environ
    session = env.get("AO_SESSION", "")
    if session:
        return {"actor": ORCHESTRATOR if session.endswith("-orchestrator") else AGENT, "actor_name": session}
    name = env.get("USER") or env.get("LOGNAME") or ""
    return {"actor": USER, "actor_name": name}


def _admin_prefix() -> str:
    from django.urls import NoReverseMatch, reverse

    try:
        return reverse("admin:index")
    except NoReverseMatch:
        return "\0"  # no admin: no path starts with it


class AuditContextMiddleware:
    """Browser requests (pages, HTMX actions, the admin): actions are the signed-in person's,
    from the source ``admin`` under the admin's URL (``sessions.dashboard.admin_audit``), else ``browser``.

    The API sets its own context per request (token, bot or person; ``sessions.api.views``),
    which takes precedence inside its views.
    """

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response

    def __call__(self, request):
        source = ADMIN if request.path.startswith(_admin_prefix()) else BROWSER
        with audit_context(source=source, user=lambda: getattr(request, "user", None)):
            return self.get_response(request)
