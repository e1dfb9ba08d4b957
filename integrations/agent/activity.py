"""What an agent is doing: the activity states, the terminal heuristics (the last non-empty lines
of the pane: a question, a working indicator, an input prompt) and how a transcript's reading and
the pane's combine into the one ``detect_activity`` returns. The transcript is read first (see
``claude_code`` and ``codex``, and ``transcripts``); the terminal is the fallback.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from integrations.agent.transcripts import one_line, parse_timestamp
from integrations.records import ActivityReading

# sessions.domain.lifecycle.Activity values; plain strings so this module needs no Django import.
ACTIVE = "active"
READY = "ready"
IDLE = "idle"
WAITING_INPUT = "waiting_input"
BLOCKED = "blocked"
EXITED = "exited"
UNKNOWN = "unknown"


# --- terminal heuristics -------------------------------------------------------------------------
ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def last_lines(pane_text: str, count: int = 12) -> list[str]:
    """The last ``count`` non-empty lines of a pane capture, escape sequences removed."""
    text = ANSI_RE.sub("", pane_text or "").replace("\r", "")
    lines = [line.rstrip() for line in text.split("\n")]
    return [line for line in lines if line.strip()][-count:]


# Frame characters TUIs draw around dialogs and input boxes (gemini "│ ... │", opencode "┃").
_FRAME = "│┃║|╭╮╰╯╹╻"


def unboxed(line: str) -> str:
    """``line`` without the frame characters and blanks around it: "│ Allow x? │" -> "Allow x?"."""
    return line.strip().strip(_FRAME).strip().strip(_FRAME).strip()


def _compile(patterns: Iterable[str]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, re.IGNORECASE | re.MULTILINE) for p in patterns)


# Questions an agent asks a person: permissions, trust, API keys, start-up consent. Typing a
# message into one of these would answer it, so they always read as waiting_input.
WAITING_PATTERNS = _compile(
    [
        r"\bDo you want to (proceed|make this edit|create|allow|run|use this API key)\b",
        r"\bDo you want to\b.*\?",
        # aider's confirmations; once answered the line ends with the answer ("[Yes]: n").
        r"\(Y\)es/\(N\)o[^\[]*(\[\w+\])?:?\s*$",
        r"\[y/N\]|\[Y/n\]|\(y/n\)|\[yes/no\]",
        r"^\W*Allow\b.*\?\s*$",
        r"\bAllow (once|always|for this session)\b",
        r"\bYes, allow\b",
        r"\bWould you like to (run|make|apply|proceed)\b",
        r"\bDo you trust the (files|contents|folder|authors)\b",
        r"\bDo you trust this (folder|directory|workspace)\b",
        r"\bone you trust\b",
        r"\btrust (this|the) (folder|directory|workspace)\?",
        r"\bBypass Permissions mode\b",
        r"\bYes, I accept\b",
        r"\bAPI key\b.*[?:]\s*$",
        r"\bSelect login method\b",
        r"\bPress Enter to (continue|retry)\b",
        r"^\s*[❯›>●]\s*1\.\s+(Yes|Allow|Approve|Trust)\b",
        # Dialog footers and sign-in screens seen in the real CLIs (see docs/AGENTS.md).
        r"\benter (to )?confirm\b",  # claude "Enter to confirm", codex "Press enter to confirm", opencode
        r"\(Use Enter to select\)",  # gemini selection dialogs
        r"\bHow would you like to authenticate\b",  # gemini sign-in
        r"\bSign in with (ChatGPT|Google|Device Code)\b",  # codex / gemini sign-in
        r"\bPermission required\b",  # opencode
        r"\bTab to amend\b",  # claude permission dialog footer
    ]
)
ACTIVE_PATTERNS = _compile(
    [
        r"\besc to interrupt\b",
        r"\(esc to cancel\b",  # gemini "⠋ Thinking... (esc to cancel, 4s)"; dialogs say "Esc to cancel" bare
        r"\bctrl\+c to (interrupt|cancel)\b",
        r"^\s*[✻✶✳✢✽·*⏺◐◓◑◒⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]\s+\w[\w ]*…",
        r"^\s*[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]\s",
        r"\bWorking \(\d",
        r"\bWaiting for (the )?(LLM|model|response)\b",
    ]
)
# A bare input prompt: ">", "> " with a placeholder inside a box, "aider>", "architect>", a chevron.
READY_PATTERNS = _compile(
    [
        r"^\s*[│|]?\s*[>❯›]\s*[│|]?\s*$",
        r"^\s*[│|]\s*[>❯›]\s.*[│|]\s*$",
        r"^\s*[\w-]*>\s*$",
    ]
)


@dataclass(frozen=True)
class PanePatterns:
    waiting: tuple[re.Pattern[str], ...] = WAITING_PATTERNS
    active: tuple[re.Pattern[str], ...] = ACTIVE_PATTERNS
    ready: tuple[re.Pattern[str], ...] = READY_PATTERNS
    waiting_lines: int = 12  # a question this close to the bottom is the one on screen
    active_lines: int = 8
    ready_lines: int = 6

    def extended(
        self, *, waiting: Sequence[str] = (), active: Sequence[str] = (), ready: Sequence[str] = ()
    ) -> PanePatterns:
        return replace(
            self,
            waiting=self.waiting + _compile(waiting),
            active=self.active + _compile(active),
            ready=self.ready + _compile(ready),
        )


DEFAULT_PANE_PATTERNS = PanePatterns()


def _matches(patterns: Sequence[re.Pattern[str]], line: str) -> bool:
    """Whether a pattern matches ``line`` as drawn or with its dialog frame removed."""
    bare = unboxed(line)
    return any(pattern.search(line) or pattern.search(bare) for pattern in patterns)


def _last_match(
    patterns: Sequence[re.Pattern[str]],
    lines: Sequence[str],
    window: int,
    unless: Sequence[re.Pattern[str]] = (),
) -> int | None:
    """Index (into ``lines``) of the lowest line within the last ``window`` lines matching a
    pattern (and none of ``unless``)."""
    for index in range(len(lines) - 1, max(len(lines) - window, 0) - 1, -1):
        if _matches(patterns, lines[index]) and not (unless and _matches(unless, lines[index])):
            return index
    return None


def terminal_reading(
    pane_text: str, *, now: datetime, patterns: PanePatterns = DEFAULT_PANE_PATTERNS
) -> ActivityReading | None:
    """Read the bottom of the pane: a question -> waiting_input, a spinner -> active, a prompt -> ready.

    A question counts only when neither an input prompt nor a working indicator is drawn below
    it (an answered question that scrolled up is not pending). Readings are weak and stamped
    ``now``; None when the pane says nothing recognisable.
    """
    reading = _screen_reading(pane_text, patterns)  # the same screen reads the same (cached)
    return replace(reading, at=now) if reading is not None else None


@functools.lru_cache(maxsize=512)
def _screen_reading(pane_text: str, patterns: PanePatterns) -> ActivityReading | None:
    now = None  # stamped by terminal_reading
    lines = last_lines(pane_text, max(patterns.waiting_lines, patterns.active_lines, patterns.ready_lines))
    if not lines:
        return None
    question = _last_match(patterns.waiting, lines, patterns.waiting_lines)
    prompt = _last_match(patterns.ready, lines, patterns.ready_lines)
    # A dialog's own footer ("Enter to confirm · Esc to cancel") is not a working indicator.
    working = _last_match(patterns.active, lines, patterns.active_lines, unless=patterns.waiting)
    if (
        question is not None
        and (prompt is None or prompt < question)
        and (working is None or working < question)
    ):
        # Name the question itself rather than its "1. Yes" option or its footer: the lowest
        # matching line that asks something, else the first matching line of the dialog.
        start = max(len(lines) - patterns.waiting_lines, 0)
        candidates = [
            unboxed(line) for line in lines[start : question + 1] if _matches(patterns.waiting, line)
        ]
        asked = next((line for line in reversed(candidates) if "?" in line), candidates[0])
        return ActivityReading(
            state=WAITING_INPUT,
            at=now,
            weak=True,
            summary=one_line(asked),
            source="terminal",
            evidence="question on screen",
        )
    if working is not None:
        return ActivityReading(
            state=ACTIVE,
            at=now,
            weak=True,
            summary=one_line(lines[working]),
            source="terminal",
            evidence="working indicator",
        )
    if prompt is not None:
        return ActivityReading(state=READY, at=now, weak=True, source="terminal", evidence="input prompt")
    return None


# --- combining evidence ---------------------------------------------------------------------------
def exited_reading(now: datetime) -> ActivityReading:
    return ActivityReading(state=EXITED, at=now, source="process", evidence="agent process is not running")


def with_totals(reading: ActivityReading, native: ActivityReading, *, summary: str) -> ActivityReading:
    """``reading`` keeping the transcript's token and cost totals and conversation id."""
    return replace(
        reading,
        summary=summary,
        tokens_in=native.tokens_in,
        tokens_out=native.tokens_out,
        cost_usd=native.cost_usd,
        conversation_id=native.conversation_id,
    )


