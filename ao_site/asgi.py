"""ASGI entry point: HTTP through Django, websockets through Channels (origin + login checked).

A websocket upgrade is refused unless its Origin is ao's own - scheme, host and port - or one the
operator listed (ao_site/origins.py): cookies are shared by every port of a host, so checking
the host alone would let any local page on another port drive the terminal.
"""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ao_site.settings")
django.setup()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

import ao_site.celery  # noqa: E402, F401 - tasks sent from request threads use ao's Celery app
from ao_site.origins import WebsocketOriginValidator  # noqa: E402
from ao_site.routing import websocket_urlpatterns  # noqa: E402
from sessions.core import realtime  # noqa: E402

_router = ProtocolTypeRouter(
    {
        "http": get_asgi_application(),
        "websocket": WebsocketOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)


async def application(scope, receive, send):
    # Background threads (the embedded Celery worker) broadcast through the server's own loop.
    realtime.bind_server_loop()
    return await _router(scope, receive, send)
