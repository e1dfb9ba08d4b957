"""The browser terminal of a ``process`` runtime session: taps the ring buffer the runtime reads
its pty into (only in the ao process that started the agent) and writes input and sizes to its
pty master.
"""

from __future__ import annotations

import contextlib
import threading

from integrations.runtime.process import ProcessRuntime
from sessions.dashboard.terminal_relay import (
    CLEAR_SCREEN,
    PROCESS_INBOX_BYTES,
    READ_BYTES,
    RESYNC_TAIL_BYTES,
    NotAttachable,
    Relay,
    TerminalTarget,
    set_winsize,
)


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
                set_winsize(fd, cols, rows)  # the kernel sends SIGWINCH to the program

    def stop(self) -> None:
        self._stop_writer()
        live, self._live = self._live, None
        if live is not None:
            with live.lock:
                if isinstance(live.output, _TapBuffer):
                    with contextlib.suppress(ValueError):
                        live.output.listeners.remove(self._on_output)
        self._end("the terminal closed")
