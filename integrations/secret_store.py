"""Where plugins read a stored secret's value: ao's core hands its reader down when the app is
ready (sessions/apps.py). The store itself (the Secret model, sessions/core/secrets.py) sits above
the plugins, so no plugin imports it. A module of its own, so that handing the reader down loads
nothing else (a CLI command that reads no credential does not load the plugins' settings models)."""

from __future__ import annotations

from collections.abc import Callable

_secret_reader: Callable[[str], str] | None = None


def use_secret_store(reader: Callable[[str], str]) -> None:
    global _secret_reader
    _secret_reader = reader


def read_secret(name: str) -> str:
    """The stored secret ``name``'s value; SecretMissing or SecretUnreadable from the store."""
    if _secret_reader is None:
        raise RuntimeError("no secret store: the agent_sessions app is not ready")
    return _secret_reader(name)
