"""Settings that run programs or name places on the ao host are superusers' only
(``sessions.core.host_settings``): declared in every plugin's settings model, refused to a project admin
in the admin and in a config applied by a person, allowed to a superuser and to the host's CLI."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from pydantic import BaseModel
from rest_framework.test import APIClient

from integrations.base import HOST_LIKE_NAME, host_marker, host_settings
from integrations.registry import REGISTRIES
from sessions.core import services
from sessions.core.config.loading import config_load_text
from sessions.core.host_settings import HostSettingRefused, host_settings_guard, project_state
from sessions.models import AuditEntry, Project
from tests.api.test_admin_audit import _change_page_data

pytestmark = pytest.mark.django_db


# --- the declaration: every plugin's settings model ------------------------------------------------
def test_every_plugin_setting_that_looks_like_a_host_setting_is_declared(builtin_plugins_only) -> None:
    undeclared = [
        f"{slot}.{key}.{name}"
        for slot, registry in REGISTRIES.items()
        for key in registry.keys()
        for name, info in registry.get(key).Config.model_fields.items()
        if HOST_LIKE_NAME.search(name) and host_marker(info) is None
    ]
    assert undeclared == []


def test_the_settings_that_run_programs_are_host_settings(builtin_plugins_only) -> None:
    def of(slot: str, key: str) -> set[str]:
        return set(host_settings(REGISTRIES[slot].get(key).Config))

    for key in ("claude-code", "codex", "aider", "gemini", "opencode"):
        assert {"binary", "extra_args", "home", "permissions"} <= of("agent", key), key
    assert {"command", "extra_args", "prompt_flag"} <= of("agent", "custom")
    assert {"check_command", "remote"} <= of("scm", "local")
    assert {"binary"} <= of("notifier", "desktop")
    assert {"socket_name"} <= of("runtime", "tmux")
    assert "check_name" not in of("scm", "local") and "model" not in of("agent", "claude-code")


def test_an_undeclared_look_alike_counts_as_a_host_setting() -> None:
    class ThirdParty(BaseModel):  # a plugin that forgot the marker fails closed
        launcher: str = ""
        pre_hook: str = ""
        greeting: str = ""

    assert host_settings(ThirdParty) == ("pre_hook",)


# --- the admin ------------------------------------------------------------------------------------
@pytest.fixture
def staff_admin(world):
    user = world.users["admin"]
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    Project.objects.filter(pk=world.project.pk).update(
        agent="claude-code", plugin_settings={"agent": {"model": "opus"}}, orchestrator_agent=""
    )
    return user


HOST_EDITS = [
    pytest.param(
        {"agent": "custom", "plugin_settings": {"agent": {"command": ["sh", "-c", "id"]}}}, id="custom"
    ),
    pytest.param({"plugin_settings": {"agent": {"model": "opus", "binary": "/tmp/evil"}}}, id="binary"),
    pytest.param({"plugin_settings": {"agent": {"model": "opus", "extra_args": ["--x"]}}}, id="extra-args"),
    pytest.param({"plugin_settings": {"agent": {"model": "opus", "home": "/tmp/h"}}}, id="home"),
    pytest.param(
        {"plugin_settings": {"agent": {"model": "opus", "permissions": "skip-permissions"}}}, id="permissions"
    ),
    pytest.param(
        {"plugin_settings": {"agent": {"model": "opus"}, "runtime": {"socket_name": "x"}}}, id="tmux"
    ),
    pytest.param(
        {"orchestrator_agent": "custom", "orchestrator_agent_settings": {"command": ["sh", "-c", "id"]}},
        id="orchestrator-custom",
    ),
    pytest.param(
        {"orchestrator_agent": "claude-code", "orchestrator_agent_settings": {"binary": "/tmp/evil"}},
        id="orchestrator-binary",
    ),
]


def _post(client, project, edits: dict):
    url = reverse("admin:agent_sessions_project_change", args=[project.pk])
    data = _change_page_data(client.get(url))
    for field, value in edits.items():
        data[field] = json.dumps(value) if isinstance(value, dict) else value
    return client.post(url, data)


@pytest.mark.parametrize("edits", HOST_EDITS)
def test_a_project_admin_cannot_change_a_host_setting_in_the_admin(client, world, staff_admin, edits) -> None:
    project = world.project
    before = Project.objects.values(
        "agent", "plugin_settings", "orchestrator_agent", "orchestrator_agent_settings"
    )
    stored = before.get(pk=project.pk)
    client.force_login(staff_admin)

    refused = _post(client, project, edits)

    assert refused.status_code == 200
    assert "only a superuser may change" in str(refused.context["adminform"].form.errors)
    assert before.get(pk=project.pk) == stored
    assert not AuditEntry.objects.filter(action="project.change").exists()


@pytest.mark.parametrize("edits", HOST_EDITS)
def test_a_superuser_changes_host_settings_in_the_admin(client, world, staff_admin, edits) -> None:
    project = world.project
    client.force_login(world.users["root"])

    saved = _post(client, project, edits)

    assert saved.status_code == 302, saved.context and saved.context["adminform"].form.errors
    project.refresh_from_db()
    for field, value in edits.items():
        assert getattr(project, field) == value


def test_a_project_admin_still_changes_what_runs_nothing(client, world, staff_admin) -> None:
    client.force_login(staff_admin)

    saved = _post(
        client,
        world.project,
        {"agent": "aider", "plugin_settings": {"agent": {"model": "sonnet"}}, "max_sessions": "2"},
    )

    assert saved.status_code == 302, saved.context and saved.context["adminform"].form.errors
    project = Project.objects.get(pk=world.project.pk)
    assert (project.agent, project.plugin_settings, project.max_sessions) == (
        "aider",
        {"agent": {"model": "sonnet"}},
        2,
    )


# --- a config applied by a person -------------------------------------------------------------------
CONFIG = """
projects:
  web:
    path: {path}
    sessionPrefix: web
    scm: apitest
    agent:
      plugin: custom
      command: [sh, -c, id]
