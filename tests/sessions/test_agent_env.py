"""Which variables ao removes from an agent's environment (the real spawn is in test_spawn_e2e)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from integrations.credentials import EnvName, env_settings
from reactions.models import NotifierInstance
from sessions.agents import plugins, starting
from tests.factories import ProjectFactory, SessionFactory

pytestmark = pytest.mark.django_db


class ThirdPartyConfig(BaseModel):
    password_var: str = EnvName("marked, any name", default="VENDOR_PASSWORD")
    api_token_env: str | None = None  # by convention
    region: str = "eu"
    broken_env: str | None = "not a name"  # not a variable name: ignored


def test_env_settings_finds_marked_and_conventional_settings() -> None:
    assert env_settings(ThirdPartyConfig(api_token_env="VENDOR_TOKEN")) == {
        "password_var": "VENDOR_PASSWORD",
        "api_token_env": "VENDOR_TOKEN",
    }


def test_every_configured_credential_variable_is_removed() -> None:
    # defaults count: the github scm reads GITHUB_TOKEN unless told otherwise
    ProjectFactory(scm="github", plugin_settings={})
    ProjectFactory(tracker="linear", plugin_settings={"tracker": {"team": "ENG", "api_key_env": "LIN_KEY"}})
    # settings that no longer validate (unknown plugin): by the naming convention
    ProjectFactory(tracker="gone-plugin", plugin_settings={"tracker": {"tokenEnv": "GONE_TOKEN"}})
    NotifierInstance.objects.create(name="chat", plugin="slack", settings={"webhook_url_env": "CHAT_URL"})
    session = SessionFactory(project=ProjectFactory(agent="claude-code"))

    env = starting.agent_environment(session, token="t" * 43, agent=plugins.context_for(session).agent)

    for name in ("GITHUB_TOKEN", "LIN_KEY", "GONE_TOKEN", "CHAT_URL", "AO_SECRET_KEY", "DATABASE_URL"):
        assert name in env and env[name] is None, name
    assert env["AO_TOKEN"] == "t" * 43
    assert "ANTHROPIC_API_KEY" not in env  # the agent's own key passes through


def test_essential_variables_are_never_removed() -> None:
    ProjectFactory(scm="github", plugin_settings={"scm": {"token_env": "HOME"}})
    session = SessionFactory(project=ProjectFactory())

    env = starting.agent_environment(session, token="x", agent=plugins.context_for(session).agent)

    assert "HOME" not in env
    assert env["PATH"]
