"""`orchestrator` and `intake` in ao.config.yaml reach the Project row (config_apply)."""

from __future__ import annotations

import textwrap

import pytest

from sessions.core import services
from sessions.core.config.loading import config_load
from sessions.core.config.problems import ConfigError
from sessions.models import Project
from sessions.watchers import intake

pytestmark = pytest.mark.django_db

CONFIG = """
projects:
  web:
    path: {path}
    agent: claude-code
    orchestrator:
      agent: {{plugin: custom, command: [my-orchestrator, --tui]}}
      rules: Prefer small issues.
      rulesFile: ORCH.md
    orchestratorRules: Ask before spawning more than three.
    intake:
      label: ready-for-agent
      doneLabel: shipped
"""


def load(tmp_path, text):
    (tmp_path / "repo").mkdir(exist_ok=True)
    path = tmp_path / "ao.config.yaml"
    path.write_text(textwrap.dedent(text).format(path=tmp_path / "repo"))
    return config_load(path), path


def test_orchestrator_and_intake_keys_are_applied(tmp_path) -> None:
    config, path = load(tmp_path, CONFIG)
    assert [w.path for w in config.warnings] == ["projects.web.orchestrator.rulesFile"]  # ORCH.md is missing
    services.config_apply(config=config, source=path)
    web = Project.objects.get(key="web")
    assert (web.orchestrator_enabled, web.orchestrator_agent) == (True, "custom")
    assert web.orchestrator_agent_settings == {"command": ["my-orchestrator", "--tui"]}
    assert web.orchestrator_rules == "Prefer small issues.\n\nAsk before spawning more than three."
    assert web.orchestrator_rules_file == "ORCH.md"
    assert (web.intake_label, web.intake_in_progress_label, web.intake_done_label) == (
        "ready-for-agent",
        "agent:in-progress",
        "shipped",
    )
    assert web.intake_enabled is False

    # `ao intake on` survives the next apply while the config does not say
    intake.intake_set(project=web, enabled=True)
    services.config_apply(config=config, source=path)
    assert Project.objects.get(key="web").intake_enabled is True
    # ... and the config decides when it does
    config, path = load(tmp_path, CONFIG.replace("doneLabel: shipped", "enabled: false"))
    services.config_apply(config=config, source=path)
    web = Project.objects.get(key="web")
    assert (web.intake_enabled, web.intake_done_label) == (False, "agent:done")


def test_bad_orchestrator_settings_are_reported_with_their_path(tmp_path) -> None:
    text = """
    projects:
      web:
        path: {path}
        orchestrator: {{agent: nonesuch, enabled: "yes", colour: blue}}
        intake: {{label: ""}}
    """
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    paths = [p.path for p in caught.value.problems]
    assert "projects.web.orchestrator.colour" in paths
    assert "projects.web.orchestrator.enabled" in paths
    assert "projects.web.intake.label" in paths