"""


def test_a_config_applied_by_a_project_admin_cannot_change_a_host_setting(
    world, staff_admin, tmp_path
) -> None:
    config = config_load_text(CONFIG.format(path=tmp_path).encode(), name="ao.config.yaml")
    stored = Project.objects.values("agent", "plugin_settings").get(pk=world.project.pk)

    with pytest.raises(HostSettingRefused, match=r"plugin_settings\.agent\.command"):
        services.config_apply(config=config, source="uploaded ao.config.yaml", by=staff_admin)

    assert Project.objects.values("agent", "plugin_settings").get(pk=world.project.pk) == stored


@pytest.mark.parametrize("by", ["root", None])
def test_a_config_applied_by_a_superuser_or_the_host_changes_host_settings(
    world, staff_admin, by, tmp_path
) -> None:
    config = config_load_text(CONFIG.format(path=tmp_path).encode(), name="ao.config.yaml")

    services.config_apply(config=config, source="uploaded ao.config.yaml", by=world.users[by] if by else None)

    project = Project.objects.get(pk=world.project.pk)
    assert (project.agent, project.plugin_settings["agent"]["command"]) == ("custom", ["sh", "-c", "id"])


# --- the API has no way to edit settings ------------------------------------------------------------
@pytest.mark.parametrize("method", ["put", "patch", "post", "delete"])
@pytest.mark.parametrize("path", ["/api/v1/projects/web/", "/api/v1/projects/web/reactions"])
def test_the_api_edits_no_project_settings(world, staff_admin, method, path) -> None:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {world.tokens['admin']}")
    stored = Project.objects.values().get(pk=world.project.pk)

    answer = getattr(api, method)(
        path,
        {
            "agent": "custom",
            "plugin_settings": {"agent": {"command": ["id"]}},
            "repo": "acme/private",
            "default_branch": "--output=/tmp/x",
        },
        format="json",
    )

    assert answer.status_code == 405
    assert Project.objects.values().get(pk=world.project.pk) == stored


# --- settings that do not validate prove nothing (two saves were one host setting) -----------------
@pytest.mark.parametrize(
    ("orchestrator_agent", "evil"),
    [
        pytest.param("claude-code", {"binary": "/tmp/evil"}, id="binary"),
        pytest.param("custom", {"command": ["sh", "-c", "id > /tmp/pwned"]}, id="custom-command"),
    ],
)
def test_a_project_admin_cannot_set_the_orchestrators_host_settings_in_two_saves(
    client, world, staff_admin, orchestrator_agent, evil
) -> None:
    Project.objects.filter(pk=world.project.pk).update(
        orchestrator_agent="claude-code", orchestrator_agent_settings={}
    )
    client.force_login(staff_admin)

    # first save: the setting plus one that does not validate; second save: without it
    first = _post(
        client,
        world.project,
        {
            "orchestrator_agent": orchestrator_agent,
            "orchestrator_agent_settings": {**evil, "not_a_setting": 1},
        },
    )
    second = _post(
        client, world.project, {"orchestrator_agent": orchestrator_agent, "orchestrator_agent_settings": evil}
    )

    for refused in (first, second):
        assert refused.status_code == 200
        assert "only a superuser may change" in str(refused.context["adminform"].form.errors)
    project = Project.objects.get(pk=world.project.pk)
    assert (project.orchestrator_agent, project.orchestrator_agent_settings) == ("claude-code", {})


# Stored settings that do not validate (from an older ao, a removed plugin version, a bug): the
# project admin's valid version of them is compared with the plugin's defaults, not with them.
STORED_INVALID = [
    pytest.param(
        {"plugin_settings": {"agent": {"model": "opus", "binary": "/tmp/evil", "not_a_setting": 1}}},
        {"plugin_settings": {"agent": {"model": "opus", "binary": "/tmp/evil"}}},
        id="agent",
    ),
    pytest.param(
        {"plugin_settings": {"agent": {"model": "opus"}, "runtime": {"socket_name": "evil", "x": 1}}},
        {"plugin_settings": {"agent": {"model": "opus"}, "runtime": {"socket_name": "evil"}}},
        id="runtime",
    ),
    pytest.param(
        {"orchestrator_agent": "custom", "orchestrator_agent_settings": {"command": ["id"], "x": 1}},
        {"orchestrator_agent": "custom", "orchestrator_agent_settings": {"command": ["id"]}},
        id="orchestrator",
    ),
    pytest.param(
        # orchestrator settings stored without an orchestrator agent ran nothing: the project's agent ran
        {"orchestrator_agent": "", "orchestrator_agent_settings": {"binary": "/tmp/evil"}},
        {"orchestrator_agent": "claude-code", "orchestrator_agent_settings": {"binary": "/tmp/evil"}},
        id="orchestrator-without-agent",
    ),
]


@pytest.mark.parametrize(("stored", "proposed"), STORED_INVALID)
def test_a_project_admin_cannot_make_stored_invalid_host_settings_valid(
    client, world, staff_admin, stored, proposed
) -> None:
    Project.objects.filter(pk=world.project.pk).update(**stored)
    client.force_login(staff_admin)

    refused = _post(client, world.project, proposed)

    assert refused.status_code == 200
    assert "only a superuser may change" in str(refused.context["adminform"].form.errors)
    assert Project.objects.values(*stored).get(pk=world.project.pk) == stored


@pytest.mark.parametrize(("stored", "proposed"), STORED_INVALID)
def test_the_guard_compares_stored_invalid_settings_as_defaults(world, staff_admin, stored, proposed) -> None:
    Project.objects.filter(pk=world.project.pk).update(**stored)
    project = Project.objects.get(pk=world.project.pk)

    with pytest.raises(HostSettingRefused):
        host_settings_guard(user=staff_admin, before=project, after={**project_state(project), **proposed})
    # a superuser may
    assert host_settings_guard(
        user=world.users["root"], before=project, after={**project_state(project), **proposed}
    )


def test_a_project_admin_may_clear_stored_invalid_settings(client, world, staff_admin) -> None:
    Project.objects.filter(pk=world.project.pk).update(
        orchestrator_agent="claude-code", orchestrator_agent_settings={"model": "opus", "not_a_setting": 1}
    )
    client.force_login(staff_admin)

    saved = _post(client, world.project, {"orchestrator_agent_settings": {"model": "opus"}})

    assert saved.status_code == 302, saved.context and saved.context["adminform"].form.errors
    assert Project.objects.get(pk=world.project.pk).orchestrator_agent_settings == {"model": "opus"}


@pytest.mark.parametrize(
    ("edits", "field"),
    [
        pytest.param(
            {"orchestrator_agent": "claude-code", "orchestrator_agent_settings": {"not_a_setting": 1}},
            "orchestrator_agent_settings",
            id="unknown-setting",
        ),
        pytest.param(
            {"orchestrator_agent": "no-such-agent", "orchestrator_agent_settings": {}},
            "orchestrator_agent",
            id="unknown-agent",
        ),
        pytest.param(
            {"orchestrator_agent": "", "orchestrator_agent_settings": {"model": "opus"}},
            "orchestrator_agent_settings",
            id="settings-without-agent",
        ),
    ],
)
def test_the_admin_validates_the_orchestrators_agent_settings(
    client, world, staff_admin, edits, field
) -> None:
    client.force_login(world.users["root"])  # whoever edits: these are not settings any plugin takes

    refused = _post(client, world.project, edits)

    assert refused.status_code == 200
    assert field in refused.context["adminform"].form.errors
    assert Project.objects.get(pk=world.project.pk).orchestrator_agent == ""
