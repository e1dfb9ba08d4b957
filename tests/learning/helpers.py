"""Recorded timelines for the learning-loop tests: rows with the times they happened."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from sessions.models import Event, Message, Outcome, Session
from tests.factories import EventFactory, SessionFactory

T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def started(session: Session, when: datetime) -> Session:
    """Sessions' created_at is auto_now_add: set it afterwards, like a recorded history."""
    Session.objects.filter(pk=session.pk).update(created_at=when)
    session.refresh_from_db()
    return session


def event(
    session: Session, kind: str, at: float, *, summary: str = "", actor: str = "system", **data
) -> Event:
    e = EventFactory(session=session, kind=kind, summary=summary or kind, actor=actor, data=data)
    Event.objects.filter(pk=e.pk).update(created_at=minutes(at))
    return e


def message(session: Session, sender: str, text: str = "hi") -> Message:
    return Message.objects.create(session=session, sender=sender, text=text)


def outcome(project, *, agent="claude-code", model="opus", started_at=None, **fields) -> Outcome:
    """An outcome row with its (finished) session, for aggregate tests."""
    session = SessionFactory(project=project, agent=agent, model=model, phase="cleaned", zone="done",
                             status=fields.get("end_status", "merged"))  # fmt: skip
    started_at = started_at or T0
    defaults = {
        "result": "merged",
        "end_status": "merged",
        "ended_at": started_at + timedelta(hours=3),
        "cost_usd": Decimal("1.00"),
        "computed_at": timezone.now(),
    }
    defaults.update(fields)
    return Outcome.objects.create(
        session=session, project=project, agent=agent, model=model, started_at=started_at, **defaults
    )
