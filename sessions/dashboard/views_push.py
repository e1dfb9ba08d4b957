"""What the websockets push, rendered once per change for every viewer: a card (and the session
page's live panels), and a person's Inbox badge. ``card_push`` is the renderer the composition
root (``sessions.apps``) hands to the core's realtime.
"""

from __future__ import annotations

from django.template.loader import render_to_string

from sessions.dashboard.views_board import card_session
from sessions.dashboard.views_common import unread_count_for
from sessions.dashboard.views_session import live_context
from sessions.models import Session


def card_push(session_id: str, *, panels: bool) -> dict | None:
    """A session's change as the websockets show it (the renderer the core's realtime calls):
    the card, and the session page's live panels when ``panels``; None when the session is gone."""
    session = card_session(session_id)
    if session is None:
        return None
    return {
        "html": render_card_push(session),
        "detail_html": render_session_push(session) if panels else "",
        "session": session.id,
        "project": session.project_id,
        "zone": session.zone,
    }


def render_card_push(session: Session) -> str:
    """The websocket push for one card: out-of-band delete of the old card, then an insert at
    the top of the column of its zone (which moves it between columns), rendered once per change."""
    return render_to_string("sessions/_card_push.html", {"session": session, "show_project": True})


def render_session_push(session: Session) -> str:
    """The change push to a session page: its card and every live panel (out-of-band swaps),
    rendered once per change for all its viewers (nothing per person in it)."""
    return render_to_string("sessions/_session_push.html", {**live_context(session), "oob": True})


def render_unread_push(user) -> str:
    """The nav's Inbox badge for one person (out-of-band swap), or "" without an inbox."""
    count = unread_count_for(user)
    if count is None:
        return ""
    return render_to_string("sessions/_unread.html", {"unread_count": count, "oob": True})
