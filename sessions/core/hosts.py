"""Agent hosts: who may run sessions where, and which hosts are up.

A host is registered by its worker (``ao worker --host NAME``, ``host_register``): started with a
person's ``AO_TOKEN`` it is that person's *personal* host (only their sessions and those of the
people they allow run there: whoever owns the machine can read what its agents get); started
without a token (the machine's operator, who holds the database's credentials anyway) or with a
superuser's token and ``--shared``, it is *shared* (any operator's sessions). Its worker writes a
heartbeat (``Host.last_seen``) every ``AO_HOST_HEARTBEAT`` seconds.

A spawn chooses its host here (``host_for_spawn``): the one asked for when the spawner may use it
and it is up, else the first host with room under its cap among theirs, those they are allowed
on, then the shared ones (this machine's first). The embedded default has one host, this machine,
shared and not registered. A host not seen for ``AO_HOST_GONE_AFTER`` seconds is gone
(``hosts_gone_mark``, at each beat tick): its running sessions are marked runtime lost and their
owners told; its worker's next heartbeat makes it a host again, and the next observation of each
session (run there) says what its agent does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import close_old_connections, transaction
from django.db.models import Q
from django.utils import timezone

from sessions.core import audit, services
from sessions.domain.lifecycle import Phase, RuntimeState, Zone
from sessions.models import Host, Session

log = logging.getLogger(__name__)

NOTIFY_RULE = "host.gone"

_notify: Callable[..., Any] | None = None


class HostRefused(ValueError):
    """A host the person may not register or use, with the reason."""


class HostNotFound(HostRefused):
    """No such host (or none the person may see), or no such person."""


class HostForbidden(HostRefused):
    """The person sees the host but may not change who uses it."""


def use_notifier(notify: Callable[..., Any]) -> None:
    """Called once the apps are ready (sessions/apps.py) with ``reactions.notify.notify``."""
    global _notify
    _notify = notify


def _name(user) -> str:
    return user.get_username() if getattr(user, "pk", None) else "the host's operator"


# --- registration and heartbeat (the worker) ----------------------------------------------------
def host_register(*, name: str, user=None, shared: bool = False, max_sessions: int | None = None) -> Host:
    """Register (or take up again) agent host ``name`` for the worker starting now. ``user``: the
    person of the worker's AO_TOKEN (None: the machine's operator, no token). Raises HostRefused."""
    if user is not None and not user.is_active:
        raise HostRefused(f"{user.get_username()} is not an active user")
    if shared and user is not None and not user.is_superuser:
        raise HostRefused(
            "only a superuser (or the machine's operator, without AO_TOKEN) registers a shared host: "
            "other people's sessions, with their credentials, would run on your machine"
        )
    now = timezone.now()
    with transaction.atomic():
        host = Host.objects.select_for_update().filter(name=name).first()
        if host is not None and user is not None and host.owner_id not in (None, user.pk):
            raise HostRefused(f"host {name} is {_name(host.owner)}'s; choose another --host NAME")
        if host is not None and user is not None and host.owner_id is None and not user.is_superuser:
            raise HostRefused(
                f"host {name} is a shared host: only a superuser or its operator starts its worker"
            )
        created = host is None
        if host is None:
            host = Host(name=name)
        if user is not None:
            host.owner = user
            host.shared = shared or False
        elif created:
            host.shared = True  # the machine's operator: the one machine of an install is shared
        elif shared:
            host.shared = True
        if max_sessions is not None:
            host.max_sessions = max_sessions
        host.last_seen, host.gone_since = now, None
        host.save()
        audit.record(
            action="host.register",
            target=host,
            data={
                "name": name,
                "shared": host.shared,
                "owner": host.owner.get_username() if host.owner else None,
            },
        )
    log.info(
        "agent host %s registered (%s)", name, "shared" if host.shared else f"personal: {_name(host.owner)}"
    )
    return host


def host_heartbeat(*, name: str) -> None:
    Host.objects.filter(name=name).update(last_seen=timezone.now(), gone_since=None)


class HostHeartbeat:
    """The worker's heartbeat thread: ``Host.last_seen`` every ``AO_HOST_HEARTBEAT`` seconds."""

    def __init__(self, name: str, *, every: float | None = None) -> None:
        self.name = name
        self.every = settings.AO_HOST_HEARTBEAT if every is None else every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"ao-host-heartbeat-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                close_old_connections()
                host_heartbeat(name=self.name)
            except Exception:  # the database away for a moment: the next beat tries again
                log.warning("agent host %s: heartbeat not written", self.name, exc_info=True)


