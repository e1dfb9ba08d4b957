"""OpenAI Codex CLI (``codex``): launch argv, rollout-based activity, folder trust.

Codex records each conversation as ``$CODEX_HOME/sessions/YYYY/MM/DD/rollout-<time>-<id>.jsonl``
(``CODEX_HOME`` defaults to ``~/.codex``). Every line is ``{"timestamp", "type", "payload"}``;
the first is ``session_meta`` with the conversation ``id`` and the ``cwd``, which is how a
rollout is matched to a workspace. ``event_msg`` payloads (``task_started``, ``task_complete``,
``turn_aborted``, ``token_count``, ``agent_message``, ``error``...) and ``response_item``
payloads (``message``, ``function_call``, ``reasoning``...) drive the state; unknown types are
skipped. Approval prompts are normally not persisted, so they are read from the pane.
"""

from __future__ import annotations

import json
import os
import re
import threading
import tomllib
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from integrations.agent.activity import (
    ACTIVE,
    BLOCKED,
    DEFAULT_PANE_PATTERNS,
    READY,
    WAITING_INPUT,
    age_state,
    decide,
    last_lines,
    terminal_reading,
)
from integrations.agent.common import (
    SETTLE_SECONDS,
    CliAgent,
    check_conversation_id,
    read_instructions,
    workspace_keys,
    write_atomically,
)
from integrations.agent.transcripts import (
    JsonlTotals,
    mtime_of,
    one_line,
    parse_jsonl,
    read_head_line,
    read_tail_lines,
)
from integrations.records import ActivityReading
from integrations.registry import agents

SEARCH_DAYS = 14  # how many of the newest day directories to look through for a workspace's rollout

ACTIVE_EVENTS = {
    "task_started",
    "user_message",
    "agent_reasoning",
    "agent_reasoning_raw_content",
    "agent_reasoning_section_break",
    "exec_command_begin",
    "exec_command_end",
    "patch_apply_begin",
    "patch_apply_end",
    "mcp_tool_call_begin",
    "mcp_tool_call_end",
    "web_search_begin",
    "web_search_end",
}
FINISHED_EVENTS = {"task_complete", "turn_aborted"}
WAITING_EVENTS = {"exec_approval_request", "apply_patch_approval_request", "request_user_input"}
ERROR_EVENTS = {"error", "stream_error"}
ACTIVE_ITEMS = {
    "function_call",
    "function_call_output",
    "custom_tool_call",
    "custom_tool_call_output",
    "local_shell_call",
    "web_search_call",
    "reasoning",
}
CONTEXT_PREFIXES = ("<environment_context>", "<user_instructions>", "# AGENTS.md", "<turn_aborted>")


def codex_home(home: Path | None) -> Path:
    if home is not None:
        return home / ".codex"
    configured = os.environ.get("CODEX_HOME")
    return Path(configured) if configured else Path.home() / ".codex"


# --- rollouts ------------------------------------------------------------------------------------------
_meta_lock = threading.Lock()
_meta_cache: dict[str, dict[str, Any]] = {}


def session_meta(path: Path) -> dict[str, Any]:
    """The ``session_meta`` payload of a rollout ({} when the first line is something else)."""
    key = str(path)
    with _meta_lock:
        if key in _meta_cache:
            return _meta_cache[key]
    head = read_head_line(path)
    payload = head.get("payload") if head and head.get("type") == "session_meta" else None
    meta = payload if isinstance(payload, dict) else {}
    if head is not None:  # cache only complete first lines: they never change afterwards
        with _meta_lock:
            if len(_meta_cache) > 4096:
                _meta_cache.clear()
            _meta_cache[key] = {"id": meta.get("id"), "cwd": meta.get("cwd")}
    return meta


def _numbered_dirs(directory: Path) -> list[Path]:
    try:
        return sorted((p for p in directory.iterdir() if p.is_dir() and p.name.isdigit()), reverse=True)
    except OSError:
        return []


def find_rollout(sessions: Path, workspace: Path, *, days: int = SEARCH_DAYS) -> Path | None:
    """The most recently written rollout whose ``session_meta.cwd`` is ``workspace``."""
    keys = set(workspace_keys(workspace))
    day_dirs: list[Path] = []
    for year in _numbered_dirs(sessions):
        for month in _numbered_dirs(year):
            for day in _numbered_dirs(month):
                day_dirs.append(day)
                if len(day_dirs) >= days:
                    break
            if len(day_dirs) >= days:
                break
        if len(day_dirs) >= days:
            break
    best: tuple[float, Path] | None = None
    for day in day_dirs:
        try:
            files = list(day.glob("rollout-*.jsonl"))
        except OSError:
            continue
        for path in files:
            if session_meta(path).get("cwd") not in keys:
                continue
            try:
                mtime = path.stat().st_mtime
            except OSError:
                continue
            if best is None or mtime > best[0]:
                best = (mtime, path)
    return best[1] if best else None


