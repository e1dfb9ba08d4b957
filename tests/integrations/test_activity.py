"""Activity detection: transcript tails (Claude Code, Codex), terminal heuristics, and how they combine.

Real files under a temporary home; no mocks. ``NOW`` is fixed and entries are stamped relative to it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from integrations.agent.claude_code import ClaudeCodeAgent, encode_project_path
from integrations.agent.codex import CodexAgent
from integrations.agent.common import read_tail_lines, terminal_reading
from integrations.agent.custom import CustomAgent

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
