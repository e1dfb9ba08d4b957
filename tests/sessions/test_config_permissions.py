"""The reference system's permission values load unchanged, with ao's real agent plugins.

agent-orchestrator.yaml's default is ``permissions: permissionless`` and its docs' example is
``permissions: skip``; both mean "skip the agent's permission prompts", ao's ``skip-permissions``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from integrations.registry import registry_for
from sessions.core.config.loading import config_load
from sessions.core.config.problems import ConfigError

REFERENCE = """
defaults:
  runtime: tmux
  agent: claude-code
  workspace: worktree

projects:
  ao:
    repo: ComposioHQ/agent-orchestrator
    path: {root}/ao
    agentConfig:
      permissions: {value}
  api:
    repo: acme/api
    path: {root}/api
    agent:
      plugin: codex
      permissions: {value}
"""


def _load(tmp_path: Path, value: str, name: str = "agent-orchestrator.yaml"):
    for project in ("ao", "api"):
        (tmp_path / project).mkdir(exist_ok=True)
    path = tmp_path / name
    path.write_text(textwrap.dedent(REFERENCE.format(root=tmp_path, value=value)).lstrip(), encoding="utf-8")
    return config_load(path)


@pytest.mark.parametrize("value", ["permissionless", "skip"])
@pytest.mark.parametrize("name", ["agent-orchestrator.yaml", "ao.config.yaml"])
def test_reference_permission_values_mean_skip_permissions(tmp_path, value, name):
    config = _load(tmp_path, value, name)

    assert config.projects["ao"].settings_for("agent") == {"permissions": "skip-permissions"}
    assert config.projects["api"].settings_for("agent") == {"permissions": "skip-permissions"}
    # what the agent is launched with: the flag that skips its permission prompts
    claude = registry_for("agent").get("claude-code")
    settings = claude.Config.model_validate(config.projects["ao"].settings_for("agent"))
    argv = claude(settings).launch_command(workspace=tmp_path / "ao", prompt=None)
    assert "--dangerously-skip-permissions" in argv


def test_an_unknown_permission_value_is_still_refused(tmp_path):
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, "yolo")

    messages = [(p.path, p.message) for p in caught.value.problems]
    assert len(messages) == 2
    assert all(path.endswith("permissions") for path, _ in messages)
    assert all("'skip-permissions'" in message for _, message in messages)