# --- who may use which host ------------------------------------------------------------------
def host_use_refusal(host: Host, user) -> str:
    """Empty when ``user``'s sessions may run on ``host``, else why not."""
    if host.shared:
        return ""
    if getattr(user, "pk", None) is None:
        return f"host {host.name} is {_name(host.owner)}'s personal host (only their sessions and those they allow)"
    if host.owner_id == user.pk or host.allowed.filter(pk=user.pk).exists():
        return ""
    return f"host {host.name} is {_name(host.owner)}'s personal host and they have not allowed {user.get_username()}"


def host_up(host: Host, *, now: datetime | None = None) -> bool:
    now = now or timezone.now()
    return host.last_seen is not None and host.last_seen >= now - timedelta(
        seconds=settings.AO_HOST_GONE_AFTER
    )


def host_cap(name: str) -> int:
    cap = Host.objects.filter(name=name).values_list("max_sessions", flat=True).first()
    return cap if cap is not None else settings.AO_MAX_SESSIONS_PER_HOST


@dataclass(frozen=True)
class HostChoice:
    name: str
    kind: str  # "yours", "allowed", "shared"
    owner: str
    live: int
    cap: int

    @property
    def label(self) -> str:
        whose = {"yours": "your host", "allowed": f"{self.owner}'s host", "shared": "shared"}[self.kind]
        return f"{self.name} ({whose}, {self.live}/{self.cap} sessions)"


def hosts_for(*, user) -> list[HostChoice]:
    """The hosts ``user``'s sessions may run on now, in the order a spawn tries them: theirs, the
    ones they are allowed on, the shared ones (this machine's first). Embedded (or none
    registered yet): this machine, shared."""
    here = settings.AO_HOST_NAME
    if settings.AO_EMBEDDED:
        return [_choice(here, "shared", "")]
    now = timezone.now()
    choices = []
    for host in Host.objects.select_related("owner").order_by("name"):
        if not host_up(host, now=now) or host_use_refusal(host, user):
            continue
        if getattr(user, "pk", None) is not None and host.owner_id == user.pk:
            kind = "yours"
        elif not host.shared:
            kind = "allowed"
        else:
            kind = "shared"
        choices.append(_choice(host.name, kind, _name(host.owner) if host.owner else ""))
    if not choices and not Host.objects.filter(name=here).exists():
        choices.append(_choice(here, "shared", ""))  # scale-out before any worker registered
    rank = {"yours": 0, "allowed": 1, "shared": 2}
    return sorted(choices, key=lambda c: (rank[c.kind], c.name != here, c.name))


def live_sessions(*, project=None, host: str | None = None):
    """Worker sessions that hold a slot under the caps (admission control counts these)."""
    qs = Session.objects.live().filter(kind=Session.Kind.WORKER).exclude(phase=Phase.QUEUED)
    if project is not None:
        qs = qs.filter(project=project)
    if host is not None:
        qs = qs.filter(host=host)
    return qs


def _choice(name: str, kind: str, owner: str) -> HostChoice:
    return HostChoice(
        name=name, kind=kind, owner=owner, live=live_sessions(host=name).count(), cap=host_cap(name)
    )


