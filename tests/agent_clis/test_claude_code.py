"""The real Claude Code (both pinned versions) in a real tmux, driven through ao's public
services against a local Anthropic Messages fake (``tests/fakes/models/anthropic.py``).

The agent's HOME is set up as a user sets it up once (docs/AGENTS.md, "Claude Code"): first-run
screens done (``hasCompletedOnboarding``) and the API key approved. Everything else (folder
trust, permissions) is ao's ``prepare_workspace``.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
from django.utils import timezone

from integrations.registry import plugin_for
from sessions.agents import messaging, operating, spawning
from sessions.models import Session
from tests.agent_clis.helpers import (
    deliver_and_observe,
    eventually,
    observe,
    pane,
    process_tree_cmdlines,
    tmux,
)
from tests.agent_clis.install import ensure
from tests.factories import ProjectFactory
from tests.fakes.models.anthropic import AnthropicFake, ToolCall, Turn, is_agent_turn, user_texts

pytestmark = [pytest.mark.django_db, pytest.mark.slow, pytest.mark.timeout(600)]

API_KEY = "sk-ant-api03-ao-test-0123456789abcdefghijklmnop"
TASK = "Add NOTES.md saying hello, and commit it. (task text that must not show in ps)"
LONG_MESSAGE = (
    "Please also check these, exactly as written:\n"
    "1. the \"quoted\" and 'single-quoted' names;\n"
    "2. the `backticked` command `ls -la $HOME` & the other one;\n"
    "3. <angle> brackets, a literal $HOME, $(not a subshell) and ; semicolons;\n"
    "4. trailing spaces   \n"
    "Then answer with one line. This message is deliberately longer than three hundred characters "
    "so that Claude Code treats it as a paste and we see it arrive as one user turn, not several."
)


@pytest.fixture(params=["claude-code", "claude-code-old"])
def claude_bin(request) -> Path:
    return ensure(request.param)


@pytest.fixture
def fake():
    with AnthropicFake(api_key=API_KEY) as running:
        yield running


def user_set_up_once(home: Path, *, approve_key: bool) -> None:
    """What a user does once by hand (docs/AGENTS.md): finish Claude's first-run screens (their
    connectivity check ignores ANTHROPIC_BASE_URL) and answer "Yes" to "Do you want to use this
    API key?" (Claude records the key's last 20 characters)."""
    state = {"hasCompletedOnboarding": True}
    if approve_key:
        state["customApiKeyResponses"] = {"approved": [API_KEY[-20:]], "rejected": []}
    (home / ".claude.json").write_text(json.dumps(state))


@pytest.fixture
def agent_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: AnthropicFake) -> Path:
    """HOME and the model API for the agents, in the environment the tmux server starts with."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    monkeypatch.setenv("DISABLE_AUTOUPDATER", "1")
    monkeypatch.setenv("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
    for name in ("CLAUDE_CONFIG_DIR", "CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def tmux_server(agent_home: Path, tmux_server: str) -> str:
    """The test's own tmux server, started only after the environment above is set."""
    return tmux_server


def make_project(repo, tmux_server: str, claude_bin: Path, home: Path, settings, tmp_path, **agent):
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    return ProjectFactory(
        key="webapp",
        session_prefix="web",
        path=str(repo.path),
        agent="claude-code",
        runtime="tmux",
        workspace="worktree",
        tracker="local",
        plugin_settings={
            "agent": {"binary": str(claude_bin), "home": str(home), **agent},
            "runtime": {"socket_name": tmux_server, "enter_delay": 1.0, "width": 120, "height": 40},
        },
    )


def lines_of(text: str) -> list[str]:
    """The text's lines without trailing blanks (Claude trims those at the end of a paste's lines)."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    # 2.1.328 sends a paste wrapped in <pasted_content id="…"> … </pasted_content> lines
    return [line for line in lines if not re.fullmatch(r"</?pasted_content[^>]*>", line)]


def agent_requests(fake: AnthropicFake) -> list:
    return [request for request in list(fake.requests) if is_agent_turn(request)]


def transcript_records(
    home: Path, workspace: Path, repository: Path
) -> tuple[Path, int, int, float | None, str]:
    """The agent's own records, read independently of the plugin: (main transcript, input and
    output tokens summed per API message, the newest cost-state total or ~/.claude.json lastCost
    for this conversation, the model of the last assistant message). 2.1.100 records lastCost
    under the repository's main checkout, not the worktree it runs in."""
    directory = home / ".claude" / "projects" / "".join(c if c.isalnum() else "-" for c in str(workspace))
    mains = [p for p in directory.glob("*.jsonl") if not p.name.startswith("agent-")]
    path = max(mains, key=lambda p: p.stat().st_mtime)
    usage_by_message: dict[str, dict] = {}
    cost, model = None, ""
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("type") == "cost-state":
            cost = entry["totalCostUSD"]
        if entry.get("type") == "assistant" and isinstance(entry.get("message"), dict):
            message = entry["message"]
            usage_by_message[message["id"]] = message["usage"]
            model = message.get("model") or model
    tokens_in = sum(
        u["input_tokens"] + u.get("cache_read_input_tokens", 0) + u.get("cache_creation_input_tokens", 0)
        for u in usage_by_message.values()
    )
    tokens_out = sum(u["output_tokens"] for u in usage_by_message.values())
    projects = json.loads((home / ".claude.json").read_text()).get("projects", {})
    for key in (str(workspace), str(repository)):
        project = projects.get(key, {})
        if cost is None and project.get("lastSessionId") == path.stem:
            cost = project.get("lastCost")
    return path, tokens_in, tokens_out, cost, model


