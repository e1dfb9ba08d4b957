"""What a call through ``GitHubClient`` ends in: an answer (``GitHubResponse``, ``GraphQLResult``)
or one of these errors. The SCM and tracker plugins catch the errors by class; none carries the
token (only the client's log lines name it, by ``token_fingerprint``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from integrations.base import PermanentIntegrationError, TransientIntegrationError


# --- errors --------------------------------------------------------------------------------------
class GitHubError(PermanentIntegrationError):
    """GitHub answered with an error that retrying will not fix."""

    def __init__(self, message: str, *, status: int = 0, gh_message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.gh_message = gh_message


class GitHubAuthError(GitHubError):
    """401, or a 403 that is not a rate limit: the token is wrong, expired or lacks access."""


class GitHubNotFound(GitHubError):
    """404 (GitHub also answers 404 for private things the token cannot see)."""


class GitHubRateLimited(TransientIntegrationError):
    """The budget is gone (or a secondary limit asked to wait longer than we will)."""

    def __init__(self, message: str, *, until: float) -> None:
        super().__init__(message)
        self.until = until


# --- results -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GitHubResponse:
    status: int
    headers: Mapping[str, str]
    data: Any
    not_modified: bool = False  # True: a 304, ``data`` is the cached body


@dataclass(frozen=True)
class GraphQLResult:
    data: dict[str, Any]
    errors: tuple[dict[str, Any], ...] = ()
    cost: int | None = None
