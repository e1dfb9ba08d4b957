"""The GitHub plugins' tests: a fake GitHub with the repository acme/widgets, its token in the
environment variable the plugins are told to read (``plugin_settings``)."""

from __future__ import annotations

import pytest

from integrations.github.pool import forget_clients
from tests.fakes.github import FakeGitHub

TOKEN_ENV = "AO_TEST_GITHUB_TOKEN"
FAST = {"backoff": 0.01, "secondary_wait": 0.05, "max_wait": 2.0, "write_interval": 0, "timeout": 5}


def plugin_settings(gh: FakeGitHub, **settings) -> dict:
    """A github plugin's settings against ``gh``'s acme/widgets, with short waits."""
    return {"repo": "acme/widgets", "base_url": gh.base_url, "token_env": TOKEN_ENV, **FAST, **settings}


@pytest.fixture
def gh(monkeypatch: pytest.MonkeyPatch):
    with FakeGitHub() as fake:
        fake.add_repo("acme/widgets")
        monkeypatch.setenv(TOKEN_ENV, fake.token)
        yield fake
    forget_clients()