def host_for_spawn(*, user, requested: str | None = None) -> str:
    """The host a new session of ``user`` runs on. Raises HostRefused with the reason."""
    choices = hosts_for(user=user)
    if requested:
        if any(c.name == requested for c in choices):
            return requested
        host = Host.objects.select_related("owner").filter(name=requested).first()
        if host is None or settings.AO_EMBEDDED:
            usable = ", ".join(c.name for c in choices) or "none"
            raise HostRefused(f"no agent host {requested} (hosts you may use: {usable})")
        reason = host_use_refusal(host, user)
        if reason:
            raise HostRefused(reason)
        seen = f"since {host.last_seen:%Y-%m-%d %H:%M:%S} UTC" if host.last_seen else "ever"
        raise HostRefused(f"host {requested} is down: its worker has not been seen {seen}")
    if not choices:
        raise HostRefused("no agent host you may use is up (start one: ao worker --host NAME)")
    for choice in choices:
        if choice.live < choice.cap:
            return choice.name
    return choices[0].name  # all full: admission queues it there (or refuses) with the cap's reason


# --- the hosts list and who may use a personal host (its owner decides) -----------------------
def hosts_visible(*, user):
    """The registered hosts ``user`` sees: a superuser (or the machine's operator, None) every one;
    anyone else those they may use (shared, theirs, those they are allowed on)."""
    hosts = Host.objects.select_related("owner").prefetch_related("allowed").order_by("name")
    if user is None or user.is_superuser:
        return hosts
    return hosts.filter(Q(shared=True) | Q(owner=user) | Q(allowed=user)).distinct()


def _manages(host: Host, user) -> bool:
    return user is None or user.is_superuser or (host.owner_id is not None and host.owner_id == user.pk)


def host_rows(*, user) -> list[dict]:
    """``GET /api/v1/hosts`` and ``ao host ls``: each visible host, whether it is up, its cap and
    its live sessions; the allowed people only to those who manage it (owner, superusers)."""
    now = timezone.now()
    if settings.AO_EMBEDDED:  # the one machine, shared, not registered
        here = settings.AO_HOST_NAME
        return [_row(Host(name=here, shared=True), online=True, manages=False, user=user)]
    return [
        _row(h, online=host_up(h, now=now), manages=_manages(h, user), user=user)
        for h in hosts_visible(user=user)
    ]


def _row(host: Host, *, online: bool, manages: bool, user) -> dict:
    owner = host.owner.get_username() if host.owner is not None else None
    return {
        "name": host.name,
        "shared": host.shared,
        "owner": owner,
        "online": online,
        "last_seen": host.last_seen,
        "max_sessions": host.max_sessions
        if host.max_sessions is not None
        else settings.AO_MAX_SESSIONS_PER_HOST,
        "running": live_sessions(host=host.name).count(),
        "may_use": not host_use_refusal(host, user) if user is not None else True,
        "allowed": sorted(u.get_username() for u in host.allowed.all()) if manages and host.pk else None,
    }


def _managed_host(*, name: str, by) -> Host:
    host = hosts_visible(user=by).filter(name=name[:63]).first()
    if host is None:
        raise HostNotFound(f"no agent host {name!r} you may use (see `ao host ls`)")
    if not _manages(host, by):
        owner = host.owner.get_username() if host.owner_id else "its operator"
        raise HostForbidden(
            f"only {owner}, who owns host {host.name}, or a superuser decides who may use it"
            if host.owner_id
            else f"host {host.name} is shared: only a superuser changes it"
        )
    if host.shared:
        raise HostRefused(
            f"host {host.name} is shared: every operator's sessions run there already; "
            "allowing people is for personal hosts"
        )
    return host


def _person(username: str):
    person = get_user_model().objects.filter(username=username[:150]).first()
    if person is None:
        raise HostNotFound(f"no user {username!r}")
    return person


