"""A message claimed by a deliverer that died before typing it is not taken as delivered: it goes
back to the queue when its claim lease runs out and reaches the agent exactly once (real git,
tmux and an agent ao reads from the screen)."""

from __future__ import annotations

import sys
from datetime import timedelta

import pytest
from django.db.models import F

from integrations.runtime.tmux import TmuxRuntime
from sessions.agents import messaging, observing, spawning
from sessions.models import Message
from tests.factories import ProjectFactory
from tests.sessions.test_session_commands import ECHO_AGENT, eventually, pane

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


class DeliverersProcessDied(BaseException):
    """Stands for the deliverer's process dying (SIGKILL) between its claim and its keystrokes:
    nothing after that point runs, nothing is caught."""


def test_a_message_claimed_by_a_deliverer_that_died_before_typing_is_retried_once(
    repo, tmux_server, settings, tmp_path, monkeypatch
):
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    settings.AO_INLINE_DELIVERY_WAIT = 0.5
    project = ProjectFactory(
        key="web",
        session_prefix="web",
        path=str(repo.path),
        agent="custom",  # no transcript: every reading comes from the screen
        runtime="tmux",
        tracker="local",
        plugin_settings={
            "agent": {"command": [sys.executable, "-u", "-c", ECHO_AGENT], "ready_pattern": r"^> ?$"},
            "runtime": {"socket_name": tmux_server, "enter_delay": 0.05},
        },
    )
    session = spawning.session_spawn(project=project, by=None)
    assert eventually(lambda: pane(tmux_server, session.pk).rstrip().endswith(">"), timeout=30)
    session.refresh_from_db()
    assert not session.messages.filter(state__in=["queued", "delivered"]).exists()
    message = Message.objects.create(session=session, text="rerun the failing test")

    real_send = TmuxRuntime.send_text

    def die_before_typing(self, handle, text, **kwargs):
        raise DeliverersProcessDied

    monkeypatch.setattr(TmuxRuntime, "send_text", die_before_typing)
    with pytest.raises(DeliverersProcessDied):
        messaging.messages_deliver(session_id=session.pk)
    monkeypatch.setattr(TmuxRuntime, "send_text", real_send)
    claimed = Message.objects.get(pk=message.pk)
    assert claimed.state == "delivered" and claimed.attempts == 1  # claimed, never typed

    # Another process observes the agent (its screen changes: the prompt is redrawn) and tries the
    # queue while the dead deliverer's claim is still fresh: nothing is typed, nothing confirmed.
    session.refresh_from_db()
    observing.session_observe(session=session)
    messaging.messages_deliver(session_id=session.pk)
    assert Message.objects.get(pk=message.pk).state == "delivered"
    assert Message.objects.get(pk=message.pk).confirmed_at is None
    assert "received: rerun the failing test" not in pane(tmux_server, session.pk)

    # The claim lease runs out: the next attempt takes the message over and types it, once.
    Message.objects.filter(pk=message.pk).update(
        claimed_at=F("claimed_at") - messaging.CLAIM_LEASE - timedelta(seconds=1)
    )
    messaging.messages_deliver(session_id=session.pk)
    assert eventually(lambda: "received: rerun the failing test" in pane(tmux_server, session.pk))
    for _ in range(3):  # later sweeps confirm it and never type it again
        messaging.messages_deliver(session_id=session.pk)
    delivered = Message.objects.get(pk=message.pk)
    assert delivered.state == "confirmed"
    assert delivered.attempts == 2
    assert pane(tmux_server, session.pk).count("received: rerun the failing test") == 1
