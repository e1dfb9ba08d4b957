"""Messages into agents: queued, delivered when the agent is ready, confirmed, retried, bounded.

A message is never typed into an agent that is mid-turn, and never into a permission prompt
unless a person chose to answer it (``answers_prompt``).
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from integrations.base import IntegrationError
from sessions import agents, audit, services
from sessions.lifecycle import Activity, Phase, RuntimeState
from sessions.models import Actor, Message, Session
from sessions.text import clean_text

MAX_ATTEMPTS = 5
CONFIRM_WAIT = 3.0  # seconds to watch the pane right after sending
CONFIRM_WINDOW = timedelta(seconds=60)  # after this, an unconfirmed delivery is retried
# An agent whose readiness ao cannot read (a custom command without ready_pattern) is assumed ready
# this long after its start; one whose screen ao can read is never typed into while "unknown".
STARTUP_GRACE = timedelta(seconds=5)
NOT_RECOGNISED = (
    "the agent's screen is not recognised, so ao does not type into it: answer it in the terminal "
    "(or send with --answer-prompt)"
)
HELD_POLL = 0.3  # seconds between looks at an agent that is not ready yet


def message_queue(
    *,
    session: Session,
    text: str,
    sender: str = Actor.USER,
    sender_user=None,
    sender_name: str = "",
    answers_prompt: bool = False,
) -> Message:
    text = clean_text(text, max_chars=settings.AO_MAX_PROMPT_CHARS, what="message")
    if answers_prompt and sender != Actor.USER:
        raise ValueError("only a person may answer an agent's permission prompt")
    message = Message.objects.create(
        session=session,
        text=text,
        sender=sender,
        sender_user=sender_user,
        sender_name=sender_name,
        answers_prompt=answers_prompt,
    )
    who = sender_user.get_username() if sender_user else (sender_name or sender)
    first_line = text.strip().splitlines()[0][:120]
    services.event_record(
        project=session.project,
        session=session,
        kind="message.queued",
        summary=f"message from {who}: {first_line}",
        actor=sender,
        actor_user=sender_user,
        actor_name=sender_name,
        data={"message": message.pk, "chars": len(text)},
    )
    audit.record(action="message.queue", target=message, project=session.project, data={"to": session.pk})
    _enqueue_delivery(session)
    return message


def _enqueue_delivery(session: Session) -> None:
    from sessions import tasks

    session_id, queue = session.pk, agents.host_queue(session.host or settings.AO_HOST_NAME)
    # Inline (CLI, no worker): watch the agent for a while; a worker re-schedules itself instead.
    wait = settings.AO_INLINE_DELIVERY_WAIT if settings.CELERY_TASK_ALWAYS_EAGER else 0.0
    transaction.on_commit(
        lambda: tasks.messages_deliver_task.apply_async(args=[session_id], kwargs={"wait": wait}, queue=queue)
    )


def _snippet(text: str) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line[:30]


def ready_for(
    message: Message, *, activity: str, now, started_at, recognizes_ready: bool = False
) -> tuple[bool, str]:
    """Whether the agent can take this message now, and if not, why (pure)."""
    if activity == Activity.WAITING_INPUT:
        if message.answers_prompt:
            return True, ""
        return False, "the agent is at a permission prompt"
    if activity == Activity.ACTIVE:
        return False, "the agent is mid-turn"
    if activity in (Activity.EXITED, Activity.BLOCKED):
        return False, f"the agent is {activity}"
    if activity in (Activity.READY, Activity.IDLE):
        return True, ""
    if started_at is None or now - started_at < STARTUP_GRACE:
        return False, "the agent has not shown a prompt yet"
    if recognizes_ready and not message.answers_prompt:
        return False, NOT_RECOGNISED  # never type blindly into a screen ao cannot read
    return True, ""


def messages_deliver(*, session_id: str, wait: float = 0.0) -> tuple[int, bool]:
    """Deliver queued messages in order, each only when the agent is ready for it.

    One message per agent turn: after a delivery the agent is busy, so the next one waits.
    With ``wait`` > 0, keep watching the agent for that many seconds while messages are held
    (the CLI does this; a worker re-schedules instead). Returns (messages sent, any still queued).
    """
    deadline = time.monotonic() + wait
    sent = 0
    while True:
        outcome = _deliver_next(session_id)
        if outcome == "sent":
            sent += 1
            continue
        if outcome == "held" and time.monotonic() < deadline:
            time.sleep(HELD_POLL)
            continue
        return sent, outcome == "held"


def _deliver_next(session_id: str) -> str:
    """Try the oldest queued message once: "sent", "held" (agent not ready), or "idle" (nothing to do)."""
    session = Session.objects.select_related("project").filter(pk=session_id).first()
    if session is None or session.phase != Phase.RUNNING:
        return "idle"
    agents.session_observe(session=session)
    session.refresh_from_db()
    _confirm_deliveries(session)
    message = session.messages.filter(state=Message.State.QUEUED).order_by("created_at", "pk").first()
    if message is None:
        return "idle"
    if session.runtime_state != RuntimeState.ALIVE:
        return "held"
    if session.messages.filter(state=Message.State.DELIVERED).exists():
        return "held"  # one message in flight at a time: wait for it to be confirmed (or retried)
    ctx = agents.context_for(session)
    ok, _why = ready_for(
        message,
        activity=session.activity,
        now=timezone.now(),
        started_at=session.start_claimed_at,
        recognizes_ready=ctx.agent.recognizes_ready,
    )
    if not ok:
        return "held"
    # Claim before typing: the state moves out of QUEUED in one conditional UPDATE, so two
    # deliverers (a worker, the sweep, the CLI) never type the same message twice.
    claimed = Message.objects.filter(pk=message.pk, state=Message.State.QUEUED).update(
        state=Message.State.DELIVERED, attempts=F("attempts") + 1, delivered_at=timezone.now()
    )
    if claimed != 1:
        return "held"
    message.refresh_from_db()
    handle = agents._handle(session)
    try:
        ctx.runtime.send_text(handle, message.text)
    except IntegrationError as exc:
        _delivery_failed(session, message, str(exc))
        return "held"
    services.event_record(
        project=session.project,
        session=session,
        kind="message.delivered",
        summary=f"message {message.pk} delivered (attempt {message.attempts})",
        actor=message.sender,
        actor_user=message.sender_user,
        data={"message": message.pk},
    )
    _watch_for_confirmation(session, message, ctx=ctx, handle=handle)
    return "sent"


def _watch_for_confirmation(session: Session, message: Message, *, ctx, handle) -> None:
    snippet = _snippet(message.text)
    deadline = time.monotonic() + CONFIRM_WAIT
    while time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            pane = ctx.runtime.read_output(handle, lines=agents.PANE_LINES)
        except IntegrationError:
            return
        reading = ctx.agent.detect_activity(
            workspace=Path(session.workspace_path), pane_text=pane, now=timezone.now(), process_alive=True
        )
        if (snippet and snippet in pane) or reading.state == Activity.ACTIVE:
            _confirmed(
                session, message, how="seen in the pane" if snippet in pane else "the agent started working"
            )
            return


def _confirmed(session: Session, message: Message, *, how: str) -> None:
    updated = Message.objects.filter(pk=message.pk, state=Message.State.DELIVERED).update(
        state=Message.State.CONFIRMED, confirmed_at=timezone.now()
    )
    if updated:
        services.event_record(
            project=session.project,
            session=session,
            kind="message.confirmed",
            summary=f"message {message.pk} confirmed ({how})",
            data={"message": message.pk},
        )


def _confirm_deliveries(session: Session) -> None:
    """Confirm deliveries the agent has since acted on; retry ones it never took up."""
    now = timezone.now()
    for message in session.messages.filter(state=Message.State.DELIVERED):
        acted = session.activity == Activity.ACTIVE or (
            session.activity_at is not None
            and message.delivered_at
            and session.activity_at > message.delivered_at
        )
        if acted and session.activity != Activity.WAITING_INPUT:
            _confirmed(session, message, how="the agent's activity changed")
        elif message.delivered_at and now - message.delivered_at > CONFIRM_WINDOW:
            _delivery_failed(session, message, "not confirmed by the agent")


def _delivery_failed(session: Session, message: Message, error: str) -> None:
    final = message.attempts >= MAX_ATTEMPTS
    Message.objects.filter(pk=message.pk).update(
        state=Message.State.FAILED if final else Message.State.QUEUED, last_error=error[:2000]
    )
    services.event_record(
        project=session.project,
        session=session,
        kind="message.failed" if final else "message.retry",
        summary=(
            f"message {message.pk} failed after {message.attempts} attempts: {error}"
            if final
            else f"message {message.pk} attempt {message.attempts} failed: {error}; will retry"
        )[:500],
        data={"message": message.pk},
    )
