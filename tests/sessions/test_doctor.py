"""`ao doctor`: every check says what is wrong and how to fix it."""

from __future__ import annotations

import json
import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from reactions.models import NotifierInstance
from sessions.core import secrets
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def doctor(*args: str) -> tuple[dict, bool]:
    out = StringIO()
    try:
        call_command("doctor", "--json", *args, stdout=out)
        failed = False
    except CommandError:
        failed = True
    return json.loads(out.getvalue()), failed


def by_name(report: dict) -> dict:
    return {check["name"]: check for check in report["checks"]}


@pytest.fixture
def bin_without_tmux(tmp_path, monkeypatch) -> Path:
    """A PATH with git (and python) but no tmux and no agent CLIs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("git",):
        (bin_dir / name).symlink_to(shutil.which(name))
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ao.config.yaml"
    path.write_text(text)
    return path


def test_missing_config_fails_and_says_to_run_init(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report, failed = doctor("--path", str(tmp_path))
    checks = by_name(report)
    assert failed and report["ok"] is False
    assert checks["config"]["ok"] is False
    assert "ao init" in checks["config"]["fix"]
    assert checks["git"]["ok"] and checks["database"]["ok"]
    assert checks["database"]["detail"].startswith("sqlite")


def test_valid_config_and_missing_tmux_is_only_a_warning(tmp_path, bin_without_tmux):
    repo = tmp_path / "repo"
    repo.mkdir()
    write_config(tmp_path, f"projects:\n  web:\n    path: {repo}\n    agent: claude-code\n")
    report, failed = doctor("--path", str(tmp_path))
    checks = by_name(report)
    assert not failed, report
    assert checks["config"]["ok"]
    assert checks["tmux"]["ok"] is False and checks["tmux"]["required"] is False
    assert "apt install tmux" in checks["tmux"]["fix"]
    claude = checks["agent claude-code"]
    assert claude["ok"] is False and "npm install" in claude["fix"]


def test_broken_config_names_file_line_and_key(tmp_path):
    write_config(tmp_path, "projects:\n  web:\n    path: /nonexistent/ao-doctor\n    agent: clod\n")
    report, failed = doctor("--path", str(tmp_path))
    config = by_name(report)["config"]
    assert failed and config["ok"] is False
    assert "ao.config.yaml:4" in config["detail"] and "projects.web.agent" in config["detail"]
    assert "clod" in config["detail"]


def test_scm_trouble_is_reported_with_a_fix(tmp_path):
    ProjectFactory(key="web", scm="github", pr_sync_failures=3, pr_sync_error="GitHub 502")
    ProjectFactory(key="api", scm="github", scm_rate={"limit": 5000, "remaining": 0, "exhausted": True,
                                                      "reset_at": "2026-11-25T13:00:00+00:00"})  # fmt: skip
    report, _ = doctor("--path", str(tmp_path))
    checks = by_name(report)
    assert "3 failed syncs in a row (GitHub 502)" in checks["scm web"]["detail"]
    assert "rate limit exhausted until 2026-11-25T13:00" in checks["scm api"]["detail"]
    assert checks["scm api"]["fix"]


def test_human_output_marks_and_fixes(tmp_path, capsys):
    out = StringIO()
    with pytest.raises(CommandError, match="check\\(s\\) failed: config"):
        call_command("doctor", "--path", str(tmp_path), stdout=out)
    text = out.getvalue()
    assert "FAIL config:" in text and "fix: run `ao init`" in text
    assert any(line.startswith("ok   git:") for line in text.splitlines())


def test_named_secrets_are_checked_by_name_without_showing_values(tmp_path):
    secrets.secret_set(name="github-prod", value="ghp_" + "v4lue" * 7)
    ProjectFactory(
        key="web",
        scm="github",
        plugin_settings={"scm": {"token_secret": "github-prod", "webhook_secret": "web-hook"}},
    )
    NotifierInstance.objects.create(
        name="team", plugin="slack", settings={"webhook_url_secret": "slack-team"}
    )

    report, failed = doctor("--path", str(tmp_path))

    checks = by_name(report)
    assert checks["secret github-prod"]["ok"]
    assert "(used by projects.web.scm.token_secret)" in checks["secret github-prod"]["detail"]
    missing = checks["secret web-hook"]
    assert not missing["ok"] and missing["required"]
    assert "no secret named 'web-hook'" in missing["detail"]
    assert "projects.web.scm.webhook_secret" in missing["detail"]
    assert "`ao secret set web-hook`" in missing["fix"] and "admin under Secrets" in missing["fix"]
    assert "notifiers.team.webhook_url_secret" in checks["secret slack-team"]["detail"]
    assert failed
    assert "v4lue" not in json.dumps(report)


def test_the_agents_projects_use_must_be_runnable(tmp_path, bin_without_tmux):
    fake = tmp_path / "my-agent"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    ProjectFactory(
        key="ok", session_prefix="ok", agent="custom", plugin_settings={"agent": {"command": [str(fake)]}}
    )
    ProjectFactory(key="broken", session_prefix="br", agent="claude-code")
    write_config(tmp_path, "projects: {}\n")

    report, failed = doctor("--path", str(tmp_path))

    checks = by_name(report)
    assert (
        checks["agent for ok workers"]["ok"] and checks["agent for ok workers"]["detail"] == f"custom: {fake}"
    )
    broken = checks["agent for broken workers"]
    assert not broken["ok"] and broken["required"]
    assert (
        "'claude' was not found on PATH; install it with: npm install -g @anthropic-ai/claude-code"
        in broken["detail"]
    )
    assert "`ao config apply`" in broken["fix"]
    assert failed
