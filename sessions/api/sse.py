"""``GET /api/v1/events/stream``: server-sent events of the timeline, for bots.

Authenticated like the API (``Authorization: Bearer ao_...``, or the browser's session). The
stream subscribes to the channel-layer group of each project visible to the caller
(``realtime.events_group``), where ``services.event_record`` announces every new event after
commit (``realtime.event_created``). Each event is sent as::

    id: <event id>
    event: <kind>
    data: {"id": ..., "project": ..., "session": ..., "kind": ..., "summary": ..., ...}

A client that reconnects with ``Last-Event-ID`` (or ``?after=<id>``) first gets what it missed
(up to ``REPLAY_LIMIT`` events). A comment line every ``KEEPALIVE`` seconds keeps proxies from
closing an idle stream. ``?project=<key>`` narrows the stream to one project.

Access is re-checked every ``AO_ACCESS_RECHECK_SECONDS`` (30 s), like the board's websocket: a
revoked token, a deactivated user or a signed-out browser session ends the stream; a project the
caller lost its role in is dropped from it (the stream ends when none is left).
Runs under ASGI (daphne): the response is an async generator, one per client, no thread held.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import JsonResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from sessions.api.errors import error_body
from sessions.api.tokens import api_token_authenticate
from sessions.core import realtime, selectors
from sessions.models import ApiToken, Event, Project

log = logging.getLogger(__name__)

KEEPALIVE = 15.0
# what channels_redis raises when Redis cannot be reached
LAYER_ERRORS: tuple[type[BaseException], ...] = (OSError, RedisConnectionError, RedisTimeoutError)
REPLAY_LIMIT = 500


@dataclass(frozen=True)
class Credentials:
    """What the stream was opened with, to check again later."""

    user_id: int
    token_id: int | None = None  # an API token
    session_key: str = ""  # else the browser's session


def _caller(request):
    """The user behind the request (API token first, then the browser session) and the
    credentials it came with, or (None, None)."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        token = api_token_authenticate(header[len("Bearer ") :].strip())
        if token is None:
            return None, None
        return token.user, Credentials(user_id=token.user_id, token_id=token.pk)
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None, None
    session = getattr(request, "session", None)
    return user, Credentials(user_id=user.pk, session_key=getattr(session, "session_key", "") or "")


def stream_access(credentials: Credentials, project_ids: list[int]) -> list[int]:
    """The streamed projects the caller may still see: none when the token was revoked, the user
    deactivated or the browser signed out (``selectors.signed_in_user``, as every websocket)."""
    if credentials.token_id is not None:
        if not ApiToken.objects.filter(
            pk=credentials.token_id, user_id=credentials.user_id, revoked_at__isnull=True
        ).exists():
            return []
        user = get_user_model().objects.filter(pk=credentials.user_id, is_active=True).first()
    else:
        user = selectors.signed_in_user(user_id=credentials.user_id, session_key=credentials.session_key)
    if user is None:
        return []
    visible = selectors.projects_visible_to(user).filter(pk__in=project_ids)
    return sorted(visible.values_list("pk", flat=True))


def _subscription(request):
    """(status, credentials, project ids, replay events) for the request."""
    user, credentials = _caller(request)
    if user is None:
        return 401, None, [], []
    projects = selectors.projects_visible_to(user)
    key = request.GET.get("project", "")
    if key:
        projects = projects.filter(key=key[:63])
        if not projects.exists():
            return 404, user, [], []
    ids = list(projects.values_list("pk", flat=True))
    after = request.headers.get("Last-Event-ID") or request.GET.get("after") or ""
    replay: list[dict] = []
    if after.isdigit() and ids:
        rows = (
            Event.objects.filter(project_id__in=ids, pk__gt=int(after))
            .select_related("project", "actor_user")
            .order_by("pk")[:REPLAY_LIMIT]
        )
        replay = [realtime.event_payload(event) for event in rows]
    return 200, credentials, ids, replay