def test_task_message_kill_restore_costs(
    repo, tmux_server, claude_bin, agent_home, fake, settings, tmp_path, django_capture_on_commit_callbacks
) -> None:
    user_set_up_once(agent_home, approve_key=True)
    project = make_project(
        repo,
        tmux_server,
        claude_bin,
        agent_home,
        settings,
        tmp_path,
        permissions="auto-edit",
        allow=["Bash(git add:*)", "Bash(git commit:*)"],
        ready_window_seconds=6,
    )
    fake.hold()  # the model "thinks" until released
    with django_capture_on_commit_callbacks(execute=True):
        session = spawning.session_spawn(project=project, prompt=TASK)
    session.refresh_from_db()
    assert session.phase == "running", session.error
    workspace = Path(session.workspace_path)
    fake.script(
        Turn(
            text="Writing the notes.",
            tool_calls=[ToolCall("Write", {"file_path": str(workspace / "NOTES.md"), "content": "hello\n"})],
            when=is_agent_turn,
        ),
        Turn(
            text="Committing.",
            tool_calls=[
                ToolCall(
                    "Bash",
                    {"command": "git add NOTES.md && git commit -q -m 'Add notes'", "description": "Commit"},
                )
            ],
            when=is_agent_turn,
        ),
        Turn(text="Added NOTES.md and committed it.", when=is_agent_turn),
    )

    # no human keystroke: the prompt is typed by ao once Claude is ready, and the model is asked
    assert eventually(lambda: deliver_and_observe("web-1") and agent_requests(fake)), pane(
        tmux_server, "web-1"
    )
    first = agent_requests(fake)[0]
    # ao's worker prompt (20+ lines, pasted) arrives once, as one user turn
    assert TASK in user_texts(first)[-1]
    assert sum(TASK in text for text in user_texts(first)) == 1
    # the task is not on Claude's command line, where `ps` shows it to every local user
    assert process_tree_cmdlines(tmux_server, "web-1")
    assert not [cmd for cmd in process_tree_cmdlines(tmux_server, "web-1") if "must not show in ps" in cmd]
    # while the model holds its answer: active, and the summary is not Claude's footer
    session = eventually(lambda: (s := observe("web-1")).activity == "active" and s, timeout=20)
    assert session, observe("web-1").activity
    for footer in ("esc to interrupt", "shift+tab", "accept edits on"):
        assert footer not in session.activity_summary.lower()

    fake.release()
    # the turn runs two tools and three model calls: give a busy CI machine room
    session = eventually(lambda: (s := observe("web-1")).activity == "ready" and s, timeout=180)
    assert session, (observe("web-1").activity, pane(tmux_server, "web-1"))
    assert (workspace / "NOTES.md").read_text() == "hello\n"
    log = subprocess.run(["git", "log", "--format=%s"], cwd=workspace, capture_output=True, text=True).stdout
    assert log.splitlines()[0] == "Add notes"
    assert session.activity_summary == "Added NOTES.md and committed it."
    path, tokens_in, tokens_out, _, model = transcript_records(agent_home, workspace, repo.path)
    assert (session.tokens_in, session.tokens_out) == (tokens_in, tokens_out) == (3 * 1200, 3 * 80)
    assert session.agent_session_ref == path.stem
    reading = plugin_for(project, "agent").transcript_reading(workspace, timezone.now())
    assert reading.model == model == first.body["model"]

    # a long multi-line message arrives intact, as one user turn
    fake.script(Turn(text="Checked them all.", when=is_agent_turn))
    before = len(agent_requests(fake))
    with django_capture_on_commit_callbacks(execute=True):
        messaging.message_queue(session=session, text=LONG_MESSAGE, sender_name="ana")
    assert eventually(lambda: deliver_and_observe("web-1") and len(agent_requests(fake)) > before)
    received = user_texts(agent_requests(fake)[before])
    assert lines_of(received[-1]) == lines_of(LONG_MESSAGE)
    assert sum(LONG_MESSAGE[:40] in text for text in received) == 1
    assert eventually(lambda: observe("web-1").activity == "ready")
    # idle once the ready window (6 s here) has passed
    idle = eventually(lambda: observe("web-1").activity == "idle", timeout=30)
    assert idle, (observe("web-1").activity, pane(tmux_server, "web-1")[-1500:])

    # kill, then restore: the same conversation goes on (the model sees the earlier turns)
    operating.session_kill(session=session, reason="test")
    session.refresh_from_db()
    conversation = session.agent_session_ref
    # what Claude recorded on exit (2.1.328: cost-state in the transcript; 2.1.100:
    # ~/.claude.json lastCost under the repository's main checkout)
    recorded_cost = eventually(lambda: transcript_records(agent_home, workspace, repo.path)[3])
    assert recorded_cost and recorded_cost > 0
    # a message sent right after the restore (the transcript from before says "ready" at once;
    # the new Claude takes input only later): typed once it does, sent once, as one user turn
    fake.script(Turn(text="Still here.", when=is_agent_turn))
    before = len(agent_requests(fake))
    with django_capture_on_commit_callbacks(execute=True):
        operating.session_restore(session=session)
        messaging.message_queue(session=session, text="what did you do so far?", sender_name="ana")
    arrived = eventually(lambda: deliver_and_observe("web-1") and len(agent_requests(fake)) > before)
    messages = list(session.messages.values_list("text", "state", "attempts", "last_error"))
    assert arrived, (messages, pane(tmux_server, "web-1"))
    resumed = user_texts(agent_requests(fake)[before])
    assert any(TASK in text for text in resumed) and any(LONG_MESSAGE[:40] in text for text in resumed)
    assert resumed[-1].strip() == "what did you do so far?"
    assert sum("what did you do so far?" in text for text in resumed) == 1
    session = eventually(lambda: (s := observe("web-1")).activity == "ready" and s)
    assert session and session.agent_session_ref == conversation
    later = [user_texts(request) for request in agent_requests(fake)[before:]]
    assert all(sum("what did you do so far?" in text for text in texts) == 1 for texts in later)
    assert not [cmd for cmd in process_tree_cmdlines(tmux_server, "web-1") if "must not show in ps" in cmd]

    # ao shows the cost Claude recorded, not $0
    path, tokens_in, tokens_out, _, _ = transcript_records(agent_home, workspace, repo.path)
    assert float(session.cost_usd or 0) == pytest.approx(recorded_cost, abs=1e-4)
    assert (session.tokens_in, session.tokens_out) == (tokens_in, tokens_out) == (5 * 1200, 5 * 80)
    operating.session_kill(session=session, reason="test")


