"""Applying ao.config.yaml: `ao start` only when the file changed (admin edits survive a restart),
`ao config apply` always, and the admin's import (upload) and complete export round trip."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from ao_site import runner
from reactions.models import NotificationRoute, NotifierInstance
from sessions.models import AppliedConfig, Project

pytestmark = pytest.mark.django_db

IMPORT_URL = "/admin/agent_sessions/project/import-config/"
EXPORT_URL = "/admin/agent_sessions/project/export-config/"

CONFIG = """\
defaults:
  notifiers: [desktop]
projects:
  web:
    name: Web shop
    repo: acme/web
    path: {web}
    sessionPrefix: web
    agent: {{plugin: claude-code, model: opus}}
    agentRules: Run the tests before pushing.
    symlinks: [.env]
    postCreate: [make setup]
    maxSessions: {cap}
    sweepInterval: 60
    autoCleanupOnMerge: true
    reactions:
      ci-failed: {{retries: 3, escalateAfter: 30m}}
    orchestrator:
      enabled: false
      rules: Keep PRs small.
    intake: {{label: "agent:todo"}}
  api:
    path: {api}
    agent: codex
reactions:
  approved-and-green: {{auto: false, action: notify, priority: action}}
notifiers:
  team: {{plugin: slack, webhookUrlSecret: slack-agents}}
notificationRouting:
  urgent: [desktop, team]
  info: [team]
"""


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> None:
        self.lines.append(text)


@pytest.fixture
def cfg(tmp_path: Path, settings) -> Path:
    for name in ("web", "api"):
        (tmp_path / name).mkdir()
    path = tmp_path / "ao.config.yaml"
    path.write_text(CONFIG.format(web=tmp_path / "web", api=tmp_path / "api", cap=4))
    settings.AO_CONFIG = str(path)
    return path


def start() -> list[str]:
    """What `ao start` does with the config (ao_site.runner.config_load_and_apply)."""
    out, err = Lines(), Lines()
    runner.config_load_and_apply(out, err)
    assert err.lines == []
    return out.lines


def admin_edits() -> None:
    """What an admin changes in the admin: a project's cap and plugin settings, a notifier, a route."""
    Project.objects.filter(key="web").update(max_sessions=9, plugin_settings={"agent": {"model": "sonnet"}})
    NotifierInstance.objects.filter(name="team").update(settings={"webhook_url_secret": "slack-other"})
    NotificationRoute.objects.filter(priority="info").update(notifiers=["desktop"])


def edited_state() -> tuple:
    web = Project.objects.get(key="web")
    return (
        web.max_sessions,
        web.plugin_settings,
        NotifierInstance.objects.get(name="team").settings["webhook_url_secret"],
        NotificationRoute.objects.get(priority="info").notifiers,
    )


EDITED = (9, {"agent": {"model": "sonnet"}}, "slack-other", ["desktop"])


def test_admin_edits_survive_a_restart_with_an_unchanged_file(cfg: Path) -> None:
    first = start()
    assert first[0] == f"Config: {cfg}"
    assert any(line.strip().startswith("created project web") for line in first)
    record = AppliedConfig.objects.get(path=str(cfg.resolve()))
    assert record.applied_by == "ao start" and len(record.sha256) == 64
    admin_edits()

    again = start()

    assert len(again) == 1
    assert again[0].startswith(f"Config: {cfg} (unchanged since ")
    assert again[0].endswith("; edits made in the admin are kept)")
    assert edited_state() == EDITED


def test_a_changed_file_is_applied_at_start_and_the_file_wins(cfg: Path) -> None:
    start()
    admin_edits()
    old_hash = AppliedConfig.objects.get().sha256
    cfg.write_text(CONFIG.format(web=cfg.parent / "web", api=cfg.parent / "api", cap=5))

    lines = start()

    assert lines[0] == f"Config: {cfg}"
    assert any("updated project web" in line and "maxSessions: 9 → 5" in line for line in lines), lines
    assert edited_state() == (5, {"agent": {"model": "opus"}}, "slack-agents", ["team"])
    assert AppliedConfig.objects.get().sha256 != old_hash


def test_ao_config_apply_applies_an_unchanged_file_and_records_it(cfg: Path) -> None:
    start()
    admin_edits()

    out = io.StringIO()
    call_command("config", "apply", str(cfg), stdout=out)

    assert f"applied {cfg}" in out.getvalue()
    assert edited_state() == (4, {"agent": {"model": "opus"}}, "slack-agents", ["team"])
    assert AppliedConfig.objects.get().applied_by == "ao config apply"
    assert start()[0].startswith(f"Config: {cfg} (unchanged since ")


def snapshot() -> tuple:
    projects = sorted(
        (tuple(sorted((k, repr(v)) for k, v in row.items() if k not in ("updated_at", "created_at"))))
        for row in Project.objects.values()
    )
    notifiers = sorted(NotifierInstance.objects.values_list("name", "plugin", "settings"))
    routes = sorted(NotificationRoute.objects.values_list("priority", "notifiers"))
    return projects, notifiers, routes


