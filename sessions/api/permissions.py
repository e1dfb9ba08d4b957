"""Who may call what: per-project roles (viewer reads, operator acts, admin configures)."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from rest_framework import permissions, throttling
from rest_framework.exceptions import NotFound, PermissionDenied

from sessions.api.auth import AgentPrincipal
from sessions.core import selectors
from sessions.models import Project, Session

log = logging.getLogger(__name__)


class IsPersonOrBot(permissions.BasePermission):
    """Signed-in users and user API tokens; an agent's session token only reaches report/pr."""

    message = "a session token may only call its own session's report and pr endpoints"

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and not isinstance(user, AgentPrincipal))


def project_for(request, key: str, need: str = selectors.VIEW) -> Project:
    """The project ``key`` if the caller can see it (else 404) and has role ``need`` (else 403)."""
    project = selectors.projects_visible_to(request.user).filter(key=key[:63]).first()
    if project is None:
        raise NotFound(f"no project {key!r} visible to you")
    _require(request, project, need)
    return project


def session_for(request, session_id: str, need: str = selectors.VIEW) -> Session:
    """The session if its project is visible to the caller (else 404) and the role suffices (else 403)."""
    session = (
        Session.objects.select_related("project", "pull_request")
        .filter(pk=session_id[:40], project__in=selectors.projects_visible_to(request.user))
        .first()
    )
    if session is None:
        raise NotFound(f"no session {session_id!r} visible to you")
    _require(request, session.project, need)
    return session


def _require(request, project: Project, need: str) -> None:
    if need != selectors.VIEW and not selectors.can(request.user, project, need):
        role = selectors.role_for(request.user, project) or "none"
        raise PermissionDenied(f"this needs the {need} role in project {project.key}; yours is {role}")


class TokenRateThrottle(throttling.SimpleRateThrottle):
    """Requests per API token (or per signed-in user, or per address when anonymous).

    The rate is read from ``AO_API_THROTTLE_RATE`` (e.g. ``600/min``) on every request, so it can
    be changed in settings without re-importing DRF.
    """

    scope = "token"
    cache_down_since: float | None = None  # shared by every request of this process

    def get_rate(self):
        return getattr(settings, "AO_API_THROTTLE_RATE", None)

    def allow_request(self, request, view):
        self.rate = self.get_rate()
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        try:
            allowed = super().allow_request(request, view)
        except Exception as exc:
            if not _cache_unreachable(exc):
                raise
            # The counts live in the shared cache (Redis in scale-out). Without it the API still
            # answers from the database, unthrottled: an outage of the cache must not turn every
            # call into an error. One line per outage.
            if TokenRateThrottle.cache_down_since is None:
                TokenRateThrottle.cache_down_since = time.monotonic()
                log.warning("API rate limits are not enforced while the cache is unreachable (%s)", exc)
            return True
        if TokenRateThrottle.cache_down_since is not None:
            down = time.monotonic() - TokenRateThrottle.cache_down_since
            TokenRateThrottle.cache_down_since = None
            log.warning("API rate limits are enforced again (the cache was unreachable for %d s)", down)
        return allowed

    def get_cache_key(self, request, view):
        auth = request.auth
        if auth is not None and getattr(auth, "pk", None) is not None:
            ident = f"token-{auth.pk}"
        elif isinstance(request.user, AgentPrincipal):
            ident = f"session-{request.user.session.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = f"ip-{self.get_ident(request)}"
        return f"ao-throttle-{self.scope}-{ident}"


def _cache_unreachable(exc: BaseException) -> bool:
    try:
        import redis
    except ImportError:  # pragma: no cover - redis is a dependency of the scale-out form
        return isinstance(exc, OSError)
    return isinstance(exc, redis.ConnectionError | redis.TimeoutError | OSError)