def test_screens_waiting_for_a_person_read_waiting_input(
    repo, tmux_server, claude_bin, agent_home, fake, settings, tmp_path, django_capture_on_commit_callbacks
) -> None:
    """The API-key question, then (default permissions) the question Claude asks before a shell
    command: 2.1.328's "Auto mode can't check actions in this session" behind a gateway, 2.1.100's
    "Do you want to proceed?". Each reads waiting_input, never active, with the question as summary."""
    user_set_up_once(agent_home, approve_key=False)
    project = make_project(
        repo, tmux_server, claude_bin, agent_home, settings, tmp_path, permissions="default"
    )
    with django_capture_on_commit_callbacks(execute=True):
        session = spawning.session_spawn(project=project, prompt="run the tests")
    session.refresh_from_db()
    assert session.phase == "running", session.error
    session = eventually(lambda: (s := observe("web-1")).activity == "waiting_input" and s)
    assert session, (observe("web-1").activity, pane(tmux_server, "web-1"))
    assert "API key" in session.activity_summary
    # a person answers "Yes" (the one-time approval)
    tmux(tmux_server, "send-keys", "-t", "=web-1:", "Up")
    time.sleep(0.5)
    tmux(tmux_server, "send-keys", "-t", "=web-1:", "Enter")

    fake.script(
        Turn(
            text="Running the tests.",
            tool_calls=[
                ToolCall(
                    "Bash",
                    {
                        "command": "git status --short > status.txt && git commit -q --allow-empty -m wip",
                        "description": "Commit",
                    },
                )
            ],
            when=is_agent_turn,
        ),
        Turn(text="Done.", when=is_agent_turn),
    )
    assert eventually(lambda: deliver_and_observe("web-1") and agent_requests(fake)), pane(
        tmux_server, "web-1"
    )
    screen = eventually(
        lambda: (
            (text := pane(tmux_server, "web-1"))
            and ("Do you want to proceed?" in text or "can't check" in text)
            and text
        )
    )
    assert screen, pane(tmux_server, "web-1")
    readings = [observe("web-1") for _ in range(3)]
    assert [s.activity for s in readings] == ["waiting_input"] * 3, pane(tmux_server, "web-1")
    summary = readings[-1].activity_summary
    assert "Do you want to proceed?" in summary or "Auto mode can't check actions" in summary, summary
    assert not (Path(session.workspace_path) / "status.txt").exists()
    operating.session_kill(session=Session.objects.get(pk="web-1"), reason="test")