def test_upload_import_of_a_bad_file_changes_nothing_and_lists_the_problems(cfg: Path, admin_client) -> None:
    call_command("config", "apply", str(cfg), stdout=io.StringIO())
    before = snapshot()
    bad = (
        f"projects:\n  web:\n    path: {cfg.parent / 'web'}\n    maxSessions: 1\n"
        f"  new:\n    path: relative/dir\n    agent: clod\n"
        "notifiers:\n  team: {plugin: slack, webhookUrlSecret: x}\n"
    )

    response = admin_client.post(
        IMPORT_URL, {"file": SimpleUploadedFile("mine.yaml", bad.encode(), "application/yaml")}
    )

    assert response.status_code == 200
    problems = response.context["problems"]
    assert any("mine.yaml:7: projects.new.agent: unknown agent plugin 'clod'" in p for p in problems), (
        problems
    )
    assert any("projects.new.path" in p and "relative" in p for p in problems), problems
    assert "unknown agent plugin" in response.content.decode()
    assert snapshot() == before


def test_export_is_a_complete_config_that_round_trips_through_upload(
    cfg: Path, admin_client, tmp_path
) -> None:
    call_command("config", "apply", str(cfg), stdout=io.StringIO())
    Project.objects.filter(key="api").update(max_sessions=2, orchestrator_agent="claude-code")
    before = snapshot()

    exported = admin_client.get(EXPORT_URL)

    assert exported.status_code == 200
    text = exported.content.decode()
    data = yaml.safe_load(text)
    assert set(data) == {"defaults", "projects", "reactions", "notifiers", "notificationRouting"}
    assert data["defaults"] == {"notifiers": ["desktop"]}
    assert data["reactions"] == {
        "approved-and-green": {"auto": False, "action": "notify", "priority": "action"}
    }
    assert data["notifiers"]["team"]["plugin"] == "slack"
    assert data["notificationRouting"] == {"info": ["team"], "urgent": ["desktop", "team"]}
    assert data["projects"]["web"]["autoCleanupOnMerge"] is True
    check_file = tmp_path / "exported" / "ao.config.yaml"
    check_file.parent.mkdir()
    check_file.write_text(text)
    out = io.StringIO()
    call_command("config", "check", str(check_file), stdout=out)
    assert "OK (2 projects)" in out.getvalue()

    # the database drifts; importing the export restores it
    Project.objects.filter(key="web").update(max_sessions=1, reactions={}, orchestrator_rules="")
    NotifierInstance.objects.filter(name="team").update(settings={"webhookUrlSecret": "x"})
    NotificationRoute.objects.filter(priority="urgent").delete()
    response = admin_client.post(
        IMPORT_URL, {"file": SimpleUploadedFile("ao.config.yaml", exported.content, "application/yaml")}
    )

    assert response.status_code == 302, response.context and response.context["problems"]
    assert snapshot() == before


def test_notifiers_and_routes_are_editable_in_the_admin_and_validated(cfg: Path, admin_client) -> None:
    call_command("config", "apply", str(cfg), stdout=io.StringIO())
    team = NotifierInstance.objects.get(name="team")
    url = f"/admin/reactions/notifierinstance/{team.pk}/change/"

    bad = admin_client.post(
        url, {"name": "team", "plugin": "slack", "settings": '{"webhookUrlSecret": "s2", "chanel": "#x"}'}
    )
    assert bad.status_code == 200 and bad.context["adminform"].form.errors
    good = admin_client.post(
        url, {"name": "team", "plugin": "slack", "settings": '{"webhookUrlSecret": "s2"}'}
    )
    assert good.status_code == 302
    assert NotifierInstance.objects.get(name="team").settings == {"webhook_url_secret": "s2"}

    route = NotificationRoute.objects.get(priority="info")
    route_url = f"/admin/reactions/notificationroute/{route.pk}/change/"
    unknown = admin_client.post(route_url, {"priority": "info", "notifiers": '["nobody"]'})
    assert unknown.status_code == 200 and "unknown notifier(s) nobody" in unknown.content.decode()
    assert admin_client.post(route_url, {"priority": "info", "notifiers": '["desktop"]'}).status_code == 302
    assert NotificationRoute.objects.get(priority="info").notifiers == ["desktop"]


def test_the_project_form_says_the_file_wins_when_it_changes(cfg: Path, admin_client) -> None:
    call_command("config", "apply", str(cfg), stdout=io.StringIO())
    web = Project.objects.get(key="web")

    page = admin_client.get(f"/admin/agent_sessions/project/{web.pk}/change/").content.decode()

    assert f"This project comes from <code>{cfg}</code>" in page
    assert "the next change of that file" in page


def test_an_inline_webhook_url_is_masked_in_the_notifier_form_and_kept_when_left_masked(admin_client) -> None:
    row = NotifierInstance.objects.create(
        name="hook", plugin="slack", settings={"webhook_url": "https://hooks.example.com/T0/secret"}
    )
    url = f"/admin/reactions/notifierinstance/{row.pk}/change/"

    page = admin_client.get(url).content.decode()
    saved = admin_client.post(
        url, {"name": "hook", "plugin": "slack", "settings": '{"webhook_url": "********"}'}
    )

    assert "hooks.example.com" not in page and "********" in page
    assert saved.status_code == 302
    assert NotifierInstance.objects.get(pk=row.pk).settings == {
        "webhook_url": "https://hooks.example.com/T0/secret"
    }
