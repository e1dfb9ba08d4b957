"""ao.config.yaml: loading, every kind of bad input, discovery, the reference file, apply, schema."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Literal

import jsonschema
import pytest
import yaml
from pydantic import ConfigDict, Field

from integrations.base import SCM, Agent, Notifier, PluginConfig, Runtime, Tracker, Workspace
from integrations.registry import REGISTRIES
from sessions.core import services
from sessions.core.config.command import main
from sessions.core.config.discovery import config_discover
from sessions.core.config.export import config_json_schema, config_json_schema_text
from sessions.core.config.loading import config_load
from sessions.core.config.problems import ConfigError, ConfigProblem
from sessions.core.config.schema import MAX_CONFIG_BYTES, AoConfig, session_prefix_for
from sessions.models import Event, Project
from tests.factories import ProjectFactory

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "docs" / "ao.config.schema.json"


# --- test plugins -------------------------------------------------------------------------------
# Only the Config models matter to config loading: validate_settings never instantiates a plugin,
# so these stay abstract and keep working whatever methods the real interfaces grow.
class _AgentSettings(PluginConfig):
    permissions: Literal["permissionless", "default", "auto-edit", "suggest", "skip"] = "default"
    model: str | None = None


class FakeClaudeAgent(Agent):
    Config = _AgentSettings


class FakeCodexAgent(Agent):
    Config = _AgentSettings


class FakeAiderAgent(Agent):
    Config = _AgentSettings


class FakeTmuxRuntime(Runtime):
    class Config(PluginConfig):
        socket_name: str | None = None


class FakeWorktreeWorkspace(Workspace):
    pass


class FakeLocalTracker(Tracker):
    pass


class FakeGitHubTracker(Tracker):
    class Config(PluginConfig):
        base_url: str = "https://api.github.com"


class FakeLinearTracker(Tracker):
    class Config(PluginConfig):
        model_config = ConfigDict(extra="forbid", populate_by_name=True)
        team_id: str = Field(alias="teamId")


class FakeLocalSCM(SCM):
    pass


class FakeGitHubSCM(SCM):
    class Config(PluginConfig):
        host: str = "github.com"
        base_url: str = "https://api.github.com"


class FakeDesktopNotifier(Notifier):
    pass


class FakeSlackNotifier(Notifier):
    class Config(PluginConfig):
        model_config = ConfigDict(extra="forbid", populate_by_name=True)
        webhook_url: str = Field(alias="webhookUrl")
        channel: str | None = None


TEST_PLUGINS = {
    "agent": {"claude-code": FakeClaudeAgent, "codex": FakeCodexAgent, "aider": FakeAiderAgent},
    "runtime": {"tmux": FakeTmuxRuntime},
    "workspace": {"worktree": FakeWorktreeWorkspace},
    "tracker": {"local": FakeLocalTracker, "github": FakeGitHubTracker, "linear": FakeLinearTracker},
    "scm": {"local": FakeLocalSCM, "github": FakeGitHubSCM},
    "notifier": {"desktop": FakeDesktopNotifier, "slack": FakeSlackNotifier},
}


@pytest.fixture
def plugins():
    """Exactly the test plugins above are registered; the real registry comes back afterwards."""
    saved = {slot: dict(registry._plugins) for slot, registry in REGISTRIES.items()}
    for registry in REGISTRIES.values():
        registry._plugins.clear()
    for slot, classes in TEST_PLUGINS.items():
        for key, cls in classes.items():
            REGISTRIES[slot].add(key, cls)
    yield
    for slot, registry in REGISTRIES.items():
        registry._plugins.clear()
        registry._plugins.update(saved[slot])


@pytest.fixture
def checkouts(tmp_path: Path) -> Path:
    for name in ("web", "api", "docs"):
        (tmp_path / "repos" / name).mkdir(parents=True)
    return tmp_path / "repos"


@pytest.fixture
def db_before(db):
    """Two existing projects; `unchanged()` says whether the table is exactly as it was."""
    ProjectFactory(key="legacy", session_prefix="leg", path="/srv/legacy")
    ProjectFactory(key="other", session_prefix="oth", path="/srv/other")

    def rows():
        return list(Project.objects.order_by("pk").values())

    snapshot = rows()
    return lambda: rows() == snapshot and Project.objects.count() == 2


def write(directory: Path, text: str, name: str = "ao.config.yaml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problems_of(path: Path) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        config_load(path)
    assert str(caught.value) == "\n".join(str(p) for p in caught.value.problems)
    return caught.value.problems


def only_problem(path: Path) -> ConfigProblem:
    problems = problems_of(path)
    assert len(problems) == 1, problems
    return problems[0]


# --- a good file ------------------------------------------------------------------------------------
EXAMPLE = """
# ao's config for two projects
port: 8000
defaults:
  runtime: tmux
  workspace: worktree
  notifiers: [desktop]

