"""Untrusted text handling: control characters out, sizes bounded, quoted material fenced."""

from __future__ import annotations

import re

# C0 controls except tab and newline, DEL, and C1 controls (ESC sequences, bells, OSC...).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class TextRejected(ValueError):
    """The text cannot be accepted as given (empty, too long). The message says why."""


def clean_text(text: str, *, max_chars: int, what: str = "text", allow_empty: bool = False) -> str:
    """Normalise newlines, strip control characters, and enforce the size limit."""
    cleaned = _CONTROL.sub("", (text or "").replace("\r\n", "\n").replace("\r", "\n"))
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