def _message_text(payload: dict[str, Any]) -> str:
    content = payload.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def turn_error(payload: dict[str, Any]) -> str:
    """The message of a ``task_complete`` that ended in an error (an API 401, retries used up)."""
    error = payload.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or "error")
    return str(error) if error else ""


def entry_state(entry: dict[str, Any]) -> tuple[str, str] | None:
    """(state, evidence) one rollout line implies, or None when it is not evidence ("finished" and
    "reply" as in the Claude Code detector)."""
    payload = entry.get("payload")
    if not isinstance(payload, dict):
        return None
    kind, subtype = entry.get("type"), payload.get("type")
    if kind == "event_msg":
        if subtype in WAITING_EVENTS:
            return WAITING_INPUT, f"approval requested ({subtype})"
        if subtype in ERROR_EVENTS:
            return BLOCKED, "error: " + one_line(str(payload.get("message") or subtype), 80)
        if subtype in FINISHED_EVENTS:
            if turn_error(payload):  # 0.169 ends a failed turn so, with no `error` event
                return BLOCKED, "turn failed: " + one_line(turn_error(payload), 80)
            return "finished", f"turn ended ({subtype})"
        if subtype in ACTIVE_EVENTS:
            return ACTIVE, str(subtype)
        if subtype == "agent_message":
            return "reply", "agent message"
        return None
    if kind == "response_item":
        if subtype == "message":
            role = payload.get("role")
            if role == "user":
                if _message_text(payload).lstrip().startswith(CONTEXT_PREFIXES):
                    return None
                return ACTIVE, "prompt received"
            if role == "assistant":
                return "reply", "assistant message"
            return None
        if subtype in ACTIVE_ITEMS:
            return ACTIVE, str(subtype)
        return None
    return None


_PATCH_FILE_RE = re.compile(r"^\*\*\* (Update|Add|Delete) File: (.+)$", re.MULTILINE)


def describe_call(payload: dict[str, Any]) -> str:
    name = str(payload.get("name") or "")
    raw = payload.get("arguments") if "arguments" in payload else payload.get("input")
    if name == "apply_patch" or (isinstance(raw, str) and "*** Begin Patch" in raw):
        match = _PATCH_FILE_RE.search(raw if isinstance(raw, str) else "")
        if match:
            verb = {"Update": "Editing", "Add": "Adding", "Delete": "Deleting"}[match.group(1)]
            return one_line(f"{verb} {match.group(2).strip()}")
        return "Editing files"
    args: Any = raw
    if isinstance(raw, str):
        try:
            args = json.loads(raw)
        except ValueError:
            args = {}
    command = args.get("command") or args.get("cmd") if isinstance(args, dict) else None
    if payload.get("type") == "local_shell_call":
        action = payload.get("action")
        command = action.get("command") if isinstance(action, dict) else command
    if isinstance(command, list):
        words = [str(word) for word in command]
        if len(words) >= 3 and words[1] in ("-lc", "-c"):
            words = words[2:]
        command = " ".join(words)
    if command:
        return one_line(f"Running {command}")
    return one_line(f"Using {name or 'a tool'}")


def summarize(entries: list[dict[str, Any]]) -> str:
    for entry in reversed(entries):
        payload = entry.get("payload")
        if not isinstance(payload, dict):
            continue
        subtype = payload.get("type")
        if entry.get("type") == "response_item":
            if subtype in ("function_call", "custom_tool_call", "local_shell_call"):
                return describe_call(payload)
            if subtype == "message" and payload.get("role") == "assistant" and _message_text(payload).strip():
                return one_line(_message_text(payload))
        if entry.get("type") == "event_msg" and subtype in FINISHED_EVENTS and turn_error(payload):
            return one_line("Failed: " + turn_error(payload))
        if entry.get("type") == "event_msg" and subtype == "agent_message" and payload.get("message"):
            return one_line(str(payload["message"]))
    return ""


