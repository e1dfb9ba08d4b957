"""``process`` runtime: the agent as a child process of ao on a pseudo-terminal.

For machines without tmux and for tests. The child runs ao's launcher (see
``integrations.runtime``) in a new session with the pty as its controlling terminal; a
reader thread keeps the last ``buffer_bytes`` of output in a ring buffer.

Processes live in a module-level table keyed by the handle's name and die with the ao
process that started them, so a ``process`` session is ``lost`` after ao restarts (and from
any other ao process): the handle records the owning process id and ``probe`` checks it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field

from integrations.base import (
    CLEAR_INPUT_KEYS,
    CLEAR_KEY_BYTES,
    PermanentIntegrationError,
    PluginConfig,
    Runtime,
    RuntimeGone,
    clear_keys_checked,
)
from integrations.records import RuntimeHandle
from integrations.registry import runtimes
from integrations.runtime import (
    BRACKETED_PASTE_END,
    BRACKETED_PASTE_START,
    LONG_TEXT,
    TERMINAL_ENV,
    clean_text,
    discard_launch_spec,
    launcher_argv,
    needs_paste,
    validate_name,
    write_launch_spec,
)
from sessions.domain.lifecycle import RuntimeState

_PASTE_ON = b"\x1b[?2004h"
_PASTE_OFF = b"\x1b[?2004l"
_ANSI_RE = re.compile(
    r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC ... BEL/ST
    r"|\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    r"|\x1b[PX^_][^\x1b]*\x1b\\"  # DCS/SOS/PM/APC ... ST
    r"|\x1b[ -/]*[0-~]"  # other escapes
)
_CTRL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(eq=False)
class _Live:
    popen: subprocess.Popen
    master_fd: int
    limit: int
    spec: str = ""
    output: bytearray = field(default_factory=bytearray)
    bracketed_paste: bool = False
    received: int = 0  # bytes of output so far (the ring buffer keeps only the last ones)
    lock: threading.Lock = field(default_factory=threading.Lock)
    reader: threading.Thread | None = None
    stopping: bool = False

    def read_loop(self) -> None:
        tail = b""
        while not self.stopping:
            try:
                ready, _, _ = select.select([self.master_fd], [], [], 0.5)
                if not ready:
                    if self.popen.poll() is not None and not self._drain_ready():
                        return
                    continue
                chunk = os.read(self.master_fd, 65536)
            except (OSError, ValueError):
                return  # EIO: the child side (and every process holding it) closed the terminal
            if not chunk:
                return
            window = tail + chunk
            on, off = window.rfind(_PASTE_ON), window.rfind(_PASTE_OFF)
            with self.lock:
                if on != -1 or off != -1:
                    self.bracketed_paste = on > off
                self.output += chunk
                self.received += len(chunk)
                if len(self.output) > self.limit:
                    del self.output[: len(self.output) - self.limit]
            tail = window[-8:]

    def _drain_ready(self) -> bool:
        with contextlib.suppress(OSError, ValueError):
            return bool(select.select([self.master_fd], [], [], 0)[0])
        return False


_LIVE: dict[str, _Live] = {}
_LIVE_LOCK = threading.Lock()


def live_names() -> list[str]:
    """Names of processes this ao process started and has not killed."""
    with _LIVE_LOCK:
        return sorted(_LIVE)


def render_output(raw: bytes) -> str:
    """Terminal output as plain text: escape sequences removed, ``\\r`` overwrites approximated."""
    text = _ANSI_RE.sub("", raw.decode("utf-8", "replace"))
    rows = []
    for row in text.replace("\r\n", "\n").split("\n"):
        if "\r" in row:
            row = next((part for part in reversed(row.split("\r")) if part), "")
        rows.append(_CTRL_RE.sub("", row))
    return "\n".join(rows)


def _pty_env() -> dict[str, str]:
    """The launcher's environment, whose TERMINAL_ENV the agent gets: this pty is not ao's own
    terminal (not tmux, not its size); TERM and COLORTERM stay ao's."""
    env = dict(os.environ)
    for name in TERMINAL_ENV:
        if name not in ("TERM", "COLORTERM"):
            env.pop(name, None)
    return env


