"""The Content-Security-Policy of every response, in development and production alike.

Scripts run only from ao's own origin (the vendored libraries in ``static/vendor/`` and ao's own
``static/ao/*.js``): no inline ``<script>``, no ``onclick=``, no ``javascript:`` URLs, no
``eval``. Even if a page ever let an outside string into its HTML, it could not run there.
Connections go only to ao itself (HTTP and its websockets); no page may be framed.

Styles allow ``'unsafe-inline'``: the terminal emulator (xterm.js), htmx's indicator styles,
Django's admin and Swagger UI set inline styles, and a style cannot run code. A view that sets
its own ``Content-Security-Policy`` header keeps it.
"""

from __future__ import annotations

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse

HEADER = "Content-Security-Policy"


def policy(request: HttpRequest) -> str:
    try:
        host = request.get_host()
    except DisallowedHost:  # answered 400 anyway; the policy then names no websocket host
        host = ""
    sockets = f" ws://{host} wss://{host}" if host else ""
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "font-src 'self' data:",
            f"connect-src 'self'{sockets}",
            "worker-src 'self' blob:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if HEADER not in response:
            response[HEADER] = policy(request)
        return response
