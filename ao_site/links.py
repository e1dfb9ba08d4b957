"""URLs that come from outside ao (checks, pull requests, issues, review threads, notifications,
agents' reports): kept only when they are plain ``http(s)://host/...`` addresses.

Anyone who can post a check run or open an issue chooses its URL; ``javascript:`` or ``data:``
would run in ao's origin when a person clicks the link. Such a URL is dropped (stored as "")
where the facts enter ao (the plugin interface's records in ``integrations/base.py``, the API's
serializers), and every template renders an outside URL through the ``safe_url`` filter
(``sessions/templatetags/ao_links.py``), which applies the same rule to what was stored before.
"""

from __future__ import annotations

from urllib.parse import urlsplit

SCHEMES = ("http", "https")


def http_url(value: object) -> str:
    """``value`` (stripped) if it is an absolute http(s) URL with a host, else ""."""
    text = str(value or "").strip()
    # Browsers drop tabs and newlines inside a URL ("java\tscript:") and read "\" as "/".
    if not text or "\\" in text or any(ord(char) < 0x21 or ord(char) == 0x7F for char in text):
        return ""
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError:  # an unbalanced IPv6 bracket
        return ""
    if (
        parts.scheme.lower() not in SCHEMES
        or not host
        or not text.lower().startswith(f"{parts.scheme.lower()}://")
    ):
        return ""
    return text


def host_of(url: str) -> str:
    """The host (and port) of a URL: safe to show, unlike its path and query."""
    try:
        parts = urlsplit(url)
        return parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else "?"
    except ValueError:
        return "?"