def _project_keys(project_ids: list[int]) -> list[str]:
    return list(Project.objects.filter(pk__in=project_ids).values_list("key", flat=True))


def format_event(payload: dict) -> str:
    data = json.dumps(payload, separators=(",", ":"), default=str)
    kind = "".join(ch for ch in payload.get("kind", "event") if ch.isprintable() and ch not in "\r\n")
    return f"id: {payload['id']}\nevent: {kind or 'event'}\ndata: {data}\n\n"


@require_GET
async def events_stream(request):
    status, credentials, project_ids, replay = await sync_to_async(_subscription)(request)
    if status == 401:
        response = JsonResponse(
            error_body("not_authenticated", "send Authorization: Bearer ao_..."), status=401
        )
        response["WWW-Authenticate"] = 'Bearer realm="ao"'
        return response
    if status == 404:
        return JsonResponse(error_body("not_found", "no such project visible to you"), status=404)
    layer = get_channel_layer()
    if layer is None:
        return JsonResponse(error_body("unavailable", "no channel layer configured"), status=503)

    recheck_every = settings.AO_ACCESS_RECHECK_SECONDS
    # Subscribe before answering, so a channel layer that cannot be reached is a 503 with the
    # reason, not a 200 whose stream breaks at once.
    groups = {pk: realtime.events_group(pk) for pk in project_ids}
    try:
        channel = await layer.new_channel("ao-sse.")
        for group in groups.values():
            await layer.group_add(group, channel)
    except LAYER_ERRORS as exc:
        response = JsonResponse(
            error_body(
                "unavailable",
                f"live events need the channel layer (Redis), which is unreachable ({exc}); "
                "the REST API still answers; try the stream again when Redis is back",
            ),
            status=503,
        )
        response["Retry-After"] = "10"
        return response
    keys = set(await sync_to_async(_project_keys)(list(groups)))

    response = StreamingHttpResponse(
        _stream(layer, channel, groups, keys, credentials, replay, recheck_every),
        content_type="text/event-stream",
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


async def _stream(
    layer, channel: str, groups: dict, keys: set, credentials, replay: list, recheck_every: float
) -> AsyncIterator[str]:
    """The event stream of a subscribed ``channel``: the replay, then each new event of the
    projects in ``groups`` (re-checking the caller's access every ``recheck_every`` seconds and
    dropping the projects lost), with keepalives; leaves the groups when the client goes."""
    last = 0
    try:
        yield "retry: 3000\n: connected\n\n"
        for payload in replay:
            last = max(last, payload["id"])
            yield format_event(payload)
        sent_at = next_check = time.monotonic()
        next_check += recheck_every
        while True:
            now = time.monotonic()
            if now >= next_check:
                allowed = set(await sync_to_async(stream_access)(credentials, list(groups)))
                for pk in set(groups) - allowed:
                    await layer.group_discard(groups.pop(pk), channel)
                if not groups:
                    yield ": access revoked\n\n"
                    return
                keys = set(await sync_to_async(_project_keys)(list(groups)))
                next_check = now + recheck_every
            try:
                message = await asyncio.wait_for(
                    layer.receive(channel), timeout=max(0.0, min(sent_at + KEEPALIVE, next_check) - now)
                )
            except TimeoutError:
                if time.monotonic() - sent_at >= KEEPALIVE:
                    sent_at = time.monotonic()
                    yield ": keepalive\n\n"
                continue
            payload = message.get("event") or {}
            if not payload or payload.get("id", 0) <= last or payload.get("project") not in keys:
                continue  # already sent during the replay, or of a project dropped since
            last = payload["id"]
            sent_at = time.monotonic()
            yield format_event(payload)
    finally:
        for group in groups.values():
            try:
                await layer.group_discard(group, channel)
            except Exception:  # the client is gone; nothing else to do
                log.debug("group_discard %s failed", group, exc_info=True)
