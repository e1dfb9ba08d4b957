"""The real aider (aider-chat 0.86.2, see install.py) driven through ao's public services in a
real tmux, talking to a local fake of OpenAI Chat Completions.

One scenario checks, in order: aider starts in a fresh worktree and a fresh HOME with only
``model:`` configured and takes its first prompt without a keystroke from anyone (its first-run
questions are pre-answered); activity is active while the model holds its answer, waiting_input
while aider asks to create a file (never working), ready after the turn, with a summary saying
so; the edit block is applied and auto-committed; a long message with shell metacharacters
arrives as one user turn; tokens and cost equal aider's own totals; kill and restore resume the
conversation (the model is sent the earlier turns).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from integrations.registry import plugin_for
from sessions.agents import messaging, operating, spawning
from sessions.models import Event
from tests.agent_clis import helpers
from tests.agent_clis.helpers import eventually, observe
from tests.agent_clis.install import ensure
from tests.factories import ProjectFactory
from tests.fakes.models import Recorded, Turn
from tests.fakes.models.openai_chat import FakeChatCompletionsAPI

pytestmark = [pytest.mark.django_db, pytest.mark.slow, pytest.mark.timeout(600)]

MODEL = "gpt-4o"  # aider's "openai/gpt-4o": a model litellm knows the prices of, offline too

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
    """The conversation itself, not aider's weak-model requests (commit messages, summaries)."""
    return isinstance(request.body, dict) and request.body.get("model") == MODEL


def aider_totals(history: Path) -> tuple[int, int, float]:
    """(sent, received, cost) as aider printed them: tokens summed over replies, cost the last
    "$… session" of each aider run (a restored aider starts its session at $0 again)."""
    sent = received = 0
    costs: list[float] = []
    for line in history.read_text().splitlines():
        if line.startswith("# aider chat started at"):
            costs.append(0.0)
        match = re.search(
            r"Tokens: ([\d.]+)(k?) sent, ([\d.]+)(k?) received\. Cost: \$[\d.]+ message, \$([\d.]+) session",
            line,
        )
        if match:
            sent += round(float(match[1]) * (1000 if match[2] else 1))
            received += round(float(match[3]) * (1000 if match[4] else 1))
            costs[-1] = float(match[5])
    return sent, received, sum(costs)


@pytest.fixture
def fake():
    with FakeChatCompletionsAPI(models=(MODEL, "gpt-4o-mini")) as api:
        api.default = Turn(text="Add hello.py", input_tokens=300, output_tokens=5)
        yield api


@pytest.fixture(scope="session")
def aider_bin() -> Path:
    return ensure("aider")  # before HOME changes: the cache is under the real home


