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
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings
from django.db.models import Q

from ao_site import served
from sessions.models import Event

log = logging.getLogger(__name__)

BOARD_GROUP = "board"  # every project: superusers' boards
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


# --- card pushes, coalesced ---------------------------------------------------------------------
COALESCE_SECONDS = 0.25  # at most one render per session per this interval
_pending: set[str] = set()
_last_render: dict[str, float] = {}  # session id -> loop time of its last render
_render_pool: ThreadPoolExecutor | None = None


_folding: ContextVar[set[str] | None] = ContextVar("realtime_cards_folding", default=None)


@contextmanager
def cards_folded() -> Iterator[None]:
    """Card pushes announced within it are pushed once per session at its end, when this process
    renders each push at once (no web server loop: a worker, a command). A PR sync that stores a
    PR's facts, its timeline entries and the new status announces the same card three times; the
    server's loop folds such bursts itself (``COALESCE_SECONDS``)."""
    if _server_loop is not None or _folding.get() is not None:
        yield
        return
    pending: set[str] = set()
    token = _folding.set(pending)
    try:
        yield
    finally:
        _folding.reset(token)
        for session_id in sorted(pending):
            try:
                card_changed(session_id)
            except Exception:
                log.exception("pushing the card of %s failed", session_id)


def card_changed(session_id: str) -> None:
    pending = _folding.get()
    if pending is not None and _server_loop is None:
        pending.add(session_id)
        return
    if _relay(cards=[session_id]):
        return
    _card_changed(session_id)


def _card_changed(session_id: str) -> None:
    """Push the session's card to everyone who may see it, rendered once per change.

    In the web server's process (embedded mode, or `ao web`), calls from any thread are folded
    onto the server loop, at most one render per session per ``COALESCE_SECONDS``: a change to
    a quiet session renders at once; changes that follow within the window ride on one render
    at its end, which reads the latest stored state (nothing is lost, bursts cost one render).
    Without a server loop (CLI commands, separate workers) the card is rendered and sent at once.
    """
    loop = _server_loop
    if loop is not None and loop.is_running() and not loop.is_closed():
        loop.call_soon_threadsafe(_arm, loop, session_id)
        return
    message = card_message(session_id)
    if message is not None:
        _fan_out(message)


def _arm(loop: asyncio.AbstractEventLoop, session_id: str) -> None:
    if session_id in _pending:
        return  # a render is already due: it will read this change too
    _pending.add(session_id)
    delay = max(0.0, _last_render.get(session_id, float("-inf")) + COALESCE_SECONDS - loop.time())
    loop.call_later(delay, lambda: loop.create_task(_flush(session_id)))
    if len(_last_render) > 10_000:  # forget sessions that went quiet
        cutoff = loop.time() - COALESCE_SECONDS
        for key in [k for k, t in _last_render.items() if t < cutoff]:
            del _last_render[key]


async def _flush(session_id: str) -> None:
    global _render_pool
    _pending.discard(session_id)  # a change from now on arms a new render
    _last_render[session_id] = asyncio.get_running_loop().time()
    if _render_pool is None:
        _render_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ao-card-render")
    loop = asyncio.get_running_loop()
    try:
        message = await loop.run_in_executor(_render_pool, _render_closing, session_id)
    except Exception:
        log.exception("rendering the card of %s failed", session_id)
        return
    if message is None:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    for group, part in _sends(message):
        try:
            await layer.group_send(group, part)
        except Exception:
            log.exception("broadcast to %s failed", group)


def _render_closing(session_id: str) -> dict[str, Any] | None:
    from django.db import close_old_connections

    close_old_connections()
    return card_message(session_id)


# The core announces changes as data and never renders: the dashboard hands its renderers down
# when the app is ready (sessions/apps.py):
# - card(session id, panels=bool) → the card's HTML (``html``), the session page's live panels
#   (``detail_html``), ``session``, ``project``, ``zone``; None when the session is gone;
# - unread(user) → the nav's Inbox badge for that person, "" without an inbox.
_card_renderer: Callable[..., dict[str, Any] | None] | None = None
_unread_renderer: Callable[[Any], str] | None = None