def combine(
    native: ActivityReading | None, pane: ActivityReading | None, *, now: datetime
) -> ActivityReading:
    """The agent's transcript decides, except that a question on screen always wins, and a
    working indicator on screen turns a finished-looking turn back into active.

    Transcripts do not record pending permission or trust dialogs: while one is open the last
    entry is a tool call (active) or nothing at all, so the pane's waiting_input takes over,
    keeping the transcript's totals and conversation id.
    """
    if pane is not None and pane.state == WAITING_INPUT:
        if native is None:
            return pane
        return with_totals(pane, native, summary=pane.summary or native.summary)
    if native is not None:
        if pane is not None and pane.state == ACTIVE and native.state in (READY, IDLE):
            # The turn looked finished (or a reply had no stop reason yet) but the agent is
            # drawing its working indicator: it is streaming the next step.
            return replace(native, state=ACTIVE, at=now, weak=True, source="terminal", evidence=pane.evidence)
        return native
    if pane is not None:
        return pane
    return ActivityReading(
        state=UNKNOWN, at=None, weak=True, source="terminal", evidence="nothing recognisable"
    )


def age_state(finished_at: datetime | None, now: datetime, ready_window: float) -> str:
    """ready within ``ready_window`` seconds of a finished turn, idle after."""
    if finished_at is None:
        return IDLE
    return READY if (now - finished_at).total_seconds() < ready_window else IDLE


def time_of(entry: dict[str, Any], fallback: datetime | None) -> datetime | None:
    return parse_timestamp(entry.get("timestamp")) or fallback


def decide(
    native: ActivityReading | None, pane: ActivityReading | None, *, now: datetime, process_alive: bool
) -> ActivityReading:
    """The reading ``detect_activity`` returns: exited when the process is gone, else ``combine``.

    An exited reading keeps the transcript's totals and conversation id, so the conversation
    can be resumed and its cost is not lost.
    """
    if not process_alive:
        reading = exited_reading(now)
        if native is not None:
            reading = with_totals(reading, native, summary=native.summary)
        return reading
    return combine(native, pane, now=now)
