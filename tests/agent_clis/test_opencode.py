"""The real OpenCode (opencode-ai 1.18.33, see install.py) driven through ao's public services in
a real tmux, talking to a local fake of OpenAI Chat Completions through OpenCode's bundled
``@ai-sdk/openai-compatible`` provider (nothing is downloaded at run time).

One scenario checks, in order: OpenCode starts in a fresh worktree and a fresh HOME with the
prompt on its command line and no keystroke from anyone; activity is active while the model
holds its answer, waiting_input while OpenCode asks to run a shell command (never working), ready
after the turn; the file is written and the commit made by its tools; tokens, cost and model are
OpenCode's own records; a long message with shell metacharacters arrives as one user turn; kill
and restore resume the conversation (the model is sent the earlier turns); and a model API that
keeps failing reads as blocked, with OpenCode's retry message as the summary, not as working.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from integrations.registry import plugin_for
from sessions.agents import messaging, operating, spawning
from sessions.models import Event
from tests.agent_clis import helpers
from tests.agent_clis.helpers import deliver_and_observe, eventually, observe, process_tree_cmdlines
from tests.agent_clis.install import ensure
from tests.factories import ProjectFactory
from tests.fakes.models import Recorded, ToolCall, Turn
from tests.fakes.models.openai_chat import FakeChatCompletionsAPI

pytestmark = [pytest.mark.django_db, pytest.mark.slow, pytest.mark.timeout(600)]

MODEL = "fake/fake-model"

LONG_MESSAGE = (
    "Second request, please read all of it:\n"
    "1. Keep the greeting \"hello\" exactly as it is; don't add 'quotes' of your own.\n"
    "2. Run `git log --oneline` & `git status` before you commit anything.\n"
    "3. Never expand $HOME or ${PATH} in files; write them literally: $HOME/.config.\n"
    "4. Angle brackets stay too: <stdin> > <stdout> and a && b || c.\n"
    "5. A backslash \\n is not a newline, and a tab\tis a tab.\n"
    "That is all for now; reply briefly with OK and nothing else, thank you very much.\n"
)


assert len(LONG_MESSAGE) > 300


def pane(socket: str, name: str) -> str:
    return helpers.pane(socket, name, history=60)


def main_conversation(request: Recorded) -> bool:
    """The conversation itself (it offers tools), not OpenCode's title requests."""
    return isinstance(request.body, dict) and bool(request.body.get("tools"))


def stored_session(home: Path) -> dict:
    """OpenCode's own record of the conversation: its session row."""
    with sqlite3.connect(f"file:{home}/.local/share/opencode/opencode.db?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        return dict(db.execute("SELECT * FROM session ORDER BY rowid DESC LIMIT 1").fetchone())


@pytest.fixture(scope="session")
def opencode_bin() -> Path:
    return ensure("opencode")  # before HOME changes: the cache is under the real home


@pytest.fixture
def fake():
    with FakeChatCompletionsAPI(models=("fake-model",)) as api:
        api.default = Turn(text="Greeting file", input_tokens=200, output_tokens=3)
        yield api


@pytest.fixture
def agent_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake, opencode_bin) -> Path:
    """A fresh HOME whose opencode.json names the fake as an OpenAI-compatible provider (with
    prices, so there is a cost to show) and asks before shell commands; set before the tmux
    server starts."""
    home = tmp_path / "home"
    config = home / ".config" / "opencode" / "opencode.json"
    config.parent.mkdir(parents=True)
    config.write_text(
        json.dumps(
            {
                "$schema": "https://opencode.ai/config.json",
                "autoupdate": False,
                "share": "disabled",
                "permission": {"bash": {"*": "ask"}},
                "provider": {
                    "fake": {
                        "npm": "@ai-sdk/openai-compatible",
                        "name": "Fake",
                        "options": {"baseURL": fake.base_url + "/v1", "apiKey": fake.api_key},
                        "models": {
                            "fake-model": {"name": "Fake Model", "cost": {"input": 2.5, "output": 10}}
                        },
                    }
                },
            }
        )
    )
    monkeypatch.setenv("HOME", str(home))
    for name in list(os.environ):
        if name.startswith(("XDG_", "OPENCODE")):
            monkeypatch.delenv(name)
    return home


