"""A logging filter that keeps tokens and secrets out of every log line."""

from __future__ import annotations

import logging
import re

_PATTERNS = [
    re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"),
    re.compile(r"\b(xox[abposr]-[A-Za-z0-9-]{10,})"),
    re.compile(r"\b(lin_(?:api|oauth)_[A-Za-z0-9]{20,})"),
    re.compile(r"\b(sk-[A-Za-z0-9_-]{20,})"),
    re.compile(r"\b(AIza[A-Za-z0-9_-]{30,})"),  # Google (Gemini) API keys
    re.compile(r"(?i)\b(?:bearer|token)\s+([A-Za-z0-9._~+/=-]{16,})"),
    re.compile(r"(?i)[?&](?:token|access_token|secret|key)=([^&\s]+)"),
    re.compile(r"https://hooks\.slack\.com/services/([A-Za-z0-9/]+)"),
    re.compile(r"\b(\d{6,12}:[A-Za-z0-9_-]{30,})"),  # Telegram bot tokens
]


def redact(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(0).replace(m.group(1), "[redacted]"), text)
    return text


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
