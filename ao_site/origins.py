"""Which origins may use a signed-in browser's cookies: ao's own, plus those the operator lists.

An origin is scheme, host and port. Cookies are shared by every port of a host and every port is
"same-site", so a page on ``http://127.0.0.1:5173`` (an agent's dev server, a local preview)
opened in the operator's browser sends the operator's ao cookies with whatever it asks of
``127.0.0.1:8000``. The host alone (Channels' ``AllowedHostsOriginValidator``) tells nothing:
the port must match too.

Allowed, for a request or websocket upgrade:

1. the origin of the request itself: its scheme and its ``Host`` header (host and port), when
   that host is one of ``ALLOWED_HOSTS``;
2. the address the operator set (``AO_URL``) and the address this process serves
   (``ao_site.served``), for a proxy that rewrites ``Host``;
3. the origins in ``AO_CSRF_TRUSTED_ORIGINS`` (``settings.CSRF_TRUSTED_ORIGINS``; ``https://*.example.com``
   allows the subdomains): one list for forms and websockets alike.

HTTP requests that change something are checked by Django's CSRF middleware, which compares the
``Origin`` header with the same three (scheme, host and port); websockets, which Django never
sees, by :class:`WebsocketOriginValidator` below. A websocket upgrade without an ``Origin``
header is refused: every browser sends one.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain

from ao_site import served

DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]  # scheme, host (lowercase, IPv6 without brackets), port


def parse_origin(value: str) -> Origin | None:
    """``scheme://host[:port]`` as (scheme, host, port), or None if it is not an http(s) origin."""
    try:
        parts = urlsplit(value.strip())
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
            return None
        return scheme, parts.hostname.lower(), parts.port or DEFAULT_PORTS[scheme]
    except ValueError:  # a port that is not a number, an unbalanced bracket
        return None


def own_origins(*, scheme: str, host: str) -> set[Origin]:
    """ao's own origins for a request with this scheme (http/https) and ``Host`` header."""
    found: set[Origin] = set()
    domain, _port = split_domain_port(host)
    if domain and validate_host(domain, settings.ALLOWED_HOSTS):
        mine = parse_origin(f"{scheme}://{host}")
        if mine:
            found.add(mine)
    for url in (served.operator_url(), served.this_process_url()):
        mine = parse_origin(url) if url else None
        if mine:
            found.add(mine)
    return found


def trusted(origin: Origin) -> bool:
    """Listed by the operator in ``AO_CSRF_TRUSTED_ORIGINS`` (Django's own wildcard rules)."""
    scheme, host, port = origin
    for entry in settings.CSRF_TRUSTED_ORIGINS:
        if "://*." in entry:
            entry_scheme, _, pattern = entry.partition("://")
            pattern_host, pattern_port = split_domain_port(pattern[1:])
            if entry_scheme.lower() == scheme and is_same_domain(host, pattern_host):
                if (int(pattern_port) if pattern_port else DEFAULT_PORTS[scheme]) == port:
                    return True
        elif parse_origin(entry) == origin:
            return True
    return False


def origin_allowed(origin_header: str, *, scheme: str, host: str) -> bool:
    origin = parse_origin(origin_header) if origin_header else None
    if origin is None:
        return False
    return origin in own_origins(scheme=scheme, host=host) or trusted(origin)


def _headers(scope) -> dict[bytes, bytes]:
    return dict(scope.get("headers") or [])


def websocket_scheme(scope) -> str:
    """The http(s) scheme of the page that may open this websocket: ``wss`` or a proxy's
    ``X-Forwarded-Proto: https`` (trusted only where the HTTP side trusts it: production)."""
    if scope.get("scheme") == "wss":
        return "https"
    header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if header:
        name = header[0].removeprefix("HTTP_").replace("_", "-").lower().encode()
        if _headers(scope).get(name, b"").decode("latin1").split(",")[0].strip() == header[1]:
            return "https"
    return "http"


class WebsocketOriginValidator:
    """Refuse (HTTP 403, before the upgrade) a websocket whose ``Origin`` is not ao's own."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            raise ValueError("WebsocketOriginValidator only guards websocket connections")
        headers = _headers(scope)
        origin = headers.get(b"origin", b"").decode("latin1")
        host = headers.get(b"host", b"").decode("latin1")
        if origin_allowed(origin, scheme=websocket_scheme(scope), host=host):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)
