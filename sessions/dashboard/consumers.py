"""Websocket consumers: check who is asking, join groups, relay pre-rendered fragments."""

from __future__ import annotations

import time
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from sessions.core import realtime, selectors
from sessions.models import Project, Session

CLOSE_FORBIDDEN = 4403


@database_sync_to_async
def board_groups(user, *, project_key: str, session_id: str) -> list[str] | None:
    """The groups this user's board socket joins, or None when the user may not see what it asks for.

    ``?session=<id>``: that session only (the detail page). ``?project=<key>``: that project.
    Neither: every project the user can see (superusers: the all-projects group, so projects
    created later are included).
    """
    if session_id:
        session = Session.objects.select_related("project").filter(pk=session_id).first()
        if session is None or not selectors.can(user, session.project, selectors.VIEW):
            return None
        return [realtime.session_group(session.pk)]
    if project_key:
        project = Project.objects.filter(key=project_key).first()
        if project is None or not selectors.can(user, project, selectors.VIEW):
            return None
        return [realtime.project_group(project.pk)]
    if user.is_superuser:
        return [realtime.BOARD_GROUP]
    return [
        realtime.project_group(pk) for pk in selectors.projects_visible_to(user).values_list("pk", flat=True)
    ]


class BoardConsumer(AsyncWebsocketConsumer):
    """Push-only: card fragments rendered once per change by ``realtime.card_changed``."""

    groups_joined: list[str]

    async def connect(self) -> None:
        self.groups_joined = []
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        query = parse_qs((self.scope.get("query_string") or b"").decode("latin-1"))
        self.asked = {
            "project_key": (query.get("project") or [""])[0],
            "session_id": (query.get("session") or [""])[0],
        }
        groups = await board_groups(user, **self.asked)
        if groups is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self._join(groups)
        self.page = self.asked["session_id"] or ""
        if self.page:
            realtime.session_page_opened(self.page)  # its changes now render the page's panels too
        await self.accept()

    async def _join(self, groups: list[str]) -> None:
        for group in set(self.groups_joined) - set(groups):
            await self.channel_layer.group_discard(group, self.channel_name)
        for group in set(groups) - set(self.groups_joined):
            await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined = groups
        self.checked_at = time.monotonic()

    async def _still_allowed(self) -> bool:
        """Re-check the person's roles now and then: revoked access closes the socket."""
        if time.monotonic() - self.checked_at < settings.AO_ACCESS_RECHECK_SECONDS:
            return True
        groups = await board_groups(self.scope["user"], **self.asked)
        if groups is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return False
        await self._join(groups)
        return True

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)
        if getattr(self, "page", ""):
            realtime.session_page_closed(self.page)
            self.page = ""

    async def receive(self, text_data=None, bytes_data=None) -> None:
        return  # the board is push-only

    async def card_html(self, event: dict) -> None:
        if not await self._still_allowed():
            return
        await self.send(text_data=event["html"])


class InboxConsumer(AsyncWebsocketConsumer):
    """Push-only, one per page: the person's Inbox badge in the nav (``realtime.inbox_changed``),
    sent once on connect too, so a page that was cached or offline shows the current count."""

    user_id: int | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.user_id = user.pk
        await self.channel_layer.group_add(realtime.user_group(user.pk), self.channel_name)
        realtime.user_connected(user.pk, +1)
        await self.accept()
        message = await database_sync_to_async(realtime.unread_message)(user)
        if message is not None:
            await self.send(text_data=message["html"])

    async def disconnect(self, code: int) -> None:
        if self.user_id is not None:
            await self.channel_layer.group_discard(realtime.user_group(self.user_id), self.channel_name)
            realtime.user_connected(self.user_id, -1)
            self.user_id = None

    async def receive(self, text_data=None, bytes_data=None) -> None:
        return

    async def inbox_html(self, event: dict) -> None:  # type "inbox.html": rendered for this person
        await self.send(text_data=event["html"])