@pytest.fixture
def project(repo, agent_home, opencode_bin, tmux_server, settings, tmp_path):
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    return ProjectFactory(
        key="webapp",
        session_prefix="web",
        path=str(repo.path),
        agent="opencode",
        runtime="tmux",
        workspace="worktree",
        tracker="local",
        plugin_settings={
            "agent": {"binary": str(opencode_bin), "model": MODEL},
            "runtime": {"socket_name": tmux_server, "enter_delay": 0.1},
        },
    )


def test_opencode_tools_permission_message_costs_resume_and_retries(
    project, fake, agent_home, tmux_server, django_capture_on_commit_callbacks
) -> None:
    fake.script(
        Turn(
            text="Writing the file.",
            tool_calls=[ToolCall("write", {"filePath": "hello.txt", "content": "hello\n"})],
            input_tokens=1500,
            output_tokens=40,
            when=main_conversation,
        ),
        Turn(
            tool_calls=[
                ToolCall(
                    "bash",
                    {
                        "command": "git add hello.txt && git commit -q -m 'Add hello.txt'",
                        "description": "Commit",
                    },
                )
            ],
            input_tokens=1700,
            output_tokens=30,
            when=main_conversation,
        ),
        Turn(
            text="Created and committed hello.txt.",
            input_tokens=1900,
            output_tokens=12,
            when=main_conversation,
        ),
    )
    fake.hold()

    # spawn: ao types the prompt once OpenCode shows its prompt; nobody touches the terminal
    with django_capture_on_commit_callbacks(execute=True):
        session = spawning.session_spawn(project=project, prompt="Create hello.txt and commit it. MARK-FIRST")
    session.refresh_from_db()
    assert session.phase == "running", session.error
    workspace = Path(session.workspace_path)

    def asked_the_model():
        deliver_and_observe(session.id)
        return [r for r in fake.completions() if main_conversation(r)]

    first = eventually(asked_the_model, timeout=90)
    assert first, f"opencode never sent the prompt; its screen:\n{pane(tmux_server, session.id)}"
    assert "MARK-FIRST" in FakeChatCompletionsAPI.user_texts(first[0])[-1]
    assert sum("MARK-FIRST" in text for text in FakeChatCompletionsAPI.user_texts(first[0])) == 1
    # the task is not on OpenCode's command line, where `ps` shows it to every local user
    assert process_tree_cmdlines(tmux_server, session.id)
    assert not [cmd for cmd in process_tree_cmdlines(tmux_server, session.id) if "MARK-FIRST" in cmd]

    # the model holds its answer: OpenCode is working
    assert eventually(lambda: observe(session.id).activity == "active"), pane(tmux_server, session.id)
    assert observe(session.id).status == "working"

    # it writes the file, then asks before the shell command: waiting_input, never working
    fake.release()
    asked = eventually(lambda: observe(session.id).activity == "waiting_input", timeout=60)
    assert asked, pane(tmux_server, session.id)
    assert (workspace / "hello.txt").read_text() == "hello\n"
    session = observe(session.id)
    assert session.status == "needs_input"
    assert "Permission required" in session.activity_summary
    time.sleep(2)
    assert observe(session.id).activity == "waiting_input"  # still: it waits for a person

    # a person allows it in the terminal ("Allow once" is selected): the commit is made
    subprocess.run(["tmux", "-L", tmux_server, "send-keys", "-t", f"={session.id}:", "Enter"], check=True)
    assert eventually(lambda: observe(session.id).activity == "ready", timeout=60), pane(
        tmux_server, session.id
    )
    log = subprocess.run(
        ["git", "log", "--format=%s", "main..HEAD", "--", "hello.txt"],
        cwd=workspace,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    assert log[0] == "Add hello.txt"
    assert eventually(lambda: observe(session.id).status == "idle", timeout=90, interval=2)

    # tokens, cost and model are OpenCode's own records of the conversation
    def totals_match() -> bool:
        row, session = stored_session(agent_home), observe(session_id)
        return (session.tokens_in, session.tokens_out, float(session.cost_usd)) == (
            row["tokens_input"],
            row["tokens_output"],
            round(row["cost"], 4),
        )

    session_id = session.id
    row = stored_session(agent_home)
    assert row["tokens_input"] > 0 and row["cost"] > 0
    assert eventually(totals_match, timeout=20)
    reading = plugin_for(project, "agent").detect_activity(
        workspace=workspace,
        pane_text=pane(tmux_server, session_id),
        now=session.activity_at,
        process_alive=True,
    )
    assert reading.model == MODEL

    # a long multi-line message with quotes, backticks, $HOME, &, <> arrives intact as one turn
    fake.script(Turn(text="OK", input_tokens=2500, output_tokens=2, when=main_conversation))
    before = len(fake.completions())
    session = observe(session_id)
    messaging.message_queue(session=session, text=LONG_MESSAGE, sender_name="ana")
    messaging.messages_deliver(session_id=session_id, wait=60)
    sent_long = eventually(
        lambda: [r for r in fake.completions()[before:] if main_conversation(r)], timeout=60
    )
    assert sent_long, pane(tmux_server, session_id)
    users = FakeChatCompletionsAPI.user_texts(sent_long[0])
    # every character arrives; only the final newline comes out as a space (OpenCode's input)
    assert users[-1].rstrip() == LONG_MESSAGE.rstrip()
    assert sum(LONG_MESSAGE.rstrip("\n") in text for text in users) == 1
    assert eventually(lambda: observe(session_id).activity == "ready", timeout=60)
    assert eventually(totals_match, timeout=20)

    # kill, then restore: OpenCode reopens the conversation, so the model is sent the earlier turns
    session = observe(session_id)
    conversation_id = session.agent_session_ref
    assert conversation_id.startswith("ses_")
    operating.session_kill(session=session, reason="test")
    session.refresh_from_db()
    operating.session_restore(session=session)
    session.refresh_from_db()
    assert (
        "resumed its conversation"
        in Event.objects.filter(session=session, kind="session.restored").get().summary
    )
    assert eventually(lambda: observe(session_id).activity == "ready", timeout=90), pane(
        tmux_server, session_id
    )
    fake.script(
        Turn(text="You asked for hello.txt.", input_tokens=3000, output_tokens=8, when=main_conversation)
    )
    before = len(fake.completions())
    messaging.message_queue(
        session=observe(session_id), text="What did I ask first? MARK-AFTER", sender_name="ana"
    )
    messaging.messages_deliver(session_id=session_id, wait=60)
    after = eventually(lambda: [r for r in fake.completions()[before:] if main_conversation(r)], timeout=60)
    assert after, pane(tmux_server, session_id)
    texts = FakeChatCompletionsAPI.user_texts(after[0])
    assert "MARK-AFTER" in texts[-1]
    assert any("MARK-FIRST" in text for text in texts), "the restored OpenCode lost the conversation"
    assert any("$HOME/.config" in text for text in texts)
    assert eventually(lambda: observe(session_id).activity == "ready", timeout=60)
    assert observe(session_id).agent_session_ref == conversation_id
    assert eventually(totals_match, timeout=20)

    # the model API keeps failing: OpenCode retries forever with its working indicator drawn;
    # ao shows a problem (blocked, saying what fails), not an agent at work
    fake.fail_with(500, times=1000)
    messaging.message_queue(session=observe(session_id), text="One more thing.", sender_name="ana")
    messaging.messages_deliver(session_id=session_id, wait=30)
    blocked = eventually(lambda: observe(session_id).activity == "blocked", timeout=90)
    assert blocked, pane(tmux_server, session_id)
    session = observe(session_id)
    assert "retrying" in session.activity_summary
    assert eventually(lambda: observe(session_id).status == "blocked", timeout=60, interval=2)
