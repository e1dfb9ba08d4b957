"""Messages into agents: queued, delivered when the agent is ready, confirmed, retried, bounded.

A message is never typed into an agent that is mid-turn, and never into a permission prompt
unless a person chose to answer it (``answers_prompt``).

``session_send`` is what a person's send does, from every interface (``ao send``, the API, the
dashboard's send form, chat): a session whose agent is not running (killed, or its runtime gone)
is restored first, in the same workspace and branch, and the message is delivered once the
restored agent is ready; a session that cannot be restored (cleaned up, its worktree gone,
errored while starting) refuses the message with the reason, and nothing is queued. Messages
queued by ao itself (reactions, the orchestrator) never restore a session a person stopped: they
wait, shown as "waiting for restore", and are delivered if it is restored; when the session is
cleaned up they fail with that reason instead of waiting forever.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from ao_site import failpoints
from ao_site.dbretry import retrying_lost_connections
from integrations.base import IntegrationError
from integrations.registry import ConfigurationError
from sessions.agents import observing, operating, plugins, spawning
from sessions.core import services
from sessions.core.services import message_queue, messages_abandon  # noqa: F401  re-exported: queueing is a write of the core
from sessions.domain.lifecycle import Activity, Phase, RuntimeState
from sessions.domain.text import clean_text
from sessions.models import Actor, Message, Session

MAX_ATTEMPTS = 5
CONFIRM_WAIT = 3.0  # seconds to watch the pane right after sending
# After this, a delivery the agent has not shown it took is settled: typed again only when the
# agent's screen has not changed at all since the keys (they went nowhere), else left
# "unconfirmed" for a person. Typing a message the agent already acted on again does the work
# twice (a commit, a PR); a missed one is on the timeline for a person to send again.
CONFIRM_WINDOW = timedelta(seconds=60)
# A claimed message whose keys were not sent within this was claimed by a deliverer that died (or
# hung) before typing it: it is queued again. Typing takes well under a second. 30 s unless
# AO_MESSAGE_CLAIM_LEASE says otherwise.
CLAIM_LEASE = timedelta(seconds=settings.AO_MESSAGE_CLAIM_LEASE)
# An agent whose readiness ao cannot read (a custom command without ready_pattern) is assumed ready
# this long after its start; one whose screen ao can read is never typed into while "unknown".
STARTUP_GRACE = timedelta(seconds=5)
NOT_RECOGNISED = (
    "the agent's screen is not recognised, so ao does not type into it: answer it in the terminal "
    "(or send with --answer-prompt)"
)
HELD_POLL = 0.3  # seconds between looks at an agent that is not ready yet
# A delivery the agent did not take while its input still holds the text (the Enter was lost) is
# retried after this, with Enter alone: the text is already there.
RESUBMIT_WINDOW = timedelta(seconds=8)
INPUT_LINES = 6  # the last non-blank lines of a screen, where an agent's input box is
PASTE_PLACEHOLDER = "[Pasted text"  # what some TUIs show in their input instead of a long paste
# After a (re)start ao waits for the agent's own empty prompt on screen (``Agent.screen_ready``);
# a screen never recognised as ready holds messages back at most this long after the agent first
# drew anything (not after the launch: a blank screen is an agent still starting, however slowly).
LAUNCH_GRACE = timedelta(seconds=60)
WAITING_FOR_RESTORE = "waiting for restore"


class SendRefused(ValueError):
    """The message cannot reach the agent: the session cannot be restored. The text says why and
    what to do instead."""


@dataclass(frozen=True)
class Sent:
    """A message accepted for an agent, and what was done to the session so it can be delivered."""

    message: Message
    restored: str = ""  # "" (it was running), "restored", or the request sent to its agent host

    @property
    def lead(self) -> str:
        """What was done first, for the start of a reply ("" when the agent was running)."""
        return f"{self.message.session_id} {self.restored} (it was not running); " if self.restored else ""

    def describe(self) -> str:
        """One line for a person: which message, to whom, and where it stands."""
        message = self.message
        return f"{self.lead}message {message.pk} to {message.session_id}: {delivery_state(message)}"


def needs_restore(session: Session) -> bool:
    """Whether the session's agent must be restored before it can take a message (pure): a person
    killed it, it errored, or its runtime is gone or its agent process exited."""
    if session.phase in (Phase.KILLED, Phase.ERRORED):
        return True
    return session.phase == Phase.RUNNING and session.runtime_state in observing.RUNTIME_GONE


def delivery_state(message: Message, session: Session | None = None) -> str:
    """Where a message stands, in words (pure; ``session`` defaults to the message's)."""
    session = session or message.session
    if message.state == Message.State.QUEUED and needs_restore(session):
        return WAITING_FOR_RESTORE
    words: dict[str, str] = {
        Message.State.QUEUED: "queued (delivered when the agent is ready)",
        Message.State.DELIVERED: "delivered",
        Message.State.CONFIRMED: "delivered and confirmed",
        Message.State.UNCONFIRMED: (
            "typed, not confirmed: the agent did not show that it took it (not typed again: "
            "look at its terminal, and send it again if it did not)"
        ),
        Message.State.FAILED: f"failed: {message.last_error}",
    }
    return words[message.state]


def session_send(
    *,
    session: Session,
    text: str,
    sender: str = Actor.USER,
    sender_user=None,
    sender_name: str = "",
    answers_prompt: bool = False,
    watch: bool = False,
) -> Sent:
    """A person's message to an agent, from any interface. Restores a session whose agent is not
    running first (the message is then delivered once the restored agent is ready); refuses with
    ``SendRefused`` (nothing queued, nothing restored) when the session cannot be restored.
    ``TextRejected`` / ``ValueError`` for a bad text, before anything else happens.

    The message is queued and delivered in the background: a request (the API, the dashboard,
    chat) is answered at once, however busy the agent. ``watch``: the caller (``ao send`` in a
    process without a worker) keeps watching a busy agent to deliver it, up to
    ``AO_INLINE_DELIVERY_WAIT``."""
    clean_text(text, max_chars=settings.AO_MAX_PROMPT_CHARS, what="message")
    if answers_prompt and sender != Actor.USER:
        raise ValueError("only a person may answer an agent's permission prompt")
    if needs_restore(session) and session.phase == Phase.RUNNING and not operating.runs_elsewhere(session):
        observing.session_observe(session=session)  # the stored state may be stale: look again
        services.session_react_after_commit(session_id=session.pk)  # the send asks about what it saw
        session.refresh_from_db()
    restored = ""
    if needs_restore(session) or session.phase == Phase.CLEANED:
        refusal = operating.restore_refusal(session)
        if refusal:
            raise SendRefused(refusal)
        try:
            requested = operating.session_restore(session=session, by=sender_user, actor=sender)
        except (spawning.SpawnRefused, IntegrationError, ConfigurationError) as exc:
            raise SendRefused(f"{session.pk} is not running and could not be restored: {exc}") from exc
        session.refresh_from_db()
        restored = str(requested) if requested is not None else "restored"
    message = message_queue(
        session=session,
        text=text,
        sender=sender,
        sender_user=sender_user,
        sender_name=sender_name,
        answers_prompt=answers_prompt,
        watch=watch,
    )
    return Sent(message=message, restored=restored)


def _snippet(text: str) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line[:30]


def screen_digest(pane: str) -> str:
    """A fingerprint of a screen (pure): the same text, trailing blanks aside, the same digest."""
    text = "\n".join(line.rstrip() for line in pane.splitlines()).strip("\n")
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


def _in_input(message: Message, pane: str) -> bool:
    """Whether the message's start (or a paste placeholder) is on the last lines of the screen,
    where the agent's input is (pure)."""
    snippet = _snippet(message.text)
    bottom = [line for line in pane.splitlines() if line.strip()][-INPUT_LINES:]
    # a long paste may show as a placeholder ("[Pasted text #1 +19 lines]" in Claude Code)
    return any((snippet and snippet in line) or PASTE_PLACEHOLDER in line for line in bottom)


def _screen_changed(message: Message, pane: str | None) -> bool | None:
    """Whether the agent's screen is not the one it showed just before the keys were typed (None
    when either screen is unknown)."""
    if pane is None or not message.screen_before:
        return None
    return screen_digest(pane) != message.screen_before


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
    """Try the oldest queued message once (an answer to a question on screen first): "sent", "held"
    (agent not ready), or "idle" (nothing to do)."""
    session = Session.objects.select_related("project").filter(pk=session_id).first()
    if session is None or session.phase != Phase.RUNNING:
        return "idle"
    observing.session_observe(session=session)
    services.session_react_after_commit(session_id=session.pk)  # the delivery asks about what it saw
    session.refresh_from_db()
    _confirm_deliveries(session)
    queued = session.messages.filter(state=Message.State.QUEUED).order_by("created_at", "pk")
    message = queued.first()
    if message is None:
        # a delivery not confirmed yet is still watched: its Enter may have to be pressed again
        return "held" if session.messages.filter(state=Message.State.DELIVERED).exists() else "idle"
    if session.activity == Activity.WAITING_INPUT and not message.answers_prompt:
        # A person's answer to the question on screen goes before what waits for the agent to be
        # ready (its task, earlier messages): those can only be typed once the question is gone.
        message = queued.filter(answers_prompt=True).first() or message
    handle = plugins.runtime_handle_for(session)
    if session.runtime_state != RuntimeState.ALIVE or handle is None:
        return "held"  # observed just now: a runtime without a handle was recorded lost
    if session.messages.filter(state=Message.State.DELIVERED).exists():
        return "held"  # one message in flight at a time: wait for it to be confirmed (or retried)
    ctx = plugins.context_for(session)
    # A retry of a message whose text still sits in the agent's input (its Enter was lost) is
    # submitted with Enter alone: typing it again would send it twice. That screen is the agent's
    # input holding ao's own text, whatever the reading (a fresh agent with no transcript yet,
    # whose prompt line holds text, reads "unknown").
    resubmit = message.delivered_at is not None and _input_holds_text(session, ctx, handle, message)
    ok, _why = ready_for(
        message,
        activity=session.activity,
        now=timezone.now(),
        started_at=session.start_claimed_at,
        recognizes_ready=ctx.agent.recognizes_ready,
    )
    if not (ok or resubmit):
        return "held"
    if not message.answers_prompt and not _launch_settled(session, ctx, handle, now=timezone.now()):
        return "held"  # the new process has not shown its own prompt (for long enough) yet
    if not message_claim(message=message):
        return "held"
    failpoints.reach("message.claimed")
    try:
        before = ctx.runtime.read_output(handle, lines=plugins.PANE_LINES)
    except IntegrationError:
        before = None  # then nothing will show the keys went nowhere: never typed again
    try:
        if resubmit:
            ctx.runtime.send_text(handle, "", clear=())
        else:
            ctx.runtime.send_text(
                handle, message.text, clear=ctx.agent.clear_input_keys, paste=ctx.agent.paste_input
            )
    except IntegrationError as exc:
        _delivery_failed(session, message, str(exc))
        return "held"
    _typed(message, screen_before=screen_digest(before) if before is not None else "")
    how = "Enter pressed again: its text was still in the agent's input" if resubmit else "delivered"
    services.event_record(
        project=session.project,
        session=session,
        kind="message.delivered",
        summary=f"message {message.pk} {how} (attempt {message.attempts})",
        actor=message.sender,
        actor_user=message.sender_user,
        data={"message": message.pk, "resubmitted": resubmit},
    )
    _watch_for_confirmation(session, message, ctx=ctx, handle=handle)
    return "sent"


def _launched_at(session: Session) -> datetime | None:
    value = (session.runtime_handle or {}).get("launched_at")
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _launch_settled(session: Session, ctx, handle, *, now) -> bool:
    """Whether the agent's current process takes input: after a launch (``launched_at`` in the
    runtime handle), only once its screen has shown its empty prompt (``Agent.screen_ready``)
    for ``input_settle_seconds``. Until then a "ready" reading may be the transcript of the
    process before a restore, or a prompt the CLI draws before it reads keys: text typed then
    showed in the input and its Enter was ignored (Claude Code, Gemini CLI).

    A screen never recognised as ready lets messages through ``LAUNCH_GRACE`` after the agent
    first drew anything, never while its screen is still blank: keys typed into a terminal the
    agent has not taken over yet are echoed by the terminal and read (or not) whenever the agent
    gets to them, and a restored Claude Code 2.1.100 given a few percent of a core took over a
    minute to draw anything: ao typed into its blank terminal.

    The moments the screen was first drawn (``drawn_at``) and the prompt first seen
    (``prompt_seen_at``) are kept in the runtime handle, so every deliverer agrees and, once
    settled, nothing more is read for this launch."""
    data = session.runtime_handle or {}
    launched = _launched_at(session)
    if launched is None or handle is None:
        return True  # started before ao recorded launches: as before
    settle = timedelta(seconds=max(0.0, float(ctx.agent.input_settle_seconds)))
    seen, drawn = data.get("prompt_seen_at"), data.get("drawn_at")
    seen_at = datetime.fromisoformat(seen) if isinstance(seen, str) else None
    drawn_at = datetime.fromisoformat(drawn) if isinstance(drawn, str) else None
    if seen_at is not None and now - seen_at >= settle:
        return True
    if drawn_at is not None and now - drawn_at > LAUNCH_GRACE:
        return True  # a screen ao never recognised: the reading alone decides, as before
    try:
        pane = ctx.runtime.read_output(handle, lines=plugins.PANE_LINES)
    except IntegrationError:
        return False
    ready = ctx.agent.screen_ready(pane)
    if ready is None:
        return True  # the plugin cannot read its screen: the reading alone decides
    if drawn_at is None and pane.strip():
        drawn_at = now
    if ready and seen_at is None:
        seen_at = now
    elif not ready:
        seen_at = None  # the prompt went away (a dialog, a redraw): start the settle again
    marks = {
        "prompt_seen_at": seen_at.isoformat() if seen_at else None,
        "drawn_at": drawn_at.isoformat() if drawn_at else None,
    }
    if marks != {"prompt_seen_at": seen, "drawn_at": drawn}:
        updated = {**data, **marks}
        Session.objects.filter(pk=session.pk, runtime_handle__launched_at=data["launched_at"]).update(
            runtime_handle=updated
        )
        session.runtime_handle = updated
    return seen_at is not None and now - seen_at >= settle


def _input_holds_text(session: Session, ctx, handle, message: Message, pane: str | None = None) -> bool:
    """Whether the agent sits at its prompt with this message's text typed in it: the agent reads
    ready, idle or unknown (no question and no working indicator on screen; a fresh agent has no
    transcript to read yet), its screen does not show its empty prompt, and the text's start (or
    a paste placeholder) is on the last lines of the screen, where the input is (False when the
    plugin cannot tell). Only then may a retry press Enter alone: anything less (a screen still
    busy, a question) would drop a message that was never typed into that input."""
    if session.activity not in (Activity.READY, Activity.IDLE, Activity.UNKNOWN) or handle is None:
        return False
    if pane is None:
        try:
            pane = ctx.runtime.read_output(handle, lines=plugins.PANE_LINES)
        except IntegrationError:
            return False
    return _in_input(message, pane) and ctx.agent.screen_ready(pane) is False


def message_claim(*, message: Message) -> bool:
    """Claim a queued message for typing; False if another deliverer has it. The state moves out
    of QUEUED in one conditional UPDATE, so two deliverers (a worker, the sweep, the CLI) never
    type the same message twice. The claim is a lease (``CLAIM_LEASE``): ``delivered_at`` stays
    empty until the keys were sent, so a claim whose deliverer died is found and undone.

    One message of a session is in flight at a time, and that is decided here too, under the
    session's row lock (PostgreSQL; SQLite's IMMEDIATE transaction holds the write lock): two
    deliverers that each saw nothing in flight must not both type, or one's clearing keys erase
    the other's text before its Enter (a message lost under load with several workers)."""
    with transaction.atomic():
        if connection.vendor != "sqlite":
            list(
                Session.objects.select_for_update().filter(pk=message.session_id).values_list("pk", flat=True)
            )
        in_flight = Message.objects.filter(session_id=message.session_id, state=Message.State.DELIVERED)
        if in_flight.exclude(pk=message.pk).exists():
            return False
        claimed = Message.objects.filter(pk=message.pk, state=Message.State.QUEUED).update(
            state=Message.State.DELIVERED,
            attempts=F("attempts") + 1,
            claimed_at=timezone.now(),
            delivered_at=None,
        )
    if claimed == 1:
        message.refresh_from_db()
    return claimed == 1


def _typed(message: Message, *, screen_before: str) -> None:
    """Record that the keys of this claim were sent: only now can the agent's activity confirm it.
    ``screen_before``: the digest of the screen read just before them ("" when unreadable)."""
    now = timezone.now()
    # The keys are out: losing this write to a dropped database connection would leave the claim
    # looking untyped, and it would be typed again when its lease runs out.
    retrying_lost_connections(
        lambda: Message.objects.filter(
            pk=message.pk, state=Message.State.DELIVERED, claimed_at=message.claimed_at
        ).update(delivered_at=now, screen_before=screen_before)
    )
    message.delivered_at, message.screen_before = now, screen_before


def taken_up(
    message: Message,
    *,
    state: str,
    at,
    weak: bool,
    pane: str | None,
    screen_ready,
    changed: bool | None = None,
) -> str:
    """How the agent shows it took this message (its keys were sent), or "" (pure).

    Evidence about the message, not just any newer reading: the agent is working; its own record
    (a transcript: not ``weak``) has an entry newer than the claim; its screen shows the text and
    an empty input again (``screen_ready``: the plugin's reading of the pane, None when it cannot
    tell, and then the text on screen is all ao can see); or its screen changed since the keys
    (``changed``) and shows its empty prompt, without the text's start in its input: the text
    left the input, whatever the agent shows of it (an agent may echo it escaped, wrapped or
    reformatted, or it scrolled away). Text sitting in the input with its Enter lost is shown on
    screen too, so the text on screen alone never confirms it.

    A question on screen read after the claim confirms a message typed at the agent's prompt
    (``ready_for`` types one only into a ready agent): the agent took it and asks about it, and
    left unconfirmed it would be typed again once the person answered. It never confirms an
    answer to a question (the next question may be the same one, still unanswered)."""
    if state == Activity.WAITING_INPUT:
        asked_after = at is not None and message.claimed_at is not None and at > message.claimed_at
        return "the agent asks a question about it" if asked_after and not message.answers_prompt else ""
    if state == Activity.ACTIVE:
        return "the agent started working"
    if not weak and at is not None and message.claimed_at is not None and at > message.claimed_at:
        return "the agent's record shows a turn after it"
    snippet = _snippet(message.text)
    if pane is not None and snippet and snippet in pane:
        if screen_ready is True:
            return "seen in the pane, its input empty again"
        if screen_ready is None:
            return "seen in the pane"
    if changed and screen_ready is True and pane is not None and not _in_input(message, pane):
        return "its screen changed and shows its empty prompt again"
    return ""


def _watch_for_confirmation(session: Session, message: Message, *, ctx, handle) -> None:
    deadline = time.monotonic() + CONFIRM_WAIT
    while time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            pane = ctx.runtime.read_output(handle, lines=plugins.PANE_LINES)
        except IntegrationError:
            return
        reading = ctx.agent.detect_activity(
            workspace=Path(session.workspace_path), pane_text=pane, now=timezone.now(), process_alive=True
        )
        how = taken_up(
            message,
            state=reading.state,
            at=reading.at,
            weak=reading.weak,
            pane=pane,
            screen_ready=ctx.agent.screen_ready(pane),
            changed=_screen_changed(message, pane),
        )
        if how:
            _confirmed(session, message, how=how)
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
    """Confirm deliveries the agent has since taken up (``taken_up``, from the session's latest
    reading, read after the keys were sent, and its screen). Retry only those shown not taken:
    after ``RESUBMIT_WINDOW`` when the text still sits in the agent's input (the retry presses
    Enter alone), after ``CONFIRM_WINDOW`` when the screen is still the one from before the keys
    (they went nowhere: typed again). Any other delivery is settled "unconfirmed" after
    ``CONFIRM_WINDOW``: never typed again on the mere lack of a confirmation (the agent may well
    have acted on it), and no longer holding back the messages after it. Queue again the claims
    whose deliverer died before typing them."""
    now = timezone.now()
    for message in session.messages.filter(state=Message.State.DELIVERED):
        if message.delivered_at is None:
            if message.claimed_at is None or now - message.claimed_at > CLAIM_LEASE:
                _claim_expired(session, message)
            continue
        if session.runtime_checked_at is None or session.runtime_checked_at < message.delivered_at:
            continue  # no reading since the keys were sent
        ctx = plugins.context_for(session)
        handle = plugins.runtime_handle_for(session)
        pane = None
        if handle is not None and session.runtime_state == RuntimeState.ALIVE:
            try:
                pane = ctx.runtime.read_output(handle, lines=plugins.PANE_LINES)
            except IntegrationError:
                pane = None
        changed = _screen_changed(message, pane)
        how = taken_up(
            message,
            state=session.activity,
            at=session.activity_at,
            weak=session.activity_weak,
            pane=pane,
            screen_ready=ctx.agent.screen_ready(pane) if pane is not None else None,
            changed=changed,
        )
        if how:
            _confirmed(session, message, how=how)
        elif (
            now - message.delivered_at > RESUBMIT_WINDOW
            and pane is not None
            and _input_holds_text(session, ctx, handle, message, pane)
        ):
            _delivery_failed(
                session, message, "its Enter was not taken: the text is still in the agent's input"
            )
        elif now - message.delivered_at > CONFIRM_WINDOW:
            if changed is False:
                _delivery_failed(
                    session, message, "the agent's screen did not change since its keys were typed"
                )
            else:
                _unconfirmed(session, message)


def _unconfirmed(session: Session, message: Message) -> None:
    """Settle a delivery the agent neither showed it took nor showed it lost: a person decides."""
    window = int(CONFIRM_WINDOW.total_seconds())
    error = (
        f"typed, but in {window} s the agent did not show that it took it, nor that it did not: "
        "not typed again (it may have acted on it); look at its terminal"
    )
    updated = Message.objects.filter(pk=message.pk, state=Message.State.DELIVERED).update(
        state=Message.State.UNCONFIRMED, last_error=error
    )
    if updated:
        services.event_record(
            project=session.project,
            session=session,
            kind="message.unconfirmed",
            summary=f"message {message.pk} not confirmed by the agent: not typed again; "
            "look at its terminal and send it again if it did not take it",
            data={"message": message.pk},
        )


def _claim_expired(session: Session, message: Message) -> None:
    """The deliverer that claimed the message stopped before typing it: queue it again (the claim
    counted as an attempt, so a message that kills its deliverer stops after MAX_ATTEMPTS)."""
    error = "its deliverer stopped before typing it"
    if message.attempts >= MAX_ATTEMPTS:
        _delivery_failed(session, message, error)
        return
    requeued = Message.objects.filter(
        pk=message.pk, state=Message.State.DELIVERED, claimed_at=message.claimed_at, delivered_at__isnull=True
    ).update(state=Message.State.QUEUED, last_error=error)
    if requeued:
        services.event_record(
            project=session.project,
            session=session,
            kind="message.retry",
            summary=f"message {message.pk} attempt {message.attempts}: {error}; queued again",
            data={"message": message.pk},
        )


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