def use_renderers(*, card: Callable[..., dict[str, Any] | None], unread: Callable[[Any], str]) -> None:
    global _card_renderer, _unread_renderer
    _card_renderer, _unread_renderer = card, unread


def card_message(session_id: str) -> dict[str, Any] | None:
    """The websocket messages for a session's change (None when the session is gone): the card
    for boards, and for its session page the card with every live panel (``detail_html``, only
    when someone may be watching that page). Each is rendered once per change."""
    if _card_renderer is None:  # no dashboard in this process
        return None
    if not _may_be_listening(session_id):
        return None  # nobody could receive it: no render (a page opened later renders afresh)
    watched = _page_viewers.get(session_id, 0) > 0 or bool(settings.REDIS_URL)
    rendered = _card_renderer(session_id, panels=watched)
    return None if rendered is None else {"type": "card.html", **rendered}


def _may_be_listening(session_id: str) -> bool:
    """False when no socket could receive a card of this session, so that rendering it would be
    work for nobody. Known only for the in-memory channel layer (embedded mode), whose groups are
    this process's own sockets: none on a board, a project's board or this session's page. A
    shared layer's other processes may have viewers: assume so."""
    layer = get_channel_layer()
    if layer is None:
        return False
    if not isinstance(layer, InMemoryChannelLayer):
        return True
    page = session_group(session_id)
    try:
        groups = list(layer.groups.items())  # the server loop may change it meanwhile
    except RuntimeError:
        return True
    return any(
        members for name, members in groups if name in (BOARD_GROUP, page) or name.startswith("project-")
    )


