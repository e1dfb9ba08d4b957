"""Agent plugins: registration, settings validation, launch/resume argv, install checks, start-up dialogs."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest

from integrations.agent.aider import UNATTENDED_ARGS as AIDER_UNATTENDED
from integrations.agent.aider import AiderAgent
from integrations.agent.claude_code import ClaudeCodeAgent
from integrations.agent.codex import CodexAgent
from integrations.agent.common import AgentConfig, CliAgent
from integrations.agent.custom import CustomAgent
from integrations.agent.gemini import GeminiAgent
from integrations.agent.opencode import OpenCodeAgent
from integrations.base import PermanentIntegrationError
from integrations.registry import BUILTIN_PLUGIN_MODULES, ConfigurationError, agents

WS = Path("/srv/ao/ws/proj-1")


def make(key: str, **settings):
    return agents.create(key, settings)


def test_every_agent_is_registered_under_its_config_key() -> None:
    expected = {
        "claude-code": ClaudeCodeAgent,
        "codex": CodexAgent,
        "aider": AiderAgent,
        "opencode": OpenCodeAgent,
        "gemini": GeminiAgent,
        "custom": CustomAgent,
    }

    assert {key: agents.get(key) for key in expected} == expected
    assert {
        f"integrations.agent.{m}" for m in ("claude_code", "codex", "aider", "opencode", "gemini", "custom")
    } <= set(BUILTIN_PLUGIN_MODULES)


LAUNCH_CASES = [
    # (agent key, settings, prompt, expected argv)
    # Claude Code and Gemini never get the prompt on the argv (`ps` shows it): it is typed
    ("claude-code", {}, "fix the bug", ["claude"]),
    (
        "claude-code",
        {"permissions": "auto-edit", "model": "opus"},
        None,
        ["claude", "--permission-mode", "acceptEdits", "--model", "opus"],
    ),
    (
        "claude-code",
        {"permissions": "skip-permissions"},
        "-x starts with a dash",
        ["claude", "--dangerously-skip-permissions"],
    ),
    (
        "claude-code",
        {"binary": "/opt/bin/claude", "extra_args": ["--verbose"]},
        None,
        ["/opt/bin/claude", "--verbose"],
    ),
    ("codex", {}, "typed once ready", ["codex", "--no-daemon"]),
    (
        # --full-auto was removed (codex 0.169 rejects it); its meaning in flags every version takes
        "codex",
        {"permissions": "auto-edit", "model": "gpt-5-codex"},
        None,
        [
            "codex",
            "--no-daemon",
            "--sandbox",
            "workspace-write",
            "--ask-for-approval",
            "on-request",
            "--model",
            "gpt-5-codex",
        ],
    ),
    (
        "codex",
        {"permissions": "skip-permissions"},
        "go",
        ["codex", "--no-daemon", "--dangerously-bypass-approvals-and-sandbox"],
    ),
    ("aider", {}, "ignored: sent after launch", ["aider", *AIDER_UNATTENDED]),
    (
        "aider",
        {"permissions": "skip-permissions", "model": "sonnet"},
        None,
        ["aider", *AIDER_UNATTENDED, "--yes-always", "--model", "sonnet"],
    ),
    ("aider", {"permissions": "auto-edit"}, None, ["aider", *AIDER_UNATTENDED]),
    ("opencode", {}, "ignored: sent after launch", ["opencode"]),
    (
        "opencode",
        {"permissions": "skip-permissions", "model": "anthropic/claude-sonnet-4"},
        None,
        ["opencode", "--auto", "--model", "anthropic/claude-sonnet-4"],
    ),
    ("gemini", {}, "-fix it", ["gemini"]),
    ("gemini", {"permissions": "auto-edit"}, None, ["gemini", "--approval-mode", "auto_edit"]),
    (
        "gemini",
        {"permissions": "skip-permissions", "model": "pro"},
        None,
        ["gemini", "--approval-mode", "yolo", "--model", "pro"],
    ),
    ("custom", {"command": ["python3", "agent.py"]}, "sent later", ["python3", "agent.py"]),
    ("custom", {"command": ["my-agent"], "prompt_mode": "argv"}, "do it", ["my-agent", "do it"]),
    (
        "custom",
        {"command": ["my-agent"], "prompt_mode": "argv", "prompt_flag": "--prompt", "extra_args": ["-v"]},
        "do it",
        ["my-agent", "-v", "--prompt", "do it"],
    ),
]


@pytest.mark.parametrize(("key", "settings", "prompt", "argv"), LAUNCH_CASES)
def test_launch_command(key: str, settings: dict, prompt: str | None, argv: list[str]) -> None:
    assert make(key, **settings).launch_command(workspace=WS, prompt=prompt) == argv


@pytest.mark.parametrize(
    ("key", "settings", "in_command"),
    [
        ("claude-code", {}, False),
        ("codex", {}, False),
        ("aider", {}, False),
        ("opencode", {}, False),
        ("gemini", {}, False),
        ("custom", {"command": ["a"]}, False),
        ("custom", {"command": ["a"], "prompt_mode": "argv"}, True),
    ],
)
def test_prompt_in_command(key: str, settings: dict, in_command: bool) -> None:
    assert make(key, **settings).prompt_in_command is in_command


RESUME_CASES = [
    (
        "claude-code",
        {"permissions": "auto-edit"},
        "continue",
        ["claude", "--resume", "5f0c-77", "--permission-mode", "acceptEdits"],
    ),
    ("codex", {"model": "o3"}, None, ["codex", "resume", "--no-daemon", "--model", "o3", "--", "5f0c-77"]),
    ("codex", {}, "continue", ["codex", "resume", "--no-daemon", "--", "5f0c-77"]),
    (
        "aider",
        {"model": "sonnet"},
        None,
        ["aider", *AIDER_UNATTENDED, "--model", "sonnet", "--restore-chat-history"],
    ),
    ("opencode", {"model": "a/b"}, None, ["opencode", "--session", "5f0c-77", "--model", "a/b"]),
    ("gemini", {}, None, ["gemini", "--resume", "5f0c-77"]),
]


@pytest.mark.parametrize(("key", "settings", "prompt", "argv"), RESUME_CASES)
def test_resume_command(key: str, settings: dict, prompt: str | None, argv: list[str]) -> None:
    agent = make(key, **settings)

    assert agent.resume_command(workspace=WS, conversation_id="5f0c-77", prompt=prompt) == argv
    assert agent.launch_command(workspace=WS, prompt=prompt, resume="5f0c-77") == argv


def test_opencode_refuses_a_prompt_it_would_drop_on_resume() -> None:
    # opencode 1.18.33 ignores --prompt when --session is given: the prompt would be lost.
    with pytest.raises(PermanentIntegrationError, match="ignores --prompt"):
        make("opencode").resume_command(workspace=WS, conversation_id="ses_1", prompt="continue")


def test_custom_agent_cannot_resume() -> None:
    agent = make("custom", command=["my-agent"])

    assert agent.resume_command(workspace=WS, conversation_id="abc") is None
    with pytest.raises(PermanentIntegrationError, match="cannot resume"):
        agent.launch_command(workspace=WS, prompt=None, resume="abc")


@pytest.mark.parametrize("conversation_id", ["--dangerously-skip-permissions", "a b", "", "x;id"])
def test_resume_refuses_ids_that_are_not_plain_tokens(conversation_id: str) -> None:
    with pytest.raises(PermanentIntegrationError, match="not a valid conversation id"):
        make("claude-code").resume_command(workspace=WS, conversation_id=conversation_id)


def test_system_prompt_file_is_read_relative_to_the_workspace(tmp_path: Path) -> None:
    (tmp_path / "rules.md").write_text('- be brief\n- say "done"\n')

    claude_argv = make("claude-code", system_prompt_file="rules.md").launch_command(
        workspace=tmp_path, prompt=None
    )
    codex_argv = make("codex", system_prompt_file="rules.md").launch_command(workspace=tmp_path, prompt=None)
    aider_argv = make("aider", system_prompt_file="rules.md").launch_command(workspace=tmp_path, prompt=None)

    assert claude_argv == ["claude", '--append-system-prompt=- be brief\n- say "done"\n']
    assert codex_argv[:3] == ["codex", "--no-daemon", "-c"]
    key, _, value = codex_argv[3].partition("=")
    assert (key, tomllib.loads("v = " + value)["v"]) == (
        "developer_instructions",
        '- be brief\n- say "done"\n',
    )
    assert aider_argv == ["aider", *AIDER_UNATTENDED, "--read", str(tmp_path / "rules.md")]


def test_missing_system_prompt_file_is_a_permanent_error(tmp_path: Path) -> None:
    with pytest.raises(PermanentIntegrationError, match="cannot read system_prompt_file"):
        make("claude-code", system_prompt_file="nope.md").launch_command(workspace=tmp_path, prompt=None)


# --- CliAgent: the hooks a third-party plugin fills in ---------------------------------------------
class MinimalCli(CliAgent):
    """A plugin declaring only a binary and its permission flags: every other hook at its default."""

    binary = "mini"
    prompt_in_command = True
    permission_args: ClassVar = {"default": [], "skip-permissions": ["--yolo"]}


def test_cli_agent_defaults_pass_the_prompt_after_a_double_dash() -> None:
    agent = MinimalCli(AgentConfig(permissions="skip-permissions", model="m", extra_args=["-v"]))

    assert agent.launch_command(workspace=WS, prompt="-go") == [
        "mini",
        "--yolo",
        "--model",
        "m",
        "-v",
        "--",
        "-go",
    ]


def test_cli_agent_refuses_what_its_hooks_do_not_cover(tmp_path: Path) -> None:
    with pytest.raises(PermanentIntegrationError, match="no flags for permissions 'auto-edit'"):
        MinimalCli(AgentConfig(permissions="auto-edit")).launch_command(workspace=WS, prompt=None)
    (tmp_path / "rules.md").write_text("be brief")
    with pytest.raises(PermanentIntegrationError, match="MinimalCli agent cannot add instructions"):
        MinimalCli(AgentConfig(system_prompt_file="rules.md")).launch_command(workspace=tmp_path, prompt=None)
    agent = MinimalCli(AgentConfig())
    assert agent.resume_command(workspace=WS, conversation_id="abc") is None
    with pytest.raises(PermanentIntegrationError, match="MinimalCli agent cannot resume"):
        agent.launch_command(workspace=WS, prompt=None, resume="abc")


def test_cli_agent_resume_flag_and_pane_reading() -> None:
    class Resuming(MinimalCli):
        resume_flag = "--continue"

    agent = Resuming(AgentConfig())
    now = datetime(2026, 1, 1, tzinfo=UTC)

    assert agent.launch_command(workspace=WS, prompt="more", resume="c-1") == [
        "mini",
        "--continue",
        "c-1",
        "--",
        "more",
    ]
    # No transcript_reading: the pane decides.
    assert agent.detect_activity(workspace=WS, pane_text="> ", now=now, process_alive=True).state == "ready"


def test_cli_agent_transcript_evidence_ages_the_newest_evidence(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text(
        '{"timestamp": "2026-01-01T10:00:00Z", "kind": "done"}\n'
        '{"timestamp": "2026-01-01T10:01:00Z", "kind": "noise"}\n'
        '{"timestamp": "2026-01-01T10:02:00Z", "kind": "working"}\n'
    )
    states = {"done": ("finished", "turn ended"), "working": ("active", "tool call")}

    def entry_state(entry: dict) -> tuple[str, str] | None:
        return states.get(entry["kind"])

    agent = MinimalCli(AgentConfig(stale_after_seconds=600))
    at = datetime(2026, 1, 1, 10, 2, tzinfo=UTC)

    reading, entries = agent.transcript_evidence(log, entry_state, at + timedelta(minutes=1))
    assert (reading.state, reading.at, reading.evidence, len(entries)) == ("active", at, "tool call", 3)
    reading, _ = agent.transcript_evidence(log, entry_state, at + timedelta(minutes=11), record="log")
    assert (reading.state, reading.evidence) == ("idle", "tool call; no log writes for 11 min")
    del states["working"]
    reading, _ = agent.transcript_evidence(log, entry_state, at - timedelta(minutes=1))
    assert (reading.state, reading.source) == ("ready", "transcript")
    assert agent.transcript_evidence(None, entry_state, at) == (None, [])


@pytest.mark.parametrize(
    ("key", "settings", "message"),
    [
        ("claude-code", {"permissions": "yolo"}, "permissions"),
        ("claude-code", {"unknown_setting": 1}, "unknown_setting"),
        ("opencode", {"system_prompt_file": "x.md"}, "AGENTS.md"),
        ("gemini", {"system_prompt_file": "x.md"}, "GEMINI.md"),
        ("custom", {}, "command"),
        ("custom", {"command": []}, "command"),
        ("custom", {"command": ["a"], "ready_pattern": "("}, "not a valid regular expression"),
        ("custom", {"command": ["a"], "permissions": "auto-edit"}, "permissions"),
    ],
)
def test_invalid_settings_are_configuration_errors(key: str, settings: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        agents.validate_settings(key, settings, where="projects.demo.agent")


# --- install checks --------------------------------------------------------------------------------------
def executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.parametrize(
    ("key", "binary", "hint"),
    [
        ("claude-code", "claude", "npm install -g @anthropic-ai/claude-code"),
        ("codex", "codex", "npm install -g @openai/codex"),
        ("aider", "aider", "python -m pip install aider-install && aider-install"),
        ("opencode", "opencode", "npm install -g opencode-ai"),
        ("gemini", "gemini", "npm install -g @google/gemini-cli"),
    ],
)
def test_missing_binary_names_it_and_how_to_install(tmp_path: Path, key: str, binary: str, hint: str) -> None:
    with pytest.raises(PermanentIntegrationError) as caught:
        make(key).check_installed(path=str(tmp_path))

    assert str(caught.value) == f"{key} agent: {binary!r} was not found on PATH; install it with: {hint}"


def test_installed_binary_is_found(tmp_path: Path) -> None:
    found = executable(tmp_path / "claude")

    assert make("claude-code").check_installed(path=str(tmp_path)) == str(found)


def test_binary_override_is_checked(tmp_path: Path) -> None:
    found = executable(tmp_path / "claude-nightly")

    assert make("claude-code", binary=str(found)).check_installed(path="") == str(found)
    with pytest.raises(PermanentIntegrationError, match="'claude-beta'"):
        make("claude-code", binary="claude-beta").check_installed(path=str(tmp_path))


@pytest.mark.parametrize(
    ("permissions", "euid", "environ", "refused"),
    [
        ("skip-permissions", 0, {}, True),
        ("skip-permissions", 0, {"IS_SANDBOX": "1"}, False),
        ("skip-permissions", 1000, {}, False),
        ("auto-edit", 0, {}, False),
    ],
)
def test_claude_skip_permissions_as_root_needs_a_sandbox(permissions, euid, environ, refused) -> None:
    from integrations.agent.claude_code import root_refusal

    assert bool(root_refusal(permissions, euid=euid, environ=environ)) is refused


@pytest.mark.skipif(os.geteuid() != 0, reason="the refusal is about running as root")
def test_claude_skip_permissions_as_root_is_refused_before_spawning(tmp_path: Path, monkeypatch) -> None:
    executable(tmp_path / "claude")
    monkeypatch.delenv("IS_SANDBOX", raising=False)

    with pytest.raises(PermanentIntegrationError, match="refuses skip-permissions when run as root"):
        make("claude-code", permissions="skip-permissions").check_installed(path=str(tmp_path))
    monkeypatch.setenv("IS_SANDBOX", "1")
    assert make("claude-code", permissions="skip-permissions").check_installed(path=str(tmp_path))


def test_custom_agent_checks_its_command(tmp_path: Path) -> None:
    with pytest.raises(PermanentIntegrationError, match="custom agent: 'my-agent' was not found on PATH"):
        make("custom", command=["my-agent", "--tui"]).check_installed(path=str(tmp_path))


# --- start-up dialogs ---------------------------------------------------------------------------------
@pytest.fixture
def git_workspace(tmp_path: Path) -> Path:
    path = tmp_path / "ws_1"
    subprocess.run(["git", "init", "-q", str(path)], check=True, timeout=30)
    return path


def test_claude_trust_is_written_to_claude_json_keeping_other_state(
    tmp_path: Path, git_workspace: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".claude.json").write_text(
        json.dumps({"userID": "u1", "projects": {"/other": {"allowedTools": ["x"]}}})
    )
    agent = make("claude-code", home=str(home))

    done = agent.prepare_workspace(git_workspace, allow_trust=True)
    again = agent.prepare_workspace(git_workspace, allow_trust=True)

    state = json.loads((home / ".claude.json").read_text())
    assert state["userID"] == "u1"
    assert state["projects"]["/other"] == {"allowedTools": ["x"]}
    assert state["projects"][str(git_workspace)] == {
        "hasTrustDialogAccepted": True,
        "hasCompletedProjectOnboarding": True,
    }
    assert "bypassPermissionsModeAccepted" not in state
    assert done == [f"marked {git_workspace} trusted in {home / '.claude.json'}"]
    assert again == []
    assert not (git_workspace / ".claude").exists()


def test_claude_without_allow_trust_writes_no_trust(tmp_path: Path, git_workspace: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()

    done = make("claude-code", home=str(home)).prepare_workspace(git_workspace, allow_trust=False)

    assert done == []
    assert not (home / ".claude.json").exists()


def test_claude_skip_permissions_accepts_the_bypass_warning_only_with_trust(
    tmp_path: Path, git_workspace: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    agent = make("claude-code", home=str(home), permissions="skip-permissions")

    agent.prepare_workspace(git_workspace, allow_trust=False)
    assert not (home / ".claude.json").exists()
    assert not (home / ".claude" / "settings.json").exists()
    done = agent.prepare_workspace(git_workspace, allow_trust=True)
    again = agent.prepare_workspace(git_workspace, allow_trust=True)

    # Claude Code 2.1 moves the legacy flag into the user settings on start; both are written.
    assert json.loads((home / ".claude.json").read_text())["bypassPermissionsModeAccepted"] is True
    assert json.loads((home / ".claude" / "settings.json").read_text()) == {
        "skipDangerousModePermissionPrompt": True
    }
    assert done[-1] == f"accepted the bypass-permissions warning in {home / '.claude' / 'settings.json'}"
    assert again == []


def test_claude_bypass_acceptance_keeps_user_settings(tmp_path: Path, git_workspace: Path) -> None:
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    (home / ".claude" / "settings.json").write_text(json.dumps({"model": "opus", "env": {"A": "1"}}))

    make("claude-code", home=str(home), permissions="skip-permissions").prepare_workspace(
        git_workspace, allow_trust=True
    )

    assert json.loads((home / ".claude" / "settings.json").read_text()) == {
        "model": "opus",
        "env": {"A": "1"},
        "skipDangerousModePermissionPrompt": True,
    }


def test_claude_permissions_go_to_settings_local_json_and_stay_out_of_git(
    tmp_path: Path, git_workspace: Path
) -> None:
    settings = git_workspace / ".claude" / "settings.local.json"
    settings.parent.mkdir()
    settings.write_text(json.dumps({"permissions": {"allow": ["Read"]}, "env": {"A": "1"}}))
    agent = make(
        "claude-code", home=str(tmp_path), permissions="auto-edit", allow=["Bash(npm test:*)", "Read"]
    )

    done = agent.prepare_workspace(git_workspace, allow_trust=False)

    assert json.loads(settings.read_text()) == {
        "permissions": {"allow": ["Read", "Bash(npm test:*)"], "defaultMode": "acceptEdits"},
        "env": {"A": "1"},
    }
    assert done == [f"wrote permissions to {settings}"]
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=git_workspace,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert status.stdout == ""


def test_claude_leaves_an_unparsable_claude_json_alone(tmp_path: Path, git_workspace: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".claude.json").write_text("{not json")

    done = make("claude-code", home=str(home)).prepare_workspace(git_workspace, allow_trust=True)

    assert (home / ".claude.json").read_text() == "{not json"
    assert len(done) == 1 and "is not a JSON object" in done[0]


def test_codex_trust_is_appended_to_config_toml(tmp_path: Path, git_workspace: Path) -> None:
    codex_home = tmp_path / ".codex"
    codex_home.mkdir()
    (codex_home / "config.toml").write_text(
        'model = "o3"  # mine\n\n[projects."/other"]\ntrust_level = "trusted"'
    )
    agent = make("codex", home=str(tmp_path))

    done = agent.prepare_workspace(git_workspace, allow_trust=True)
    again = agent.prepare_workspace(git_workspace, allow_trust=True)

    text = (codex_home / "config.toml").read_text()
    assert text.startswith('model = "o3"  # mine\n')
    assert tomllib.loads(text)["projects"] == {
        "/other": {"trust_level": "trusted"},
        str(git_workspace): {"trust_level": "trusted"},
    }
    assert done == [f"marked {git_workspace} trusted in {codex_home / 'config.toml'}"]
    assert again == []


def test_codex_leaves_inline_projects_tables_alone(tmp_path: Path, git_workspace: Path) -> None:
    (tmp_path / ".codex").mkdir()
    original = 'projects = { "/other" = { trust_level = "trusted" } }\n'
    (tmp_path / ".codex" / "config.toml").write_text(original)

    done = make("codex", home=str(tmp_path)).prepare_workspace(git_workspace, allow_trust=True)

    assert (tmp_path / ".codex" / "config.toml").read_text() == original
    assert len(done) == 1 and "unchanged" in done[0]


def test_codex_without_allow_trust_writes_nothing(tmp_path: Path, git_workspace: Path) -> None:
    assert make("codex", home=str(tmp_path)).prepare_workspace(git_workspace, allow_trust=False) == []
    assert not (tmp_path / ".codex").exists()


def test_gemini_trust_goes_to_trusted_folders(tmp_path: Path, git_workspace: Path) -> None:
    (tmp_path / ".gemini").mkdir()
    (tmp_path / ".gemini" / "trustedFolders.json").write_text(json.dumps({"/other": "DO_NOT_TRUST"}))

    done = make("gemini", home=str(tmp_path)).prepare_workspace(git_workspace, allow_trust=True)

    assert json.loads((tmp_path / ".gemini" / "trustedFolders.json").read_text()) == {
        "/other": "DO_NOT_TRUST",
        str(git_workspace): "TRUST_FOLDER",
    }
    assert len(done) == 1


def test_gemini_honours_gemini_cli_home(
    tmp_path: Path, git_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMINI_CLI_HOME", str(tmp_path / "gh"))

    make("gemini").prepare_workspace(git_workspace, allow_trust=True)

    assert json.loads((tmp_path / "gh" / ".gemini" / "trustedFolders.json").read_text()) == {
        str(git_workspace): "TRUST_FOLDER"
    }


def test_aider_files_are_kept_out_of_git(git_workspace: Path) -> None:
    (git_workspace / ".aider.chat.history.md").write_text("# chat\n")

    done = make("aider").prepare_workspace(git_workspace, allow_trust=False)

    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=git_workspace, capture_output=True, text=True, timeout=30
    )
    assert status.stdout == ""
    assert done == ["excluded .aider* from git in this repository"]


def test_prepare_outside_a_git_repository_still_writes_settings(tmp_path: Path) -> None:
    workspace = tmp_path / "plain"
    workspace.mkdir()
    env_home = tmp_path / "home"
    env_home.mkdir()

    done = make("claude-code", home=str(env_home), permissions="auto-edit").prepare_workspace(
        workspace, allow_trust=False
    )

    assert json.loads((workspace / ".claude" / "settings.local.json").read_text()) == {
        "permissions": {"defaultMode": "acceptEdits"}
    }
    assert len(done) == 1
    assert os.listdir(workspace) == [".claude"]


def test_opencode_learns_its_conversation_id_from_its_store_for_restore(tmp_path: Path) -> None:
    import sqlite3

    home, workspace, other = tmp_path / "home", tmp_path / "ws", tmp_path / "elsewhere"
    workspace.mkdir()
    store = home / ".local" / "share" / "opencode" / "opencode.db"
    agent = make("opencode", home=str(home))
    now = datetime.now(UTC)

    def conversation() -> str:
        return agent.detect_activity(
            workspace=workspace, pane_text="", now=now, process_alive=True
        ).conversation_id

    assert conversation() == ""  # no store yet: a restore starts afresh
    store.parent.mkdir(parents=True)
    with sqlite3.connect(store) as db:  # the shape opencode 1.18 writes (docs/AGENTS.md)
        db.execute("CREATE TABLE session (id TEXT PRIMARY KEY, directory TEXT, title TEXT)")
        db.executemany(
            "INSERT INTO session VALUES (?, ?, ?)",
            [
                ("ses_old1", str(workspace), "a"),
                ("ses_other", str(other), "b"),
                ("ses_new2", str(workspace), "c"),
            ],
        )
    assert conversation() == "ses_new2"  # the workspace's newest
    assert agent.resume_command(workspace=workspace, conversation_id=conversation()) == [
        "opencode",
        "--session",
        "ses_new2",
    ]
    with sqlite3.connect(store) as db:  # an id that is not a plain token is never put on a command line
        db.execute("INSERT INTO session VALUES ('x; rm -rf /', ?, 'd')", (str(workspace),))
    assert conversation() == ""
    store.write_bytes(b"not a database")
    assert conversation() == ""
