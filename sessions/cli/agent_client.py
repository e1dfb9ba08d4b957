"""The HTTP client agents use to reach ao (`ao report`, `ao pr create`): AO_URL + AO_SESSION + AO_TOKEN.

Agents get these in their environment from ao; they do not get ao's database or secrets.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

from sessions.cli.httpclient import RedirectRefused, open_url

REQUIRED = ("AO_URL", "AO_SESSION", "AO_TOKEN")


class AgentClientError(Exception):
    pass


def agent_identity() -> dict[str, str] | None:
    """The agent's AO_* variables, or None when not running inside an ao session."""
    values = {name: os.environ.get(name, "") for name in REQUIRED}
    return values if all(values.values()) else None


def post(path: str, body: dict, *, timeout: float = 30.0) -> dict:
    """POST JSON to ``/api/v1/sessions/<AO_SESSION>/<path>`` with the session token."""
    identity = agent_identity()
    if identity is None:
        missing = [name for name in REQUIRED if not os.environ.get(name)]
        raise AgentClientError(
            f"{', '.join(missing)} not set: this command is for agents started by ao, which sets them"
        )
    base = identity["AO_URL"].rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise AgentClientError(f"AO_URL must be an http(s) URL, not {identity['AO_URL']!r}")
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        f"{base}/api/v1/sessions/{identity['AO_SESSION']}/{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {identity['AO_TOKEN']}",
            "X-AO-Session": identity["AO_SESSION"],
        },
    )
    try:
        with open_url(request, timeout=timeout) as response:
            return json.loads(response.read())
    except RedirectRefused as exc:
        raise AgentClientError(f"ao at {base} was not reached: {exc}") from exc
    except urllib.error.HTTPError as exc:
        raise AgentClientError(f"ao refused the request ({exc.code}): {_error_message(exc.read())}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise AgentClientError(f"cannot reach ao at {base}: {exc}") from exc


def _error_message(body: bytes) -> str:
    """The message of ao's one JSON error shape ({"error": {"code", "message"}}) on one line;
    the start of the body when it is something else (a proxy's page)."""
    text = body[:4000].decode(errors="replace")
    try:
        message = json.loads(text)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = text[:500]
    return " ".join(str(message).split())
