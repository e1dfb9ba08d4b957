"""``tmux`` runtime: one detached tmux session per agent, named by the session id.

Decisions:

- The pane runs ao's launcher (see ``integrations.runtime``), passed to tmux as several
  arguments, which tmux ``execvp``s without a shell; the agent's argv, cwd and environment
  travel in a private spec file. Nothing from data is ever parsed by a shell or by tmux.
- ``remain-on-exit`` is set in the same tmux invocation that creates the session, so when the
  agent exits the pane stays (``#{pane_dead}``) and ``probe`` reports ``exited``, not ``lost``,
  and its last output can still be read.
- tmux commands run through ``subprocess`` with a timeout (and stdin, for ``load-buffer``),
  which libtmux's ``tmux_cmd`` does not offer; :meth:`TmuxRuntime.server` gives a
  ``libtmux.Server`` on the same socket for richer, non-critical use (e.g. a terminal relay).
- Data arguments ending in ``;`` are escaped (tmux would take them as command separators).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, field_validator

from integrations.base import (
    CLEAR_INPUT_KEYS,
    HostSetting,
    NotHostSetting,
    PermanentIntegrationError,
    PluginConfig,
    Runtime,
    RuntimeGone,
    TransientIntegrationError,
    clear_keys_checked,
)
from integrations.records import RuntimeHandle
from integrations.registry import runtimes
from integrations.runtime import (
    ENV_KEY_RE,
    LONG_TEXT,
    NAME_RE,
    clean_text,
    discard_launch_spec,
    launcher_argv,
    needs_paste,
    server_env,
    validate_name,
    write_launch_spec,
)
from sessions.domain.lifecycle import RuntimeState

if TYPE_CHECKING:
    import libtmux

_GONE_MARKERS = (
    "no server running",
    "error connecting to",
    "can't find session",
    "can't find window",
    "can't find pane",
    "session not found",
)


def _arg(value: str) -> str:
    """Escape a data argument for tmux: a trailing ``;`` would end the tmux command."""
    return value[:-1] + "\\;" if value.endswith(";") else value


def _session_removals(name: str, env: Mapping[str, str | None]) -> list[str]:
    """tmux commands marking the variables the agent's environment removes (its None values: ao's
    credentials, ``starting.agent_environment``) as removed from the session's environment, so a
    new window in it does not inherit them from the server's (a person's own tmux server keeps
    the environment of the shell that started it)."""
    args: list[str] = []
    for key, value in sorted(env.items()):
        if value is None and ENV_KEY_RE.match(key):
            args += [";", "set-environment", "-t", f"={name}:", "-r", key]
    return args


def _gone(stderr: str) -> bool:
    lowered = stderr.lower()
    return any(marker in lowered for marker in _GONE_MARKERS)


class TmuxError(TransientIntegrationError):
    def __init__(self, message: str, *, stderr: str = "", timed_out: bool = False) -> None:
        self.stderr = stderr
        self.timed_out = timed_out
        super().__init__(message)


@runtimes.register("tmux")
class TmuxRuntime(Runtime):
    class Config(PluginConfig):
        socket_name: str | None = HostSetting(
            default=None, description="tmux -L socket name; unset: the default server"
        )
        width: int = Field(default=220, ge=20, le=1000, description="columns of the agent's terminal")
        height: int = Field(default=50, ge=5, le=500, description="rows of the agent's terminal")
        command_timeout: float = NotHostSetting(
            default=10.0, gt=0, description="seconds for each tmux command"
        )
        enter_delay: float = Field(default=0.3, ge=0, le=10, description="pause before Enter after text")
        paste_threshold: int = Field(default=LONG_TEXT, ge=1, description="longer text is pasted")

        @field_validator("socket_name")
        @classmethod
        def _socket_name(cls, value: str | None) -> str | None:
            if value is not None and not NAME_RE.match(value):
                raise ValueError("a socket name is letters, digits, '_' or '-'")
            return value

    # --- plumbing ----------------------------------------------------------------------------
    def _socket(self, handle: RuntimeHandle | None) -> str | None:
        if handle is not None and "socket_name" in handle.data:
            return handle.data["socket_name"]
        return self.config.socket_name

    def _base(self, socket_name: str | None) -> list[str]:
        binary = shutil.which("tmux")
        if not binary:
            raise PermanentIntegrationError("tmux is not installed (not found on PATH)")
        return [binary, "-L", socket_name] if socket_name else [binary]

    def _tmux(
        self, args: list[str], *, socket_name: str | None, input: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        argv = [*self._base(socket_name), *args]
        # Not ao's own environment: the server this may start keeps it for good (``server_env``).
        # Without TMUX: ao may itself run inside tmux; talk to the chosen server, not that one.
        env = server_env()
        try:
            proc = subprocess.run(
                argv,
                input=input,
                stdin=None if input is not None else subprocess.DEVNULL,
                capture_output=True,
                timeout=self.config.command_timeout,
                env=env,
            )
        except subprocess.TimeoutExpired as exc:
            raise TmuxError(
                f"tmux {args[0]} timed out after {self.config.command_timeout:g}s", timed_out=True
            ) from exc
        except OSError as exc:
            raise TmuxError(f"tmux {args[0]} could not run: {exc}") from exc
        if check and proc.returncode != 0:
            stderr = proc.stderr.decode("utf-8", "replace").strip()
            if _gone(stderr):
                raise RuntimeGone(f"tmux session is gone: {stderr}")
            raise TmuxError(f"tmux {args[0]} failed ({proc.returncode}): {stderr}", stderr=stderr)
        return proc

    def _target(self, handle: RuntimeHandle) -> str:
        return handle.data.get("pane_id") or f"={validate_name(handle.name)}:"

    def server(self, handle: RuntimeHandle | None = None) -> libtmux.Server:
        """A libtmux Server on the same socket (no timeouts: keep it off ao's critical paths)."""
        import libtmux  # only here: the rest of ao drives tmux through its CLI

        return libtmux.Server(socket_name=self._socket(handle))

    # --- Runtime -----------------------------------------------------------------------------
    def start(self, *, name: str, cwd: Path, command: list[str], env: dict[str, str | None]) -> RuntimeHandle:
        validate_name(name)
        socket_name = self.config.socket_name
        exists = self._tmux(["has-session", "-t", f"={name}"], socket_name=socket_name, check=False)
        if exists.returncode == 0:
            raise PermanentIntegrationError(f"a tmux session named {name!r} already exists")
        spec = write_launch_spec(command=command, cwd=Path(cwd), env=env)
        args = [
            "new-session", "-d", "-s", name, "-x", str(self.config.width), "-y", str(self.config.height),
            "-c", _arg(str(cwd)), "-P", "-F", "#{pane_id} #{pane_pid} #{socket_path}",
            "--", *[_arg(a) for a in launcher_argv(spec)],
            ";", "set-option", "-w", "-t", f"={name}:", "remain-on-exit", "on",
            # a client attaching (the browser's relay, a person's `tmux attach`) copies none of
            # its variables into the session
            ";", "set-option", "-t", f"={name}:", "update-environment", "",
            # nor does a new window get ao's credentials from a server someone else started
            *_session_removals(name, env),
        ]  # fmt: skip
        try:
            try:
                proc = self._tmux(args, socket_name=socket_name)
            except TmuxError as exc:
                # The server was shutting down (its last session just ended) as we connected:
                # the next attempt starts a fresh server.
                if "server exited unexpectedly" not in exc.stderr:
                    raise
                proc = self._tmux(args, socket_name=socket_name)
        except Exception:
            with contextlib.suppress(OSError):
                os.unlink(spec)
            raise
        pane_id, pid, socket_path = [*proc.stdout.decode().strip().splitlines()[0].split(" ", 2), "", ""][:3]
        data = {
            "socket_name": socket_name,
            # where the server is, as ao's environment found it (TMUX_TMPDIR): a person's shell
            # may have another, so the attach command names the socket itself
            "socket_path": socket_path,
            "pane_id": pane_id,
            "pid": int(pid) if pid.isdigit() else None,
            "launch_spec": spec,
        }
        return RuntimeHandle(runtime=self.key or "tmux", name=name, data=data)

    def probe(self, handle: RuntimeHandle) -> str:
        """alive / exited (pane dead, process gone) / lost (session or server gone) / probe_failed."""
        args = ["list-panes", "-s", "-t", f"={handle.name}", "-F", "#{pane_id} #{pane_dead} #{pane_pid}"]
        for attempt in (1, 2):
            try:
                validate_name(handle.name)
                proc = self._tmux(args, socket_name=self._socket(handle), check=False)
            except (PermanentIntegrationError, TmuxError):
                return RuntimeState.PROBE_FAILED.value
            if proc.returncode == 0:
                break
            if _gone(proc.stderr.decode("utf-8", "replace")):
                return RuntimeState.LOST.value
            if attempt == 1:
                time.sleep(0.1)  # e.g. a server mid-shutdown drops the client without a message
        else:
            return RuntimeState.PROBE_FAILED.value
        panes = {}
        for line in proc.stdout.decode("utf-8", "replace").splitlines():
            parts = line.split(" ")
            if len(parts) == 3:
                panes[parts[0]] = parts
        wanted = handle.data.get("pane_id")
        pane = panes.get(wanted) if wanted else next(iter(panes.values()), None)
        if pane is None or pane[1] == "1":
            return RuntimeState.EXITED.value
        if pane[2].isdigit():
            try:
                os.kill(int(pane[2]), 0)
            except ProcessLookupError:
                return RuntimeState.EXITED.value
            except PermissionError:
                pass
        return RuntimeState.ALIVE.value

    def is_alive(self, handle: RuntimeHandle) -> bool:
        return self.probe(handle) == RuntimeState.ALIVE.value

    def send_text(
        self,
        handle: RuntimeHandle,
        text: str,
        *,
        clear: Sequence[str] = CLEAR_INPUT_KEYS,
        paste: bool = False,
    ) -> None:
        """Clear the input line (the agent's ``clear`` keys), type short text literally or
        bracketed-paste long/multi-line text (any text with ``paste``), Enter."""
        clear = clear_keys_checked(clear)
        state = self.probe(handle)
        if state in (RuntimeState.LOST.value, RuntimeState.EXITED.value):
            raise RuntimeGone(f"cannot send to {handle.name}: runtime {state}")
        socket_name = self._socket(handle)
        target = self._target(handle)
        text = clean_text(text)
        self._tmux(["send-keys", "-t", target, *clear], socket_name=socket_name)
        if text and (paste or needs_paste(text, threshold=self.config.paste_threshold)):
            buffer = f"ao-{validate_name(handle.name)}-{uuid.uuid4().hex[:8]}"
            self._tmux(
                ["load-buffer", "-b", buffer, "-"], socket_name=socket_name, input=text.encode("utf-8")
            )
            try:
                self._tmux(["paste-buffer", "-p", "-d", "-b", buffer, "-t", target], socket_name=socket_name)
            except Exception:
                self._tmux(["delete-buffer", "-b", buffer], socket_name=socket_name, check=False)
                raise
        elif text:
            self._tmux(["send-keys", "-t", target, "-l", "--", _arg(text)], socket_name=socket_name)
        if self.config.enter_delay:
            time.sleep(self.config.enter_delay)
        self._tmux(["send-keys", "-t", target, "Enter"], socket_name=socket_name)

    def read_output(self, handle: RuntimeHandle, *, lines: int = 200) -> str:
        """The last ``lines`` lines of the pane, wrapped lines joined, trailing blank lines dropped."""
        lines = max(1, int(lines))
        proc = self._tmux(
            ["capture-pane", "-p", "-J", "-t", self._target(handle), "-S", f"-{lines}"],
            socket_name=self._socket(handle),
        )
        rows = proc.stdout.decode("utf-8", "replace").rstrip("\n").split("\n")
        while rows and not rows[-1].strip():
            rows.pop()
        return "\n".join(rows[-lines:])

    def kill(self, handle: RuntimeHandle) -> None:
        """Kill the tmux session; already gone is fine."""
        proc = self._tmux(
            ["kill-session", "-t", f"={validate_name(handle.name)}"],
            socket_name=self._socket(handle),
            check=False,
        )
        discard_launch_spec(handle.data.get("launch_spec"))
        if proc.returncode != 0:
            stderr = proc.stderr.decode("utf-8", "replace").strip()
            if not _gone(stderr):
                raise TmuxError(f"tmux kill-session failed: {stderr}", stderr=stderr)

    def activity_marks(self, handles: Sequence[RuntimeHandle]) -> dict[str, str]:
        """One ``list-panes -a`` per tmux server for all ``handles``: the window's last output
        time (whole seconds), the cursor and the history size, and whether the pane is dead."""
        by_socket: dict[str | None, list[RuntimeHandle]] = {}
        for handle in handles:
            by_socket.setdefault(self._socket(handle), []).append(handle)
        marks: dict[str, str] = {}
        fmt = "#{session_name} #{pane_id} #{window_activity}:#{cursor_x},#{cursor_y}:#{history_size}:#{pane_dead}"
        for socket_name, group in by_socket.items():
            try:
                proc = self._tmux(["list-panes", "-a", "-F", fmt], socket_name=socket_name, check=False)
            except (PermanentIntegrationError, TmuxError):
                continue
            panes: dict[tuple[str, str], str] = {}
            first: dict[str, str] = {}
            for line in proc.stdout.decode("utf-8", "replace").splitlines():
                parts = line.split(" ")
                if len(parts) == 3:
                    panes[(parts[0], parts[1])] = parts[2]
                    first.setdefault(parts[0], parts[2])
            for handle in group:
                pane = handle.data.get("pane_id")
                mark = panes.get((handle.name, pane)) if pane else first.get(handle.name)
                if mark is not None:
                    marks[handle.name] = mark
        return marks

    def attach_command(self, handle: RuntimeHandle) -> list[str]:
        socket_name = self._socket(handle)
        socket_path = str(handle.data.get("socket_path") or "")
        where = ["-S", socket_path] if socket_path else (["-L", socket_name] if socket_name else [])
        return [
            "tmux",
            *where,
            "attach-session",
            "-t",
            f"={handle.name}",
        ]