projects:
  web:
    name: Web shop
    repo: acme/web
    path: {root}/web
    defaultBranch: main
    sessionPrefix: web
    agent:
      plugin: claude-code
      model: opus
    agentConfig:
      permissions: skip
    tracker: github
    scm:
      plugin: github
      host: github.acme.com
    symlinks: [.env, .claude]
    postCreate:
      - pnpm install
      - [cp, .env.example, .env]
    agentRules: |
      Run the tests before pushing.
    agentRulesFile: AGENTS.md
    reactions:
      ci-failed:
        retries: 3
        escalateAfter: 30m
    maxSessions: 4
    sweepInterval: 60

  api-server:
    repo: acme/api
    path: ./repos/api
    agent: codex

reactions:
  approved-and-green:
    auto: false
    action: notify
    priority: action

notifiers:
  team:
    plugin: slack
    webhookUrl: https://hooks.slack.example/T000/B000
    channel: "#agents"

notificationRouting:
  urgent: [desktop, team]
  info: [team]
"""


def test_a_good_file_loads_into_the_effective_config(plugins, tmp_path, checkouts):
    (checkouts / "web" / "AGENTS.md").write_text("Be careful.\n")
    path = write(tmp_path, EXAMPLE.format(root=checkouts))

    config = config_load(path)

    assert isinstance(config, AoConfig)
    assert config.source == path.resolve()
    assert config.warnings == []
    assert config.port == 8000
    assert list(config.projects) == ["web", "api-server"]
    web = config.projects["web"]
    assert web.name == "Web shop"
    assert web.path == str(checkouts / "web")
    assert web.plugin_key("agent") == "claude-code"
    # agentConfig is merged into the agent's settings, then validated by the agent plugin.
    assert web.settings_for("agent") == {"model": "opus", "permissions": "skip"}
    assert web.plugin_key("runtime") == "tmux"  # from defaults
    assert web.plugin_key("scm") == "github"
    assert web.settings_for("scm") == {"host": "github.acme.com"}
    assert web.symlinks == [".env", ".claude"]
    assert web.post_create == ["pnpm install", ["cp", ".env.example", ".env"]]  # a line or an argv
    assert web.reactions["ci-failed"].escalate_after == "30m"
    assert web.max_sessions == 4
    assert web.sweep_interval == 60.0
    api = config.projects["api-server"]
    assert api.path == str(checkouts / "api")  # relative to the file's directory
    assert api.name == "api-server"
    assert api.session_prefix == "as"  # derived from the key, as agent-orchestrator derives it
    assert api.plugin_key("agent") == "codex"
    assert api.plugin_key("tracker") == "local"  # ao's own default
    assert config.notifiers["team"].settings == {
        "webhookUrl": "https://hooks.slack.example/T000/B000",
        "channel": "#agents",
    }


def test_a_missing_rules_file_is_only_a_warning(plugins, tmp_path, checkouts):
    path = write(tmp_path, EXAMPLE.format(root=checkouts))

    config = config_load(path)

    assert config.warnings == [
        ConfigProblem(
            str(path), 30, "projects.web.agentRulesFile", f"'AGENTS.md' is not a file in {checkouts / 'web'}"
        )
    ]


def test_session_prefixes_are_derived_like_agent_orchestrator():
    assert session_prefix_for("ao") == "ao"
    assert session_prefix_for("agent-orchestrator") == "ao"
    assert session_prefix_for("my_big_app") == "mba"
    assert session_prefix_for("integrator") == "int"
    assert session_prefix_for("9lives") == "p9li"
    assert session_prefix_for("a-1") == "a1"


# --- bad input: one clear problem each, with file, line and key path; the database untouched -----
def test_unknown_plugin_names_the_valid_choices(plugins, tmp_path, checkouts, db_before):
    path = write(
        tmp_path,
        f"""
        projects:
          web:
            path: {checkouts}/web
            agent: clod
        """,
    )

    problem = only_problem(path)

    assert problem == ConfigProblem(
        str(path),
        4,
        "projects.web.agent",
        "unknown agent plugin 'clod'; valid choices: aider, claude-code, codex",
    )
    assert str(problem) == (
        f"{path}:4: projects.web.agent: unknown agent plugin 'clod'; valid choices: aider, claude-code, codex"
    )
    assert db_before()


def test_every_problem_is_reported_at_once_in_file_order(plugins, tmp_path, checkouts, db_before):
    path = write(
        tmp_path,
        f"""
        port: 99999
        projects:
          web:
            path: {checkouts}/web
            agnet: claude-code
            maxSessions: "3"
            runtime: {{plugin: tmux, socketName: 5}}
          api:
            path: {checkouts}/missing
            repo: not-a-repo
            agentConfig:
              permissions: sometimes
          Bad_Key:
            path: {checkouts}/docs
        """,
    )

    problems = problems_of(path)

    assert [(p.line, p.path) for p in problems] == [
        (1, "port"),
        (5, "projects.web.agnet"),
        (6, "projects.web.maxSessions"),
        (7, "projects.web.runtime.socketName"),
        (9, "projects.api.path"),
        (10, "projects.api.repo"),
        (12, "projects.api.agentConfig.permissions"),
        (13, "projects.Bad_Key"),
    ]
    messages = [p.message for p in problems]
    assert messages[0] == "input should be less than or equal to 65535, got int 99999"
    assert messages[1] == "unknown key 'agnet'; did you mean 'agent'?"
    assert messages[2] == "input should be a valid integer, got str '3'"
    assert messages[3] == "runtime plugin 'tmux': extra inputs are not permitted, got int 5"
    assert messages[4] == f"{checkouts}/missing does not exist"
    assert messages[5] == "'not-a-repo' is not owner/name (e.g. acme/web)"
    assert messages[6].startswith("agent plugin 'claude-code': input should be 'permissionless', ")
    assert messages[7].startswith("project key 'Bad_Key' is not valid")
    assert all(p.file == str(path) for p in problems)
    assert db_before()


@pytest.mark.parametrize(
    ("body", "line", "key", "message"),
    [
        (
            "    maxSessions: 0",
            3,
            "projects.web.maxSessions",
            "input should be greater than or equal to 1, got int 0",
        ),
        (
            "    maxSessions: many",
            3,
            "projects.web.maxSessions",
            "input should be a valid integer, got str 'many'",
        ),
        (
            "    sweepInterval: fast",
            3,
            "projects.web.sweepInterval",
            "input should be a valid number, got str 'fast'",
        ),
        (  # not raised to 5 behind the user's back (beat looks for due projects every 5 s)
            "    sweepInterval: 2",
            3,
            "projects.web.sweepInterval",
            "2 s is shorter than ao sweeps can run (every 5 s at most): use at least 5. Shorter sweeps "
            "are not needed to see activity sooner: the activity watcher brings each agent's changes "
            "to the board within seconds",
        ),
        ("    symlinks: .env", 3, "projects.web.symlinks", "input should be a valid list, got str '.env'"),
        (
            "    symlinks: [../secrets]",
            3,
            "projects.web.symlinks",
            "'../secrets' must not contain '..' (it must stay inside the project's checkout)",
        ),
        (
            "    agentRulesFile: /etc/passwd",
            3,
            "projects.web.agentRulesFile",
            "'/etc/passwd' must be a path relative to the project's checkout",
        ),
        ("    defaultBranch: 'x..y'", 3, "projects.web.defaultBranch", "'x..y' is not a valid branch name"),
        (
            "    agent: 5",
            3,
            "projects.web.agent",
            "expected a plugin key (e.g. claude-code) or a mapping with a 'plugin' key, got int 5",
        ),
        ("    agent: {model: opus}", 3, "projects.web.agent.plugin", "required key is missing"),
        (
            "    reactions: {ci-failed: {escalateAfter: soon}}",
            3,
            "projects.web.reactions.ci-failed.escalateAfter",
            "'soon' is not a duration: use a number and a unit ms, s, m, h or d, e.g. 30m",
        ),
        (
            "    sessionPrefix: Web-1",
            3,
            "projects.web.sessionPrefix",
            "'Web-1' is not a valid session prefix: 1-16 lowercase letters or digits, starting with a letter",
        ),
        ("    name: [a, b]", 3, "projects.web.name", "input should be a valid string, got a list"),
    ],
)
def test_wrong_values(plugins, tmp_path, checkouts, db_before, body, line, key, message):
    path = write(tmp_path, f"projects:\n  web:\n{body}\n    path: {checkouts}/web\n")

    assert only_problem(path) == ConfigProblem(str(path), line, key, message)
    assert db_before()


def test_a_project_without_a_path(plugins, tmp_path, db_before):
    path = write(tmp_path, "projects:\n  web:\n    repo: acme/web\n")

    assert only_problem(path) == ConfigProblem(str(path), 2, "projects.web.path", "required key is missing")
    assert db_before()


def test_duplicate_session_prefixes(plugins, tmp_path, checkouts, db_before):
    path = write(
        tmp_path,
        f"""
        projects:
          web:
            path: {checkouts}/web
            sessionPrefix: shop
          api:
            path: {checkouts}/api
            sessionPrefix: shop
          ab-cd:
            path: {checkouts}/docs
          acd:
            path: {checkouts}/docs
            sessionPrefix: ac
        """,
    )

    problems = problems_of(path)

    assert problems == [
        ConfigProblem(
            str(path),
            7,
            "projects.api.sessionPrefix",
            "session prefix 'shop' is already used by project 'web'; give each project its own sessionPrefix",
        ),
        ConfigProblem(
            str(path),
            12,
            "projects.acd.sessionPrefix",
            "session prefix 'ac' is already used by project 'ab-cd'; give each project its own sessionPrefix",
        ),
    ]
    assert db_before()


def test_duplicate_keys_in_a_mapping(plugins, tmp_path, checkouts, db_before):
    path = write(
        tmp_path,
        f"""
        projects:
          web:
            path: {checkouts}/web
          web:
            path: {checkouts}/api
        """,
    )

    assert only_problem(path) == ConfigProblem(
        str(path), 4, "projects.web", "duplicate key 'web' (first defined at line 2)"
    )
    assert db_before()


def test_yaml_bombs_are_refused(plugins, tmp_path, db_before):
    laughs = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    laughs += [
        f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    ]
    path = write(tmp_path, "\n".join(laughs) + "\n")

    assert only_problem(path) == ConfigProblem(
        str(path), 1, "", "YAML anchors are not allowed (&a); write the value out in full"
    )

    path = write(tmp_path, "projects: *nothing\n")
    assert only_problem(path) == ConfigProblem(
        str(path), 1, "", "YAML aliases are not allowed (*nothing); write the value out in full"
    )
    assert db_before()


def test_deep_nesting_is_refused(plugins, tmp_path, db_before):
    path = write(tmp_path, "projects: " + "[" * 500 + "]" * 500 + "\n")

    problem = only_problem(path)

    assert (problem.line, problem.path, problem.message) == (1, "", "nested more than 64 levels deep")
    assert db_before()


def test_files_over_one_mebibyte_are_refused(plugins, tmp_path, db_before):
    path = tmp_path / "ao.config.yaml"
    path.write_bytes(b"# " + b"x" * MAX_CONFIG_BYTES + b"\n")

    assert only_problem(path) == ConfigProblem(
        str(path), None, "", f"file is {MAX_CONFIG_BYTES + 3} bytes; the limit is 1048576 (1 MiB)"
    )
    assert db_before()


@pytest.mark.parametrize(
    ("raw", "line", "message"),
    [
        (b"", None, "the file is empty; expected a mapping with a 'projects' key"),
        (b"# only a comment\n\n", None, "the file is empty; expected a mapping with a 'projects' key"),
        (b"- web\n- api\n", 1, "the top level must be a mapping with a 'projects' key, not a list"),
        (b"just words\n", 1, "the top level must be a mapping with a 'projects' key, not str 'just words'"),
        (
            b"projects:\n  web: [\n",
            3,
            "invalid YAML: expected the node content, but found '<stream end>' (while parsing a flow node)",
        ),
        (
            b"\x7fELF\x02\x01\x01\x00\xff\xfe\x00",
            1,
            "not UTF-8 text (byte 0xff at offset 8); is this a binary file?",
        ),
        (b"projects:\n  web\x00: {}\n", 2, "not a YAML text file: unacceptable character #x0000"),
        (
            b"projects: !!python/object:os.system {}\n",
            1,
            "invalid YAML: could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/object:os.system'",
        ),
    ],
)
def test_garbage_and_non_mappings(plugins, tmp_path, db_before, raw, line, message):
    path = tmp_path / "ao.config.yaml"
    path.write_bytes(raw)

    assert only_problem(path) == ConfigProblem(str(path), line, "", message)
    assert db_before()


def test_no_projects_and_no_file(plugins, tmp_path, db_before):
    path = write(tmp_path, "projects: {}\n")
    assert only_problem(path) == ConfigProblem(
        str(path), 1, "projects", "no projects defined; add at least one under projects:"
    )
    missing = tmp_path / "nope.yaml"
    assert only_problem(missing) == ConfigProblem(str(missing), None, "", "file not found")
    assert only_problem(tmp_path) == ConfigProblem(str(tmp_path), None, "", "not a regular file")
    assert db_before()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "{root}/web/../../../../../../../nowhere",
            "'{root}/web/../../../../../../../nowhere' (resolved to /nowhere) does not exist",
        ),
        (
            "{root}/web/../web/../../repos/web/file.txt",
            "'{root}/web/../web/../../repos/web/file.txt' "
            "(resolved to {root}/web/file.txt) is not a directory",
        ),
        ("/../../..", "'/../../..' (resolved to /) is the filesystem root; give the project's own checkout"),
        ("''", "must not be empty"),
        ('"{root}/web\\0"', "not a valid path (it contains a NUL byte)"),
        ("/" + "x" * 5000, "does not exist"),
    ],
)
def test_bad_paths(plugins, tmp_path, checkouts, db_before, value, message):
    (checkouts / "web" / "file.txt").write_text("not a directory")
    value = value.format(root=checkouts)
    path = write(tmp_path, f"projects:\n  web:\n    path: {value}\n")

    problem = only_problem(path)

    assert (problem.line, problem.path) == (3, "projects.web.path")
    if message == "does not exist":
        assert problem.message.endswith(("does not exist", "File name too long")), problem.message
    else:
        assert problem.message == message.format(root=checkouts)
    assert db_before()


def test_paths_are_resolved_before_checking(plugins, tmp_path, checkouts, monkeypatch):
    monkeypatch.setenv("HOME", str(checkouts))
    (checkouts / "link").symlink_to(checkouts / "web")
    path = write(
        tmp_path,
        """
        projects:
          a: {path: ~/api}
          b: {path: repos/web/../docs}
          c: {path: repos/link}
        """,
    )

    config = config_load(path)

    assert [p.path for p in config.projects.values()] == [
        str(checkouts / "api"),
        str(checkouts / "docs"),
        str(checkouts / "web"),
    ]


def test_unknown_notifiers_and_bad_plugin_defaults(plugins, tmp_path, checkouts, db_before):
    path = write(
        tmp_path,
        f"""
        defaults:
          runtime: docker
          notifiers: [pager]
        projects:
          web: {{path: {checkouts}/web}}
          api: {{path: {checkouts}/api}}
        notifiers:
          team: {{plugin: slack}}
        notificationRouting:
          urgent: [desktop, team, sms]
        """,
    )

    problems = problems_of(path)

    assert [(p.line, p.path, p.message) for p in problems] == [
        (2, "defaults.runtime", "unknown runtime plugin 'docker'; valid choices: tmux"),
        (
            3,
            "defaults.notifiers[0]",
            "unknown notifier 'pager': define it under notifiers, or use a notifier plugin: desktop, slack",
        ),
        (8, "notifiers.team.webhookUrl", "notifier plugin 'slack': required key is missing"),
        (
            10,
            "notificationRouting.urgent[2]",
            "unknown notifier 'sms': define it under notifiers, or use a notifier plugin: desktop, slack",
        ),
    ]
    assert db_before()


def test_loading_never_touches_the_database(
    plugins, tmp_path, checkouts, db_before, django_assert_num_queries
):
    path = write(tmp_path, EXAMPLE.format(root=checkouts))
    with django_assert_num_queries(0):
        config_load(path)
    assert db_before()


# --- agent-orchestrator.yaml ----------------------------------------------------------------------------
REFERENCE = """
# agent-orchestrator's own config, unchanged
dataDir: ~/.ao-sessions
worktreeDir: ~/.worktrees/ao