def host_allow(*, name: str, username: str, by) -> bool:
    """Let ``username``'s sessions run on personal host ``name``. ``by``: who asks (None: the
    machine's operator). Returns False when they were allowed already. Raises HostRefused (its
    subclasses HostNotFound, HostForbidden) with the reason."""
    with transaction.atomic():
        host = _managed_host(name=name, by=by)
        person = _person(username)
        if person.pk == host.owner_id:
            raise HostRefused(
                f"{person.get_username()} owns host {host.name}: their sessions run there already"
            )
        if not person.is_active:
            raise HostRefused(f"{person.get_username()} is not an active user")
        if host.allowed.filter(pk=person.pk).exists():
            return False
        host.allowed.add(person)
        audit.record(
            action="host.allow", target=host, data={"name": host.name, "user": person.get_username()}
        )
    log.info("agent host %s: %s may use it now", host.name, person.get_username())
    return True


def host_deny(*, name: str, username: str, by) -> None:
    """Stop ``username``'s new sessions from running on personal host ``name`` (those running there
    carry on). Raises HostRefused (HostNotFound when they were not allowed)."""
    with transaction.atomic():
        host = _managed_host(name=name, by=by)
        person = _person(username)
        if not host.allowed.filter(pk=person.pk).exists():
            raise HostNotFound(f"{person.get_username()} is not allowed on host {host.name}")
        host.allowed.remove(person)
        audit.record(action="host.deny", target=host, data={"name": host.name, "user": person.get_username()})
    log.info("agent host %s: %s may no longer use it", host.name, person.get_username())


# --- hosts that went away (the beat) ---------------------------------------------------------
def hosts_gone_mark(*, now: datetime | None = None) -> list[str]:
    """Mark the running sessions of hosts whose worker stopped heart-beating runtime lost (not
    "working": nothing there answers) and tell each session's owner. Once per absence. Returns
    the ids of the sessions marked."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.AO_HOST_GONE_AFTER)
    marked: list[str] = []
    for host in Host.objects.filter(last_seen__lt=cutoff, gone_since__isnull=True):
        if (
            Host.objects.filter(pk=host.pk, gone_since__isnull=True, last_seen__lt=cutoff).update(
                gone_since=now
            )
            != 1
        ):
            continue  # another beat got there, or its heartbeat came back
        running = (
            Session.objects.select_related("project", "created_by")
            .filter(host=host.name, phase=Phase.RUNNING)
            .exclude(zone=Zone.DONE)
            .exclude(runtime_state__in=[RuntimeState.LOST, RuntimeState.EXITED])
        )
        for session in running:
            if _session_host_gone(session, host=host):
                marked.append(session.id)
        log.warning(
            "agent host %s is gone (last seen %s); %d session(s) marked",
            host.name,
            host.last_seen,
            len(marked),
        )
    return marked


def _session_host_gone(session: Session, *, host: Host) -> bool:
    """Mark one session runtime lost, unless it stopped running since it was read (killed,
    cleaned up: then nothing of it is lost). Whether it was marked."""
    seen = f"{host.last_seen:%Y-%m-%d %H:%M:%S} UTC"
    owner = _name(session.created_by) if session.created_by_id else "the host's operator"
    with transaction.atomic():
        if not Session.objects.filter(pk=session.pk, phase=Phase.RUNNING).update(
            runtime_state=RuntimeState.LOST, runtime_checked_at=timezone.now()
        ):
            return False
        session.refresh_from_db()
        services.event_record(
            project=session.project,
            session=session,
            kind="host.gone",
            summary=f"host {host.name} went away (its worker was last seen {seen}): runtime lost until it is back",
            data={"host": host.name, "last_seen": host.last_seen.isoformat() if host.last_seen else None},
        )
        services.session_rederive(session=session)
        if _notify is not None:
            try:
                _notify(
                    project=session.project,
                    session=session,
                    title=f"{owner}: session {session.id} lost its host {host.name}",
                    body=(
                        f"The worker of host {host.name} was last seen {seen}. The agent may still run there; "
                        f"ao shows it again once `ao worker --host {host.name}` is back."
                    ),
                    priority="warning",
                    rule=NOTIFY_RULE,
                    recipient=session.created_by,
                )
            except Exception:  # telling people must never stop the marking
                log.exception("could not record the host-gone notification for %s", session.id)
    return True
