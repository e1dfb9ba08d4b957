"""Activity detection: transcript tails (Claude Code, Codex), terminal heuristics, and how they combine.

Real files under a temporary home; no mocks. ``NOW`` is fixed and entries are stamped relative to it.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from integrations.agent.activity import terminal_reading
from integrations.agent.aider import AiderAgent
from integrations.agent.claude_code import ClaudeCodeAgent, encode_project_path
from integrations.agent.codex import CodexAgent
from integrations.agent.custom import CustomAgent
from integrations.agent.gemini import GeminiAgent
from integrations.agent.opencode import OpenCodeAgent
from integrations.agent.transcripts import read_tail_lines

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
SESSION = "5f0c7a4e-1111-2222-3333-444455556666"


def ts(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).isoformat().replace("+00:00", "Z")


# --- Claude Code entries -------------------------------------------------------------------------
def user(text: str, ago: float = 1) -> dict:
    return {
        "type": "user",
        "sessionId": SESSION,
        "timestamp": ts(ago),
        "message": {"role": "user", "content": text},
    }


def tool_result(ago: float = 1) -> dict:
    content = [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}]
    return {
        "type": "user",
        "sessionId": SESSION,
        "timestamp": ts(ago),
        "message": {"role": "user", "content": content},
    }


def assistant(
    content: list[dict],
    stop_reason: str | None,
    ago: float = 1,
    msg_id: str = "msg_1",
    usage: dict | None = None,
) -> dict:
    return {
        "type": "assistant",
        "sessionId": SESSION,
        "timestamp": ts(ago),
        "message": {
            "id": msg_id,
            "role": "assistant",
            "content": content,
            "stop_reason": stop_reason,
            "usage": usage or {"input_tokens": 1, "output_tokens": 1},
        },
    }


def tool_use(name: str = "Edit", tool_input: dict | None = None, ago: float = 1) -> dict:
    block = {"type": "tool_use", "id": "toolu_1", "name": name, "input": tool_input or {}}
    return assistant([block], "tool_use", ago)


def text_reply(
    text: str = "All done.\nDetails follow.", stop_reason: str | None = "end_turn", ago: float = 1
) -> dict:
    return assistant([{"type": "text", "text": text}], stop_reason, ago)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "work_spaces" / "proj-1.x"
    path.mkdir(parents=True)
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def write_claude(home: Path, workspace: Path, lines: list, *, name: str = SESSION) -> Path:
    directory = home / ".claude" / "projects" / encode_project_path(workspace)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.jsonl"
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def claude(home: Path, **settings) -> ClaudeCodeAgent:
    return ClaudeCodeAgent(ClaudeCodeAgent.Config(home=home, **settings))


CLAUDE_CASES = [
    # (id, entries, expected state, expected evidence fragment)
    ("prompt just sent", [user("fix the bug")], "active", "prompt received"),
    ("tool call pending", [user("x", 9), tool_use("Edit", ago=5)], "active", "tool call"),
    ("tool result back", [tool_use(ago=5), tool_result(ago=2)], "active", "tool result"),
    ("thinking", [assistant([{"type": "thinking", "thinking": "hmm"}], None, ago=2)], "active", "thinking"),
    ("turn ended recently", [user("x", 60), text_reply(ago=30)], "ready", "end_turn"),
    ("turn ended long ago", [user("x", 900), text_reply(ago=600)], "idle", "end_turn"),
    ("reply without stop reason, fresh", [text_reply(stop_reason=None, ago=2)], "active", "text reply"),
    ("reply without stop reason, settled", [text_reply(stop_reason=None, ago=60)], "ready", "text reply"),
    (
        "api error message",
        [user("x", 5), {**text_reply("API Error: 529 overloaded", None, 2), "isApiErrorMessage": True}],
        "blocked",
        "API error",
    ),
    (
        "system error entry",
        [user("x", 5), {"type": "system", "level": "error", "content": "Request failed", "timestamp": ts(2)}],
        "blocked",
        "system error",
    ),
    (
        "system info entry is not evidence",
        [
            text_reply(ago=30),
            {"type": "system", "subtype": "compact_boundary", "level": "info", "timestamp": ts(1)},
        ],
        "ready",
        "end_turn",
    ),
    (
        "unknown entry types are skipped",
        [
            text_reply(ago=30),
            {"type": "file-history-snapshot", "snapshot": {}},
            {"type": "summary", "summary": "Fixing a bug"},
            {"type": "some-future-type", "timestamp": ts(0)},
        ],
        "ready",
        "end_turn",
    ),
    (
        "truncated last line",
        [tool_use(ago=3), '{"type": "assistant", "message": {"content": [{"ty'],
        "active",
        "tool call",
    ),
    (
        "interrupted by the user",
        [tool_use(ago=20), user("[Request interrupted by user for tool use]", 10)],
        "ready",
        "interrupted",
    ),
    (
        "meta user entries are skipped",
        [text_reply(ago=30), {**user("caveat", 1), "isMeta": True}],
        "ready",
        "end_turn",
    ),
    ("pending tool call with no writes for long", [tool_use(ago=1800)], "idle", "no transcript writes"),
    (
        "local command output",
        [user("<local-command-stdout>ok</local-command-stdout>", 5)],
        "ready",
        "local command",
    ),
]


@pytest.mark.parametrize(
    ("entries", "state", "evidence"), [c[1:] for c in CLAUDE_CASES], ids=[c[0] for c in CLAUDE_CASES]
)
def test_claude_transcript_states(
    home: Path, workspace: Path, entries: list, state: str, evidence: str
) -> None:
    write_claude(home, workspace, entries)

    reading = claude(home).detect_activity(workspace=workspace, pane_text="", now=NOW, process_alive=True)

    assert reading.state == state
    assert evidence in reading.evidence
    assert reading.weak is False
    assert reading.source == "transcript"
    assert reading.conversation_id == SESSION


def test_claude_reading_time_is_the_entry_time_not_now(home: Path, workspace: Path) -> None:
    write_claude(home, workspace, [text_reply(ago=30)])

    reading = claude(home).detect_activity(workspace=workspace, pane_text="", now=NOW, process_alive=True)

    assert reading.at == NOW - timedelta(seconds=30)


def test_claude_ready_window_is_configurable(home: Path, workspace: Path) -> None:
    write_claude(home, workspace, [text_reply(ago=30)])

    reading = claude(home, ready_window_seconds=10).detect_activity(
        workspace=workspace, pane_text="", now=NOW, process_alive=True
    )

    assert reading.state == "idle"


def test_claude_only_unknown_entries_fall_back_to_the_pane(home: Path, workspace: Path) -> None:
    write_claude(home, workspace, [{"type": "summary", "summary": "x"}, {"type": "queue-operation"}])

    reading = claude(home).detect_activity(
        workspace=workspace, pane_text="out\n> \n", now=NOW, process_alive=True
    )

    assert (reading.state, reading.weak, reading.source) == ("ready", True, "terminal")


def test_claude_without_transcript_and_silent_pane_is_unknown(home: Path, workspace: Path) -> None:
    reading = claude(home).detect_activity(workspace=workspace, pane_text="", now=NOW, process_alive=True)

    assert (reading.state, reading.at, reading.weak) == ("unknown", None, True)


def test_claude_newest_transcript_wins(home: Path, workspace: Path) -> None:
    import os

    old = write_claude(home, workspace, [text_reply(ago=3000)], name="old-conversation")
    os.utime(old, (NOW.timestamp() - 3000, NOW.timestamp() - 3000))
    write_claude(home, workspace, [tool_use(ago=1)])

    reading = claude(home).detect_activity(workspace=workspace, pane_text="", now=NOW, process_alive=True)

    assert reading.state == "active"


@pytest.mark.parametrize(
    ("name", "tool_input", "summary"),
    [
        ("Edit", {"file_path": "{ws}/src/app.py"}, "Editing src/app.py"),
        ("Write", {"file_path": "/elsewhere/x.txt"}, "Writing /elsewhere/x.txt"),
        ("Bash", {"command": "pytest -q\necho done"}, "Running pytest -q"),
        ("Grep", {"pattern": "TODO"}, "Searching for TODO"),
        ("mcp__github__create_pr", {}, "Using mcp__github__create_pr"),
    ],
)
def test_claude_summary_names_the_last_tool_call(
    home: Path, workspace: Path, name: str, tool_input: dict, summary: str
) -> None:
    tool_input = {k: v.replace("{ws}", str(workspace)) for k, v in tool_input.items()}
    write_claude(home, workspace, [tool_use(name, tool_input)])

    reading = claude(home).detect_activity(workspace=workspace, pane_text="", now=NOW, process_alive=True)

    assert reading.summary == summary


def test_claude_summary_is_the_first_line_of_the_reply_cut_to_120(home: Path, workspace: Path) -> None:
    write_claude(home, workspace, [text_reply("\n  " + "word " * 60 + "\nsecond line", ago=30)])

    reading = claude(home).detect_activity(workspace=workspace, pane_text="", now=NOW, process_alive=True)

    assert len(reading.summary) == 120
    assert reading.summary.startswith("word word")
    assert reading.summary.endswith("…")


def test_claude_usage_totals_count_each_message_once_and_follow_appends(home: Path, workspace: Path) -> None:
    usage_a = {
        "input_tokens": 10,
        "cache_creation_input_tokens": 5,
        "cache_read_input_tokens": 100,
        "output_tokens": 3,
    }
    usage_a_final = {**usage_a, "output_tokens": 8}
    usage_b = {"input_tokens": 20, "cache_read_input_tokens": 200, "output_tokens": 4}
    path = write_claude(
        home,
        workspace,
        [
            assistant([{"type": "thinking", "thinking": "."}], None, 5, "msg_a", usage_a),
            {
                **assistant([{"type": "text", "text": "hi"}], "end_turn", 4, "msg_a", usage_a_final),
                "costUSD": 0.25,
            },
            {"type": "summary"},
        ],
    )
    agent = claude(home)

    first = agent.detect_activity(workspace=workspace, pane_text="", now=NOW, process_alive=True)
    with path.open("a") as handle:
        handle.write(
            json.dumps(
                {
                    **assistant([{"type": "text", "text": "more"}], "end_turn", 1, "msg_b", usage_b),
                    "costUSD": 0.5,
                }
            )
            + "\n"
        )
        handle.write(
            '{"type": "assistant", "message": {"id": "msg_c", "usage": {"input_tokens": 99'
        )  # mid-write
    second = agent.detect_activity(workspace=workspace, pane_text="", now=NOW, process_alive=True)

    assert (first.tokens_in, first.tokens_out, first.cost_usd) == (115, 8, 0.25)
    assert (second.tokens_in, second.tokens_out, second.cost_usd) == (335, 12, 0.75)


def test_claude_without_cost_fields_reports_no_cost(home: Path, workspace: Path) -> None:
    write_claude(home, workspace, [text_reply(ago=30)])

    reading = claude(home).detect_activity(workspace=workspace, pane_text="", now=NOW, process_alive=True)

    assert reading.cost_usd is None
    assert (reading.tokens_in, reading.tokens_out) == (1, 1)


def test_claude_tail_read_is_bounded(home: Path, workspace: Path) -> None:
    filler = [user("x" * 1000, 50) for _ in range(200)]  # ~200 KiB before the last entries
    path = write_claude(home, workspace, [*filler, tool_use(ago=2)])

    lines = read_tail_lines(path, max_bytes=64 * 1024)
    reading = claude(home).detect_activity(workspace=workspace, pane_text="", now=NOW, process_alive=True)

    assert sum(len(line) + 1 for line in lines) <= 64 * 1024
    assert json.loads(lines[-1])["type"] == "assistant"
    assert reading.state == "active"


@pytest.mark.parametrize(
    ("path", "encoded"),
    [
        ("/home/me/project", "-home-me-project"),
        ("/work/my_repo", "-work-my-repo"),
        ("/Users/me/.agents/a b/ä", "-Users-me--agents-a-b--"),
        ("/srv/ws/proj-1.x", "-srv-ws-proj-1-x"),
    ],
)
def test_claude_project_directory_encoding(path: str, encoded: str) -> None:
    assert encode_project_path(path) == encoded


# --- combining transcript and pane ----------------------------------------------------------------
CLAUDE_PERMISSION_PANE = """
● Bash(rm -rf build)

 Bash command
   rm -rf build
   Clean the build

 Do you want to proceed?
 ❯ 1. Yes
   2. Yes, and don't ask again for rm commands in /work/x
   3. No, and tell Claude what to do differently (esc)
