"""What every ao websocket re-checks while it is open: who is signed in, and what they may still see.

A socket is opened with the user Channels read from the browser's login at the upgrade. That
object is a snapshot: deactivating the person, taking away their superuser flag or a role, or
signing out (or in as someone else, or changing the password) in that browser does not touch
it. So every consumer (``consumers.py``: the board and the Inbox badge; ``consumers_terminal.py``)
derives from :class:`AccessCheckedConsumer`, which every ``AO_ACCESS_RECHECK_SECONDS`` - in a
background task, and before a push when the last check is older than that - reads the person
afresh from the database together with the browser's login session
(``selectors.signed_in_user``) and asks the consumer what that person may have now
(:meth:`AccessCheckedConsumer.access_groups`). Groups they may no longer see are left; when
nothing is left the socket closes with :data:`CLOSE_FORBIDDEN`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from sessions.core import selectors

log = logging.getLogger(__name__)

CLOSE_FORBIDDEN = 4403


class AccessCheckedConsumer(AsyncWebsocketConsumer):
    """A websocket whose person's access is checked again while it is open.

    A subclass checks access its own way on connect, then calls :meth:`access_granted` with the
    groups to join; it says in :meth:`access_groups` what a person may have now.
    """

    groups_joined: list[str]
    access_user_id: int | None = None
    access_session_key: str = ""
    access_checked_at: float = 0.0
    access_lost: bool = False
    groups_left: bool = False  # a re-check has left a group the person may no longer see
    access_watch: asyncio.Task | None = None

    async def access_groups(self, user) -> list[str] | None:
        """The channel-layer groups this socket may be in for ``user`` (read afresh), or None when
        the user may no longer keep it open."""
        raise NotImplementedError

    async def access_revoked(self) -> None:
        """Called once, before the socket closes because access is gone (e.g. to tell the browser)."""

    async def access_granted(self, user, groups: list[str]) -> None:
        """After the connect-time check: join ``groups``, remember whose login this socket is, and
        start re-checking it."""
        session = self.scope.get("session")
        self.access_user_id = user.pk
        self.access_session_key = getattr(session, "session_key", "") or ""
        self._access_lock = asyncio.Lock()
        await self._join(groups)
        self.access_watch = asyncio.create_task(self._watch_access())

    async def access_current(self) -> bool:
        """Before a push: re-check when the last check is older than ``AO_ACCESS_RECHECK_SECONDS``.
        False when the socket has lost its access (it is closing)."""
        if self.access_lost or self.access_user_id is None:
            return False
        if time.monotonic() - self.access_checked_at < settings.AO_ACCESS_RECHECK_SECONDS:
            return True
        try:
            return await self.access_recheck()
        except Exception:  # not known to be allowed: this push is dropped; the watch tries again
            log.warning("%s: access re-check failed", type(self).__name__, exc_info=True)
            return False

    async def access_recheck(self) -> bool:
        """Read the person and their login again; leave the groups they may no longer see, or leave
        all and close (:data:`CLOSE_FORBIDDEN`) when they may not keep the socket. True while they may."""
        async with self._access_lock:
            if self.access_lost:
                return False
            user = await database_sync_to_async(selectors.signed_in_user)(
                user_id=self.access_user_id, session_key=self.access_session_key
            )
            groups = None if user is None else await self.access_groups(user)
            if groups is not None:
                await self._join(groups)
                return True
            self.access_lost = True
            await self._join([])  # first: nothing more reaches this socket
        with contextlib.suppress(Exception):
            await self.access_revoked()
        await self.close(code=CLOSE_FORBIDDEN)
        return False

    async def access_stop(self) -> None:
        """On disconnect: stop re-checking and leave every group."""
        task, self.access_watch = self.access_watch, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)
        self.groups_joined = []

    async def _join(self, groups: list[str]) -> None:
        joined = getattr(self, "groups_joined", [])
        for group in set(joined) - set(groups):
            self.groups_left = True
            await self.channel_layer.group_discard(group, self.channel_name)
        for group in set(groups) - set(joined):
            await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined = list(groups)
        self.access_checked_at = time.monotonic()

    async def _watch_access(self) -> None:
        while not self.access_lost:
            await asyncio.sleep(max(settings.AO_ACCESS_RECHECK_SECONDS, 0.05))
            if time.monotonic() - self.access_checked_at < settings.AO_ACCESS_RECHECK_SECONDS:
                continue  # a push re-checked meanwhile
            try:
                if not await self.access_recheck():
                    return
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup is not a reason to cut a socket: try again later
                log.warning("%s: access re-check failed", type(self).__name__, exc_info=True)
