"""Untrusted text handling: control characters out, sizes bounded, quoted material fenced."""

from __future__ import annotations

import re

# C0 controls except tab and newline, DEL, and C1 controls (ESC sequences, bells, OSC...).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class TextRejected(ValueError):
    """The text cannot be accepted as given (empty, too long). The message says why."""


def strip_controls(text: str, *, one_line: bool = False) -> str:
    """Text from outside (a tracker's issue, a review, a stored row) made safe to keep and to print
    on a terminal: newlines normalised to ``\\n``, every C0 and C1 control character removed but
    newline and tab (escape sequences lose their ESC/CSI/OSC and do nothing); ``one_line``: newlines
    and tabs become spaces too (a title, a label, a table cell). Standard library only: the light
    CLI (``sessions.cli``) prints through it."""
    cleaned = _CONTROL.sub("", (text or "").replace("\r\n", "\n").replace("\r", "\n"))
    return cleaned.replace("\n", " ").replace("\t", " ") if one_line else cleaned


def clean_text(text: str, *, max_chars: int, what: str = "text", allow_empty: bool = False) -> str:
    """Normalise newlines, strip control characters, and enforce the size limit."""
    cleaned = strip_controls(text)
    if not allow_empty and not cleaned.strip():
        raise TextRejected(f"{what} is empty")
    if len(cleaned) > max_chars:
        raise TextRejected(f"{what} is {len(cleaned):,} characters; the limit is {max_chars:,}")
    return cleaned


def fence(text: str, *, label: str) -> str:
    """Quote ``text`` as untrusted material inside a fence it cannot close."""
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    ticks = "`" * (longest + 1)
    return f"{ticks}{label}\n{text.rstrip()}\n{ticks}"
