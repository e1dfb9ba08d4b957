"""The browser terminal's websocket: ``/ws/terminal/<session_id>/`` (relay: ``sessions/dashboard/terminal.py``).

Wire format:

- server → browser: **binary** frames are terminal output (raw bytes; the browser decodes UTF-8
  with a streaming TextDecoder, so characters split across frames survive); **text** frames are
  JSON control messages: ``hello`` (``may_type``), ``size`` (``cols``/``rows`` every viewer
  adopts), ``resync`` (the next binary frame redraws the screen), ``readonly`` (input was
  dropped), ``error`` (``message``; the socket closes), ``closed`` (``message``: the terminal ended, or
  the session had before it connected - killed, errored before its agent ran, cleaned up; the
  socket closes with :data:`CLOSE_ENDED`), ``waiting`` (``message``: no terminal yet, its agent is
  starting or waits for a slot; the socket closes with :data:`CLOSE_NOT_YET` and the browser tries
  again).
- browser → server: text JSON ``{"type": "input", "data": "..."}``, ``{"type": "resize",
  "cols": C, "rows": R}``, ``{"type": "ack", "bytes": N}`` (total output bytes the browser has
  drawn).

Checks: ASGI's ``WebsocketOriginValidator`` (ao_site/origins.py) refuses upgrades from another
origin (scheme, host and port); here a login and the project's viewer role are required to
connect (else the upgrade is refused: 403). On every input message the browser's login and the
operator role are checked again, against the database - a viewer's keystrokes are dropped here,
whatever the browser does, and so are those of a browser that has signed out since; so are an
operator's in a session that runs with another person's own model credentials (only that person
and superusers type there: ``terminal.typing_owner``). Every ``AO_ACCESS_RECHECK_SECONDS`` the
person, their login and the viewer role are re-read, as for every ao socket
(``consumers_access``): a viewer whose role was removed, a deactivated person or a browser that
signed out is disconnected (``CLOSE_FORBIDDEN``) instead of watching on. Input goes straight to
the relay's pty (no Celery, no database write), without what the browser's terminal emulator
answered on its own (device attributes, cursor and mode reports, colour and version replies,
focus events: ``terminal_filters.input_keys``): only what a person types or pastes reaches the
agent.

Back-pressure: Channels' ``send`` never waits for the network, so the browser acknowledges what
it has drawn and at most :data:`ACK_WINDOW` bytes are in flight per socket. A browser that falls
behind leaves its output in the relay's bounded per-viewer queue, which resyncs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from autobahn.exception import Disconnected
from channels.db import database_sync_to_async

from sessions.dashboard import terminal, terminal_filters, terminal_relay
from sessions.dashboard.consumers_access import CLOSE_FORBIDDEN, AccessCheckedConsumer

log = logging.getLogger(__name__)

CLOSE_NOT_ATTACHABLE = 4404
CLOSE_ENDED = 4410
CLOSE_NOT_YET = 4425  # no terminal yet (the agent is starting): the browser tries again
ACK_WINDOW = 256 * 1024  # output bytes sent but not yet drawn by the browser
MAX_MESSAGE = 64 * 1024  # larger control messages (a huge paste) are refused


class TerminalConsumer(AccessCheckedConsumer):
    relay: terminal_relay.Relay | None = None
    sub: terminal_relay.Subscriber | None = None
    pump: asyncio.Task | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        session_id = self.scope["url_route"]["kwargs"]["session_id"]
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        try:
            target = await database_sync_to_async(terminal.terminal_open)(session_id=session_id, user=user)
            self.relay, self.sub, replay = await terminal.relay_join(target, may_type=target.may_type)
        except terminal_relay.TerminalForbidden:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        except terminal_relay.TerminalEnded as exc:
            await self.accept()
            await self._control(type="closed", message=str(exc))
            await self.close(code=CLOSE_ENDED)
            return
        except terminal_relay.TerminalNotYet as exc:
            await self.accept()
            await self._control(type="waiting", message=str(exc))
            await self.close(code=CLOSE_NOT_YET)
            return
        except terminal_relay.NotAttachable as exc:
            await self.accept()
            await self._control(type="error", message=str(exc))
            await self.close(code=CLOSE_NOT_ATTACHABLE)
            return
        self.target = target
        self.sent = self.acked = 0
        self.window = asyncio.Event()
        self.told_readonly = False
        await self.accept()
        await self._control(type="hello", may_type=target.may_type, session=target.session_id)
        if replay:
            await self._output(replay)
        self.pump = asyncio.create_task(self._pump())
        await self.access_granted(user, [])

    async def access_groups(self, user) -> list[str] | None:
        allowed = await database_sync_to_async(terminal.terminal_may_view)(user, self.target.project_id)
        return [] if allowed else None

    async def access_revoked(self) -> None:
        await self._control(type="error", message="your access to this session was removed")

    async def disconnect(self, code: int) -> None:
        await self.access_stop()
        task = self.pump
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.relay is not None and self.sub is not None:
            terminal.relay_leave(self.relay, self.sub)
            self.relay = self.sub = None

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.sub is None or text_data is None or len(text_data) > MAX_MESSAGE:
            return
        try:
            message = json.loads(text_data)
            kind = message["type"]
        except (ValueError, KeyError, TypeError):
            return
        if kind == "input" and isinstance(message.get("data"), str):
            await self._input(message["data"])
        elif kind == "resize":
            try:
                cols, rows = int(message["cols"]), int(message["rows"])
            except (KeyError, TypeError, ValueError):
                return
            if await self._may_type():  # as for a key: a demoted operator resizes the pane no more
                self.relay.resize(self.sub, cols, rows)
        elif kind == "ack":
            with contextlib.suppress(KeyError, TypeError, ValueError):
                self.acked = max(self.acked, min(int(message["bytes"]), self.sent))
                if self.sent - self.acked <= ACK_WINDOW:
                    self.window.set()

    async def _input(self, data: str) -> None:
        data = terminal_filters.input_keys(data)  # the browser terminal's own answers are not input
        if not data:
            return
        if not await self._may_type():
            if not self.told_readonly:
                self.told_readonly = True
                await self._control(type="readonly")
            return
        if self.relay is not None:
            self.relay.write(data.encode("utf-8", "replace"))

    async def _may_type(self) -> bool:
        """Read afresh for every key and resize: a revoked operator cannot type another one."""
        return await database_sync_to_async(terminal.terminal_may_type)(
            user_id=self.access_user_id,
            session_key=self.access_session_key,
            project_id=self.target.project_id,
            owner_id=self.target.owner_id,
        )

    async def _pump(self) -> None:
        """Relay → browser, within the ack window."""
        try:
            while True:
                kind, value = await self.sub.get()
                if kind == "closed":
                    await self._control(type="closed", message=str(value))
                    await self.close(code=CLOSE_ENDED)
                    return
                if kind == "size":
                    cols, rows = value
                    await self._control(type="size", cols=cols, rows=rows)
                    continue
                while self.sent - self.acked > ACK_WINDOW:
                    self.window.clear()
                    await self.window.wait()
                if kind == "resync":
                    await self._control(type="resync")
                await self._output(value)
        except asyncio.CancelledError:
            raise
        except Disconnected:
            # The browser went away between the relay's output and our send: disconnect() is
            # on its way and will cancel this pump and leave the relay. Nothing to report.
            return
        except Exception:
            log.exception("terminal %s: output pump failed", self.target.session_id)
            await self.close(code=1011)

    async def _output(self, data: bytes) -> None:
        self.sent += len(data)
        await self.send(bytes_data=data)

    async def _control(self, **message) -> None:
        await self.send(text_data=json.dumps(message))
