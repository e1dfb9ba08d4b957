"""Channel-layer group names and broadcasts: the one place live updates leave from.

A fragment is rendered once per change and fanned out to every viewer of the group.

Embedded mode uses the in-memory channel layer, whose queues belong to the web server's event
loop. Background work (the in-process Celery worker) runs in other threads, so broadcasts are
handed to the server's loop with ``run_coroutine_threadsafe`` instead of ``async_to_sync`` (which
would run them on a private loop that no consumer is listening on).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

BOARD_GROUP = "board"
SEND_TIMEOUT = 5.0

_server_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


def project_group(project_id: int) -> str:
    return f"project-{project_id}"


def session_group(session_id: str) -> str:
    return f"session-{session_id}"


def bind_server_loop() -> None:
    """Remember the web server's event loop (called from inside it, on every ASGI call)."""
    global _server_loop
    loop = asyncio.get_running_loop()
    if _server_loop is not loop:
        with _lock:
            _server_loop = loop


def group_send(group: str, message: dict[str, Any]) -> None:
    """Send ``message`` to ``group`` from synchronous code in any thread."""
    layer = get_channel_layer()
    if layer is None:
        return
    loop = _server_loop
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if loop is not None and loop.is_running() and not loop.is_closed():
        if running is loop:
            loop.create_task(layer.group_send(group, message))
            return
        future = asyncio.run_coroutine_threadsafe(layer.group_send(group, message), loop)
        try:
            future.result(timeout=SEND_TIMEOUT)
        except Exception:
            log.exception("broadcast to %s failed", group)
        return
    async_to_sync(layer.group_send)(group, message)


def card_changed(session_id: str) -> None:
    """Render the session's board card once and push it to every board viewer."""
    from sessions import selectors
    from sessions.views import render_card

    session = selectors.session_for_card(session_id=session_id)
    if session is None:
        return
    html = render_card(session)
    message = {"type": "card.html", "html": html, "session": session.id, "zone": session.zone}
    group_send(BOARD_GROUP, message)
    group_send(project_group(session.project_id), message)
