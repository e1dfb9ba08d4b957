"""The HTTP client agents use to reach ao (`ao report`, `ao pr create`): AO_URL + AO_SESSION + AO_TOKEN.

Agents get these in their environment from ao; they do not get ao's database or secrets.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

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
    try:
        return _post(base, path, body, identity=identity, timeout=timeout)
    except _Refused as refused:
        moved = _current_url()
        if not moved or moved == base:
            raise AgentClientError(f"cannot reach ao at {base}: {refused.__cause__}") from refused.__cause__
        try:  # nothing reached AO_URL: ao was restarted on another port since this agent started
            return _post(moved, path, body, identity=identity, timeout=timeout)
        except _Refused as again:
            raise AgentClientError(
                f"cannot reach ao at {base} nor at {moved} (AO_URL_FILE): {again.__cause__}"
            ) from again.__cause__


class _Refused(Exception):
    """Nothing listens at the address: the request never reached a server."""


def _current_url() -> str:
    """The address ao serves now, from AO_URL_FILE (written by ``ao start`` / ``ao web`` as they
    bind: ``ao_site.served``), or ""."""
    try:
        url = Path(os.environ.get("AO_URL_FILE", "")).read_text().strip().rstrip("/")
    except OSError:
        return ""
    return url if url.startswith(("http://", "https://")) and "\n" not in url else ""


def _post(base: str, path: str, body: dict, *, identity: dict[str, str], timeout: float) -> dict:
    request = urllib.request.Request(  # noqa: S310 - scheme checked by the caller
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
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ConnectionRefusedError):
            raise _Refused from exc
        raise AgentClientError(f"cannot reach ao at {base}: {exc}") from exc
    except ConnectionRefusedError as exc:
        raise _Refused from exc
    except (TimeoutError, OSError) as exc:  # it may have been received: never sent twice
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
