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


def test_an_agent_cli_only_in_aos_virtualenv_is_not_installed_for_agents(
    settings, tmp_path, monkeypatch
) -> None:
    """The agent's PATH leaves ao's virtualenv out, so a CLI found only there (ao run with its
    virtualenv activated) would pass ao's own look and then fail in the pane: the check looks where
    the launcher will (found by review)."""
    import os
    import shutil
    import sys
    from pathlib import Path

    from integrations.base import PermanentIntegrationError
    from integrations.registry import agents

    settings.AO_HOME = tmp_path
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    venv_only = "django-admin"  # installed with ao, in its virtualenv and nowhere else on PATH
    assert shutil.which(venv_only) and sys.prefix != sys.base_prefix
    agent = agents.create("custom", {"command": [venv_only]}, where="test")

    with pytest.raises(PermanentIntegrationError, match="'django-admin' was not found on PATH"):
        starting.agent_installed(agent)
    elsewhere = agents.create("custom", {"command": [sys.executable, "-c", "pass"]}, where="test")
    assert starting.agent_installed(elsewhere) == sys.executable
