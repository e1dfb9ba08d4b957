"""The browser terminal relay: one attached terminal per session, shared by every viewer.

How it works (the websocket side is ``sessions/dashboard/consumers_terminal.py``). This module holds one
relay per session and who may attach; the relays are ``terminal_relay`` (subscribers, flow control),
``terminal_tmux`` and ``terminal_process``; the filters of output and input are ``terminal_filters``.

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

from django.conf import settings

from integrations.base import PermanentIntegrationError
from integrations.registry import registry_for
from integrations.runtime import validate_name
from sessions.agents.plugins import runtime_handle_for
from sessions.core import selectors
from sessions.dashboard.terminal_process import ProcessRelay
from sessions.dashboard.terminal_relay import (
    NotAttachable,
    Relay,
    Subscriber,
    TerminalEnded,
    TerminalForbidden,
    TerminalNotYet,
    TerminalTarget,
)
from sessions.dashboard.terminal_tmux import TmuxRelay
from sessions.domain.lifecycle import Phase
from sessions.models import Host, Project, Session

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


# What a session's terminal panel says before its agent has a terminal (the browser tries again).
NOT_YET = {
    Phase.QUEUED: "waiting for a free slot (over the concurrency cap): its terminal opens when its agent starts",
    Phase.SPAWNING: "its agent is starting: its terminal opens in a moment",
}


def terminal_open(*, session_id: str, user) -> TerminalTarget:
    """What ``user`` may attach to for ``session_id``. Raises TerminalForbidden, TerminalEnded (the
    session ended: its agent does not run), TerminalNotYet (it has no terminal yet: its agent is
    starting or waits for a slot) or NotAttachable."""
    session = Session.objects.select_related("project").filter(pk=session_id).first()
    if session is None or not selectors.can(user, session.project, selectors.VIEW):
        raise TerminalForbidden(session_id)
    if session.ended_why:
        raise TerminalEnded(f"this session has ended: {session.ended_why}")
    if not _this_host(session.host):
        raise NotAttachable(
            f"session {session.id} runs on agent host {session.host!r}; its terminal is served by the "
            f"`ao web` running on that host (this is {settings.AO_HOST_NAME!r})"
        )
    handle = runtime_handle_for(session)
    if handle is None:
        raise TerminalNotYet(NOT_YET.get(session.phase, "waiting for its terminal"))
    if handle.runtime not in ("tmux", "process"):
        raise NotAttachable(f"the {handle.runtime!r} runtime has no terminal ao can attach to")
    project = session.project
    try:
        validate_name(handle.name)
        runtime = registry_for("runtime").create(  # as sessions.agents.plugins.context_for picks it
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


def terminal_may_type(
    *, user_id: int, session_key: str, project_id: int, owner_id: int | None = None
) -> bool:
    """Checked on every input message: the browser is still signed in as that user, who is still
    active and an operator of the project, and, for a session running with a person's own
    credentials (``owner_id``), that person or a superuser."""
    user = selectors.signed_in_user(user_id=user_id, session_key=session_key)
    return user is not None and _may_type(user, project_id, owner_id=owner_id)


def terminal_may_view(user, project_id: int) -> bool:
    """Checked every ``AO_ACCESS_RECHECK_SECONDS`` while a terminal is open, with the user read
    afresh (``consumers_access``): still a member of the project."""
    return selectors.can(user, Project(pk=project_id), selectors.VIEW)
