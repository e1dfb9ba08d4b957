"""A terminal relay and its subscribers (the viewers): fan-out of the pty's bytes, the replay
ring, per-viewer queues with drop + resync, pausing the reader at the high-water mark, input
written straight to the pty, and the shared size (the latest operator's resize wins). The
subclasses attach to tmux (``terminal_tmux``) or tap a process runtime (``terminal_process``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import struct
import termios
from collections import deque
from dataclasses import dataclass

from integrations.base import RuntimeHandle
from sessions.dashboard.terminal_filters import Osc52Filter

log = logging.getLogger(__name__)

REPLAY_BYTES = 256 * 1024  # recent output kept for late joiners
VIEWER_QUEUE_BYTES = 256 * 1024  # per-viewer backlog cap; over it: drop + resync
HIGH_WATER = 128 * 1024  # every viewer at least this far behind: pause the pty reader
LOW_WATER = 32 * 1024  # a viewer drained below this: resume reading
READ_BYTES = 64 * 1024  # one pty read
SEND_BYTES = 256 * 1024  # at most this much in one websocket frame
INPUT_BACKLOG_BYTES = 64 * 1024  # input not yet taken by the pty (a stuck pane); more is dropped
PROCESS_INBOX_BYTES = 1024 * 1024  # process runtime: output waiting for the loop; more: resync all
RESYNC_TAIL_BYTES = 64 * 1024  # process runtime: replay tail sent on a resync
REPAINT_INTERVAL = 0.25  # seconds between two tmux repaints
MIN_COLS, MAX_COLS, MIN_ROWS, MAX_ROWS = 10, 1000, 3, 500
CLEAR_SCREEN = b"\x1b[H\x1b[2J"


class TerminalForbidden(Exception):
    """No such session, or the user may not view it (one answer for both: no existence leak)."""


class NotAttachable(Exception):
    """The session exists and may be viewed, but this process cannot attach to it; says why."""


class TerminalNotYet(NotAttachable):
    """The session's terminal is not there yet (its agent is starting, or waits for a slot): the
    browser says so and tries again, as it does after a dropped connection."""


class TerminalEnded(Exception):
    """The session ended (killed, errored before its agent ran, cleaned up): no terminal runs for it,
    none is coming; says why. Not an error: the browser shows it as ended and does not reconnect."""


# --- subscribers ----------------------------------------------------------------------------------
class Subscriber:
    """One viewer's bounded output queue. ``get`` yields ``(kind, value)`` items:

    ``("resync", bytes)`` (drop what you have, draw this), ``("size", (cols, rows))``,
    ``("data", bytes)``, ``("closed", reason)`` (the terminal ended; nothing follows).
    """

    def __init__(self, relay: Relay, *, may_type: bool, cap: int = VIEWER_QUEUE_BYTES) -> None:
        self.relay = relay
        self.may_type = may_type
        self.cap = cap
        self.pending = 0
        self.max_pending = 0
        self.resyncs = 0
        self._chunks: deque[bytes] = deque()
        self._resync: bytes | None = None
        self._size: tuple[int, int] | None = None
        self._closed: str | None = None
        self._wakeup = asyncio.Event()

    def offer(self, chunk: bytes) -> None:
        if self._closed is not None:
            return
        if self.pending + len(chunk) > self.cap:
            self.resync()
        else:
            self._chunks.append(chunk)
            self.pending += len(chunk)
            self.max_pending = max(self.max_pending, self.pending)
        self._wakeup.set()

    def resync(self) -> None:
        """Drop the backlog; the next item is a fresh screen (see the module docstring)."""
        self._chunks.clear()
        self.pending = 0
        self.resyncs += 1
        self._resync = self.relay.resync_payload()
        self.relay.request_repaint()
        self._wakeup.set()

    def notify_size(self, cols: int, rows: int) -> None:
        self._size = (cols, rows)
        self._wakeup.set()

    def close(self, reason: str) -> None:
        if self._closed is None:
            self._closed = reason
            self._wakeup.set()

    def get_nowait(self) -> tuple[str, object] | None:
        if self._resync is not None:
            payload, self._resync = self._resync, None
            return "resync", payload
        if self._size is not None:
            size, self._size = self._size, None
            return "size", size
        if self._chunks:
            out = bytearray()
            while self._chunks and len(out) + len(self._chunks[0]) <= SEND_BYTES:
                out += self._chunks.popleft()
            if not out:  # a single chunk larger than a frame (not produced by the relay)
                out += self._chunks.popleft()
            self.pending -= len(out)
            self.relay.drained(self)
            return "data", bytes(out)
        if self._closed is not None:
            return "closed", self._closed
        return None

    async def get(self) -> tuple[str, object]:
        while True:
            item = self.get_nowait()
            if item is not None:
                return item
            self._wakeup.clear()
            await self._wakeup.wait()


# --- relays ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TerminalTarget:
    """What a viewer may attach to; built from the database by :func:`terminal_open`."""

    session_id: str
    project_id: int
    handle: RuntimeHandle
    socket_name: str | None  # tmux -L
    cols: int
    rows: int
    may_type: bool  # the user's role at connect time (input is re-checked per message)
    # Only this person (and superusers) may type: the session runs with their own model credentials
    # (fixed at its spawn). None: any operator of the project.
    owner_id: int | None = None

    @property
    def key(self) -> str:
        return f"{self.handle.runtime}:{self.socket_name or ''}:{self.handle.name}"


class Relay:
    """Fan-out, replay, filtering and flow control; subclasses own the terminal itself."""

    def __init__(self, target: TerminalTarget) -> None:
        self.target = target
        self.subscribers: list[Subscriber] = []
        self.replay = bytearray()
        self.cols, self.rows = target.cols, target.rows
        self.paused = False
        self.ended: str | None = None
        self.bytes_in = 0
        self._filter = Osc52Filter()
        self._loop = asyncio.get_running_loop()
        self._input = bytearray()
        self._writer_fd: int | None = None

    # subclasses
    async def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def _input_fd(self) -> int | None:
        raise NotImplementedError

    def _apply_size(self, cols: int, rows: int) -> None:
        raise NotImplementedError

    def _pause_reading(self) -> None:
        """Stop reading the terminal (only the tmux relay can)."""

    def _resume_reading(self) -> None: ...

    def resync_payload(self) -> bytes:
        return CLEAR_SCREEN

    def request_repaint(self) -> None:
        """Ask the terminal to redraw its whole screen (tmux only)."""

    # viewers
    def subscribe(self, *, may_type: bool) -> tuple[Subscriber, bytes]:
        """Add a viewer; return it with the replay to send first (atomic with respect to output)."""
        sub = Subscriber(self, may_type=may_type)
        self.subscribers.append(sub)
        sub.notify_size(self.cols, self.rows)
        if self.paused:
            self._set_paused(False)
        return sub, bytes(self.replay)

    def unsubscribe(self, sub: Subscriber) -> None:
        with contextlib.suppress(ValueError):
            self.subscribers.remove(sub)
        sub.close("left")
        self.drained(sub)

    def drained(self, sub: Subscriber) -> None:
        if self.paused and (not self.subscribers or any(s.pending < LOW_WATER for s in self.subscribers)):
            self._set_paused(False)

    def _set_paused(self, paused: bool) -> None:
        if paused == self.paused or self.ended:
            return
        self.paused = paused
        (self._pause_reading if paused else self._resume_reading)()

    # output
    def _feed(self, chunk: bytes) -> None:
        self.bytes_in += len(chunk)
        data = self._filter.feed(chunk)
        if not data:
            return
        self.replay += data
        if len(self.replay) > REPLAY_BYTES:
            del self.replay[: len(self.replay) - REPLAY_BYTES]
        for sub in self.subscribers:
            sub.offer(data)
        if self.subscribers and all(s.pending >= HIGH_WATER for s in self.subscribers):
            self._set_paused(True)

    def _end(self, reason: str) -> None:
        if self.ended:
            return
        self.ended = reason
        for sub in self.subscribers:
            sub.close(reason)

    # input and size
    def write(self, data: bytes) -> None:
        """Operator input, straight to the terminal (callers check the role first)."""
        fd = self._input_fd()
        if fd is None or self.ended or not data:
            return
        if self._input:  # earlier input still waiting: keep the order
            self._queue_input(data)
            return
        try:
            written = os.write(fd, data)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            log.info("terminal %s: input not written: %s", self.target.session_id, exc)
            return
        if written < len(data):
            self._queue_input(data[written:])

    def _queue_input(self, data: bytes) -> None:
        room = INPUT_BACKLOG_BYTES - len(self._input)
        if room < len(data):
            log.warning("terminal %s: pane not reading input; %d bytes dropped", self.target.session_id,
                        len(data) - max(room, 0))  # fmt: skip
        self._input += data[: max(room, 0)]
        fd = self._input_fd()
        if self._input and fd is not None and self._writer_fd is None:
            self._writer_fd = fd
            self._loop.add_writer(fd, self._flush_input)

    def _flush_input(self) -> None:
        fd = self._input_fd()
        try:
            if fd is None:
                raise OSError(errno.EBADF, "closed")
            written = os.write(fd, self._input)
        except BlockingIOError:
            return
        except OSError:
            self._input.clear()
            written = 0
        del self._input[:written]
        if not self._input:
            self._stop_writer()

    def _stop_writer(self) -> None:
        if self._writer_fd is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_writer(self._writer_fd)
            self._writer_fd = None

    def resize(self, sub: Subscriber, cols: int, rows: int) -> bool:
        """Apply an operator's size to the shared terminal and tell every viewer; viewers' are ignored."""
        if not sub.may_type or self.ended:
            return False
        cols = max(MIN_COLS, min(MAX_COLS, int(cols)))
        rows = max(MIN_ROWS, min(MAX_ROWS, int(rows)))
        if (cols, rows) != (self.cols, self.rows):
            self.cols, self.rows = cols, rows
            self._apply_size(cols, rows)
        for other in self.subscribers:
            other.notify_size(cols, rows)
        return True


def set_winsize(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
