"""The real Codex CLI (pinned in ``install.py``) driven through ao's public services in a real tmux,
against a local fake of OpenAI's Responses API.

What a user sets up once, and the test does too: ``$CODEX_HOME/config.toml`` with a model provider
(``base_url``, ``wire_api = "responses"``, ``env_key`` naming the variable that holds the key) and
that variable in ao's environment. Everything else (folder trust) ao answers itself.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from sessions.agents import messaging, operating, plugins, spawning
from sessions.models import Event, Session
from tests.agent_clis import helpers
from tests.agent_clis.helpers import eventually, observe, tmux
from tests.agent_clis.install import ensure
from tests.factories import ProjectFactory
from tests.fakes.models import Recorded, ToolCall
from tests.fakes.models.openai_responses import FakeResponsesAPI, ResponsesTurn, is_agent_turn
from tests.helpers.fixtures import git

pytestmark = [pytest.mark.django_db, pytest.mark.slow, pytest.mark.timeout(600)]

KEY_ENV = "AO_TEST_CODEX_API_KEY"
MODEL = "fake-codex-model"

LONG_MESSAGE = (
    "Please also check the following before you finish, exactly as written:\n"
    "1. The README says \"run `make test` first\" and 'never skip it' -- keep both quotes.\n"
    "2. Paths like $HOME/.config and ${HOME}/x must stay literal; do not expand $(whoami).\n"
    "3. Shell bits such as a && b || c & d; e > out.txt < in.txt 2>&1 are text, not commands.\n"
    '4. Tags <div class="x">&amp;</div> and generics Vec<Option<T>> stay as they are.\n'
    "Thanks! -- ana (100% sure; backslash \\ too)"
)


def pane(socket: str, name: str) -> str:
    return helpers.pane(socket, name, history=200)


@pytest.fixture
def codex_bin() -> Path:
    return ensure("codex")


@pytest.fixture
def fake() -> Iterator[FakeResponsesAPI]:
    with FakeResponsesAPI(models=(MODEL,)) as api:
        yield api  # type: ignore[misc]


@pytest.fixture
def codex_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeResponsesAPI) -> Iterator[Path]:
    """CODEX_HOME with the user's one-time provider set-up, exported before the tmux server starts."""
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text(
        f'model = "{MODEL}"\n'
        'model_provider = "fake"\n'
        "\n"
        "[model_providers.fake]\n"
        'name = "fake"\n'
        f'base_url = "{fake.base_url}/v1"\n'
        'wire_api = "responses"\n'
        f'env_key = "{KEY_ENV}"\n'
    )
    user_home = tmp_path / "user-home"
    user_home.mkdir()
    monkeypatch.setenv("HOME", str(user_home))
    monkeypatch.setenv("CODEX_HOME", str(home))
    monkeypatch.setenv(KEY_ENV, fake.api_key)
    yield home
    _end_processes_under(home)


