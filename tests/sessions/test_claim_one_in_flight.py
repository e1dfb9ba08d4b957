"""One message of a session is in flight at a time, decided when it is claimed: two deliverers
(worker threads, the sweep, the CLI) that each saw nothing in flight used to claim two messages
and type them at once, one's clearing keys erasing the other's text before its Enter."""

from __future__ import annotations

import pytest

from sessions.agents import messaging
from sessions.models import Message
from tests.factories import SessionFactory

pytestmark = pytest.mark.django_db


def test_a_second_message_is_not_claimed_while_one_is_in_flight() -> None:
    session = SessionFactory()
    first = Message.objects.create(session=session, text="first")
    second = Message.objects.create(session=session, text="second")

    assert messaging.message_claim(message=first)
    assert not messaging.message_claim(message=second)  # the first is still being typed
    assert Message.objects.get(pk=second.pk).state == Message.State.QUEUED

    Message.objects.filter(pk=first.pk).update(state=Message.State.CONFIRMED)
    assert messaging.message_claim(message=second)


def test_another_session_is_not_held_back() -> None:
    one, other = SessionFactory(), SessionFactory()
    assert messaging.message_claim(message=Message.objects.create(session=one, text="a"))
    assert messaging.message_claim(message=Message.objects.create(session=other, text="b"))
