"""Password guessing is stopped by django-axes; this module is ao's configuration of it.

axes records each failed password login as an ``AccessAttempt`` row per (username, client
address, user agent) in the database, and refuses a login while the failures that match it
reach a limit. ao keeps those rows in its database (not the cache) because the database is the
one store every process shares in both modes: the SQLite file of the embedded ``ao start`` and
its CLI, and PostgreSQL behind every ``ao web`` of a scale-out; the per-process memory cache of
the embedded mode would let ``ao login-unlock`` miss the server's counts, and the admin can only
list rows that exist.

What ao adds (settings in ``ao_site/settings.py``, the why in docs/SECURITY.md):

- :class:`LoginLockoutHandler`: one limit per lockout rule (axes has one for all): an account
  from one address (default 10), any accounts from one address (50), optionally an account from
  anywhere (off). A success clears only that account's failures from that address.
- :func:`client_address`: the TCP peer, or the client a trusted proxy (``AO_TRUSTED_PROXIES``)
  names in ``X-Forwarded-For``.
- :func:`login_lockouts` and :func:`login_lockouts_lift`: what the admin and ``ao login-unlock``
  show and lift.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Max, Sum
from django.utils import timezone

from sessions.core import audit

USERNAME, ADDRESS = "username", "ip_address"


def lockout_rules() -> list[tuple[tuple[str, ...], int]]:
    """(the fields a rule counts failures by, its limit), in ``AXES_LOCKOUT_PARAMETERS`` order."""
    rules = []
    for parameters, limit in zip(
        settings.AXES_LOCKOUT_PARAMETERS, settings.AO_LOGIN_FAILURE_LIMITS, strict=True
    ):
        rules.append(((parameters,) if isinstance(parameters, str) else tuple(parameters), limit))
    return rules


class LoginLockoutHandler(AxesDatabaseHandler):
    """axes' database handler with a limit per lockout rule and a narrow reset on success."""

    def get_failures(self, request, credentials: dict | None = None) -> int:
        # axes compares one number with AXES_FAILURE_LIMIT (the largest rule limit): report the
        # rule closest to its own limit, shifted so that reaching it reaches AXES_FAILURE_LIMIT.
        attempts = self.get_user_attempts(request, credentials)
        counts = [rows.aggregate(n=Sum("failures_since_start"))["n"] or 0 for rows in attempts]
        limits = [limit for _, limit in lockout_rules()]
        return max(
            (
                count + settings.AXES_FAILURE_LIMIT - limit
                for count, limit in zip(counts, limits, strict=True)
            ),
            default=0,
        )

    def reset_user_attempts(self, request, credentials: dict | None = None) -> int:
        # axes would delete every rule's rows, the address's included: one account an attacker
        # owns would then reset the count of their guesses at everyone else's from that address.
        username = get_client_username(request, credentials)
        count, _ = AccessAttempt.objects.filter(
            username=username, ip_address=request.axes_ip_address
        ).delete()
        return count


def _networks(values) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(value, strict=False) for value in values]


def _trusted(address: str, networks) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(request) -> str | None:
    """The address a login comes from (``AXES_CLIENT_IP_CALLABLE``).

    ``REMOTE_ADDR`` (the TCP peer) unless that peer is a proxy listed in ``AO_TRUSTED_PROXIES``:
    then the right-most address in ``X-Forwarded-For`` that is not a trusted proxy (what the
    first trusted proxy saw). Headers from anyone else are ignored: they are the client's to forge.
    """
    peer = request.META.get("REMOTE_ADDR") or None
    networks = _networks(settings.AO_TRUSTED_PROXIES)
    if not peer or not networks or not _trusted(peer, networks):
        return peer
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # a malformed hop: count the proxy, never a made-up string
    return peer


# --- what the admin and `ao login-unlock` show and lift --------------------------------------------------
@dataclass(frozen=True)
class Lockout:
    """A rule whose limit is reached: who (``username`` and/or ``ip_address``), how often, until when."""

    username: str | None
    ip_address: str | None
    failures: int
    until: datetime

    def __str__(self) -> str:
        until = timezone.localtime(self.until).strftime("%Y-%m-%d %H:%M %Z")
        if self.username is not None and self.ip_address is not None:
            who = f"{self.username} from {self.ip_address}: {self.failures} failed logins"
        elif self.ip_address is not None:
            who = f"{self.ip_address}: {self.failures} failed logins (any account)"
        else:
            who = f"{self.username}: {self.failures} failed logins (any address)"
        return f"{who} — locked out until {until}"


def recent_attempts():
    return AccessAttempt.objects.filter(attempt_time__gte=timezone.now() - settings.AXES_COOLOFF_TIME)


def login_lockouts() -> list[Lockout]:
    """Every lockout in force, per rule (an address locked for all accounts is one entry)."""
    found = []
    for fields, limit in lockout_rules():
        groups = (
            recent_attempts()
            .values(*fields)
            .annotate(failures=Sum("failures_since_start"), last=Max("attempt_time"))
            .filter(failures__gte=limit)
            .order_by(*fields)
        )
        for group in groups:
            found.append(
                Lockout(
                    username=group.get(USERNAME),
                    ip_address=group.get(ADDRESS),
                    failures=group["failures"],
                    until=group["last"] + settings.AXES_COOLOFF_TIME,
                )
            )
    return found


def login_lockouts_lift(*, attempts) -> list[AccessAttempt]:
    """Delete these failed-login records (a queryset of ``AccessAttempt``): the logins they held
    out may try again. Each is recorded in the audit log as ``login.unlock``."""
    lifted = list(attempts.order_by("username", "ip_address", "pk"))
    for attempt in lifted:
        audit.record(
            action="login.unlock",
            target=("login", attempt.username or ""),
            data={
                "username": attempt.username,
                "ip_address": attempt.ip_address,
                "failures": attempt.failures_since_start,
            },
        )
    AccessAttempt.objects.filter(pk__in=[attempt.pk for attempt in lifted]).delete()
    return lifted
