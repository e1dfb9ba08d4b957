"""One ``GitHubClient`` per credential in the process: every project and plugin using the same
token on the same host shares its connections, budgets and ETag cache.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

from integrations.base import PermanentIntegrationError
from integrations.github.client import DEFAULT_BASE_URL, GitHubClient

_clients: dict[tuple[str, str], GitHubClient] = {}
_clients_lock = threading.Lock()


def get_client(*, token: str, base_url: str = DEFAULT_BASE_URL, **options: Any) -> GitHubClient:
    """The process's client for (base_url, token): created on first use, shared afterwards.

    ``options`` are GitHubClient's tunables; on an existing client they update the waits and
    retries (the concurrency cap is fixed at creation).
    """
    if not token:
        raise PermanentIntegrationError("no GitHub token given")
    key = (base_url.rstrip("/").lower(), hashlib.sha256(token.encode()).hexdigest())
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = GitHubClient(
                token=token, base_url=base_url, **{k: v for k, v in options.items() if v is not None}
            )
            _clients[key] = client
            return client
    options.pop("max_concurrency", None)
    client.configure(**options)
    return client


def forget_clients() -> None:
    """Drop every shared client (tests; a token rotation)."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()


def all_clients() -> list[GitHubClient]:
    with _clients_lock:
        return list(_clients.values())
