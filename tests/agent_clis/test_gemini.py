"""The real Gemini CLI (pinned in tests.agent_clis.install) driven through ao's public services in a
real tmux server, against a local fake of the Gemini API (tests.fakes.models.gemini).

One scenario, checked in sequence: start unattended in a fresh worktree; the task is acted on
(a file written, a commit made, a final answer); activity is truthful over time (active while the
fake holds its answer, waiting_input while a tool approval is up, ready after the turn, idle
later); a long multi-line message arrives as one user turn; tokens equal Gemini's own session
file; kill then restore resumes the same conversation (the fake sees the earlier turns).
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from integrations.agent.gemini import GeminiAgent, gemini_dir, session_file
from sessions.agents import messaging, operating, plugins, spawning
from sessions.models import Event
from tests.agent_clis.helpers import eventually, observe, pane, process_tree_cmdlines, tmux
from tests.agent_clis.install import ensure
from tests.factories import ProjectFactory
from tests.fakes.models.gemini import FakeGemini, ToolCall, Turn, user_texts
from tests.helpers.fixtures import git

pytestmark = [pytest.mark.django_db, pytest.mark.slow, pytest.mark.timeout(400)]

conversation = FakeGemini.is_conversation  # the main chat, not the model router or checks

LONG_MESSAGE = (
    "Second task, please read all of it:\n"
    "1. Keep \"double\" and 'single' quotes exactly as they are.\n"
    "2. Backticks stay: `git status` and ```fenced``` text.\n"
    "3. Do not expand $HOME or ${PATH} or $(whoami); they are literal.\n"
    "4. Ampersands & pipes | and redirects <input.txt >output.txt 2>&1 are text too.\n"
    "5. Tabs\tand trailing spaces are fine; unicode: naïve café — ok.\n"
    "Finally, reply with a one-line summary of what you changed in notes.txt and why."
)


@pytest.fixture
def fake() -> FakeGemini:
    with FakeGemini() as server:
        yield server


@pytest.fixture
def agent_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeGemini) -> Path:
    """A new user's HOME: Gemini installed, an API key in the environment, nothing chosen yet.

    The settings file only keeps the CLI off the network (no update checks, no usage statistics);
    no auth method is selected and no folder is trusted: that is for ao to handle.
    """
    home = tmp_path / "home"
    (home / ".gemini").mkdir(parents=True)
    (home / ".gemini" / "settings.json").write_text(
        json.dumps(
            {
                "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
                "privacy": {"usageStatisticsEnabled": False},
                "telemetry": {"enabled": False},
            }
        )
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("GEMINI_CLI_HOME", raising=False)
    for name, value in fake.env().items():
        monkeypatch.setenv(name, value)
    for name in (
        "GOOGLE_API_KEY",
        "GOOGLE_GENAI_USE_VERTEXAI",
        "GOOGLE_GENAI_USE_GCA",
        "GOOGLE_CLOUD_PROJECT",
    ):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def project(repo, agent_home, tmux_server, settings, tmp_path):
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    return ProjectFactory(
        key="gem",
        session_prefix="gem",
        path=str(repo.path),
        agent="gemini",
        runtime="tmux",
        workspace="worktree",
        tracker="local",
        plugin_settings={
            "agent": {"binary": str(ensure("gemini")), "home": str(agent_home), "permissions": "auto-edit"},
            # Gemini turns an Enter read within 30 ms of the text into a newline (its paste guard);
            # on a loaded machine a busy CLI reads both at once, so give Enter a clear gap.
            "runtime": {"socket_name": tmux_server, "width": 120, "height": 40, "enter_delay": 1.0},
        },
    )


def recorded_totals(home: Path, workspace: Path) -> tuple[int, int, str]:
    """Gemini's own record of the conversation, read here independently of the plugin: each
    model message's last-written token counts (input; output + thoughts) and its model."""
    path = session_file(gemini_dir(home), workspace)
    assert path is not None, "gemini wrote no session file"
    messages: dict[str, dict] = {}
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if isinstance(entry.get("$set"), dict) and isinstance(entry["$set"].get("messages"), list):
            messages = {m["id"]: m for m in entry["$set"]["messages"] if m.get("type") == "gemini"}
        elif entry.get("type") == "gemini":
            messages[entry["id"]] = entry
    # a message being streamed is written without "tokens" until its usage arrives
    counts = [m.get("tokens") or {} for m in messages.values()]
    tokens_in = sum(t.get("input", 0) for t in counts)
    tokens_out = sum(t.get("output", 0) + t.get("thoughts", 0) for t in counts)
    models = [m.get("model", "") for m in messages.values()]
    return tokens_in, tokens_out, models[-1] if models else ""