def _sends(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(group, message) pairs: boards get the card, the session's page the card and its panels."""
    card = {key: value for key, value in message.items() if key != "detail_html"}
    sends = [(BOARD_GROUP, card), (project_group(message["project"]), card)]
    page = {**card, "html": message["detail_html"]} if message.get("detail_html") else card
    sends.append((session_group(message["session"]), page))
    return sends


def _fan_out(message: dict[str, Any]) -> None:
    for group, part in _sends(message):
        group_send(group, part)


# Session pages open in this process, by session id (websocket consumers count themselves in and
# out). Without a page open here, and without a shared channel layer that another process's page
# could be listening on, a change renders only the card.
_page_viewers: dict[str, int] = {}


def _count(counts: dict, key: Any, delta: int) -> None:
    """Add ``delta`` to ``counts[key]``, dropping the key when nothing is left."""
    left = counts.get(key, 0) + delta
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


def session_page_opened(session_id: str) -> None:
    _count(_page_viewers, session_id, +1)


def session_page_closed(session_id: str) -> None:
    _count(_page_viewers, session_id, -1)


# --- the nav's Inbox badge, per person ------------------------------------------------------------
def user_group(user_id: int) -> str:
    return f"user-{user_id}"


_connected_users: dict[int, int] = {}  # people with a page open in this process: user id -> sockets


def user_connected(user_id: int, delta: int) -> None:
    _count(_connected_users, user_id, delta)


def unread_message(user) -> dict[str, Any] | None:
    """The one websocket message with this person's Inbox badge (None without an inbox)."""
    html = _unread_renderer(user) if _unread_renderer is not None else ""
    return {"type": "inbox.html", "html": html} if html else None


def inbox_changed(*, project_id: int | None = None, user_ids: list[int] | None = None) -> None:
    """Push the Inbox badge to everyone whose count may have changed: the people who can see
    ``project_id`` (a new notification) or ``user_ids`` (they read some). Called after commit.
    Only people with a page open here are rendered for, unless pages may be open in other
    processes (a shared channel layer)."""
    from django.conf import settings
    from django.contrib.auth import get_user_model

    if _relay(inbox={"project_id": project_id, "user_ids": user_ids}):
        return
    if _server_loop is None and not settings.REDIS_URL:
        return  # embedded mode outside the server, with no server running: nobody can listen
    users = get_user_model().objects.filter(is_active=True)
    if user_ids is not None:
        users = users.filter(pk__in=user_ids)
    if project_id is not None:
        users = users.filter(Q(is_superuser=True) | Q(memberships__project_id=project_id)).distinct()
    if not settings.REDIS_URL:
        users = users.filter(pk__in=list(_connected_users))
    for user in users:
        try:
            message = unread_message(user)
            if message is not None:
                group_send(user_group(user.pk), message)
        except Exception:
            log.exception("pushing the inbox badge of user %s failed", user.pk)


# --- timeline events for API streams (sessions.api.sse) --------------------------------------------
def events_group(project_id: int) -> str:
    return f"events-{project_id}"


def event_payload(event) -> dict[str, Any]:
    """The JSON shape of a timeline event on ``/api/v1/events/stream`` (as in ``/api/v1/events/``)."""
    return {
        "id": event.pk,
        "project": event.project.key,
        "session": event.session_id,
        "kind": event.kind,
        "actor": event.actor,
        "actor_user": event.actor_user.get_username() if event.actor_user_id else None,
        "actor_name": event.actor_name,
        "summary": event.summary,
        "data": event.data,
        "created_at": event.created_at.isoformat(),
    }


def event_created(event) -> None:
    """Announce a new timeline event to API event streams (called after commit)."""
    from django.conf import settings

    if _relay(events=[event.pk]):
        return
    if _server_loop is None and not settings.REDIS_URL:
        return  # embedded mode outside the server, with no server running: nobody can listen
    try:
        group_send(events_group(event.project_id), {"type": "event.created", "event": event_payload(event)})
    except Exception:
        log.exception("announcing event %s failed", event.pk)


# --- a command beside a running `ao start` ---------------------------------------------------------
# In embedded mode the channel layer lives in the `ao start` process's memory. A CLI command (`ao
# session kill`, `ao pr merge`, `ao spawn` ...) changes the database itself, and its broadcasts
# would go to its own empty layer: instead it hands them to the running server, which broadcasts
# them as if the change were its own. Signed with a key derived from ao's secret key (shared by
# every process of one AO_HOME); what is relayed is only "this changed", never content.
RELAY_PATH = "/internal/realtime"
RELAY_SALT = "ao.realtime.relay"
RELAY_MAX_AGE = 60.0  # seconds a relayed announcement stays acceptable
RELAY_TIMEOUT = 3.0


def relay_signature(body: bytes) -> str:
    from django.utils.crypto import salted_hmac

    return salted_hmac(RELAY_SALT, body, algorithm="sha256").hexdigest()


def _relay(**what: Any) -> bool:
    """Hand an announcement to the running `ao start` when this process is not it (embedded mode);
    True when it was handed over (or there was a server to hand it to and it could not be reached:
    this process has no listener either way)."""
    import json
    import time
    import urllib.request

    from django.conf import settings

    if _server_loop is not None or settings.REDIS_URL:
        return False
    base = served.running_start_url()
    if not base:
        return False
    body = json.dumps({"ts": time.time(), **what}).encode()
    request = urllib.request.Request(  # noqa: S310 - http(s) URL of this AO_HOME's own server
        base + RELAY_PATH,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "X-Ao-Relay-Signature": relay_signature(body)},
    )
    try:
        with urllib.request.urlopen(request, timeout=RELAY_TIMEOUT) as response:  # noqa: S310
            response.read()
    except OSError as exc:
        log.info("could not hand a live update to the running ao at %s: %s", base, exc)
    return True


def relay_receive(body: bytes, signature: str) -> bool:
    """The server's side of ``_relay``: check the signature and age, then broadcast what changed.
    False (nothing done) when the announcement is not genuine or too old."""
    import hmac
    import json
    import time

    if not hmac.compare_digest(relay_signature(body), signature or ""):
        return False
    try:
        data = json.loads(body)
        age = time.time() - float(data["ts"])
    except (ValueError, KeyError, TypeError):
        return False
    if not 0 <= age <= RELAY_MAX_AGE:
        return False
    for session_id in data.get("cards") or []:
        _card_changed(str(session_id))
    events = [int(pk) for pk in data.get("events") or []]
    if events:
        for event in Event.objects.filter(pk__in=events).select_related("project", "actor_user"):
            event_created(event)
    inbox = data.get("inbox")
    if isinstance(inbox, dict):
        inbox_changed(project_id=inbox.get("project_id"), user_ids=inbox.get("user_ids"))
    return True