def pending_call(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest tool call of the tail that has no output yet (what an approval prompt is about)."""
    answered: set[str] = set()
    for entry in reversed(entries):
        payload = entry.get("payload")
        if entry.get("type") != "response_item" or not isinstance(payload, dict):
            continue
        subtype = payload.get("type")
        if subtype in ("function_call_output", "custom_tool_call_output"):
            answered.add(str(payload.get("call_id")))
        elif subtype in ("function_call", "custom_tool_call", "local_shell_call"):
            return None if str(payload.get("call_id")) in answered else payload
        elif subtype == "message" and payload.get("role") == "user":
            return None
    return None


def asked_about(payload: dict[str, Any]) -> str:
    """What an approval prompt for this call asks: "Asks to run git commit …", "Asks to edit x"."""
    described = describe_call(payload)
    for verb, asks in (
        ("Running ", "Asks to run "),
        ("Editing ", "Asks to edit "),
        ("Adding ", "Asks to add "),
    ):
        if described.startswith(verb):
            return one_line(asks + described[len(verb) :])
    return one_line(f"Asks to {described[0].lower()}{described[1:]}") if described else ""


def still_starting(pane_text: str) -> bool:
    """Whether the pane is Codex's start-up frame: the composer is drawn, but the status line
    under it ("<model> <effort> · <cwd>", "← for agents · ? for shortcuts") is not yet, only
    "? for shortcuts". Codex has not decided then whether to show its sign-in screen instead."""
    lines = last_lines(pane_text, 3)
    return bool(lines) and lines[-1].strip() == "? for shortcuts"


def model_of(entries: list[dict[str, Any]]) -> str:
    """The model of the newest turn: ``turn_context.model`` (or a ``thread_settings_applied``)."""
    for entry in reversed(entries):
        payload = entry.get("payload")
        if not isinstance(payload, dict):
            continue
        if entry.get("type") == "turn_context" and payload.get("model"):
            return str(payload["model"])
        settings = payload.get("thread_settings")
        if (
            payload.get("type") == "thread_settings_applied"
            and isinstance(settings, dict)
            and settings.get("model")
        ):
            return str(settings["model"])
    return ""


def _tokens_fold(state: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    payload = entry.get("payload")
    if (
        entry.get("type") != "event_msg"
        or not isinstance(payload, dict)
        or payload.get("type") != "token_count"
    ):
        return state
    info = payload.get("info")
    total = info.get("total_token_usage") if isinstance(info, dict) else None
    if isinstance(total, dict):
        state["in"] = int(total.get("input_tokens") or 0)
        state["out"] = int(total.get("output_tokens") or 0)
        state["seen"] = True
    return state


_tokens = JsonlTotals(_tokens_fold, lambda: {"in": 0, "out": 0, "seen": False})


# --- the plugin ------------------------------------------------------------------------------------
@agents.register("codex")
class CodexAgent(CliAgent):
    binary = "codex"
    install_hint = "npm install -g @openai/codex"
    # The first prompt is typed into the composer once Codex is ready, never put on its argv:
    # `ps` shows every process's command line to every local user.
    prompt_in_command = False
    # ``--full-auto`` (the old spelling of auto-edit) is gone: codex 0.169 rejects it as an
    # unexpected argument. Its meaning, spelled with flags that every version since 0.2x accepts:
    permission_args: ClassVar = {
        "default": [],
        "auto-edit": ["--sandbox", "workspace-write", "--ask-for-approval", "on-request"],
        "skip-permissions": ["--dangerously-bypass-approvals-and-sandbox"],
    }
    # The composer is a chevron (U+203A) and a placeholder ("Ask Codex to do anything") or typed
    # text; a chevron before "1. Yes, proceed" marks a dialog's selected option, not the composer.
    pane_patterns: ClassVar = DEFAULT_PANE_PATTERNS.extended(ready=[r"^\s*›\s+(?!\d+\.\s)\S"])

    def _options(self, workspace: Path) -> list[str]:
        # Without --no-daemon, 0.169 runs the conversation in a shared background app-server
        # (installed under $CODEX_HOME/packages) that outlives the TUI: killing the session left
        # the turn running (commands executed, the model asked again) and the server running.
        return ["--no-daemon", *super()._options(workspace)]

    def instructions_args(self, path: Path) -> list[str]:
        # developer_instructions are added to Codex's own prompt (model_instructions_file would
        # replace it). -c values are TOML; a JSON string is a valid TOML string.
        return ["-c", "developer_instructions=" + json.dumps(read_instructions(path))]

    def resume_command(
        self, *, workspace: Path, conversation_id: str, prompt: str | None = None
    ) -> list[str] | None:
        argv = [
            self.executable(),
            "resume",
            *self._options(workspace),
            "--",
            check_conversation_id(conversation_id),
        ]
        if prompt and self.prompt_in_command:
            argv.append(prompt)
        return argv

    def rollout_path(self, workspace: Path) -> Path | None:
        return find_rollout(codex_home(self.config.home) / "sessions", workspace)

    def transcript_reading(self, workspace: Path, now: datetime) -> ActivityReading | None:
        return self._rollout_reading(self.rollout_path(workspace), now)

    def _rollout_reading(self, path: Path | None, now: datetime) -> ActivityReading | None:
        reading, entries = self.transcript_evidence(path, entry_state, now, record="rollout")
        if path is None or reading is None:
            return None
        tokens = _tokens.read(path)
        return replace(
            reading,
            summary=summarize(entries),
            model=model_of(entries),
            tokens_in=tokens["in"] if tokens["seen"] else None,
            tokens_out=tokens["out"] if tokens["seen"] else None,
            conversation_id=str(session_meta(path).get("id") or ""),
        )

    def detect_activity(
        self, *, workspace: Path, pane_text: str, now: datetime, process_alive: bool
    ) -> ActivityReading:
        path = self.rollout_path(workspace)  # looked up once: it walks the day directories
        native = self._rollout_reading(path, now)
        pane = terminal_reading(pane_text, now=now, patterns=self.pane_patterns)
        if pane is not None and pane.state == READY and still_starting(pane_text):
            pane = None  # not ready yet, whatever the composer suggests: type nothing
        if native is not None and native.state == ACTIVE and pane is not None and pane.state == READY:
            # Codex draws "Working (… esc to interrupt)" for the whole of a turn. A rollout that
            # ends mid-turn under a bare composer is a turn that will never finish: the process
            # that ran it was killed, and `codex resume` writes nothing until the next prompt.
            # (Waiting SETTLE_SECONDS after the last write skips the moment a turn starts.)
            written = (mtime_of(path) if path is not None else None) or native.at
            if written is not None and (now - written).total_seconds() >= SETTLE_SECONDS:
                native = replace(
                    native,
                    state=age_state(written, now, self.config.ready_window_seconds),
                    at=written,
                    summary="At its prompt; the last turn did not finish",
                    evidence="unfinished turn in the rollout, but the composer is up and Codex is not working",
                )
        reading = decide(native, pane, now=now, process_alive=process_alive)
        if reading.state == WAITING_INPUT and reading.source == "terminal":
            # The dialog says "Would you like to run the following command?"; the rollout already
            # holds the call it is about, so the summary can say which command.
            call = pending_call(parse_jsonl(read_tail_lines(path))) if path is not None else None
            if call is not None:
                reading = replace(reading, summary=asked_about(call))
        return reading

    def screen_ready(self, pane_text: str) -> bool | None:
        return bool(super().screen_ready(pane_text)) and not still_starting(pane_text)

    def prepare_workspace(self, workspace: Path, *, allow_trust: bool) -> list[str]:
        """When ``allow_trust``, add ``[projects."<path>"] trust_level = "trusted"`` to
        ``$CODEX_HOME/config.toml`` (appended as a new table; the file is checked to still parse
        and is left alone when the project already has a table or the file cannot be parsed)."""
        if not allow_trust:
            return []
        path = codex_home(self.config.home) / "config.toml"
        try:
            text = path.read_text(encoding="utf-8") if path.exists() else ""
            projects = tomllib.loads(text).get("projects", {})
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            return [f"could not mark the folder trusted: {path} cannot be read ({exc}); the dialog will show"]
        if not isinstance(projects, dict):
            return [f"could not mark the folder trusted: 'projects' in {path} is not a table"]
        added = ""
        for key in workspace_keys(workspace):
            existing = projects.get(key)
            if isinstance(existing, dict):
                if existing.get("trust_level") != "trusted":
                    return [f"left {path} unchanged: it already has a [projects] entry for {key}"]
                continue
            added += f'\n[projects.{json.dumps(key)}]\ntrust_level = "trusted"\n'
        if not added:
            return []
        updated = text + ("\n" if text and not text.endswith("\n") else "") + added
        try:
            tomllib.loads(updated)
        except tomllib.TOMLDecodeError:
            return [f"left {path} unchanged: adding a [projects] table would not parse (inline table?)"]
        write_atomically(path, updated)
        return [f"marked {workspace} trusted in {path}"]