@runtimes.register("process")
class ProcessRuntime(Runtime):
    class Config(PluginConfig):
        width: int = Field(default=220, ge=20, le=1000, description="columns of the agent's terminal")
        height: int = Field(default=50, ge=5, le=500, description="rows of the agent's terminal")
        buffer_bytes: int = Field(default=256 * 1024, ge=1024, description="output ring buffer size")
        enter_delay: float = Field(default=0.3, ge=0, le=10, description="pause before Enter after text")
        paste_threshold: int = Field(default=LONG_TEXT, ge=1, description="longer text is pasted")
        write_timeout: float = Field(
            default=10.0, gt=0, description="seconds to wait for the pty to take input"
        )
        kill_timeout: float = Field(default=3.0, gt=0, description="seconds between SIGTERM and SIGKILL")

    def start(self, *, name: str, cwd: Path, command: list[str], env: dict[str, str | None]) -> RuntimeHandle:
        validate_name(name)
        with _LIVE_LOCK:
            if name in _LIVE:
                raise PermanentIntegrationError(f"a process named {name!r} already exists; kill it first")
            spec = write_launch_spec(command=command, cwd=Path(cwd), env=env, ctty=True)
            master, slave = os.openpty()
            try:
                fcntl.ioctl(
                    slave,
                    termios.TIOCSWINSZ,
                    struct.pack("HHHH", self.config.height, self.config.width, 0, 0),
                )
                popen = subprocess.Popen(
                    launcher_argv(spec),
                    env=_pty_env(),
                    stdin=slave,
                    stdout=slave,
                    stderr=slave,
                    cwd=str(cwd),
                    close_fds=True,
                    start_new_session=True,
                )
            except Exception:
                os.close(master)
                with contextlib.suppress(OSError):
                    os.unlink(spec)
                raise
            finally:
                os.close(slave)
            os.set_blocking(master, False)
            live = _Live(popen=popen, master_fd=master, limit=self.config.buffer_bytes, spec=spec)
            live.reader = threading.Thread(target=live.read_loop, name=f"ao-pty-{name}", daemon=True)
            live.reader.start()
            _LIVE[name] = live
        return RuntimeHandle(
            runtime=self.key or "process", name=name, data={"pid": popen.pid, "owner_pid": os.getpid()}
        )

    def _live(self, handle: RuntimeHandle) -> _Live | None:
        if handle.data.get("owner_pid") not in (None, os.getpid()):
            return None  # started by another (or a previous) ao process
        with _LIVE_LOCK:
            live = _LIVE.get(handle.name)
        if live is None or handle.data.get("pid") not in (None, live.popen.pid):
            return None
        return live

    def probe(self, handle: RuntimeHandle) -> str:
        live = self._live(handle)
        if live is None:
            return RuntimeState.LOST.value
        return RuntimeState.ALIVE.value if live.popen.poll() is None else RuntimeState.EXITED.value

    def is_alive(self, handle: RuntimeHandle) -> bool:
        return self.probe(handle) == RuntimeState.ALIVE.value

    def _write(self, live: _Live, data: bytes) -> None:
        deadline = time.monotonic() + self.config.write_timeout
        view = memoryview(data)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeGone("the agent is not reading its input (pty write timed out)")
            try:
                if not select.select([], [live.master_fd], [], remaining)[1]:
                    continue
                written = os.write(live.master_fd, view)
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno in (errno.EIO, errno.EBADF):
                    raise RuntimeGone("the agent's terminal is closed") from exc
                raise
            view = view[written:]

    def send_text(
        self,
        handle: RuntimeHandle,
        text: str,
        *,
        clear: Sequence[str] = CLEAR_INPUT_KEYS,
        paste: bool = False,
    ) -> None:
        """Clear the line (the agent's ``clear`` keys), type short text or paste long/multi-line
        text (any text with ``paste``), pause, Enter.

        Pasted text is wrapped in bracketed-paste markers only when the program turned that
        mode on (as tmux does); newlines are sent as ``\\r``, like a terminal.
        """
        live = self._live(handle)
        if live is None or live.popen.poll() is not None:
            raise RuntimeGone(f"cannot send to {handle.name}: runtime {self.probe(handle)}")
        text = clean_text(text)
        self._write(live, b"".join(CLEAR_KEY_BYTES[key] for key in clear_keys_checked(clear)))
        if text:
            payload = text.replace("\n", "\r")
            if paste or needs_paste(text, threshold=self.config.paste_threshold):
                with live.lock:
                    bracketed = live.bracketed_paste
                if bracketed:
                    payload = BRACKETED_PASTE_START + payload + BRACKETED_PASTE_END
            self._write(live, payload.encode("utf-8"))
        if self.config.enter_delay:
            time.sleep(self.config.enter_delay)
        self._write(live, b"\r")

    def read_output(self, handle: RuntimeHandle, *, lines: int = 200) -> str:
        live = self._live(handle)
        if live is None:
            raise RuntimeGone(f"no process {handle.name!r} in this ao process")
        with live.lock:
            raw = bytes(live.output)
        rows = render_output(raw).split("\n")
        while rows and not rows[-1].strip():
            rows.pop()
        return "\n".join(rows[-max(1, int(lines)) :])

    def activity_marks(self, handles: Sequence[RuntimeHandle]) -> dict[str, str]:
        """How many bytes each agent has written so far, and whether it exited."""
        marks = {}
        for handle in handles:
            live = self._live(handle)
            if live is not None:
                with live.lock:
                    received = live.received
                marks[handle.name] = f"{received}:{live.popen.poll() is not None}"
        return marks

    def kill(self, handle: RuntimeHandle) -> None:
        """SIGTERM the process group, SIGKILL it after ``kill_timeout``; forget the process."""
        live = self._live(handle)
        if live is None:
            return
        pid = live.popen.pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
        try:
            live.popen.wait(timeout=self.config.kill_timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            live.popen.wait(timeout=self.config.kill_timeout)
        with _LIVE_LOCK:
            if _LIVE.get(handle.name) is live:
                del _LIVE[handle.name]
        live.stopping = True
        if live.reader is not None:
            live.reader.join(timeout=2)
        with contextlib.suppress(OSError):
            os.close(live.master_fd)
        discard_launch_spec(live.spec)
