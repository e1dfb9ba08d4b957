"""Websocket consumers: check who is asking, join groups, relay pre-rendered fragments.

Both re-check the person and their login while open (``consumers_access``): a board leaves the
projects its person may no longer see, and closes (4403) when they may see nothing it asked for
or are no longer signed in."""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.db import database_sync_to_async

from sessions.core import realtime, selectors
from sessions.dashboard.consumers_access import CLOSE_FORBIDDEN, AccessCheckedConsumer
from sessions.models import Project, Session


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


class BoardConsumer(AccessCheckedConsumer):
    """Push-only: card fragments rendered once per change by ``realtime.card_changed``."""

    page = ""

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
        await self.access_granted(user, groups)
        self.page = self.asked["session_id"] or ""
        if self.page:
            realtime.session_page_opened(self.page)  # its changes now render the page's panels too
        await self.accept()

    async def access_groups(self, user) -> list[str] | None:
        return await board_groups(user, **self.asked)

    async def disconnect(self, code: int) -> None:
        await self.access_stop()
        if self.page:
            realtime.session_page_closed(self.page)
            self.page = ""

    async def receive(self, text_data=None, bytes_data=None) -> None:
        return  # the board is push-only

    async def card_html(self, event: dict) -> None:
        if not await self.access_current() or not self._reaches(event):
            return
        await self.send(text_data=event["html"])

    def _reaches(self, event: dict) -> bool:
        """Whether a card is one this socket may still show: it reached it through a group, and a
        re-check may have left that group since (a message already queued for this socket, or the
        one that triggered the re-check). A card names its project and session; one that does not
        passes while the socket has never left a group."""
        joined = set(self.groups_joined)
        if "project" not in event and "session" not in event:
            return not self.groups_left
        return realtime.BOARD_GROUP in joined or bool(
            {realtime.project_group(event.get("project")), realtime.session_group(event.get("session"))}
            & joined
        )


class InboxConsumer(AccessCheckedConsumer):
    """Push-only, one per page: the person's Inbox badge in the nav (``realtime.inbox_changed``),
    sent once on connect too, so a page that was cached or offline shows the current count."""

    user_id: int | None = None

    async def connect(self) -> None:
        self.groups_joined = []
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.user_id = user.pk
        await self.access_granted(user, [realtime.user_group(user.pk)])
        realtime.user_connected(user.pk, +1)
        await self.accept()
        message = await database_sync_to_async(realtime.unread_message)(user)
        if message is not None:
            await self.send(text_data=message["html"])

    async def access_groups(self, user) -> list[str] | None:
        return [realtime.user_group(user.pk)]  # their own badge, while they are signed in and active

    async def disconnect(self, code: int) -> None:
        await self.access_stop()
        if self.user_id is not None:
            realtime.user_connected(self.user_id, -1)
            self.user_id = None

    async def receive(self, text_data=None, bytes_data=None) -> None:
        return

    async def inbox_html(self, event: dict) -> None:  # type "inbox.html": rendered for this person
        if not await self.access_current():
            return
        await self.send(text_data=event["html"])
