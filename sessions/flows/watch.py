"""The activity watcher: what an agent does reaches the board within seconds, not at the next sweep.

A sweep observes every running session of a project every ``sweepInterval`` (30 s by default):
reads its pane and transcript, stores the facts, re-derives. Doing that every second would cost
thirty times as much. The watcher instead asks each runtime, once a second, for a cheap mark per
agent host's live session (``Runtime.activity_marks``: for tmux one ``list-panes -a`` per server,
the window's last-output time, cursor and history size) and observes (``observing.session_observe``,
which announces a changed card to the board; the watcher then asks the reactions to look at the
session: a flow) only on an edge:

- *started*: the mark changes after having stood still (the agent began a turn, a dialog came up);
- *settled*: the mark has stood still for ``SETTLE_TICKS`` ticks after changing (the turn ended,
  the agent waits for a person, it exited).

An agent working for minutes is observed twice (once when it starts, once when it stops), an idle
one never: the sweep still observes everything at its own pace. It runs in every process that
runs agents: ``ao start`` (embedded, beside the worker and beat) and ``ao worker`` (scale-out: each
agent host watches its own sessions). ``AO_ACTIVITY_WATCH_INTERVAL`` (seconds, default 1; 0 turns
it off) sets the pace.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from django.conf import settings
from django.db import close_old_connections
from django.db.models import Q

from ao_site.dbretry import database_connection_lost
from integrations.base import IntegrationError
from integrations.registry import ConfigurationError
from reactions import services as reactions
from sessions.agents import observing, plugins
from sessions.domain.lifecycle import Phase, RuntimeState
from sessions.models import Session

log = logging.getLogger(__name__)

SETTLE_TICKS = 2  # unchanged reads after a change before the agent counts as settled


@dataclass
class _Seen:
    mark: str
    changing: bool = False
    still: int = 0


class ActivityWatcher:
    """Observe this host's running sessions whose terminal started or stopped changing."""

    def __init__(self, *, interval: float | None = None) -> None:
        self.interval = settings.AO_ACTIVITY_WATCH_INTERVAL if interval is None else interval
        self.seen: dict[str, _Seen] = {}
        self.observations = 0  # sessions observed so far (tests, `ao status`-style counters)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- one look ------------------------------------------------------------------------------
    def watched(self):
        here = settings.AO_HOST_NAME
        return (
            Session.objects.filter(phase=Phase.RUNNING, runtime_state=RuntimeState.ALIVE)
            .filter(Q(host=here) | Q(host=""))
            .select_related("project")
        )

    def tick(self) -> list[str]:
        """Read every watched session's mark; observe those on an edge. Returns their ids."""
        sessions = {s.pk: s for s in self.watched()}
        marks: dict[str, str] = {}
        by_runtime: dict[tuple, tuple] = {}
        for session in sessions.values():
            handle = plugins.runtime_handle_for(session)
            if handle is None:
                continue
            key = (session.project_id, session.kind)
            if key not in by_runtime:
                try:
                    by_runtime[key] = (plugins.context_for(session).runtime, [])
                except (ConfigurationError, IntegrationError) as exc:
                    log.debug("not watching %s: %s", session.pk, exc)
                    continue
            by_runtime[key][1].append(handle)
        for runtime, handles in by_runtime.values():
            marks.update(runtime.activity_marks(handles))
        due = []
        for session_id in sessions:
            mark = marks.get(session_id, "gone")
            seen = self.seen.get(session_id)
            if seen is None:  # first look: the spawn (or a sweep) has just observed it
                self.seen[session_id] = _Seen(mark)
                continue
            if mark != seen.mark:
                seen.mark, seen.still = mark, 0
                if not seen.changing:
                    seen.changing = True
                    due.append(session_id)  # started
            elif seen.changing:
                seen.still += 1
                if seen.still >= SETTLE_TICKS:
                    seen.changing = False
                    due.append(session_id)  # settled
        for gone in set(self.seen) - set(sessions):
            del self.seen[gone]
        for session_id in due:
            self.observations += 1
            try:
                observing.session_observe(session=sessions[session_id])
            except (IntegrationError, ConfigurationError) as exc:
                log.warning("observing %s failed: %s", session_id, exc)
                continue
            reactions.session_react_after_commit(session_id=session_id)  # they look at what was observed
        return due

    # --- in a thread ---------------------------------------------------------------------------
    def start(self) -> None:
        if self.interval <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="ao-activity-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception as exc:  # the database went away (said once per outage), a bug: keep watching
                if not database_connection_lost(exc):
                    log.exception("activity watch failed")
            finally:
                close_old_connections()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
