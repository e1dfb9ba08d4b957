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
Runs under ASGI (daphne): the response is an async generator, one per client, no thread held.
"""

from __future__ import annotations

import asyncio
import json
import logging

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.http import JsonResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET

from sessions import realtime, selectors
from sessions.api.errors import error_body
from sessions.api.tokens import api_token_authenticate
from sessions.models import Event

log = logging.getLogger(__name__)

KEEPALIVE = 15.0
REPLAY_LIMIT = 500


def _caller(request):
    """The user behind the request (API token first, then the browser session), or None."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        token = api_token_authenticate(header[len("Bearer ") :].strip())
        return token.user if token is not None else None
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None


def _subscription(request):
    """(status, user, project ids, replay events) for the request."""
    user = _caller(request)
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
    return 200, user, ids, replay


def format_event(payload: dict) -> str:
    data = json.dumps(payload, separators=(",", ":"), default=str)
    kind = "".join(ch for ch in payload.get("kind", "event") if ch.isprintable() and ch not in "\r\n")
    return f"id: {payload['id']}\nevent: {kind or 'event'}\ndata: {data}\n\n"


@require_GET
async def events_stream(request):
    status, _user, project_ids, replay = await sync_to_async(_subscription)(request)
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

    async def stream():
        channel = await layer.new_channel("ao-sse.")
        groups = [realtime.events_group(pk) for pk in project_ids]
        for group in groups:
            await layer.group_add(group, channel)
        last = 0
        try:
            yield "retry: 3000\n: connected\n\n"
            for payload in replay:
                last = max(last, payload["id"])
                yield format_event(payload)
            while True:
                try:
                    message = await asyncio.wait_for(layer.receive(channel), timeout=KEEPALIVE)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                payload = message.get("event") or {}
                if not payload or payload.get("id", 0) <= last:
                    continue  # already sent during the replay
                last = payload["id"]
                yield format_event(payload)
        finally:
            for group in groups:
                try:
                    await layer.group_discard(group, channel)
                except Exception:  # the client is gone; nothing else to do
                    log.debug("group_discard %s failed", group, exc_info=True)

    response = StreamingHttpResponse(stream(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