defaults:
  runtime: tmux
  agent: claude-code
  workspace: worktree
  notifiers: [desktop]

projects:
  ao:
    name: Agent Orchestrator
    repo: ComposioHQ/agent-orchestrator
    path: {root}/web
    defaultBranch: main
    sessionPrefix: ao
    tracker:
      plugin: linear
      teamId: "2a6e9b1b"
    symlinks: [.claude]
    postCreate:
      - "pnpm install"
    agentConfig:
      permissions: skip
    orchestratorAgentConfig:
      model: gpt-5
    reactions:
      issue-completed:
        auto: false
        action: notify
        cooldown: 5m
  tdg:
    repo: Mizelan/ProjectM
    path: {root}/api

notificationRouting:
  urgent: [desktop]
"""


def test_agent_orchestrator_yaml_is_read_with_warnings_for_keys_ao_does_not_use(plugins, tmp_path, checkouts):
    path = write(tmp_path, REFERENCE.format(root=checkouts), name="agent-orchestrator.yaml")

    config = config_load(path)

    assert [(w.line, w.path, w.message) for w in config.warnings] == [
        (2, "dataDir", "ao does not use 'dataDir' from agent-orchestrator.yaml; ignored"),
        (3, "worktreeDir", "ao does not use 'worktreeDir' from agent-orchestrator.yaml; ignored"),
        (
            26,
            "projects.ao.orchestratorAgentConfig",
            "ao does not use 'orchestratorAgentConfig' from agent-orchestrator.yaml; ignored",
        ),
        (
            32,
            "projects.ao.reactions.issue-completed.cooldown",
            "ao does not use 'cooldown' from agent-orchestrator.yaml; ignored",
        ),
    ]
    ao = config.projects["ao"]
    assert (ao.repo, ao.session_prefix, ao.default_branch) == ("ComposioHQ/agent-orchestrator", "ao", "main")
    assert ao.plugin_key("tracker") == "linear"
    assert ao.settings_for("tracker") == {"teamId": "2a6e9b1b"}
    assert ao.settings_for("agent") == {"permissions": "skip"}
    assert ao.symlinks == [".claude"]
    assert ao.post_create == ["pnpm install"]
    assert ao.reactions["issue-completed"].auto is False
    # As in agent-orchestrator: a project with a repo and no tracker/scm uses GitHub.
    tdg = config.projects["tdg"]
    assert (tdg.plugin_key("tracker"), tdg.plugin_key("scm")) == ("github", "github")
    assert tdg.session_prefix == "tdg"


def test_the_same_keys_are_errors_in_ao_config_yaml(plugins, tmp_path, checkouts, db_before):
    path = write(tmp_path, REFERENCE.format(root=checkouts))

    problems = problems_of(path)

    assert [(p.line, p.path, p.message) for p in problems] == [
        (
            2,
            "dataDir",
            "unknown key 'dataDir'; valid keys: port, defaults, projects, reactions, "
            "notifiers, notificationRouting",
        ),
        (
            3,
            "worktreeDir",
            "unknown key 'worktreeDir'; valid keys: port, defaults, projects, reactions, "
            "notifiers, notificationRouting",
        ),
        (
            26,
            "projects.ao.orchestratorAgentConfig",
            "unknown key 'orchestratorAgentConfig'; did you mean 'orchestrator'?",
        ),
        (
            32,
            "projects.ao.reactions.issue-completed.cooldown",
            "unknown key 'cooldown'; valid keys: auto, "
            "action, message, priority, retries, escalateAfter, threshold, includeSummary, trustedBots, "
            "requiredChecks, requireApproval",
        ),
    ]
    assert db_before()


def test_plugin_settings_stay_errors_in_agent_orchestrator_yaml(plugins, tmp_path, checkouts):
    path = write(
        tmp_path,
        f"projects:\n  ao:\n    path: {checkouts}/web\n    tracker:\n      plugin: linear\n      team: x\n",
        name="agent-orchestrator.yaml",
    )

    problems = problems_of(path)

    assert [(p.line, p.path) for p in problems] == [
        (4, "projects.ao.tracker.teamId"),
        (6, "projects.ao.tracker.team"),
    ]


# --- discovery ------------------------------------------------------------------------------------------
@pytest.fixture
def no_ao_config(settings, monkeypatch):
    settings.AO_CONFIG = ""
    monkeypatch.delenv("AO_CONFIG", raising=False)


def test_discovery_walks_up_from_the_start_directory(no_ao_config, tmp_path):
    top = write(tmp_path, "projects: {}\n")
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    middle = write(tmp_path / "a", "projects: {}\n", name="agent-orchestrator.yaml")

    assert config_discover(deep) == middle
    assert config_discover(tmp_path / "a") == middle
    assert config_discover(tmp_path) == top
    # In one directory ao.config.yaml wins over agent-orchestrator.yaml.
    preferred = write(tmp_path / "a", "projects: {}\n")
    assert config_discover(deep) == preferred


def test_discovery_starts_at_the_current_directory(no_ao_config, tmp_path, monkeypatch):
    found = write(tmp_path, "projects: {}\n")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")

    assert config_discover() == found


def test_nothing_found(no_ao_config, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    found = config_discover(empty)
    assert found is None or not str(found).startswith(str(tmp_path))


def test_ao_config_setting_and_environment_win(settings, monkeypatch, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    named = write(tmp_path / "elsewhere", "x: 1\n")
    write(tmp_path, "projects: {}\n")  # nearer, but AO_CONFIG wins

    settings.AO_CONFIG = str(named)
    assert config_discover(tmp_path) == named

    settings.AO_CONFIG = ""
    monkeypatch.setenv("AO_CONFIG", str(named.parent))  # a directory: its config file
    assert config_discover(tmp_path) == named

    monkeypatch.setenv("AO_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError) as caught:
        config_discover(tmp_path)
    assert caught.value.problems == [
        ConfigProblem(
            str(tmp_path / "missing.yaml"), None, "", "AO_CONFIG names this file, which does not exist"
        )
    ]


# --- config_apply ------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_apply_creates_updates_and_leaves_alone(plugins, tmp_path, checkouts):
    ProjectFactory(key="legacy", session_prefix="leg", path="/srv/legacy")
    path = write(tmp_path, EXAMPLE.format(root=checkouts))
    config = config_load(path)

    changes = services.config_apply(config=config, source=path)

    assert changes[:3] == [
        f"created project web (prefix web, agent claude-code, path {checkouts / 'web'})",
        f"created project api-server (prefix as, agent codex, path {checkouts / 'api'})",
        f"left alone project legacy: in the database but not in {path}",
    ]
    # the notifiers and their routing are stored in the same transaction
    assert "created notifier team (slack)" in changes[3:]
    web = Project.objects.get(key="web")
    assert (web.name, web.repo, web.path, web.default_branch, web.session_prefix) == (
        "Web shop",
        "acme/web",
        str(checkouts / "web"),
        "main",
        "web",
    )
    assert (web.agent, web.runtime, web.workspace, web.tracker, web.scm) == (
        "claude-code",
        "tmux",
        "worktree",
        "github",
        "github",
    )
    assert web.plugin_settings == {
        "agent": {"model": "opus", "permissions": "skip"},
        "scm": {"host": "github.acme.com"},
    }
    assert web.agent_rules == "Run the tests before pushing.\n"
    assert web.agent_rules_file == "AGENTS.md"
    assert web.symlinks == [".env", ".claude"]
    assert web.post_create == ["pnpm install", ["cp", ".env.example", ".env"]]
    assert web.reactions == {"ci-failed": {"retries": 3, "escalateAfter": "30m"}}
    assert (web.max_sessions, web.sweep_interval, web.config_source) == (4, 60.0, str(path))
    api = Project.objects.get(key="api-server")
    assert (api.name, api.repo, api.tracker, api.plugin_settings, api.max_sessions) == (
        "api-server",
        "acme/api",
        "local",
        {},
        None,
    )
    assert Event.objects.filter(kind="project.created").count() == 2

    # Applying the same file again changes nothing.
    assert services.config_apply(config=config_load(path), source=path) == [
        "unchanged project web",
        "unchanged project api-server",
        f"left alone project legacy: in the database but not in {path}",
        "unchanged notifier team",
    ]

    # Change a few keys and drop a project.
    text = (
        EXAMPLE.format(root=checkouts)
        .replace("maxSessions: 4", "maxSessions: 2")
        .replace("agent: codex", "agent: aider")
    )
    text = text.replace("  api-server:", "  api:")
    write(tmp_path, text)
    changes = services.config_apply(config=config_load(path), source=path)

    assert changes == [
        "updated project web: maxSessions: 4 → 2",
        f"created project api (prefix api, agent aider, path {checkouts / 'api'})",
        f"left alone project api-server: in the database but not in {path}",
        f"left alone project legacy: in the database but not in {path}",
        "unchanged notifier team",
    ]
    assert Project.objects.get(key="web").max_sessions == 2
    assert Project.objects.get(key="api-server").agent == "codex"  # left alone, not deleted
    assert Project.objects.count() == 4


def test_apply_refuses_a_prefix_held_by_another_project_and_writes_nothing(
    plugins, tmp_path, checkouts, db_before
):
    path = write(
        tmp_path,
        f"""
        projects:
          fresh:
            path: {checkouts}/web
          shop:
            path: {checkouts}/api
            sessionPrefix: leg
        """,
    )
    config = config_load(path)  # valid on its own: the clash is with the database

    with pytest.raises(ConfigError) as caught:
        services.config_apply(config=config, source=path)

    assert caught.value.problems == [
        ConfigProblem(
            str(path),
            6,
            "projects.shop.sessionPrefix",
            "session prefix 'leg' is already used by project 'legacy' in the database; choose another "
            "sessionPrefix",
        )
    ]
    assert db_before()
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_apply_needs_a_loaded_config(tmp_path):
    config = AoConfig.model_validate({"projects": {"web": {"path": str(tmp_path)}}})
    with pytest.raises(ValueError, match="config_load"):
        services.config_apply(config=config, source=tmp_path / "ao.config.yaml")
    assert not Project.objects.exists()


# --- JSON Schema -----------------------------------------------------------------------------------------
@pytest.mark.usefixtures("builtin_plugins_only")
def test_the_shipped_schema_is_the_generated_one():
    assert SCHEMA_FILE.read_text(encoding="utf-8") == config_json_schema_text()
    assert json.loads(SCHEMA_FILE.read_text(encoding="utf-8")) == config_json_schema()


@pytest.mark.usefixtures("builtin_plugins_only")
def test_the_cli_prints_the_schema(capsys):
    assert main(["--schema"]) == 0
    assert capsys.readouterr().out == SCHEMA_FILE.read_text(encoding="utf-8")


def test_examples_validate_against_the_schema(tmp_path):
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    # the schema holds ao's real plugins' settings; host and channel are only the test plugins'
    example = (
        EXAMPLE.format(root=tmp_path)
        .replace("      host: github.acme.com\n", "      base_url: https://github.acme.com/api/v3\n")
        .replace('    channel: "#agents"\n', "")
    )

    validator.validate(yaml.safe_load(example))

    bad = yaml.safe_load(example)
    bad["projects"]["web"]["agnet"] = "x"
    bad["projects"]["Bad Key"] = {"path": "."}
    bad["projects"]["api-server"]["sessionPrefix"] = "API"
    errors = sorted(e.message for e in validator.iter_errors(bad))
    assert len(errors) == 3, errors


@pytest.mark.django_db
def test_project_policy_flags_reach_the_database(tmp_path):
    from sessions.core.config.loading import config_load
    from sessions.core.services import config_apply
    from sessions.models import Project

    repo = tmp_path / "repo"
    repo.mkdir()
    path = tmp_path / "ao.config.yaml"
    path.write_text(
        f"projects:\n  web:\n    path: {repo}\n    agent: claude-code\n    maxSessions: 2\n"
        "    refuseOverCap: true\n    allowAgentTrust: false\n    passTokensToAgents: true\n"
    )
    config_apply(config=config_load(path), source=path)
    project = Project.objects.get(key="web")
    assert (project.max_sessions, project.refuse_over_cap) == (2, True)
    assert (project.allow_agent_trust, project.pass_tokens_to_agents) == (False, True)


# --- ao config check|apply ------------------------------------------------------------------------------
def _ao_config(*args: str) -> tuple[int, str, str]:
    from io import StringIO

    from django.core.management import call_command

    out, err = StringIO(), StringIO()
    try:
        call_command("config", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_ao_config_check_and_apply_without_a_restart(plugins, tmp_path, checkouts):
    path = write(tmp_path, f"projects:\n  web:\n    path: {checkouts}/web\n    agent: claude-code\n")

    assert _ao_config("check", str(path)) == (0, f"{path}: OK (1 projects)\n", "")
    assert not Project.objects.exists()  # check changes nothing
    code, out, _ = _ao_config("apply", str(path))
    assert code == 0 and out.startswith(f"applied {path}\n  created project web")
    assert Project.objects.get(key="web").agent == "claude-code"

    # the person edits the file while ao runs: apply picks it up, a bad edit changes nothing
    write(tmp_path, f"projects:\n  web:\n    path: {checkouts}/web\n    agent: codex\n")
    assert _ao_config("apply", str(path))[0] == 0
    assert Project.objects.get(key="web").agent == "codex"
    write(tmp_path, f"projects:\n  web:\n    path: {checkouts}/web\n    agent: clod\n    maxSessions: lots\n")
    code, out, err = _ao_config("apply", str(path))
    assert code == 2 and out == ""
    assert "projects.web.agent: unknown agent plugin 'clod'" in err and "projects.web.maxSessions" in err
    assert err.splitlines()[-1] == f"ao: {path} has 2 problem(s); nothing was changed"
    assert Project.objects.get(key="web").agent == "codex"


def test_ao_config_without_a_file_says_where_it_looked(no_ao_config, tmp_path, monkeypatch):
    from django.core.management import CommandError, call_command

    monkeypatch.chdir(tmp_path)
    with pytest.raises(CommandError, match=r"no ao\.config\.yaml here or above"):
        call_command("config", "check")


@pytest.mark.usefixtures("builtin_plugins_only")
def test_ao_config_schema_prints_the_shipped_schema():
    code, out, _ = _ao_config("schema")

    assert code == 0
    assert json.loads(out) == config_json_schema()
    assert out == SCHEMA_FILE.read_text(encoding="utf-8")