"""

CLAUDE_WORKING_PANE = """
● I'll look at the tests.

✻ Pondering… (12s · ↑ 1.2k tokens · esc to interrupt)

╭──────────────────────────────────────────╮
│ >                                        │
╰──────────────────────────────────────────╯
  ⏵⏵ accept edits on (shift+tab to cycle)
"""

CLAUDE_READY_PANE = """
● Done. The tests pass.

╭──────────────────────────────────────────╮
│ >                                        │
╰──────────────────────────────────────────╯
  ? for shortcuts
"""


def test_permission_dialog_on_screen_beats_a_pending_tool_call(home: Path, workspace: Path) -> None:
    write_claude(home, workspace, [user("clean", 9), tool_use("Bash", {"command": "rm -rf build"}, ago=5)])

    reading = claude(home).detect_activity(
        workspace=workspace, pane_text=CLAUDE_PERMISSION_PANE, now=NOW, process_alive=True
    )

    assert (reading.state, reading.weak, reading.source) == ("waiting_input", True, "terminal")
    assert reading.summary == "Do you want to proceed?"
    assert reading.conversation_id == SESSION
    assert reading.tokens_in == 1


def test_working_indicator_turns_a_finished_looking_turn_active(home: Path, workspace: Path) -> None:
    write_claude(home, workspace, [text_reply(stop_reason=None, ago=30)])

    reading = claude(home).detect_activity(
        workspace=workspace, pane_text=CLAUDE_WORKING_PANE, now=NOW, process_alive=True
    )

    assert (reading.state, reading.weak, reading.at) == ("active", True, NOW)


def test_transcript_ready_with_prompt_on_screen_is_a_strong_ready(home: Path, workspace: Path) -> None:
    write_claude(home, workspace, [text_reply(ago=30)])

    reading = claude(home).detect_activity(
        workspace=workspace, pane_text=CLAUDE_READY_PANE, now=NOW, process_alive=True
    )

    assert (reading.state, reading.weak) == ("ready", False)


def test_dead_process_is_exited_and_keeps_the_conversation(home: Path, workspace: Path) -> None:
    write_claude(home, workspace, [tool_use(ago=5)])

    reading = claude(home).detect_activity(
        workspace=workspace, pane_text=CLAUDE_PERMISSION_PANE, now=NOW, process_alive=False
    )

    assert (reading.state, reading.at, reading.source) == ("exited", NOW, "process")
    assert reading.conversation_id == SESSION
    assert reading.tokens_out == 1


# --- terminal heuristics ----------------------------------------------------------------------------
PANE_CASES = [
    ("claude permission", CLAUDE_PERMISSION_PANE, "waiting_input"),
    (
        "claude edit permission",
        "Edit file\n src/app.py\n Do you want to make this edit to app.py?\n ❯ 1. Yes\n   2. No",
        "waiting_input",
    ),
    (
        "claude trust, old",
        " Do you trust the files in this folder?\n\n /work/x\n\n ❯ 1. Yes, proceed\n   2. No, exit",
        "waiting_input",
    ),
    (
        "claude trust, new",
        " Quick safety check: Is this a project you created or one you trust?\n ❯ 1. Yes, I trust this folder\n   2. No, exit",
        "waiting_input",
    ),
    (
        "claude bypass warning",
        " WARNING: Claude Code running in Bypass Permissions mode\n ❯ 1. No, exit\n   2. Yes, I accept",
        "waiting_input",
    ),
    (
        "claude api key",
        " Detected a custom API key in your environment\n Do you want to use this API key?\n ❯ 1. Yes\n   2. No (recommended)",
        "waiting_input",
    ),
    (
        "aider confirm",
        "Add src/app.py to the chat? (Y)es/(N)o/(A)ll/(S)kip all/(D)on't ask again [Yes]: ",
        "waiting_input",
    ),
    ("aider gitignore", "Add .aider* to .gitignore (recommended)? (Y)es/(N)o [Yes]:", "waiting_input"),
    ("shell y/N", "Overwrite existing file? [y/N]", "waiting_input"),
    (
        "codex approval",
        "Would you like to run the following command?\n\n $ cargo test\n\n› 1. Yes, proceed (y)\n  2. No (esc)",
        "waiting_input",
    ),
    (
        "codex trust",
        "> You are running Codex in /work/x\n  Do you trust the contents of this directory?\n› 1. Yes, continue\n  2. No, quit",
        "waiting_input",
    ),
    (
        "gemini allow",
        "│ Allow execution of: 'npm'?\n│ ● 1. Yes, allow once\n│   2. Yes, allow always",
        "waiting_input",
    ),
    ("generic allow", "Allow edit to config.yaml?", "waiting_input"),
    ("api key entry", "Enter your OpenAI API key:", "waiting_input"),
    ("claude working", CLAUDE_WORKING_PANE, "active"),
    ("gemini working", "⠏ Reading files (esc to cancel, 3s)\n\n│ >   Type your message │", "active"),
    ("codex working", "• Working (12s • esc to interrupt)\n\n› Ask Codex to do anything", "active"),
    ("claude ready", CLAUDE_READY_PANE, "ready"),
    ("bare prompt", "output line\n> ", "ready"),
    ("aider mode prompt", "Tokens: 2k sent\narchitect> ", "ready"),
    (
        "answered question above a prompt",
        "Do you want to proceed?\n❯ 1. Yes\npermission: granted\n● Done\n> ",
        "ready",
    ),
    ("plain output", "compiling foo v0.1.0\nrunning 12 tests", None),
    ("empty", "\n\n   \n", None),
]


@pytest.mark.parametrize(("pane", "state"), [c[1:] for c in PANE_CASES], ids=[c[0] for c in PANE_CASES])
def test_terminal_heuristics(pane: str, state: str | None) -> None:
    reading = terminal_reading(pane, now=NOW)

    if state is None:
        assert reading is None
    else:
        assert reading is not None
        assert (reading.state, reading.weak, reading.at, reading.source) == (state, True, NOW, "terminal")


def test_terminal_heuristics_ignore_escape_sequences() -> None:
    reading = terminal_reading("\x1b[1mDo you want to proceed?\x1b[0m\r\n\x1b[36m❯ 1. Yes\x1b[0m", now=NOW)

    assert reading is not None and reading.state == "waiting_input"


def test_a_question_scrolled_far_up_is_not_pending() -> None:
    pane = "Do you want to proceed?\n" + "\n".join(f"output {i}" for i in range(30))

    assert terminal_reading(pane, now=NOW) is None


@pytest.mark.parametrize(
    ("settings", "pane", "state"),
    [
        ({"ready_pattern": r"^READY\$$"}, "booting\nREADY$", "ready"),
        ({"waiting_pattern": r"^Approve\?$"}, "plan:\n 1. x\nApprove?", "waiting_input"),
        ({}, "booting\nREADY$", "unknown"),
    ],
)
def test_custom_agent_patterns(settings: dict, pane: str, state: str) -> None:
    agent = CustomAgent(CustomAgent.Config(command=["my-agent"], **settings))

    reading = agent.detect_activity(workspace=Path("/tmp"), pane_text=pane, now=NOW, process_alive=True)

    assert reading.state == state


def test_custom_agent_dead_process_is_exited() -> None:
    agent = CustomAgent(CustomAgent.Config(command=["my-agent"]))

    reading = agent.detect_activity(workspace=Path("/tmp"), pane_text="> ", now=NOW, process_alive=False)

    assert (reading.state, reading.weak) == ("exited", False)


# --- Codex rollouts --------------------------------------------------------------------------------------
def event(kind: str, ago: float = 1, **payload) -> dict:
    return {"timestamp": ts(ago), "type": "event_msg", "payload": {"type": kind, **payload}}


def item(kind: str, ago: float = 1, **payload) -> dict:
    return {"timestamp": ts(ago), "type": "response_item", "payload": {"type": kind, **payload}}


def write_rollout(
    home: Path, cwd: Path | str, lines: list, *, day: str = "2025/06/01", conversation: str = "0197-abc"
) -> Path:
    directory = home / ".codex" / "sessions" / day
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"rollout-2025-06-01T11-00-00-{conversation}.jsonl"
    meta = {
        "timestamp": ts(3600),
        "type": "session_meta",
        "payload": {"id": conversation, "cwd": str(cwd), "cli_version": "0.50.0"},
    }
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in [meta, *lines]))
    return path


ENV_CONTEXT = item(
    "message",
    50,
    role="user",
    content=[{"type": "input_text", "text": "<environment_context>cwd</environment_context>"}],
)
CODEX_CASES = [
    ("task started", [event("task_started", 2)], "active"),
    (
        "prompt",
        [ENV_CONTEXT, item("message", 2, role="user", content=[{"type": "input_text", "text": "fix it"}])],
        "active",
    ),
    (
        "function call",
        [item("function_call", 2, name="shell", arguments='{"command": ["bash", "-lc", "pytest -q"]}')],
        "active",
    ),
    ("reasoning", [item("reasoning", 2, summary=[])], "active"),
    (
        "task complete",
        [event("task_started", 60), event("task_complete", 30, last_agent_message="done")],
        "ready",
    ),
    ("task complete long ago", [event("task_complete", 1000)], "idle"),
    ("turn aborted", [event("turn_aborted", 5, reason="interrupted")], "ready"),
    (
        "token count is not evidence",
        [event("task_complete", 30), event("token_count", 1, info=None)],
        "ready",
    ),
    (
        "unknown types skipped",
        [event("task_complete", 30), {"type": "future", "payload": {}}, event("new_kind", 1)],
        "ready",
    ),
    ("approval request", [event("exec_approval_request", 2, command=["rm", "-rf", "x"])], "waiting_input"),
    ("error", [event("task_started", 9), event("error", 2, message="stream disconnected")], "blocked"),
    ("agent message settling", [event("agent_message", 2, message="Working on it")], "active"),
    (
        "truncated last line",
        [event("task_started", 2), '{"timestamp": "2025-06-01T11:59:59Z", "type": "event_'],
        "active",
    ),
]


@pytest.mark.parametrize(("lines", "state"), [c[1:] for c in CODEX_CASES], ids=[c[0] for c in CODEX_CASES])
def test_codex_rollout_states(home: Path, workspace: Path, lines: list, state: str) -> None:
    write_rollout(home, workspace, lines)
    agent = CodexAgent(CodexAgent.Config(home=home))

    reading = agent.detect_activity(workspace=workspace, pane_text="", now=NOW, process_alive=True)

    assert (reading.state, reading.weak, reading.source) == (state, False, "transcript")
    assert reading.conversation_id == "0197-abc"


def test_codex_summary_tokens_and_matching_by_cwd(home: Path, workspace: Path, tmp_path: Path) -> None:
    other = write_rollout(
        home, tmp_path / "elsewhere", [event("task_started", 1)], day="2025/06/01", conversation="other"
    )
    write_rollout(
        home,
        workspace,
        [
            event(
                "token_count",
                20,
                info={
                    "total_token_usage": {
                        "input_tokens": 1200,
                        "cached_input_tokens": 200,
                        "output_tokens": 345,
                    }
                },
            ),
            item(
                "custom_tool_call",
                3,
                name="apply_patch",
                input="*** Begin Patch\n*** Update File: src/app.py\n@@\n",
            ),
        ],
        day="2025/05/31",
    )
    agent = CodexAgent(CodexAgent.Config(home=home))

    reading = agent.detect_activity(workspace=workspace, pane_text="", now=NOW, process_alive=True)

    assert other.exists()
    assert (reading.state, reading.summary) == ("active", "Editing src/app.py")
    assert (reading.tokens_in, reading.tokens_out, reading.cost_usd) == (1200, 345, None)
    assert reading.conversation_id == "0197-abc"


def test_codex_without_a_rollout_for_the_workspace_uses_the_pane(
    home: Path, workspace: Path, tmp_path: Path
) -> None:
    write_rollout(home, tmp_path / "elsewhere", [event("task_started", 1)])
    agent = CodexAgent(CodexAgent.Config(home=home))

    reading = agent.detect_activity(
        workspace=workspace,
        pane_text="› 1. Yes, proceed (y)\nWould you like to run the following command?",
        now=NOW,
        process_alive=True,
    )

    assert (reading.state, reading.source) == ("waiting_input", "terminal")


# --- real captures ---------------------------------------------------------------------------------------
# Pane captures (`tmux capture-pane -p`) of the real CLIs, taken while checking the plugins against
# them (see docs/AGENTS.md for versions and how they were produced). Each must read as the state
# given here from the pane alone: every start-up or permission dialog as waiting_input, never ready.
PANES = Path(__file__).parent / "fixtures" / "panes"
AGENT_BY_PREFIX = {
    "claude": ClaudeCodeAgent,
    "codex": CodexAgent,
    "gemini": GeminiAgent,
    "opencode": OpenCodeAgent,
    "aider": AiderAgent,
}
REAL_PANE_CASES = [
    # (fixture, state, summary or None when not checked)
    (
        "claude-trust.txt",
        "waiting_input",
        "Quick safety check: Is this a project you created or one you trust?",
    ),
    ("claude-api-key.txt", "waiting_input", "Do you want to use this API key?"),
    ("claude-bypass-warning.txt", "waiting_input", "WARNING: Claude Code running in Bypass Permissions mode"),
    ("claude-permission-bash.txt", "waiting_input", "Do you want to proceed?"),
    ("claude-working.txt", "active", None),
    ("claude-ready-fresh.txt", "ready", None),
    ("claude-ready-after-reply.txt", "ready", None),
    ("claude-ready-acceptedits.txt", "ready", None),
    ("claude-after-tool.txt", "ready", None),
    ("codex-login.txt", "waiting_input", None),
    ("codex-trust.txt", "waiting_input", "Trust this folder?"),
    ("codex-approval.txt", "waiting_input", "Would you like to run the following command?"),
    ("codex-working.txt", "active", None),
    # 0.169 draws its composer for about a second before it knows whether it is signed in (then
    # the sign-in screen replaces it): typed into then, ao's prompt chose "Sign in with ChatGPT"
    ("codex-starting.txt", "unknown", None),
    ("codex-ready-fresh.txt", "ready", None),
    ("codex-ready-after-reply.txt", "ready", None),
    ("codex-ready-resumed.txt", "ready", None),
    ("gemini-trust.txt", "waiting_input", "Do you trust the files in this folder?"),
    ("gemini-auth.txt", "waiting_input", None),
    ("gemini-permission-shell.txt", "waiting_input", "Waiting for approval: Shell touch made-by-stub.txt"),
    ("gemini-working.txt", "active", None),
    ("gemini-ready-fresh.txt", "ready", None),
    ("gemini-ready-after-reply.txt", "ready", None),
    ("gemini-ready-yolo.txt", "ready", None),  # "*" instead of ">" with --approval-mode yolo
    ("opencode-permission-bash.txt", "waiting_input", "△ Permission required"),
    ("opencode-working.txt", "active", None),
    ("opencode-ready-fresh.txt", "ready", None),
    ("opencode-ready-after-reply.txt", "ready", None),
    ("aider-gitignore.txt", "waiting_input", "Add .aider* to .gitignore (recommended)?"),
    ("aider-model-warning.txt", "waiting_input", "Open documentation url for more info?"),
    ("aider-release-notes.txt", "waiting_input", "Would you like to see what's new in this version?"),
    ("aider-working.txt", "active", None),
    ("aider-ready.txt", "ready", None),
    ("aider-ready-after-reply.txt", "ready", None),
]


def test_every_pane_fixture_has_a_case() -> None:
    assert sorted(p.name for p in PANES.glob("*.txt")) == sorted(c[0] for c in REAL_PANE_CASES)


@pytest.mark.parametrize(
    ("fixture", "state", "summary"), REAL_PANE_CASES, ids=[c[0] for c in REAL_PANE_CASES]
)
def test_real_pane_captures(tmp_path: Path, fixture: str, state: str, summary: str | None) -> None:
    agent_class = AGENT_BY_PREFIX[fixture.split("-")[0]]
    agent = agent_class(agent_class.Config(home=tmp_path))  # an empty home: no transcript, pane only
    pane = (PANES / fixture).read_text(encoding="utf-8")

    reading = agent.detect_activity(workspace=tmp_path, pane_text=pane, now=NOW, process_alive=True)

    assert (reading.state, reading.source, reading.weak) == (state, "terminal", True)
    if summary is not None:
        assert reading.summary.startswith(summary)


@pytest.mark.parametrize("fixture", [c[0] for c in REAL_PANE_CASES if c[1] == "waiting_input"])
def test_real_dialogs_are_never_ready_for_any_agent(tmp_path: Path, fixture: str) -> None:
    # Whichever plugin's patterns read it, a dialog must not look like an input prompt.
    pane = (PANES / fixture).read_text(encoding="utf-8")
    for agent_class in AGENT_BY_PREFIX.values():
        agent = agent_class(agent_class.Config(home=tmp_path))
        reading = agent.detect_activity(workspace=tmp_path, pane_text=pane, now=NOW, process_alive=True)
        assert reading.state == "waiting_input", agent_class.__name__


# Real transcripts written by Claude Code 2.1.197 and codex-cli 0.169.0 talking to a local stub
# model API, long strings cut and bulky fields dropped. The workspace was /tmp/verify/ws-<cli>.
REAL_CLAUDE_TRANSCRIPT = r"""
{"type":"mode","mode":"normal","sessionId":"ba5213c2-fd4c-4bdd-ba78-62eb58a4b6e2"}
{"type":"permission-mode","sessionId":"ba5213c2-fd4c-4bdd-ba78-62eb58a4b6e2"}
{"type":"file-history-snapshot","isSnapshotUpdate":false}
{"type":"user","message":{"role":"user","content":"say hello"},"uuid":"881c79d9-dbcd-4223-b4f8-dfc067238884","timestamp":"2026-11-25T01:30:10.862Z","origin":{"kind":"human"},"promptSource":"typed","cwd":"/tmp/verify/ws-claude","sessionId":"ba5213c2-fd4c-4bdd-ba78-62eb58a4b6e2","version":"2.1.197"}
{"type":"attachment","uuid":"27c64672-dc5b-48c3-b2a9-602079b1ae81","timestamp":"2026-11-25T01:30:10.861Z","cwd":"/tmp/verify/ws-claude","sessionId":"ba5213c2-fd4c-4bdd-ba78-62eb58a4b6e2","version":"2.1.197"}
{"message":{"id":"msg_80c1739b0f314a8ba7cb","type":"message","role":"assistant","model":"claude-opus-4-8","content":[{"type":"text","text":"Hello from the stub model."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":7}},"type":"assistant","uuid":"090afdbd-f5cb-4bbb-995d-1e4ec05041f6","timestamp":"2026-11-25T01:30:10.938Z","cwd":"/tmp/verify/ws-claude","sessionId":"ba5213c2-fd4c-4bdd-ba78-62eb58a4b6e2","version":"2.1.197"}
{"type":"system","subtype":"turn_duration","durationMs":90,"messageCount":4,"timestamp":"2026-11-25T01:30:10.955Z","uuid":"1cf0c48f-e82c-48af-968a-abecb31a244f","isMeta":false,"cwd":"/tmp/verify/ws-claude","sessionId":"ba5213c2-fd4c-4bdd-ba78-62eb58a4b6e2","version":"2.1.197"}
{"type":"user","message":{"role":"user","content":"RUNBASH please"},"uuid":"bef23dfe-8860-4a8c-8f8a-0e9145578286","timestamp":"2026-11-25T01:30:33.558Z","origin":{"kind":"human"},"promptSource":"typed","cwd":"/tmp/verify/ws-claude","sessionId":"ba5213c2-fd4c-4bdd-ba78-62eb58a4b6e2","version":"2.1.197"}
{"message":{"id":"msg_ac37f9b7b432428d90ea","type":"message","role":"assistant","model":"claude-opus-4-8","content":[{"type":"tool_use","id":"toolu_4ef2d06b6ba340249d60","name":"Bash","input":{"command":"touch made-by-stub.txt","description":"Create a file"}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":9}},"type":"assistant","uuid":"bbc9de70-6af1-428e-8545-541436444605","timestamp":"2026-11-25T01:30:33.670Z","cwd":"/tmp/verify/ws-claude","sessionId":"ba5213c2-fd4c-4bdd-ba78-62eb58a4b6e2","version":"2.1.197"}
{"type":"user","message":{"role":"user","content":[{"tool_use_id":"toolu_4ef2d06b6ba340249d60","type":"tool_result","content":"(Bash completed with no output)","is_error":false}]},"uuid":"f7aca342-52cb-4e8c-9fa4-b2a920d10335","timestamp":"2026-11-25T01:30:42.042Z","cwd":"/tmp/verify/ws-claude","sessionId":"ba5213c2-fd4c-4bdd-ba78-62eb58a4b6e2","version":"2.1.197"}
{"message":{"id":"msg_3d8bfb83cf9b4dbea839","type":"message","role":"assistant","model":"claude-opus-4-8","content":[{"type":"text","text":"Hello from the stub model."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":7}},"type":"assistant","uuid":"68121055-d623-4a5f-8277-df1b096c7e37","timestamp":"2026-11-25T01:30:42.141Z","cwd":"/tmp/verify/ws-claude","sessionId":"ba5213c2-fd4c-4bdd-ba78-62eb58a4b6e2","version":"2.1.197"}
{"type":"system","subtype":"turn_duration","durationMs":369,"messageCount":9,"timestamp":"2026-11-25T01:30:42.147Z","uuid":"86cecb7d-69d7-477c-b7a4-7268c6e8f417","isMeta":false,"cwd":"/tmp/verify/ws-claude","sessionId":"ba5213c2-fd4c-4bdd-ba78-62eb58a4b6e2","version":"2.1.197"}
{"type":"user","message":{"role":"user","content":"SLOW reply please"},"uuid":"4a544523-c414-45e7-b87a-48a53ca2b4c2","timestamp":"2026-11-25T01:30:54.412Z","origin":{"kind":"human"},"promptSource":"typed","cwd":"/tmp/verify/ws-claude","sessionId":"ba5213c2-fd4c-4bdd-ba78-62eb58a4b6e2","version":"2.1.197"}
{"type":"last-prompt","lastPrompt":"SLOW reply please","leafUuid":"4a544523-c414-45e7-b87a-48a53ca2b4c2","sessionId":"ba5213c2-fd4c-4bdd-ba78-62eb58a4b6e2"}
{"type":"assistant","uuid":"4ac3ac35-3657-4beb-8a10-c51122dede97","timestamp":"2026-11-25T01:32:30.660Z","message":{"id":"b0c2e14a-e2e4-4cd3-99ef-74bcdba692d0","container":null,"model":"<synthetic>","role":"assistant","stop_reason":"stop_sequence","stop_sequence":"","type":"message","usage":{"input_tokens":0,"output_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0},"content":[{"type":"text","text":"No response requested."}],"context_management":null},"isApiErrorMessage":false,"cwd":"/tmp/verify/ws-claude","sessionId":"ba5213c2-fd4c-4bdd-ba78-62eb58a4b6e2","version":"2.1.197"}
{"type":"user","message":{"role":"user","content":"continue please"},"uuid":"128967d8-35d1-420a-a246-0bdb6bdd6dd6","timestamp":"2026-11-25T01:32:31.281Z","origin":{"kind":"human"},"promptSource":"typed","cwd":"/tmp/verify/ws-claude","sessionId":"ba5213c2-fd4c-4bdd-ba78-62eb58a4b6e2","version":"2.1.197"}
{"message":{"id":"msg_4879083bb6ff41408b91","type":"message","role":"assistant","model":"claude-sonnet-5","content":[{"type":"text","text":"Hello from the stub model."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":7}},"type":"assistant","uuid":"1d3de366-5ba1-4030-b729-a7cef3ae5668","timestamp":"2026-11-25T01:32:32.541Z","cwd":"/tmp/verify/ws-claude","sessionId":"ba5213c2-fd4c-4bdd-ba78-62eb58a4b6e2","version":"2.1.197"}
{"type":"system","subtype":"turn_duration","durationMs":1115,"messageCount":14,"timestamp":"2026-11-25T01:32:32.555Z","uuid":"a4d193a8-8a44-461e-82a1-e76241cd935e","isMeta":false,"cwd":"/tmp/verify/ws-claude","sessionId":"ba5213c2-fd4c-4bdd-ba78-62eb58a4b6e2","version":"2.1.197"}
""".strip().splitlines()
REAL_CODEX_ROLLOUT = r"""
{"timestamp":"2026-11-25T01:33:43.569Z","type":"session_meta","payload":{"account_scoped":true,"session_id":"01a21056-1755-7450-a408-f67615cee920","id":"01a21056-1755-7450-a408-f67615cee920","timestamp":"2026-11-25T01:33:27.291Z","cwd":"/tmp/verify/ws-codex","originator":"codex-tui","cli_version":"0.169.0","source":"vscode","thread_source":"user","model_provider":"stub","history_mode":"paginated"}}
{"timestamp":"2026-11-25T01:33:43.570Z","type":"event_msg","payload":{"type":"task_started"}}
{"timestamp":"2026-11-25T01:33:43.596Z","type":"response_item","payload":{"type":"message","id":"msg_01a21056-572b-7b90-9cda-d46f9733630e","role":"user","content":[{"type":"input_text","text":"<environment_context>\n  <cwd>/tmp/verify/ws-codex</cwd>\n ..."}]}}
{"timestamp":"2026-11-25T01:33:43.608Z","type":"response_item","payload":{"type":"message","id":"msg_01a21056-5738-79c0-a3bf-dd2d17d27158","role":"user","content":[{"type":"input_text","text":"say hello"}]}}
{"timestamp":"2026-11-25T01:33:43.609Z","type":"event_msg","payload":{"type":"item_completed","started_at_ms":1795570423609,"completed_at_ms":1795570423609}}
{"timestamp":"2026-11-25T01:33:43.659Z","type":"response_item","payload":{"type":"message","status":"completed","id":"msg_479405b062de4614ab73","role":"assistant","content":[{"type":"output_text","text":"Hello from the stub model.","annotations":[]}]}}
{"timestamp":"2026-11-25T01:33:43.663Z","type":"event_msg","payload":{"type":"token_count","info":{"total_token_usage":{"input_tokens":20,"cached_input_tokens":0,"cache_write_input_tokens":0,"output_tokens":7,"reasoning_output_tokens":0,"total_tokens":27},"last_usage_includes_reasoning":false}}}
{"timestamp":"2026-11-25T01:33:43.678Z","type":"event_msg","payload":{"type":"task_complete","last_agent_message":"Hello from the stub model."}}
{"timestamp":"2026-11-25T01:34:04.076Z","type":"event_msg","payload":{"type":"task_started"}}
{"timestamp":"2026-11-25T01:34:04.092Z","type":"response_item","payload":{"type":"message","id":"msg_01a21056-a73c-7922-bb32-eaf6ab058395","role":"user","content":[{"type":"input_text","text":"RUNBASH please"}]}}
{"timestamp":"2026-11-25T01:34:04.168Z","type":"response_item","payload":{"type":"function_call","status":"completed","id":"fc_d5b1adfbcd1b","name":"exec_command","arguments":"{\"cmd\": \"touch made-by-stub.txt\", \"sandbox_permissions\": \"require_escalated\", \"justification\": \"Create a file outside the sandbox?\"}","call_id":"call_15241fc981cd"}}
{"timestamp":"2026-11-25T01:34:15.893Z","type":"response_item","payload":{"type":"function_call_output","id":"fco_01a21056-d555-7541-917d-d2385e7c8137","call_id":"call_15241fc981cd","output":"Chunk ID: ee94dd\nWall time: 0.0000 seconds\nProcess exited..."}}
{"timestamp":"2026-11-25T01:34:15.894Z","type":"event_msg","payload":{"type":"token_count","info":{"total_token_usage":{"input_tokens":50,"cached_input_tokens":0,"cache_write_input_tokens":0,"output_tokens":16,"reasoning_output_tokens":0,"total_tokens":66},"last_usage_includes_reasoning":false}}}
{"timestamp":"2026-11-25T01:34:15.942Z","type":"response_item","payload":{"type":"message","status":"completed","id":"msg_60527eb5b79c4cd38e4c","role":"assistant","content":[{"type":"output_text","text":"Hello from the stub model.","annotations":[]}]}}
{"timestamp":"2026-11-25T01:34:15.945Z","type":"event_msg","payload":{"type":"token_count","info":{"total_token_usage":{"input_tokens":70,"cached_input_tokens":0,"cache_write_input_tokens":0,"output_tokens":23,"reasoning_output_tokens":0,"total_tokens":93},"last_usage_includes_reasoning":false}}}
{"timestamp":"2026-11-25T01:34:15.949Z","type":"event_msg","payload":{"type":"task_complete","last_agent_message":"Hello from the stub model."}}
{"timestamp":"2026-11-25T01:34:21.402Z","type":"event_msg","payload":{"type":"task_started"}}
{"timestamp":"2026-11-25T01:34:21.429Z","type":"response_item","payload":{"type":"message","id":"msg_01a21056-eaf5-7793-99b0-e7b37866fdf6","role":"user","content":[{"type":"input_text","text":"SLOW please"}]}}
{"timestamp":"2026-11-25T01:34:21.497Z","type":"response_item","payload":{"type":"message","status":"completed","id":"msg_b666f9b2e5af438a9003","role":"assistant","content":[{"type":"output_text","text":"Hello from the stub model.","annotations":[]}]}}
{"timestamp":"2026-11-25T01:34:21.499Z","type":"event_msg","payload":{"type":"token_count","info":{"total_token_usage":{"input_tokens":90,"cached_input_tokens":0,"cache_write_input_tokens":0,"output_tokens":30,"reasoning_output_tokens":0,"total_tokens":120},"last_usage_includes_reasoning":false}}}
{"timestamp":"2026-11-25T01:34:21.512Z","type":"event_msg","payload":{"type":"task_complete","last_agent_message":"Hello from the stub model."}}
{"timestamp":"2026-11-25T01:34:50.065Z","type":"event_msg","payload":{"type":"task_started"}}
{"timestamp":"2026-11-25T01:34:50.083Z","type":"response_item","payload":{"type":"message","id":"msg_01a21057-5ae3-7262-b0ff-6aebcf463750","role":"user","content":[{"type":"input_text","text":"SLOW again"}]}}
{"timestamp":"2026-11-25T01:35:05.142Z","type":"response_item","payload":{"type":"message","status":"completed","id":"msg_be0946830edf4b789537","role":"assistant","content":[{"type":"output_text","text":"Hello from the stub model.","annotations":[]}]}}
{"timestamp":"2026-11-25T01:35:05.146Z","type":"event_msg","payload":{"type":"token_count","info":{"total_token_usage":{"input_tokens":110,"cached_input_tokens":0,"cache_write_input_tokens":0,"output_tokens":37,"reasoning_output_tokens":0,"total_tokens":147},"last_usage_includes_reasoning":false}}}
{"timestamp":"2026-11-25T01:35:05.151Z","type":"event_msg","payload":{"type":"task_complete","last_agent_message":"Hello from the stub model."}}
{"timestamp":"2026-11-25T01:35:22.623Z","type":"event_msg","payload":{"type":"task_started"}}
{"timestamp":"2026-11-25T01:35:22.646Z","type":"response_item","payload":{"type":"message","id":"msg_01a21057-da16-7f20-ae86-626a1a6ef5d2","role":"user","content":[{"type":"input_text","text":"continue please"}]}}
{"timestamp":"2026-11-25T01:35:22.714Z","type":"response_item","payload":{"type":"message","status":"completed","id":"msg_cdc0728c919542b893a9","role":"assistant","content":[{"type":"output_text","text":"Hello from the stub model.","annotations":[]}]}}
{"timestamp":"2026-11-25T01:35:22.722Z","type":"event_msg","payload":{"type":"token_count","info":{"total_token_usage":{"input_tokens":130,"cached_input_tokens":0,"cache_write_input_tokens":0,"output_tokens":44,"reasoning_output_tokens":0,"total_tokens":174},"last_usage_includes_reasoning":false}}}
{"timestamp":"2026-11-25T01:35:22.727Z","type":"event_msg","payload":{"type":"task_complete","last_agent_message":"Hello from the stub model."}}
{"timestamp":"2026-11-25T01:35:38.865Z","type":"event_msg","payload":{"type":"task_started"}}
{"timestamp":"2026-11-25T01:35:38.886Z","type":"response_item","payload":{"type":"message","id":"msg_01a21058-1986-7d70-b070-6e8240a4232f","role":"user","content":[{"type":"input_text","text":"SLOW interrupt me"}]}}
{"timestamp":"2026-11-25T01:35:41.857Z","type":"event_msg","payload":{"type":"token_count","info":{"total_token_usage":{"input_tokens":130,"cached_input_tokens":0,"cache_write_input_tokens":0,"output_tokens":44,"reasoning_output_tokens":0,"total_tokens":174},"last_usage_includes_reasoning":false}}}
{"timestamp":"2026-11-25T01:35:41.863Z","type":"response_item","payload":{"type":"message","id":"msg_01a21058-2527-7a50-9191-160a04801acc","role":"user","content":[{"type":"input_text","text":"<turn_aborted>\nThe user interrupted the previous turn on ..."}]}}
{"timestamp":"2026-11-25T01:35:41.867Z","type":"event_msg","payload":{"type":"turn_aborted","reason":"interrupted"}}
""".strip().splitlines()


def _at(line: str) -> datetime:
    stamp = json.loads(line).get("timestamp")
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


@pytest.mark.parametrize(
    ("upto", "state", "summary", "tokens"),
    [
        (4, "active", "Thinking", (0, 0)),  # the first prompt, nothing back yet
        (6, "ready", "Hello from the stub model.", (12, 7)),  # end_turn; turn_duration is not evidence
        (9, "active", "Running touch made-by-stub.txt", (24, 16)),  # Bash tool_use pending
        (10, "active", "Running touch made-by-stub.txt", (24, 16)),  # its tool_result
        (12, "ready", "Hello from the stub model.", (36, 23)),
        (18, "ready", "Hello from the stub model.", (48, 30)),  # after --resume, same file
    ],
)
def test_real_claude_transcript(
    home: Path, workspace: Path, upto: int, state: str, summary: str, tokens: tuple[int, int]
) -> None:
    lines = [line.replace("/tmp/verify/ws-claude", str(workspace)) for line in REAL_CLAUDE_TRANSCRIPT[:upto]]
    write_claude(home, workspace, lines, name="ba5213c2-fd4c-4bdd-ba78-62eb58a4b6e2")
    now = max(_at(line) for line in lines if '"timestamp"' in line) + timedelta(seconds=5)

    reading = claude(home).detect_activity(workspace=workspace, pane_text="", now=now, process_alive=True)

    assert (reading.state, reading.source, reading.summary) == (state, "transcript", summary)
    assert (reading.tokens_in, reading.tokens_out) == tokens
    assert reading.conversation_id == "ba5213c2-fd4c-4bdd-ba78-62eb58a4b6e2"


@pytest.mark.parametrize(
    ("upto", "state", "summary", "tokens"),
    [
        (4, "active", "", None),  # the prompt; the <environment_context> message before it is skipped
        (8, "ready", "Hello from the stub model.", (20, 7)),  # task_complete
        (11, "active", "Running touch made-by-stub.txt", (20, 7)),  # exec_command call (approval on screen)
        (16, "ready", "Hello from the stub model.", (70, 23)),
        (33, "active", "Hello from the stub model.", (130, 44)),  # a prompt being answered
        (36, "ready", "Hello from the stub model.", (130, 44)),  # interrupted: <turn_aborted> + turn_aborted
    ],
)
def test_real_codex_rollout(
    home: Path, workspace: Path, upto: int, state: str, summary: str, tokens: tuple[int, int] | None
) -> None:
    lines = [line.replace("/tmp/verify/ws-codex", str(workspace)) for line in REAL_CODEX_ROLLOUT[:upto]]
    directory = home / ".codex" / "sessions" / "2026" / "11" / "25"
    directory.mkdir(parents=True)
    name = "rollout-2026-11-25T01-33-27-01a21056-1755-7450-a408-f67615cee920.jsonl"
    (directory / name).write_text("".join(line + "\n" for line in lines))
    now = _at(lines[-1]) + timedelta(seconds=30)

    reading = CodexAgent(CodexAgent.Config(home=home)).detect_activity(
        workspace=workspace, pane_text="", now=now, process_alive=True
    )

    assert (reading.state, reading.source, reading.summary) == (state, "transcript", summary)
    assert (reading.tokens_in, reading.tokens_out) == (tokens if tokens else (None, None))
    assert reading.conversation_id == "01a21056-1755-7450-a408-f67615cee920"


# A real Gemini CLI 0.61.0 session file (trimmed): three turns incl. a shell call, then a
# `gemini --resume <id>` that rewrote the message list through "$set" and added a fourth turn.
REAL_GEMINI_SESSION = r"""
{"sessionId":"906fa0a9-f8cc-4eaf-a5cc-71c7ba798504","projectHash":"32734ba9bfbf064ddb9f0a0e31aa48d9d7f820877734c8687b403867c4480920","startTime":"2026-11-25T01:36:29.169Z","lastUpdated":"2026-11-25T01:36:29.169Z","kind":"main"}
{"$set":{"messages":[{"id":"d04923d38bb0f6017037e74183378ef4","timestamp":"2026-11-25T01:36:29.170Z","type":"user","content":[{"text":"<session_context>\nThis is the Gemini CLI. We ar..."}]}],"lastUpdated":"2026-11-25T01:36:29.170Z"}}
{"id":"f953123e-9bf3-4553-a6a6-a1aa59c35811","timestamp":"2026-11-25T01:36:37.422Z","type":"user","content":[{"text":"say hello"}]}
{"$set":{"lastUpdated":"2026-11-25T01:36:37.422Z"}}
{"id":"dd6b0e4e-2968-4db2-aa98-14dd9a3ff3b9","timestamp":"2026-11-25T01:36:37.497Z","type":"gemini","content":"Hello from the stub model.","tokens":{"input":15,"output":6}}
{"$set":{"lastUpdated":"2026-11-25T01:36:37.497Z"}}
{"id":"ba2c49ed-2ef9-4f80-8077-bcba3480fb16","timestamp":"2026-11-25T01:36:59.557Z","type":"user","content":[{"text":"RUNBASH please"}]}
{"$set":{"lastUpdated":"2026-11-25T01:36:59.558Z"}}
{"id":"b6f04fd3-d8a0-4d2f-9272-926cc3d9ce18","timestamp":"2026-11-25T01:36:59.679Z","type":"gemini","content":"","tokens":{"input":15,"output":6}}
{"$set":{"lastUpdated":"2026-11-25T01:36:59.679Z"}}
{"id":"b6f04fd3-d8a0-4d2f-9272-926cc3d9ce18","timestamp":"2026-11-25T01:36:59.679Z","type":"gemini","content":"","tokens":{"input":15,"output":6},"toolCalls":[{"id":"run_shell_command__run_shell_command_1795570619...","name":"run_shell_command","args":{"command":"touch made-by-stub.txt"},"status":"success","timestamp":"2026-11-25T01:37:10.169Z"}]}
{"id":"f10e3efa-b2bf-4d36-8682-3ef264e6da1e","timestamp":"2026-11-25T01:37:10.175Z","type":"user","content":[{"functionResponse":{"id":"run_shell_command__run_shell_command_1795570619...","name":"run_shell_command","response":{"output":"<untrusted_context>\nOutput: (empty)\nProcess Gro..."}}}]}
{"$set":{"lastUpdated":"2026-11-25T01:37:10.175Z"}}
{"id":"d493d5b7-279c-42e6-b92c-2e69448b97d3","timestamp":"2026-11-25T01:37:10.282Z","type":"gemini","content":"Hello from the stub model.","tokens":{"input":15,"output":6}}
{"$set":{"lastUpdated":"2026-11-25T01:37:10.282Z"}}
{"id":"e8e4dc92-8da9-44d6-a5bb-4e0adc4b72b3","timestamp":"2026-11-25T01:37:15.456Z","type":"user","content":[{"text":"SLOW please"}]}
{"$set":{"lastUpdated":"2026-11-25T01:37:15.456Z"}}
{"id":"01fdb57c-73f2-49b0-a298-619e646fc6b3","timestamp":"2026-11-25T01:37:30.491Z","type":"gemini","content":"Hello from the stub model.","tokens":{"input":15,"output":6}}
{"$set":{"lastUpdated":"2026-11-25T01:37:30.491Z"}}
{"$set":{"sessionId":"906fa0a9-f8cc-4eaf-a5cc-71c7ba798504"}}
{"$set":{"messages":[{"id":"d04923d38bb0f6017037e74183378ef4","timestamp":"2026-11-25T01:36:29.170Z","type":"user","content":[{"text":"<session_context>\nThis is the Gemini CLI. We ar..."}]},{"id":"f953123e-9bf3-4553-a6a6-a1aa59c35811","timestamp":"2026-11-25T01:36:37.422Z","type":"user","content":[{"text":"say hello"}]},{"id":"dd6b0e4e-2968-4db2-aa98-14dd9a3ff3b9","timestamp":"2026-11-25T01:36:37.497Z","type":"gemini","content":[{"text":"Hello from the stub model."}],"tokens":{"input":15,"output":6}},{"id":"ba2c49ed-2ef9-4f80-8077-bcba3480fb16","timestamp":"2026-11-25T01:36:59.557Z","type":"user","content":[{"text":"RUNBASH please"}]},{"id":"b6f04fd3-d8a0-4d2f-9272-926cc3d9ce18","timestamp":"2026-11-25T01:36:59.679Z","type":"gemini","content":[{"functionCall":{"id":"run_shell_command__run_shell_command_1795570619...","name":"run_shell_command","args":{"command":"touch made-by-stub.txt"}}}],"tokens":{"input":15,"output":6},"toolCalls":[{"id":"run_shell_command__run_shell_command_1795570619...","name":"run_shell_command","args":{"command":"touch made-by-stub.txt"},"status":"success","timestamp":"2026-11-25T01:37:10.169Z"}]},{"id":"b6f04fd3-d8a0-4d2f-9272-926cc3d9ce18_response","timestamp":"2026-11-25T01:53:25.635Z","type":"user","content":[{"functionResponse":{"id":"run_shell_command__run_shell_command_1795570619...","name":"run_shell_command","response":{"output":"<untrusted_context>\nOutput: (empty)\nProcess Gro..."}}}]},{"id":"f10e3efa-b2bf-4d36-8682-3ef264e6da1e","timestamp":"2026-11-25T01:37:10.175Z","type":"user","content":[{"functionResponse":{"id":"run_shell_command__run_shell_command_1795570619...","name":"run_shell_command","response":{"output":"<untrusted_context>\nOutput: (empty)\nProcess Gro..."}}}]},{"id":"d493d5b7-279c-42e6-b92c-2e69448b97d3","timestamp":"2026-11-25T01:37:10.282Z","type":"gemini","content":[{"text":"Hello from the stub model."}],"tokens":{"input":15,"output":6}},{"id":"e8e4dc92-8da9-44d6-a5bb-4e0adc4b72b3","timestamp":"2026-11-25T01:37:15.456Z","type":"user","content":[{"text":"SLOW please"}]},{"id":"01fdb57c-73f2-49b0-a298-619e646fc6b3","timestamp":"2026-11-25T01:37:30.491Z","type":"gemini","content":[{"text":"Hello from the stub model."}],"tokens":{"input":15,"output":6}}],"lastUpdated":"2026-11-25T01:53:25.635Z"}}
{"id":"905d44e2-4406-471e-b385-fc72116300b3","timestamp":"2026-11-25T01:53:26.148Z","type":"user","content":[{"text":"continue please"}]}
{"$set":{"lastUpdated":"2026-11-25T01:53:26.148Z"}}
{"id":"fa87fea2-5c4a-4964-bdd5-15dc35c67e74","timestamp":"2026-11-25T01:53:26.357Z","type":"gemini","content":"Hello from the stub model.","tokens":{"input":15,"output":6}}
{"$set":{"lastUpdated":"2026-11-25T01:53:26.357Z"}}
""".strip().splitlines()
REAL_GEMINI_HASH = "32734ba9bfbf064ddb9f0a0e31aa48d9d7f820877734c8687b403867c4480920"  # sha256 of its cwd


def write_gemini(home: Path, workspace: Path, lines: list[str], *, by_name: bool = True) -> Path:
    gemini = home / ".gemini"
    project = hashlib.sha256(str(workspace).encode()).hexdigest()
    if by_name:
        gemini.mkdir(parents=True, exist_ok=True)
        (gemini / "projects.json").write_text(json.dumps({"projects": {str(workspace): "proj-1"}}))
        chats = gemini / "tmp" / "proj-1" / "chats"
    else:  # older versions: the directory is named by the project hash
        chats = gemini / "tmp" / project / "chats"
    chats.mkdir(parents=True, exist_ok=True)
    path = chats / "session-2026-11-25T01-36-906fa0a9.jsonl"
    path.write_text("".join(line.replace(REAL_GEMINI_HASH, project) + "\n" for line in lines))
    return path


@pytest.mark.parametrize(
    ("upto", "tokens"),
    [
        (1, (None, None)),  # the header only
        (5, (15, 6)),  # one reply
        (11, (30, 12)),  # the tool-call message was written twice under one id: counted once
        (25, (75, 30)),  # after the resume's "$set" of the whole list and one more turn
    ],
)
@pytest.mark.parametrize("by_name", [True, False])
def test_real_gemini_session_gives_conversation_and_tokens(
    home: Path, workspace: Path, upto: int, tokens: tuple, by_name: bool
) -> None:
    write_gemini(home, workspace, REAL_GEMINI_SESSION[:upto], by_name=by_name)
    pane = (PANES / "gemini-ready-after-reply.txt").read_text(encoding="utf-8")

    reading = GeminiAgent(GeminiAgent.Config(home=home)).detect_activity(
        workspace=workspace, pane_text=pane, now=NOW, process_alive=True
    )

    assert (reading.state, reading.source) == ("ready", "terminal")  # the pane decides the state
    assert reading.conversation_id == "906fa0a9-f8cc-4eaf-a5cc-71c7ba798504"
    assert (reading.tokens_in, reading.tokens_out) == tokens


def test_gemini_session_of_another_project_is_ignored(home: Path, workspace: Path) -> None:
    path = write_gemini(home, workspace, REAL_GEMINI_SESSION)
    path.write_text(path.read_text().replace(hashlib.sha256(str(workspace).encode()).hexdigest(), "0" * 64))

    reading = GeminiAgent(GeminiAgent.Config(home=home)).detect_activity(
        workspace=workspace, pane_text="", now=NOW, process_alive=True
    )

    assert (reading.state, reading.conversation_id, reading.tokens_in) == ("unknown", "", None)


def test_gemini_exited_keeps_the_conversation_for_resume(home: Path, workspace: Path) -> None:
    write_gemini(home, workspace, REAL_GEMINI_SESSION)
    agent = GeminiAgent(GeminiAgent.Config(home=home))

    reading = agent.detect_activity(workspace=workspace, pane_text="", now=NOW, process_alive=False)

    assert (reading.state, reading.conversation_id) == ("exited", "906fa0a9-f8cc-4eaf-a5cc-71c7ba798504")
    assert agent.resume_command(workspace=workspace, conversation_id=reading.conversation_id) == [
        "gemini",
        "--resume",
        "906fa0a9-f8cc-4eaf-a5cc-71c7ba798504",
    ]


def test_claude_sub_agent_transcripts_are_not_the_conversation(home: Path, workspace: Path) -> None:
    """Versions before 2.1 wrote a sub-agent's transcript (``agent-<id>.jsonl``) beside the main
    one; the newest file must not be taken as the conversation (its state, tokens, id)."""
    write_claude(home, workspace, [user("x", 60), text_reply(ago=30)])
    sub = write_claude(home, workspace, [user("look around", 2)], name="agent-a1b2c3")
    os.utime(sub)  # newer than the main transcript
    reading = claude(home).detect_activity(workspace=workspace, pane_text="", now=NOW, process_alive=True)
    assert (reading.state, reading.conversation_id) == ("ready", SESSION)


def test_claude_cost_is_the_newest_cost_state_total(home: Path, workspace: Path) -> None:
    """2.1.328 writes no per-entry ``costUSD``: its running total is ``cost-state.totalCostUSD``,
    written on exit and cumulative across resumes (seen with the real CLI)."""
    write_claude(
        home,
        workspace,
        [
            user("x", 60),
            text_reply(ago=30),
            {"type": "cost-state", "totalCostUSD": 0.0128, "modelUsage": {}},
            user("y", 20),
            {**text_reply(ago=10), "message": {**text_reply()["message"], "model": "claude-opus-5-5"}},
            {"type": "cost-state", "totalCostUSD": 0.0256, "modelUsage": {}},
        ],
    )
    reading = claude(home).detect_activity(workspace=workspace, pane_text="", now=NOW, process_alive=True)
    assert reading.cost_usd == pytest.approx(0.0256)
    assert reading.model == "claude-opus-5-5"


def test_claude_cost_recorded_on_exit_under_the_repository_of_a_worktree(tmp_path: Path, home: Path) -> None:
    """2.1.100 writes no cost into the transcript: on exit (a kill too) it records ``lastCost``
    and ``lastSessionId`` in ``~/.claude.json`` under the repository's main checkout, not the
    worktree it ran in (seen with the real CLI in an ao worktree)."""
    import subprocess

    repo, worktree = tmp_path / "repo", tmp_path / "workspaces" / "web-1"
    for args in (
        ["init", "-q", str(repo)],
        [
            "-C",
            str(repo),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "x",
        ],
        ["-C", str(repo), "worktree", "add", "-q", "-b", "web-1", str(worktree)],
    ):
        subprocess.run(["git", *args], check=True)
    write_claude(home, worktree, [user("x", 60), text_reply(ago=30)])
    state = {"projects": {str(repo): {"lastCost": 0.0272, "lastSessionId": SESSION}, str(worktree): {}}}
    (home / ".claude.json").write_text(json.dumps(state))

    reading = claude(home).detect_activity(workspace=worktree, pane_text="", now=NOW, process_alive=True)
    assert reading.cost_usd == pytest.approx(0.0272)

    # another conversation exited last in a worktree of the same repository: not this one's cost
    state["projects"][str(repo)]["lastSessionId"] = "another-conversation"
    (home / ".claude.json").write_text(json.dumps(state))
    reading = claude(home).detect_activity(workspace=worktree, pane_text="", now=NOW, process_alive=True)
    assert reading.cost_usd is None


def test_claude_prompt_entry_written_after_its_reply_is_not_the_newest(home: Path, workspace: Path) -> None:
    """Claude Code 2.1.100 on a loaded machine appended a pasted prompt's user entry after the
    reply's ``end_turn`` (stamped earlier, as its real transcript shows): the turn has ended.
    Taken in file order, "prompt received" read active for 15 minutes instead of ready, idle."""
    write_claude(home, workspace, [user("x", 60), text_reply(ago=30), text_reply(ago=20), user("paste", 21)])
    reading = claude(home).detect_activity(workspace=workspace, pane_text="", now=NOW, process_alive=True)
    assert (reading.state, reading.evidence) == ("ready", "turn ended (end_turn)")
    later = NOW + timedelta(minutes=5)
    reading = claude(home).detect_activity(workspace=workspace, pane_text="", now=later, process_alive=True)
    assert reading.state == "idle"


def test_claude_transcript_is_parsed_again_only_when_it_changed(
    home: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every sweep reads every agent's transcript; one nothing was written to since is not
    parsed again, and an appended entry is read by the next reading."""
    from integrations.agent import transcripts

    path = write_claude(home, workspace, [tool_use(ago=5)])
    parsed: list[Path] = []
    real = transcripts.read_tail_lines

    def spy(p: Path, *args, **kwargs):
        parsed.append(p)
        return real(p, *args, **kwargs)

    monkeypatch.setattr(transcripts, "read_tail_lines", spy)
    agent = claude(home)
    first = agent.detect_activity(workspace=workspace, pane_text="", now=NOW, process_alive=True)
    later = agent.detect_activity(
        workspace=workspace, pane_text="", now=NOW + timedelta(seconds=1), process_alive=True
    )
    assert first.state == later.state == "active"
    assert parsed.count(path) == 1

    with path.open("a") as handle:
        handle.write(json.dumps(text_reply(ago=1)) + "\n")
    after = agent.detect_activity(workspace=workspace, pane_text="", now=NOW, process_alive=True)
    assert after.state == "ready" and "end_turn" in after.evidence
    assert parsed.count(path) == 2
