"""The errors every plugin raises, and what a workspace setup step did: the floor of `integrations`.

Re-exported by `integrations.base` (plugins and callers keep importing them from there); kept in a
module of their own so the helpers below the slot interfaces (`gitutil`, the workspace setup
steps) can use them without importing the interfaces that use those helpers.
"""

from __future__ import annotations

from dataclasses import dataclass


class IntegrationError(Exception):
    """Base for errors raised by plugins."""


class TransientIntegrationError(IntegrationError):
    """Worth retrying: network errors, 5xx, rate limits."""


class PermanentIntegrationError(IntegrationError):
    """Not worth retrying: bad credentials, missing binary, invalid input. Record and tell a human."""


class WorkspaceRefused(PermanentIntegrationError):
    """ao will not do this to a workspace (outside the managed root, unpushed commits, dirty tree)."""


@dataclass(frozen=True)
class CommandOutput:
    """What one setup step did, for the session's timeline."""

    argv: tuple[str, ...]
    returncode: int | None  # None when it timed out or could not start
    output: str = ""  # stdout and stderr interleaved, truncated
    duration_s: float = 0.0
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0
