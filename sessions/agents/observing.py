"""Observing a session on its agent host: its runtime (alive, exited, lost) and its agent's
activity, recorded as facts; which sessions a sweep observes.
"""

from __future__ import annotations

from pathlib import Path

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from integrations.base import IntegrationError
from sessions.agents.plugins import PANE_LINES, context_for, runtime_handle_for
from sessions.agents.trailers import workspace_model_record  # the learning loop
from sessions.core import realtime, services
from sessions.domain.lifecycle import Phase, RuntimeState, Zone
from sessions.models import Project, Session


# --- observe (agent host) ---------------------------------------------------------------------
def session_observe(*, session: Session) -> bool:
    """Probe the runtime and the agent's activity, store the facts, re-derive. True if status changed.

    A running session's facts are stored (any other is only re-derived), and only while the row is
    still running the launch that was probed. It asks no reactions: the
    flow that observes asks them to look at the session (the sweep for all its sessions at once,
    a webhook refresh, the activity watcher, the observe task, message delivery)."""
    if session.phase != Phase.RUNNING:
        return services.session_rederive(session=session)
    handle = runtime_handle_for(session)
    now = timezone.now()
    ctx = context_for(session)
    state = ctx.runtime.probe(handle) if handle else RuntimeState.LOST
    fields: dict = {"runtime_state": state, "runtime_checked_at": now}
    fields["detecting_attempts"] = session.detecting_attempts + 1 if state == RuntimeState.PROBE_FAILED else 0
    if handle and state in (RuntimeState.ALIVE, RuntimeState.EXITED) and session.workspace_path:
        pane = ""
        try:
            pane = ctx.runtime.read_output(handle, lines=PANE_LINES)
        except IntegrationError:
            pass
        reading = ctx.agent.detect_activity(
            workspace=Path(session.workspace_path),
            pane_text=pane,
            now=now,
            process_alive=state == RuntimeState.ALIVE,
        )
        fields.update(activity=reading.state, activity_at=reading.at or now, activity_weak=reading.weak)
        # readings that agree with the previous one extend its run (lifecycle.confirmed)
        same = session.activity_streak > 0 and reading.state == session.activity and session.activity_since
        fields.update(
            activity_since=session.activity_since if same else now,
            activity_streak=session.activity_streak + 1 if same else 1,
        )
        if reading.summary:
            fields["activity_summary"] = reading.summary[:500]
        elif reading.state != session.activity:
            # a summary says what the agent does now: one about the previous state ("Waiting
            # for the model") is wrong once the state changed and the new reading says nothing
            fields["activity_summary"] = ""
        if reading.tokens_in is not None:
            fields["tokens_in"] = reading.tokens_in
        if reading.tokens_out is not None:
            fields["tokens_out"] = reading.tokens_out
        if reading.cost_usd is not None:
            fields["cost_usd"] = round(reading.cost_usd, 4)
        if reading.conversation_id:
            fields["agent_session_ref"] = reading.conversation_id[:255]
        if reading.model and reading.model[:128] != session.model:  # the model it says it runs
            fields["model"] = reading.model[:128]
            workspace_model_record(session.workspace_path, fields["model"])  # the Ao-Model trailer
    else:  # the screen was not read: the next reading starts a new run
        fields["activity_streak"] = 0
    shown = ("runtime_state", "activity", "activity_summary", "tokens_in", "tokens_out", "cost_usd", "model")
    card_stale = any(
        name in fields and _card_value(name, fields[name]) != _card_value(name, getattr(session, name))
        for name in shown
    )
    with transaction.atomic():
        # the facts are of the launch it probed: a kill, a clean-up or a restore since the session
        # was read (a new launch has a new token) makes them stale, and they are not written
        if not Session.objects.filter(
            pk=session.pk, phase=Phase.RUNNING, api_token_hash=session.api_token_hash
        ).update(**fields):
            session.refresh_from_db()  # whoever changed it re-derived from what they wrote
            return False
        for name, value in fields.items():
            setattr(session, name, value)
        if card_stale:  # the card shows these facts even when the status stays the same
            transaction.on_commit(lambda: realtime.card_changed(session.pk))
        return services.session_rederive(session=session)


def _card_value(name: str, value):
    return round(float(value), 4) if name == "cost_usd" else value


RUNTIME_GONE = (RuntimeState.EXITED, RuntimeState.LOST)


def observed_sessions(*, project: Project):
    """The sessions whose runtime and activity a sweep (or a webhook refresh) observes: running
    ones, finished ones included (PR merged or closed) until their runtime is gone or they are
    cleaned up. An agent mid-turn when its PR merged is seen to finish its turn, so the clean-up
    after merge follows at once instead of after the grace period, and one that exits is seen."""
    return Session.objects.filter(project=project, phase=Phase.RUNNING).filter(
        ~Q(zone=Zone.DONE) | ~Q(runtime_state__in=RUNTIME_GONE)
    )
