"""The tmux side of the browser terminal: ``tmux attach-session`` on a pseudo-terminal the relay
owns (an argv list, never a shell string), read in the asyncio loop, repainted on demand with
``refresh-client`` for late joiners and viewers who fell behind.

Decision: what an operator types goes to the agent's pane with ``tmux send-keys -H`` (the bytes, in
hex: exactly what was typed), never into the relay's tmux client. A client's keys are tmux's own:
its prefix key opens a window with a shell as ao's user, moves the client to another session
(another project's agent, which every viewer of this page would then watch and the operator type
into), detaches it or runs any tmux command. The browser terminal is the agent's keyboard only;
tmux's keys stay with ``ao session attach`` and a person's own ``tmux attach``. So does its mouse:
the mouse reporting a person's ``mouse on`` has tmux turn on is taken out of the output (the
browser keeps its own selection and wheel scrolling), and mouse reports that come anyway are left
out of the input.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

from integrations.runtime import server_env, validate_name
from sessions.dashboard.terminal_filters import MouseModeFilter, mouse_reports_removed
from sessions.dashboard.terminal_relay import (
    INPUT_BACKLOG_BYTES,
    READ_BYTES,
    REPAINT_INTERVAL,
    NotAttachable,
    Relay,
    TerminalTarget,
    set_winsize,
)

log = logging.getLogger(__name__)

# Typed input per `tmux send-keys -H`: one argument ("1b" and its NUL) per byte, and tmux refuses a
# command over 16 KiB (its message size), so a larger paste goes in parts of this.
SEND_BYTES = 4 * 1024


# Run by the relay's pty child: make the pty its controlling terminal (so a size change reaches
# tmux as SIGWINCH and closing the pty hangs it up), then exec tmux. Same idea as the runtime
# launcher; stdlib only, isolated mode.
_CTTY_EXEC = (
    "import fcntl, os, sys, termios\n"
    "try:\n    fcntl.ioctl(0, termios.TIOCSCTTY, 0)\nexcept OSError:\n    pass\n"
    "os.execvp(sys.argv[1], sys.argv[1:])\n"
)


def _tmux_env() -> dict[str, str]:
    env = server_env()  # not ao's credentials, whatever the session's update-environment copies
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
        self._sender: asyncio.Task | None = None
        self._mouse = MouseModeFilter()

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
            set_winsize(slave, self.cols, self.rows)
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
            self._feed(self._mouse.feed(bytes(data)))
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
        return None  # nothing is written to the client: its keys would be tmux's (see the module)

    def write(self, data: bytes) -> None:
        """Operator input, to the pane of the session's current window, in the order typed. Mouse
        reports are left out: they are in the client's coordinates, for tmux's own bindings."""
        data = mouse_reports_removed(data)
        if self._master is None or self.ended or not data:
            return
        room = INPUT_BACKLOG_BYTES - len(self._input)
        if room < len(data):
            log.warning("terminal %s: pane not taking input; %d bytes dropped", self.target.session_id,
                        len(data) - max(room, 0))  # fmt: skip
        self._input += data[: max(room, 0)]
        if self._sender is None or self._sender.done():
            self._sender = self._loop.create_task(self._send_input())

    async def _send_input(self) -> None:
        target = f"={validate_name(self.target.handle.name)}:"
        while self._input and self._master is not None:
            chunk = bytes(self._input[:SEND_BYTES])
            del self._input[:SEND_BYTES]
            argv = [*self._base(), "send-keys", "-t", target, "-H", *(f"{byte:02x}" for byte in chunk)]
            try:
                code = await asyncio.to_thread(_tmux_run, argv)
            except (OSError, subprocess.TimeoutExpired, NotAttachable) as exc:
                code = exc
            if code != 0:  # the pane is gone or refuses: what follows would arrive without this part
                log.warning("terminal %s: input not sent (%d bytes dropped): %s", self.target.session_id,
                            len(chunk) + len(self._input), code)  # fmt: skip
                self._input.clear()

    def _apply_size(self, cols: int, rows: int) -> None:
        if self._master is not None:
            with contextlib.suppress(OSError):
                set_winsize(self._master, cols, rows)

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