@pytest.fixture
def agent_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake, aider_bin) -> Path:
    """A fresh HOME (aider's first run) and the OpenAI variables, set before the tmux server starts."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("OPENAI_API_BASE", fake.base_url + "/v1")
    monkeypatch.setenv("OPENAI_API_KEY", fake.api_key)
    for name in list(__import__("os").environ):
        if name.startswith("AIDER_"):
            monkeypatch.delenv(name)
    return home


@pytest.fixture
def project(repo, agent_home, aider_bin, tmux_server, settings, tmp_path):
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    settings.AO_INLINE_DELIVERY_WAIT = 90.0
    return ProjectFactory(
        key="webapp",
        session_prefix="web",
        path=str(repo.path),
        agent="aider",
        runtime="tmux",
        workspace="worktree",
        tracker="local",
        plugin_settings={
            # only the model: what a new user configures
            "agent": {"binary": str(aider_bin), "model": f"openai/{MODEL}"},
            "runtime": {"socket_name": tmux_server, "enter_delay": 0.1},
        },
    )


def test_aider_unattended_edit_commit_message_costs_and_resume(
    project, fake, tmux_server, django_capture_on_commit_callbacks
) -> None:
    edit = (
        "I will create hello.py.\n\n"
        "hello.py\n"
        "```python\n"
        "<<<<<<< SEARCH\n"
        "=======\n"
        'print("hello")\n'
        ">>>>>>> REPLACE\n"
        "```\n"
    )
    fake.script(Turn(text=edit, input_tokens=2000, output_tokens=60, when=main_conversation))
    fake.hold()

    # spawn: aider starts and its first prompt is typed once it is at its prompt, unattended
    with django_capture_on_commit_callbacks(execute=True):
        session = spawning.session_spawn(project=project, prompt="Create hello.py printing hello. MARK-FIRST")
    session.refresh_from_db()
    assert session.phase == "running", session.error
    workspace = Path(session.workspace_path)
    first = eventually(lambda: [r for r in fake.completions() if main_conversation(r)], timeout=90)
    assert first, f"aider never sent the prompt; its screen:\n{pane(tmux_server, session.id)}"
    assert "MARK-FIRST" in FakeChatCompletionsAPI.user_texts(first[0])[-1]

    # the model holds its answer: aider is working, and says on what
    held = observe(session.id)
    assert held.activity == "active", pane(tmux_server, session.id)
    assert held.status == "working"
    assert eventually(lambda: f"waiting for openai/{MODEL}" in observe(session.id).activity_summary)
    assert observe(session.id).activity == "active"

    # the edit block names a new file: aider asks before creating it; that is a question for a
    # person (waiting_input, needs_input), never "working"
    fake.release()
    asked = eventually(lambda: observe(session.id).activity == "waiting_input", timeout=60)
    assert asked, pane(tmux_server, session.id)
    session = observe(session.id)
    assert "Create new file" in session.activity_summary
    assert session.status == "needs_input"
    assert not (workspace / "hello.py").exists()

    # a person answers through ao: the edit is applied and aider commits it itself
    messaging.message_queue(session=session, text="y", answers_prompt=True, sender_name="ana")
    messaging.messages_deliver(session_id=session.id, wait=30)
    assert eventually(lambda: (workspace / "hello.py").exists(), timeout=60), pane(tmux_server, session.id)
    assert (workspace / "hello.py").read_text() == 'print("hello")\n'
    assert eventually(lambda: observe(session.id).activity == "ready", timeout=60), pane(
        tmux_server, session.id
    )
    log = subprocess.run(
        ["git", "log", "--format=%H", "main..HEAD", "--", "hello.py"],
        cwd=workspace,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert len(log) == 1, "aider did not commit its edit"
    assert (
        subprocess.run(["git", "status", "--porcelain"], cwd=workspace, capture_output=True, text=True).stdout
        == ""
    )

    # ready, and the summary says so (not the spinner's last "Waiting for openai/gpt-4o"); the
    # needs_input status ends once the screen has shown the prompt for a while (lifecycle)
    assert eventually(lambda: observe(session.id).status == "idle", timeout=90, interval=2)
    session = observe(session.id)
    assert "Waiting for" not in session.activity_summary
    assert "prompt" in session.activity_summary

    # tokens and cost are aider's own totals, and the model is the one aider announced
    history = workspace / ".aider.chat.history.md"
    sent, received, cost = aider_totals(history)
    assert sent > 0 and received > 0 and cost > 0
    assert (session.tokens_in, session.tokens_out) == (sent, received)
    assert float(session.cost_usd) == pytest.approx(round(cost, 4))
    reading = plugin_for(project, "agent").detect_activity(
        workspace=workspace,
        pane_text=pane(tmux_server, session.id),
        now=session.activity_at,
        process_alive=True,
    )
    assert reading.model == f"openai/{MODEL}"

    # a long multi-line message with quotes, backticks, $HOME, &, <> arrives intact as one turn
    fake.script(Turn(text="OK", input_tokens=2500, output_tokens=2, when=main_conversation))
    before = len(fake.completions())
    messaging.message_queue(session=session, text=LONG_MESSAGE, sender_name="ana")
    messaging.messages_deliver(session_id=session.id, wait=60)
    sent_long = eventually(
        lambda: [r for r in fake.completions()[before:] if main_conversation(r)], timeout=60
    )
    assert sent_long, pane(tmux_server, session.id)
    users = FakeChatCompletionsAPI.user_texts(sent_long[0])
    assert users[-1] == LONG_MESSAGE
    assert sum(LONG_MESSAGE.rstrip("\n") in text for text in users) == 1
    assert eventually(lambda: observe(session.id).activity == "ready", timeout=60)
    session = observe(session.id)
    sent, received, cost = aider_totals(history)
    assert (session.tokens_in, session.tokens_out) == (sent, received)

    # kill, then restore: aider resumes the conversation, so the model is sent the earlier turns
    operating.session_kill(session=session, reason="test")
    session.refresh_from_db()
    operating.session_restore(session=session)
    session.refresh_from_db()
    restored = Event.objects.filter(session=session, kind="session.restored").get().summary
    assert "resumed its conversation" in restored
    assert eventually(lambda: observe(session.id).activity == "ready", timeout=90), pane(
        tmux_server, session.id
    )
    fake.script(
        Turn(
            text="You asked me for a greeting script.",
            input_tokens=3000,
            output_tokens=8,
            when=main_conversation,
        )
    )
    before = len(fake.completions())
    session = observe(session.id)
    messaging.message_queue(session=session, text="What did I ask you first? MARK-AFTER", sender_name="ana")
    messaging.messages_deliver(session_id=session.id, wait=60)
    after = eventually(lambda: [r for r in fake.completions()[before:] if main_conversation(r)], timeout=60)
    assert after, pane(tmux_server, session.id)
    conversation = after[0].text()
    assert "MARK-AFTER" in conversation
    assert "MARK-FIRST" in conversation, "the restored aider did not get the earlier conversation"
    assert "hello" in conversation and "$HOME/.config" in conversation

    # the totals span both aider runs, as its history records them
    assert eventually(lambda: observe(session.id).activity == "ready", timeout=60), pane(
        tmux_server, session.id
    )
    session = observe(session.id)
    sent, received, cost = aider_totals(history)
    assert (session.tokens_in, session.tokens_out) == (sent, received)
    assert float(session.cost_usd) == pytest.approx(round(cost, 4))
