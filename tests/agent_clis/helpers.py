"""What the real-CLI tests share: waiting, reading a pane, and one pass of ao's loops."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from sessions.agents import messaging, observing
from sessions.models import Session


def eventually(predicate, *, timeout: float = 120.0, interval: float = 0.3):
    """Poll ``predicate`` until it returns something truthy or ``timeout`` passes; its last value.
    The default is generous: a real CLI under a fully loaded CI machine can take a minute to start."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def tmux(socket: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["tmux", "-L", socket, *args], capture_output=True, text=True, timeout=10, check=False
    )


def pane(socket: str, name: str, *, history: int = 0) -> str:
    """The pane's screen, joined lines, with ``history`` lines of scrollback above it."""
    scrollback = ["-S", f"-{history}"] if history else []
    return tmux(socket, "capture-pane", "-p", "-J", "-t", f"={name}:", *scrollback).stdout


def observe(session_id: str) -> Session:
    """Observe the session as ao's sweep does; the stored result."""
    session = Session.objects.select_related("project").get(pk=session_id)
    observing.session_observe(session=session)
    session.refresh_from_db()
    return session


def deliver_and_observe(session_id: str) -> Session:
    """One pass of what ao's loops do: deliver a queued message if the agent is ready, observe."""
    messaging.messages_deliver(session_id=session_id)
    return observe(session_id)


def process_tree_cmdlines(socket: str, name: str) -> list[str]:
    """The command lines of every process in the session's pane (what `ps` shows anyone)."""
    root = tmux(socket, "display-message", "-p", "-t", f"={name}:", "#{pane_pid}").stdout.strip()
    pids, found = [root], []
    while pids:
        pid = pids.pop()
        try:
            found.append(
                Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            )
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        pids.extend(children)
    return found