def conversation_after(fake: FakeGemini, count: int) -> bool:
    return len(fake.conversation_requests()) > count


def test_gemini_unattended_task_activity_message_tokens_restore(
    project, repo, fake, agent_home, tmux_server, django_capture_on_commit_callbacks, monkeypatch
) -> None:
    # ao serving from a CI runner or a container that sets CI=true: Gemini, seeing it, would run
    # headless and exit ("No input provided via stdin") instead of taking the task
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    fake.script(
        Turn(
            text="I will note the task in notes.txt.",
            tool_calls=[ToolCall("write_file", {"file_path": "notes.txt", "content": "task noted\n"})],
            input_tokens=2100,
            output_tokens=40,
            when=conversation,
        ),
        Turn(
            text="Committing it.",
            tool_calls=[
                ToolCall(
                    "run_shell_command",
                    {"command": "git add notes.txt && git commit -m 'Add notes'", "description": "commit"},
                )
            ],
            input_tokens=2300,
            output_tokens=30,
            when=conversation,
        ),
        Turn(
            text="Committed notes.txt with the task noted.",
            input_tokens=2500,
            output_tokens=20,
            when=conversation,
        ),
    )
    fake.hold()

    # --- starts unattended: no trust, auth or first-run dialog waits for a keystroke ----------
    with django_capture_on_commit_callbacks(execute=True):
        session = spawning.session_spawn(project=project, prompt="Write notes.txt and commit it.")
    session.refresh_from_db()
    assert session.phase == "running", session.error
    workspace = Path(session.workspace_path)
    sid = session.id
    assert eventually(lambda: conversation_after(fake, 0)), "gemini never asked the model: " + pane(
        tmux_server, sid
    )
    first = fake.conversation_requests()[0]
    assert first.headers.get("x-goog-api-key") == fake.api_key
    assert "Write notes.txt and commit it." in user_texts(first)[-1]
    assert sum("Write notes.txt and commit it." in text for text in user_texts(first)) == 1
    # the first prompt was typed (pasted), not put on gemini's command line where `ps` shows it
    assert process_tree_cmdlines(tmux_server, sid)
    assert not [cmd for cmd in process_tree_cmdlines(tmux_server, sid) if "Write notes.txt" in cmd]

    # --- active while the model holds its answer (never waiting_input, never ready) ---------
    session = observe(sid)
    assert session.activity == "active", (session.activity, pane(tmux_server, sid))
    fake.release()

    # --- the shell call waits for approval: waiting_input, saying what it waits for ------------
    session = eventually(lambda: (s := observe(sid)).activity == "waiting_input" and s)
    assert session, pane(tmux_server, sid)
    assert "Allow execution" in pane(tmux_server, sid)
    assert "git add notes.txt" in session.activity_summary, session.activity_summary
    assert (workspace / "notes.txt").read_text() == "task noted\n"  # auto-edit wrote it unasked
    # still waiting a while later: a dialog is never taken for work or for a finished turn
    time.sleep(1.5)
    assert observe(sid).activity == "waiting_input"
    tmux(tmux_server, "send-keys", "-t", f"={sid}:", "Enter")  # the person allows it once

    # --- the turn ends: ready, the commit made, the summary is the final answer --------------
    session = eventually(lambda: (s := observe(sid)).activity == "ready" and fake.remaining() == 0 and s)
    assert session, pane(tmux_server, sid)
    assert git("log", "-1", "--format=%s", cwd=workspace) == "Add notes"
    assert git("show", "--name-only", "--format=", "HEAD", cwd=workspace) == "notes.txt"
    assert session.activity_summary == "Committed notes.txt with the task noted."

    # --- tokens equal Gemini's own records; the model is the one it recorded ---------------
    tokens_in, tokens_out, model = recorded_totals(agent_home, workspace)
    assert (tokens_in, tokens_out) == (2100 + 2300 + 2500, 40 + 30 + 20)
    assert (session.tokens_in, session.tokens_out) == (tokens_in, tokens_out)
    plugin = plugins.context_for(session).agent
    assert isinstance(plugin, GeminiAgent)
    screen = pane(tmux_server, sid)
    reading = plugin.detect_activity(
        workspace=workspace, pane_text=screen, now=timezone.now(), process_alive=True
    )
    assert model and reading.model == model
    assert reading.cost_usd is None  # Gemini records no cost; ao shows none rather than a guess
    # ready within the ready window after the turn, idle after it
    later = timezone.now() + timedelta(seconds=plugin.config.ready_window_seconds + 5)
    assert (
        plugin.detect_activity(workspace=workspace, pane_text=screen, now=later, process_alive=True).state
        == "idle"
    )

    # --- a long multi-line message arrives intact as ONE user turn ----------------------------
    assert len(LONG_MESSAGE) > 300
    fake.script(Turn(text="Kept every character.", input_tokens=2700, output_tokens=10, when=conversation))
    fake.hold()
    before = len(fake.conversation_requests())
    with django_capture_on_commit_callbacks(execute=True):
        messaging.message_queue(session=session, text=LONG_MESSAGE, sender_name="ana")
    assert eventually(lambda: conversation_after(fake, before)), pane(tmux_server, sid)
    request = fake.conversation_requests()[before]
    texts = user_texts(request)
    assert texts[-1] == LONG_MESSAGE
    assert sum("Second task" in t or "Finally, reply" in t for t in texts) == 1
    assert observe(sid).activity == "active"
    fake.release()
    session = eventually(lambda: (s := observe(sid)).activity == "ready" and fake.remaining() == 0 and s)
    assert session and session.activity_summary == "Kept every character."
    assert (session.tokens_in, session.tokens_out) == recorded_totals(agent_home, workspace)[:2]
    conversation_id = session.agent_session_ref
    assert conversation_id

    # --- kill, then restore: the same conversation continues -------------------------------
    operating.session_kill(session=session, reason="test")
    session.refresh_from_db()
    assert tmux(tmux_server, "has-session", "-t", f"={sid}").returncode != 0
    operating.session_restore(session=session)
    session.refresh_from_db()
    assert session.phase == "running", session.error
    restored = Event.objects.filter(session=session, kind="session.restored").get()
    assert "resumed its conversation" in restored.summary
    # a short question sent right after the restore (the session file from before says the
    # turn ended; the new gemini takes input only later): sent once, "?" kept (it is pasted:
    # typed, "?" on an empty input opens gemini's shortcuts panel)
    fake.script(Turn(text="Yes, notes.txt is committed.", when=conversation))
    before = len(fake.conversation_requests())
    with django_capture_on_commit_callbacks(execute=True):
        messaging.message_queue(session=session, text="Is the work committed?", sender_name="ana")

    def delivered() -> bool:  # one pass of ao's delivery loop, then: did the model get it?
        messaging.messages_deliver(session_id=sid)
        return conversation_after(fake, before)

    assert eventually(delivered), pane(tmux_server, sid)
    resumed = fake.conversation_requests()[before]
    assert user_texts(resumed)[-1] == "Is the work committed?"
    assert LONG_MESSAGE in user_texts(resumed)  # the earlier turns were sent again
    assert "Committed notes.txt with the task noted." in resumed.text()
    session = eventually(lambda: (s := observe(sid)).activity == "ready" and fake.remaining() == 0 and s)
    assert session and session.agent_session_ref == conversation_id
    assert (session.tokens_in, session.tokens_out) == recorded_totals(agent_home, workspace)[:2]
    later = [user_texts(request) for request in fake.conversation_requests()[before:]]
    assert all(texts.count("Is the work committed?") == 1 for texts in later), later
