"""The browser terminal relay: one attached terminal per session, shared by every viewer.

How it works (the websocket side is ``sessions/consumers_terminal.py``):

- **tmux sessions**: the relay runs ``tmux -u [-L SOCKET] attach-session -t =NAME`` (an argv
  list, never a shell string) on a pseudo-terminal it owns, reads the pty master in the asyncio
  loop (``loop.add_reader``, non-blocking) and fans the bytes out to its subscribers. Operator
  keystrokes are written straight to the pty master, so tmux receives them as typed input.
  *Why a pty attach and not control mode (``-C``)*: an attached client gets exactly what a
  terminal needs - tmux renders the whole window (status line, cursor, colours, alternate
  screen) as a byte stream xterm.js can draw as is, and tmux can repaint that client on demand
  (``refresh-client``), which is how a late joiner or a viewer who fell behind gets an exact
  screen. Control mode hands out per-pane ``%output`` with octal escapes and no screen state: we
  would have to escape-decode, emulate the screen and draw layout and status ourselves.
- **process sessions**: the ``process`` runtime already reads its pty into a ring buffer in a
  thread. The relay taps that buffer (only in the ao process that started the agent: a process
  runtime lives and dies with its ao process) and writes input and sizes to its pty master.
  Elsewhere the terminal is "not attachable".
- **one relay per session per web process**: started by the first viewer, stopped (tmux client
  detached, pty closed) when the last one leaves.
- **where it runs**: the relay must run where tmux lives. In embedded mode (``ao start``) the
  web process is the agent host. In scale-out, terminals are served by an ``ao web`` running on
  the session's agent host; any other web process refuses with a message naming that host
  (``Session.host`` vs ``settings.AO_HOST_NAME``).

Sizes: all viewers share one tmux client, hence one size. The relay attaches with the runtime's
configured size (the size tmux created the window with, so attaching changes nothing). The most
recent *operator* resize wins; read-only viewers never change the pane - their resize requests
are ignored and, like everyone, they adopt the relay's size (a ``size`` message to every
viewer). Against clients attached outside ao (``ao session attach``) tmux's own
``window-size latest`` (the default since tmux 3.1) applies: the window follows the most
recently active client.

Flow control (a ``yes`` flood must not grow memory):

- the replay buffer is a ring of :data:`REPLAY_BYTES`;
- each subscriber queues at most :data:`VIEWER_QUEUE_BYTES`; when a chunk would overflow it,
  its backlog is dropped and it gets a *resync* instead: a clear screen followed, for tmux, by
  a full repaint of the client (``refresh-client``, rate-limited; the repaint arrives after the
  drop point, so it overwrites whatever was skipped) and, for process sessions, by the tail
  of the replay buffer;
- when every subscriber holds at least :data:`HIGH_WATER` bytes, the pty reader pauses
  (``remove_reader``); it resumes when any of them drains below :data:`LOW_WATER`. A paused
  tmux client makes tmux itself stop drawing and repaint later;
- input is written to the pty master directly, independent of the output backlog, so Ctrl-C
  gets through a flood at once.

Output is filtered server-side: OSC 52 (clipboard write) sequences are removed, including
ones split across reads, so no client can be made to write the viewer's clipboard.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import shutil
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections import deque
from dataclasses import dataclass

from django.conf import settings

from integrations.base import PermanentIntegrationError, RuntimeHandle
from integrations.registry import registry_for
from integrations.runtime import validate_name
from integrations.runtime.process import ProcessRuntime
from sessions import selectors
from sessions.agents import _handle
from sessions.models import Host, Project, Session

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

# Run by the relay's pty child: make the pty its controlling terminal (so a size change reaches
# tmux as SIGWINCH and closing the pty hangs it up), then exec tmux. Same idea as the runtime
# launcher; stdlib only, isolated mode.
_CTTY_EXEC = (
    "import fcntl, os, sys, termios\n"
    "try:\n    fcntl.ioctl(0, termios.TIOCSCTTY, 0)\nexcept OSError:\n    pass\n"
    "os.execvp(sys.argv[1], sys.argv[1:])\n"
)


class TerminalForbidden(Exception):
    """No such session, or the user may not view it (one answer for both: no existence leak)."""


class NotAttachable(Exception):
    """The session exists and may be viewed, but this process cannot attach to it; says why."""


# --- OSC 52 ---------------------------------------------------------------------------------------
_ESC, _BEL, _CAN, _SUB = 0x1B, 0x07, 0x18, 0x1A
_C1_OSC, _C1_ST = b"\xc2\x9d", b"\xc2\x9c"  # U+009D / U+009C, UTF-8 encoded
_HOLD_LIMIT = 32  # an OSC number longer than this is not 52: stop holding and pass it on


class Osc52Filter:
    """Removes OSC 52 (clipboard) sequences from a terminal byte stream, across chunk boundaries.

    An OSC starts with ``ESC ]`` or C1 ``U+009D``; its number is read like xterm.js does (so
    ``052`` is 52 too). A clipboard sequence is dropped up to and including its terminator: BEL,
    ``ESC \\`` or C1 ST; CAN or SUB abort it; any other ESC ends it and is kept (xterm.js ends an
    OSC there too). Bytes that may begin a sequence at the end of a chunk are held back until the
    next chunk decides.
    """

    def __init__(self) -> None:
        self._held = b""
        self._stripping = False
        self.stripped = 0  # sequences removed, for tests and logs

    def feed(self, chunk: bytes) -> bytes:
        if not self._held and not self._stripping and b"\x1b]" not in chunk and b"\x9d" not in chunk:
            if chunk.endswith((b"\x1b", b"\xc2")):
                self._held = chunk[-1:]
                return chunk[:-1]
            return chunk
        data = self._held + chunk
        self._held = b""
        out = bytearray()
        i, n = 0, len(data)
        while i < n:
            if self._stripping:
                i = self._skip(data, i)
                continue
            k = _next_osc(data, i)
            if k < 0:
                if data[n - 1] in (_ESC, 0xC2):
                    out += data[i : n - 1]
                    self._held = data[n - 1 :]
                else:
                    out += data[i:]
                break
            out += data[i:k]
            j = k + 2
            m = j
            while m < n and 0x30 <= data[m] <= 0x39:
                m += 1
            if m == n:  # the number may continue in the next chunk
                if n - k > _HOLD_LIMIT:
                    out += data[k:]
                else:
                    self._held = data[k:]
                break
            if data[j:m].lstrip(b"0") == b"52":
                self._stripping = True
                self.stripped += 1
                i = m
            else:
                out += data[k:m]
                i = m
        return bytes(out)

    def _skip(self, data: bytes, i: int) -> int:
        """Inside a clipboard sequence: drop up to its end; return where normal output resumes."""
        n = len(data)
        ends = [p for p in (data.find(b"\x07", i), data.find(b"\x18", i), data.find(b"\x1a", i)) if p >= 0]
        esc = data.find(b"\x1b", i)
        st = data.find(_C1_ST, i)
        first = min([*ends, *(p for p in (esc, st) if p >= 0)], default=-1)
        if first < 0:
            if data[n - 1] == 0xC2:
                self._held = data[n - 1 :]
            return n
        if first == esc:
            if esc + 1 == n:
                self._held = data[esc:]  # ESC at the very end: is it ESC \ ?
                return n
            self._stripping = False
            return esc + 2 if data[esc + 1] == 0x5C else esc
        self._stripping = False
        return first + (2 if first == st else 1)


def _next_osc(data: bytes, start: int) -> int:
    a, b = data.find(b"\x1b]", start), data.find(_C1_OSC, start)
    if a < 0:
        return b
    return a if b < 0 else min(a, b)


# --- input: keys, not the terminal's own answers ------------------------------------------------
# A terminal emulator writes to its input stream on its own: answers to queries (tmux asks every
# client for its device attributes on attach, and each viewer's xterm.js answers the copy in the
# replay) and focus events. Those belong to the emulator, not to the person; written to the pane
# they land on the agent's input line (``^[[>0;276;0c``). The browser does not produce them
# (static/ao/terminal.js); this is the server's guard, whatever a client sends.
_CSI_PARAM = range(0x30, 0x40)
_CSI_INTERMEDIATE = range(0x20, 0x30)
_CSI_FINAL = range(0x40, 0x7F)
_STRING_INTRODUCERS = "]P_^X"  # OSC, DCS, APC, PM, SOS: no key produces a terminated one
_PASTE_START, _PASTE_END = "\x1b[200~", "\x1b[201~"


def _csi_is_reply(params: str, intermediates: str, final: str) -> bool:
    """Whether a complete CSI sequence from a terminal is an answer rather than a key.

    Keys never carry a ``?``, ``>`` or ``=`` prefix (``<`` is an SGR mouse report: kept). Without
    a prefix, replies end in ``c`` (device attributes), ``n`` (status), ``R`` (cursor position;
    ``1;<modifier>R`` is a modified F3 and kept), ``$y`` (mode report), ``t`` (window report),
    ``&w`` (locator) or are a bare ``I``/``O`` (focus in/out).
    """
    if params[:1] in ("?", ">", "="):
        return True
    if final in "cnt" or (final == "y" and intermediates == "$") or (final == "w" and intermediates == "&"):
        return True
    if final == "R":
        first, _, modifier = params.partition(";")
        return not (first == "1" and modifier.isdigit() and 2 <= int(modifier) <= 16)
    return final in "IO" and not params and not intermediates


def input_keys(text: str) -> str:
    """``text`` (one input event of a browser terminal) without the terminal's own answers.

    Dropped: device attributes (DA1/DA2/DA3), cursor and status reports (CPR, DECXCPR, DSR),
    mode reports (DECRPM), window reports, kitty keyboard flags, focus in/out, and every complete
    OSC/DCS/APC/PM/SOS string (colour replies, XTVERSION, DECRQSS). Kept: everything a key or the
    mouse sends (arrows, function keys, Alt+x, control characters), and a bracketed paste as is.
    An unfinished sequence at the end is kept: it is a key (Alt+[ is ``ESC [``, Alt+P ``ESC P``).
    """
    if "\x1b" not in text:
        return text
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        esc = text.find("\x1b", i)
        if esc < 0:
            out.append(text[i:])
            break
        out.append(text[i:esc])
        if text.startswith(_PASTE_START, esc):  # a paste is what the person pasted, byte for byte
            end = text.find(_PASTE_END, esc)
            stop = n if end < 0 else end + len(_PASTE_END)
            out.append(text[esc:stop])
            i = stop
            continue
        kind = text[esc + 1 : esc + 2]
        if kind == "[":
            j = esc + 2
            while j < n and ord(text[j]) in _CSI_PARAM:
                j += 1
            k = j
            while k < n and ord(text[k]) in _CSI_INTERMEDIATE:
                k += 1
            if k < n and ord(text[k]) in _CSI_FINAL:
                if not _csi_is_reply(text[esc + 2 : j], text[j:k], text[k]):
                    out.append(text[esc : k + 1])
                i = k + 1
                continue
        elif kind and kind in _STRING_INTRODUCERS:
            end = _string_end(text, esc + 2, bel=kind == "]")
            if end > 0:
                i = end
                continue
        # a key: ESC alone, Alt+<char>, SS3 (ESC O P) or an unfinished sequence
        out.append("\x1b")
        i = esc + 1
    return "".join(out)


def _string_end(text: str, start: int, *, bel: bool) -> int:
    """Where a string sequence that starts at ``start`` ends (after ST, or BEL for OSC); 0 if open."""
    st = text.find("\x1b\\", start)
    stop = st + 2 if st >= 0 else 0
    if bel:
        b = text.find("\x07", start)
        if b >= 0 and (not stop or b < st):
            stop = b + 1
    return stop


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


def _set_winsize(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _tmux_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    env["TERM"] = "xterm-256color"  # what xterm.js is
    return env


def _tmux_run(argv: list[str]) -> int:
    return subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, env=_tmux_env(), timeout=10, check=False
    ).returncode


class TmuxRelay(Relay):
    """A tmux client attached on a pty this relay owns."""

    def __init__(self, target: TerminalTarget) -> None:
        super().__init__(target)
        self._master: int | None = None
        self._proc: subprocess.Popen | None = None
        self._tty = ""
        self._reading = False
        self._repaint_at = 0.0
        self._repaint_scheduled = False
        self._repaint_task: asyncio.Task | None = None

    def _base(self) -> list[str]:
        binary = shutil.which("tmux")
        if not binary:
            raise NotAttachable("tmux is not installed on this host")
        return [binary, "-u", *(["-L", self.target.socket_name] if self.target.socket_name else [])]

    async def start(self) -> None:
        name = validate_name(self.target.handle.name)
        base = self._base()
        if await asyncio.to_thread(_tmux_run, [*base, "has-session", "-t", f"={name}"]) != 0:
            raise NotAttachable(f"the tmux session {name} is not running")
        master, slave = os.openpty()
        try:
            _set_winsize(slave, self.cols, self.rows)
            self._tty = os.ttyname(slave)
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-c", _CTTY_EXEC, *base, "attach-session", "-t", f"={name}"],
                stdin=slave, stdout=slave, stderr=slave,
                env=_tmux_env(), close_fds=True, start_new_session=True,
            )  # fmt: skip
        except Exception:
            os.close(master)
            raise
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        self._master = master
        self._resume_reading()

    def _on_readable(self) -> None:
        if self._master is None:
            return
        data = bytearray()
        ended = False
        while len(data) < READ_BYTES * 4:  # drain what is there: fewer, larger frames to send
            try:
                chunk = os.read(self._master, READ_BYTES)
            except BlockingIOError:
                break
            except OSError:  # EIO: the tmux client exited (session killed, detached, server gone)
                chunk = b""
            if not chunk:
                ended = True
                break
            data += chunk
        if data:
            self._feed(bytes(data))
        if ended:
            self._end("the tmux session ended")
            self.stop()

    def _pause_reading(self) -> None:
        if self._reading and self._master is not None:
            self._loop.remove_reader(self._master)
            self._reading = False

    def _resume_reading(self) -> None:
        if not self._reading and self._master is not None:
            self._loop.add_reader(self._master, self._on_readable)
            self._reading = True

    def _input_fd(self) -> int | None:
        return self._master

    def _apply_size(self, cols: int, rows: int) -> None:
        if self._master is not None:
            with contextlib.suppress(OSError):
                _set_winsize(self._master, cols, rows)

    def request_repaint(self) -> None:
        """A full redraw of the relay's tmux client, at most every REPAINT_INTERVAL seconds."""
        if self._repaint_scheduled or self._master is None:
            return
        self._repaint_scheduled = True
        delay = max(0.0, self._repaint_at + REPAINT_INTERVAL - time.monotonic())
        self._loop.call_later(delay, self._start_repaint)

    def _start_repaint(self) -> None:
        self._repaint_task = self._loop.create_task(self._repaint())

    async def _repaint(self) -> None:
        self._repaint_at = time.monotonic()
        try:
            if self._master is None:
                return
            await asyncio.to_thread(_tmux_run, [*self._base(), "refresh-client", "-t", self._tty])
        except (OSError, subprocess.TimeoutExpired, NotAttachable) as exc:
            log.info("terminal %s: repaint failed: %s", self.target.session_id, exc)
        finally:
            self._repaint_scheduled = False

    def stop(self) -> None:
        self._pause_reading()
        self._stop_writer()
        master, self._master = self._master, None
        if master is not None:
            with contextlib.suppress(OSError):
                os.close(master)  # hangs up the tmux client: it detaches and exits
        proc, self._proc = self._proc, None
        if proc is not None:
            threading.Thread(target=_reap, args=(proc,), name="ao-terminal-reap", daemon=True).start()
        self._end("the terminal closed")


def _reap(proc: subprocess.Popen) -> None:
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=5)


class _TapBuffer(bytearray):
    """The process runtime's ring buffer, with listeners told of every append (reader thread)."""

    def __init__(self, initial: bytes = b"") -> None:
        super().__init__(initial)
        self.listeners: list = []

    def __iadd__(self, chunk):
        super().__iadd__(chunk)
        for listener in list(self.listeners):
            listener(bytes(chunk))
        return self


class ProcessRelay(Relay):
    """Streams a ``process`` runtime started by this ao process, through its ring buffer.

    The runtime's own thread keeps reading the pty (it needs the buffer for the activity
    detection); this relay swaps the buffer for one that also hands each chunk to the loop,
    through an inbox bounded by PROCESS_INBOX_BYTES. The reader cannot be paused; slow viewers
    are resynced with a clear screen and the tail of the replay buffer.
    """

    def __init__(self, target: TerminalTarget) -> None:
        super().__init__(target)
        self._live = None
        self._inbox = bytearray()
        self._inbox_lock = threading.Lock()
        self._inbox_overflow = False
        self._scheduled = False

    async def start(self) -> None:
        live = ProcessRuntime()._live(self.target.handle)
        if live is None or live.popen.poll() is not None:
            raise NotAttachable(
                "this process session is not running in this ao process (a process runtime lives and "
                "dies with the ao that started it)"
            )
        with live.lock:
            if not isinstance(live.output, _TapBuffer):
                live.output = _TapBuffer(live.output)
            live.output.listeners.append(self._on_output)
            history = bytes(live.output)
        self._live = live
        self._feed(history)
        self._apply_size(self.cols, self.rows)

    def _on_output(self, chunk: bytes) -> None:  # the runtime's reader thread
        with self._inbox_lock:
            if len(self._inbox) + len(chunk) > PROCESS_INBOX_BYTES:
                self._inbox.clear()
                self._inbox_overflow = True
            else:
                self._inbox += chunk
            if self._scheduled:
                return
            self._scheduled = True
        with contextlib.suppress(RuntimeError):  # the loop has closed
            self._loop.call_soon_threadsafe(self._drain_inbox)

    def _drain_inbox(self) -> None:
        with self._inbox_lock:
            data, self._inbox = bytes(self._inbox), bytearray()
            overflow, self._inbox_overflow = self._inbox_overflow, False
            self._scheduled = False
        if overflow:
            for sub in self.subscribers:
                sub.resync()
        if data:
            for start in range(0, len(data), READ_BYTES):
                self._feed(data[start : start + READ_BYTES])
        if self._live is not None and self._live.popen.poll() is not None and not self.ended:
            self._end("the process exited")

    def resync_payload(self) -> bytes:
        return CLEAR_SCREEN + bytes(self.replay[-RESYNC_TAIL_BYTES:])

    def _input_fd(self) -> int | None:
        live = self._live
        return None if live is None or live.popen.poll() is not None else live.master_fd

    def _apply_size(self, cols: int, rows: int) -> None:
        fd = self._input_fd()
        if fd is not None:
            with contextlib.suppress(OSError):
                _set_winsize(fd, cols, rows)  # the kernel sends SIGWINCH to the program

    def stop(self) -> None:
        self._stop_writer()
        live, self._live = self._live, None
        if live is not None:
            with live.lock:
                if isinstance(live.output, _TapBuffer):
                    with contextlib.suppress(ValueError):
                        live.output.listeners.remove(self._on_output)
        self._end("the terminal closed")


# --- one relay per session per loop ------------------------------------------------------------
_RELAYS: dict[tuple[int, str], Relay] = {}
_LOCKS: dict[int, asyncio.Lock] = {}


def _relay_class(target: TerminalTarget) -> type[Relay]:
    return TmuxRelay if target.handle.runtime == "tmux" else ProcessRelay


async def relay_join(target: TerminalTarget, *, may_type: bool) -> tuple[Relay, Subscriber, bytes]:
    """The session's relay (started if this is its first viewer), a new subscriber, the replay."""
    loop = asyncio.get_running_loop()
    lock = _LOCKS.setdefault(id(loop), asyncio.Lock())
    key = (id(loop), target.key)
    async with lock:
        relay = _RELAYS.get(key)
        if relay is None or relay.ended:
            relay = _relay_class(target)(target)
            try:
                await relay.start()
            except NotAttachable:
                relay.stop()
                raise
            except (OSError, PermanentIntegrationError, TimeoutError) as exc:
                relay.stop()
                raise NotAttachable(f"could not attach to the terminal: {exc}") from exc
            _RELAYS[key] = relay
        sub, replay = relay.subscribe(may_type=may_type)
    if replay:
        relay.request_repaint()  # the replay may start mid-screen: an exact screen follows it
    return relay, sub, replay


def relay_leave(relay: Relay, sub: Subscriber) -> None:
    """Remove a viewer; the last one out stops the relay."""
    relay.unsubscribe(sub)
    if not relay.subscribers:
        relay.stop()
        for key, value in list(_RELAYS.items()):
            if value is relay:
                del _RELAYS[key]


def relays_running() -> list[Relay]:
    return list(_RELAYS.values())


# --- who may attach (database side, sync) ---------------------------------------------------------
def _this_host(host: str) -> bool:
    here = settings.AO_HOST_NAME
    return not host or host in (here, here.split(".")[0])


def terminal_open(*, session_id: str, user) -> TerminalTarget:
    """What ``user`` may attach to for ``session_id``. Raises TerminalForbidden or NotAttachable."""
    session = Session.objects.select_related("project").filter(pk=session_id).first()
    if session is None or not selectors.can(user, session.project, selectors.VIEW):
        raise TerminalForbidden(session_id)
    if not _this_host(session.host):
        raise NotAttachable(
            f"session {session.id} runs on agent host {session.host!r}; its terminal is served by the "
            f"`ao web` running on that host (this is {settings.AO_HOST_NAME!r})"
        )
    handle = _handle(session)
    if handle is None:
        raise NotAttachable(f"session {session.id} has no running terminal yet")
    if handle.runtime not in ("tmux", "process"):
        raise NotAttachable(f"the {handle.runtime!r} runtime has no terminal ao can attach to")
    project = session.project
    try:
        validate_name(handle.name)
        runtime = registry_for("runtime").create(  # as sessions.agents.context_for picks it
            handle.runtime,
            project.settings_for("runtime") if handle.runtime == project.runtime else {},
            where=f"projects.{project.key}.runtime",
            project=project,
        )
    except Exception as exc:
        raise NotAttachable(f"session {session.id}: {exc}") from exc
    config = runtime.config
    socket_name = None
    if handle.runtime == "tmux":
        socket_name = handle.data["socket_name"] if "socket_name" in handle.data else config.socket_name
        if socket_name is not None:
            validate_name(socket_name)
    return TerminalTarget(
        session_id=session.id,
        project_id=session.project_id,
        handle=handle,
        socket_name=socket_name,
        cols=getattr(config, "width", 80),
        rows=getattr(config, "height", 24),
        may_type=_may_type(user, session.project_id, owner_id=typing_owner(session)),
        owner_id=typing_owner(session),
    )


def typing_owner(session) -> int | None:
    """Who alone (with superusers) may type into a session's terminal: the person whose own model
    credentials it runs with (their account pays for what the agent does), or, on a personal agent
    host (someone's own machine), the person who spawned it; else None (any operator). A deleted
    person's session: nobody but superusers (0 matches no user)."""
    if session.credentials == "personal":
        return session.credentials_of_id or 0
    if session.host and Host.objects.filter(name=session.host, shared=False).exists():
        return session.created_by_id or 0
    return None


def _may_type(user, project_id: int, *, owner_id: int | None) -> bool:
    if not selectors.can(user, Project(pk=project_id), selectors.OPERATE):
        return False
    return owner_id is None or user.is_superuser or user.pk == owner_id


def terminal_may_type(*, user_id: int, project_id: int, owner_id: int | None = None) -> bool:
    """Checked on every input message: the user is still active and an operator of the project,
    and, for a session running with a person's own credentials (``owner_id``), that person or a
    superuser."""
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    return user is not None and _may_type(user, project_id, owner_id=owner_id)


def terminal_may_view(*, user_id: int, project_id: int, session_key: str = "") -> bool:
    """Checked every ``AO_ACCESS_RECHECK_SECONDS`` while a terminal is open: the user is still
    active and a member of the project, and (a browser) still signed in."""
    from importlib import import_module

    from django.contrib.auth import get_user_model

    if session_key and not import_module(settings.SESSION_ENGINE).SessionStore().exists(session_key):
        return False
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    return user is not None and selectors.can(user, Project(pk=project_id), selectors.VIEW)