def processes_under(home: Path) -> list[int]:
    """Pids of processes running a program installed under ``home`` (Codex's background
    app-server installs itself in ``$CODEX_HOME/packages``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv0 = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if argv0.startswith(str(home) + "/"):
            pids.append(int(entry.name))
    return pids


def command_lines() -> list[tuple[int, str]]:
    """(pid, command line) of every process, as `ps` shows them."""
    lines = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            lines.append((int(entry.name), argv))
    return lines


def _end_processes_under(home: Path) -> None:
    """Stop what a failed test left running from ``home``, by pid: it would outlive the test."""
    for pid in processes_under(home):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


@pytest.fixture
def project(repo, codex_home, codex_bin, tmux_server, settings, tmp_path):
    settings.AO_WORKSPACES_ROOT = tmp_path / "workspaces"
    return ProjectFactory(
        key="webapp",
        session_prefix="cx",
        path=str(repo.path),
        agent="codex",
        runtime="tmux",
        workspace="worktree",
        tracker="local",
        plugin_settings={
            "agent": {"binary": str(codex_bin), "permissions": "auto-edit"},
            "runtime": {"socket_name": tmux_server, "enter_delay": 0.3, "width": 160, "height": 50},
        },
    )


# --- helpers ---------------------------------------------------------------------------------------
def agent_requests(fake: FakeResponsesAPI) -> list[Recorded]:
    return [r for r in fake.responses() if is_agent_turn(r)]


def rollout_of(home: Path, conversation: str) -> Path:
    [path] = list((home / "sessions").rglob(f"rollout-*-{conversation}.jsonl"))
    return path


def rollout_totals(path: Path) -> dict:
    """Codex's own running token totals: the last ``token_count`` event's ``total_token_usage``."""
    total: dict = {}
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        payload = entry.get("payload") or {}
        if entry.get("type") == "event_msg" and payload.get("type") == "token_count" and payload.get("info"):
            total = payload["info"]["total_token_usage"]
    return total


APPROVAL = re.compile(r"Would you like to run the following command\?")


# --- the scenario ----------------------------------------------------------------------------------
def test_codex_works_unattended_reports_truthfully_and_resumes(
    project, repo, fake, codex_home, tmux_server, django_capture_on_commit_callbacks
) -> None:
    fake.script(
        ResponsesTurn(
            text="I'll add the notes file.",
            tool_calls=[ToolCall("exec_command", {"cmd": "printf 'codex was here\\n' > NOTES.md"})],
            input_tokens=2100,
            output_tokens=60,
            when=is_agent_turn,
        ),
        # git commit writes the repository's .git, outside a worktree's sandbox: Codex asks first
        ResponsesTurn(
            text="Now I'll commit it.",
            tool_calls=[
                ToolCall(
                    "exec_command",
                    {
                        "cmd": "git add NOTES.md && git commit -q -m 'Add NOTES.md'",
                        "sandbox_permissions": "require_escalated",
                        "justification": "git commit writes the repository's .git directory",
                    },
                )
            ],
            input_tokens=2300,
            cached_tokens=2000,
            output_tokens=70,
            when=is_agent_turn,
        ),
        ResponsesTurn(text="Committed NOTES.md.", input_tokens=2500, output_tokens=20, when=is_agent_turn),
    )
    fake.hold()
    with django_capture_on_commit_callbacks(execute=True):
        session = spawning.session_spawn(project=project, prompt="Add a NOTES.md file and commit it.")
    session.refresh_from_db()
    assert session.phase == "running", session.error
    workspace = Path(session.workspace_path)
    name = session.id

    # 1. no keystroke from anyone: the prompt reaches the model; while it thinks, ao says active
    assert eventually(lambda: agent_requests(fake)), pane(tmux_server, name)
    first = agent_requests(fake)[0]
    assert "Add a NOTES.md file and commit it." in "\n".join(fake.user_texts(first))
    assert "Trust this folder" not in pane(tmux_server, name)
    # the task is not on any command line (`ps` shows those to every local user)
    assert not [pid for pid, argv in command_lines() if "Add a NOTES.md file" in argv]
    assert eventually(lambda: observe(name).activity == "active", timeout=30), pane(tmux_server, name)
    time.sleep(1.0)
    assert observe(name).activity == "active"  # still: the fake has not answered
    fake.release()

    # 2. the approval question: waiting_input (never active/working) while it is on screen
    seen_dialog = False

    def at_approval() -> bool:
        nonlocal seen_dialog
        before = APPROVAL.search(pane(tmux_server, name))
        current = observe(name)
        after = APPROVAL.search(pane(tmux_server, name))
        if before and after:
            seen_dialog = True
            assert current.activity == "waiting_input", (current.activity, current.activity_summary)
            assert current.status == "needs_input", current.status
            return True
        return False

    assert eventually(at_approval, timeout=60), pane(tmux_server, name)
    for _ in range(5):  # it stays so while nobody answers
        time.sleep(0.5)
        assert at_approval()
    # the summary names what it asks to run, not just "Would you like to run the following command?"
    assert "git add NOTES.md && git commit" in observe(name).activity_summary

    # a person answers it through ao (the dialog's "Yes, proceed (y)")
    with django_capture_on_commit_callbacks(execute=True):
        messaging.message_queue(session=observe(name), text="y", sender_name="ana", answers_prompt=True)

    # 3. the task is acted on: file written, commit made; then ready with the final answer
    assert eventually(lambda: observe(name).activity == "ready" and fake.remaining() == 0, timeout=90), pane(
        tmux_server, name
    )
    assert (workspace / "NOTES.md").read_text() == "codex was here\n"
    assert git("log", "-1", "--format=%s", cwd=workspace) == "Add NOTES.md"
    session = observe(name)
    assert session.activity_summary == "Committed NOTES.md."
    conversation = session.agent_session_ref
    assert conversation

    # 4. tokens are Codex's own totals (its rollout), which are what the API reported
    rollout = rollout_of(codex_home, conversation)
    totals = rollout_totals(rollout)
    assert (session.tokens_in, session.tokens_out) == (totals["input_tokens"], totals["output_tokens"])
    assert (totals["input_tokens"], totals["output_tokens"]) == (2100 + 2300 + 2500, 60 + 70 + 20)
    assert session.cost_usd == 0  # Codex records no cost, and ao invents none
    reading = plugins.context_for(session).agent.detect_activity(
        workspace=workspace, pane_text="", now=session.activity_at, process_alive=True
    )
    assert reading.model == MODEL
    later = reading.at + timedelta(seconds=plugins.context_for(session).agent.config.ready_window_seconds + 1)
    idle = plugins.context_for(session).agent.detect_activity(
        workspace=workspace, pane_text=pane(tmux_server, name), now=later, process_alive=True
    )
    assert idle.state == "idle"  # a finished turn is ready for a while, then idle

    # 5. a long, hostile-looking message arrives intact as one user turn
    fake.script(ResponsesTurn(text="Checked all four points.", when=is_agent_turn))
    before = len(agent_requests(fake))
    fake.hold()
    with django_capture_on_commit_callbacks(execute=True):
        messaging.message_queue(session=session, text=LONG_MESSAGE, sender_name="ana")
    assert eventually(lambda: len(agent_requests(fake)) > before, timeout=60), pane(tmux_server, name)
    sent = agent_requests(fake)[-1]
    users = fake.user_texts(sent)
    assert users[-1] == LONG_MESSAGE
    assert sum(LONG_MESSAGE[:40] in text for text in users) == 1
    assert eventually(lambda: observe(name).activity == "active", timeout=20)
    fake.release()
    assert eventually(lambda: observe(name).activity == "ready" and fake.remaining() == 0, timeout=60)

    # 6. kill stops the agent, mid-turn too: nothing of Codex keeps running (its background
    # app-server would finish the turn: run the command, ask the model again)
    fake.script(
        ResponsesTurn(
            tool_calls=[ToolCall("exec_command", {"cmd": "touch AFTER_KILL.md"})], when=is_agent_turn
        )
    )
    before = len(agent_requests(fake))
    fake.hold()
    with django_capture_on_commit_callbacks(execute=True):
        messaging.message_queue(session=observe(name), text="Touch AFTER_KILL.md.", sender_name="ana")
    assert eventually(lambda: len(agent_requests(fake)) > before, timeout=60), pane(tmux_server, name)
    operating.session_kill(session=observe(name), reason="test")
    assert tmux(tmux_server, "has-session", "-t", f"={name}").returncode != 0
    assert processes_under(codex_home) == []
    fake.release()
    assert not eventually(lambda: (workspace / "AFTER_KILL.md").exists(), timeout=8)

    # restore: `codex resume <id>` continues the same conversation. The rollout still ends in
    # the killed turn (resume writes nothing until the next prompt), yet the agent is at its
    # prompt: ready/idle, so the next message is delivered
    operating.session_restore(session=Session.objects.get(pk=name))
    restored = Event.objects.filter(session_id=name, kind="session.restored").get()
    assert "resumed its conversation" in restored.summary
    assert eventually(lambda: observe(name).activity in ("ready", "idle"), timeout=60), pane(
        tmux_server, name
    )

    fake.script(ResponsesTurn(text="You first asked for NOTES.md.", when=is_agent_turn))
    before = len(agent_requests(fake))
    with django_capture_on_commit_callbacks(execute=True):
        messaging.message_queue(session=observe(name), text="What did I ask you first?", sender_name="ana")
    assert eventually(lambda: len(agent_requests(fake)) > before, timeout=60), pane(tmux_server, name)
    resumed = agent_requests(fake)[-1]
    users = fake.user_texts(resumed)
    assert any("Add a NOTES.md file and commit it." in text for text in users)
    assert LONG_MESSAGE in users
    assert users[-1] == "What did I ask you first?"
    assert eventually(lambda: observe(name).activity == "ready" and fake.remaining() == 0, timeout=60)
    session = observe(name)
    assert session.agent_session_ref == conversation
    assert rollout_of(codex_home, conversation) == rollout
    totals = rollout_totals(rollout)
    assert (session.tokens_in, session.tokens_out) == (totals["input_tokens"], totals["output_tokens"])
    # the totals carry on across the restart: everything the API reported (the killed turn got no answer)
    assert (totals["input_tokens"], totals["output_tokens"]) == (6900 + 1200 + 1200, 150 + 80 + 80)


def test_folder_trust_left_to_a_person_reads_waiting_input_and_the_task_waits_for_it(
    project, fake, codex_home, tmux_server, settings, django_capture_on_commit_callbacks
) -> None:
    """With allowAgentTrust off, Codex's own "Trust this folder?" dialog is up at start: ao says
    waiting_input (never working), types nothing into it, and gives the task once it is answered."""
    project.allow_agent_trust = False
    project.save()
    settings.AO_INLINE_DELIVERY_WAIT = 0  # spawn returns at once; the test drives delivery
    fake.script(ResponsesTurn(text="Hello from Codex.", when=is_agent_turn))
    with django_capture_on_commit_callbacks(execute=True):
        session = spawning.session_spawn(project=project, prompt="Say hello.")
    name = session.id
    assert eventually(lambda: "Trust this folder?" in pane(tmux_server, name), timeout=60), pane(
        tmux_server, name
    )
    for _ in range(6):
        current = observe(name)
        assert (current.activity, current.status) == ("waiting_input", "needs_input"), current.activity
        time.sleep(0.5)
    assert "Trust this folder?" in current.activity_summary
    assert "trust_level" not in (codex_home / "config.toml").read_text()
    assert not fake.responses()  # the task was not typed into the dialog
    assert "Say hello." not in pane(tmux_server, name)

    # the person answers (at the terminal: ao attach); then ao gives the task
    tmux(tmux_server, "send-keys", "-t", f"={name}:", "Enter")

    def delivered() -> bool:
        with django_capture_on_commit_callbacks(execute=True):
            messaging.messages_deliver(session_id=name)
        return bool(agent_requests(fake))

    assert eventually(delivered, timeout=60), pane(tmux_server, name)
    assert fake.user_texts(agent_requests(fake)[0])[-1].rstrip().endswith("Say hello.")
    assert eventually(lambda: observe(name).activity == "ready", timeout=60), pane(tmux_server, name)
    assert observe(name).activity_summary == "Hello from Codex."


def test_not_signed_in_reads_waiting_input_and_nothing_is_typed_into_the_sign_in_screen(
    project, fake, codex_home, tmux_server, settings, django_capture_on_commit_callbacks
) -> None:
    """No provider configured and no login: Codex's welcome screen asks how to sign in. That is
    the user's one-time step; ao reports it and keeps the task until Codex is ready."""
    (codex_home / "config.toml").write_text("")
    settings.AO_INLINE_DELIVERY_WAIT = 0  # spawn returns at once; the test tries delivery itself
    with django_capture_on_commit_callbacks(execute=True):
        session = spawning.session_spawn(project=project, prompt="Say hello.")
    name = session.id

    def sign_in_shown() -> bool:  # ao keeps trying to give the task from the start on
        with django_capture_on_commit_callbacks(execute=True):
            messaging.messages_deliver(session_id=name)
        return "Sign in with ChatGPT" in pane(tmux_server, name)

    assert eventually(sign_in_shown, timeout=60, interval=0.1), pane(tmux_server, name)
    for _ in range(6):
        with django_capture_on_commit_callbacks(execute=True):
            messaging.messages_deliver(session_id=name)  # ao tries to give the task: held
        current = observe(name)
        assert (current.activity, current.status) == ("waiting_input", "needs_input"), current.activity
        time.sleep(0.5)
    assert "Say hello." not in pane(tmux_server, name)
    assert "Sign in with ChatGPT" in pane(tmux_server, name)  # still the first screen: no Enter typed
    assert not fake.requests
    operating.session_kill(session=current, reason="test")
    assert processes_under(codex_home) == []


def test_a_turn_that_fails_on_an_api_error_reads_blocked_with_the_error(
    project, fake, codex_home, tmux_server, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    """A wrong key: the API answers 401 and Codex ends the turn with the error. ao must not show
    a healthy, finished agent (ready, no summary) but a blocked one, saying why."""
    monkeypatch.setenv(KEY_ENV, "sk-wrong-key")  # before the tmux server starts (first use)
    with django_capture_on_commit_callbacks(execute=True):
        session = spawning.session_spawn(project=project, prompt="Say hello.")
    name = session.id
    assert eventually(lambda: fake.responses(), timeout=60), pane(tmux_server, name)
    assert fake.responses()[0].headers["authorization"] == "Bearer sk-wrong-key"
    assert eventually(lambda: observe(name).activity == "blocked", timeout=60), (
        observe(name).activity,
        pane(tmux_server, name),
    )
    assert "401 Unauthorized" in observe(name).activity_summary
