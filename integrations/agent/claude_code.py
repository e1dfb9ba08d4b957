"""Claude Code (``claude``): launch argv, transcript-based activity, start-up dialogs.

Claude Code writes one JSONL transcript per conversation under
``~/.claude/projects/<encoded cwd>/<session id>.jsonl`` (``$CLAUDE_CONFIG_DIR`` replaces
``~/.claude``). The directory name is the absolute working directory with every character
other than ASCII letters and digits replaced by ``-`` (``/work/my_repo`` ->
``-work-my-repo``); this encoding is undocumented, so paths of over 200 characters, which newer
versions encode differently, are also looked up by prefix and checked against the ``cwd``
recorded in the entries.

Entry types read: ``assistant`` (content blocks, ``stop_reason``, ``usage``, ``model``,
``costUSD`` in versions before 2.1, ``isApiErrorMessage``), ``user`` (prompts and
``tool_result`` blocks), ``system`` (``level: "error"``) and ``cost-state`` (2.1.328 writes
the conversation's running ``totalCostUSD`` when it exits, counting earlier runs of a resumed
conversation). Every other type (``summary``, ``file-history-snapshot``, ``queue-operation``,
...) is not evidence of activity. Versions that write no cost into the transcript (2.1.100)
record it in ``~/.claude.json`` as ``projects[<key>].lastCost`` on exit (a kill's SIGHUP too),
beside ``lastSessionId``; the key is the working directory, or for a git worktree the
repository's main checkout. Sub-agent transcripts (``agent-*.jsonl``; 2.1 keeps them under
``<session id>/subagents/``) are never read as the conversation. Pending permission, trust and
auto-mode dialogs are not written to the transcript; they are read from the pane.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from integrations.agent.activity import (
    ACTIVE,
    BLOCKED,
    DEFAULT_PANE_PATTERNS,
    WAITING_INPUT,
    decide,
    last_lines,
    terminal_reading,
)
from integrations.agent.common import (
    AgentConfig,
    CliAgent,
    git_exclude,
    load_json_object,
    read_instructions,
    workspace_keys,
    write_atomically,
)
from integrations.agent.transcripts import JsonlTotals, newest_file, one_line, parse_jsonl, read_tail_lines
from integrations.base import HostSetting, PermanentIntegrationError
from integrations.records import ActivityReading
from integrations.registry import agents

SETTINGS_MODE = {"default": None, "auto-edit": "acceptEdits", "skip-permissions": "bypassPermissions"}
FINISHED_STOP_REASONS = {"end_turn", "stop_sequence", "max_tokens", "refusal", "pause_turn"}
LONG_NAME = 200
_ENCODE_RE = re.compile(r"[^A-Za-z0-9]")


def encode_project_path(path: str | Path) -> str:
    """Claude Code's directory name for a working directory: non-alphanumerics become ``-``."""
    return _ENCODE_RE.sub("-", str(path))


def claude_config_dir(home: Path | None) -> Path:
    if home is not None:
        return home / ".claude"
    configured = os.environ.get("CLAUDE_CONFIG_DIR")
    return Path(configured) if configured else Path.home() / ".claude"


def claude_state_file(home: Path | None) -> Path:
    """``~/.claude.json``: per-project trust and onboarding flags (inside ``$CLAUDE_CONFIG_DIR`` if set)."""
    if home is not None:
        return home / ".claude.json"
    configured = os.environ.get("CLAUDE_CONFIG_DIR")
    return Path(configured) / ".claude.json" if configured else Path.home() / ".claude.json"


# --- transcript --------------------------------------------------------------------------------------
def _usage_fold(state: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """Sum usage per API message. Claude Code writes one entry per content block, repeating the
    message's usage on each, so only the last entry of each message id counts."""
    if entry.get("type") != "assistant" or entry.get("isApiErrorMessage"):
        return state
    message = entry.get("message")
    if not isinstance(message, dict) or not isinstance(message.get("usage"), dict):
        return state
    message_id = message.get("id") or entry.get("requestId") or entry.get("uuid")
    if message_id != state["current_id"]:
        _commit(state)
        state["current_id"] = message_id
    state["current"] = (message["usage"], entry.get("costUSD"))
    return state


def _fold(state: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    if entry.get("type") == "cost-state":
        total = entry.get("totalCostUSD")
        if isinstance(total, (int, float)) and not isinstance(total, bool):
            state["cost_state"] = float(total)  # cumulative: the newest one is the total
        return state
    return _usage_fold(state, entry)


def _commit(state: dict[str, Any]) -> None:
    if state["current"] is None:
        return
    usage, cost = state["current"]
    state["in"] += _int(usage.get("input_tokens"))
    state["cache_write"] += _int(usage.get("cache_creation_input_tokens"))
    state["cache_read"] += _int(usage.get("cache_read_input_tokens"))
    state["out"] += _int(usage.get("output_tokens"))
    if isinstance(cost, (int, float)):
        state["cost"] = (state["cost"] or 0.0) + float(cost)
    state["current"] = None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def _usage_initial() -> dict[str, Any]:
    return {
        "in": 0,
        "out": 0,
        "cache_read": 0,
        "cache_write": 0,
        "cost": None,
        "current_id": None,
        "current": None,
        "cost_state": None,
    }


_usage = JsonlTotals(_fold, _usage_initial)


def usage_totals(path: Path) -> tuple[int, int, float | None]:
    """(input tokens incl. cache reads and writes, output tokens, cost in USD or None) so far.

    The cost is the newest ``cost-state`` total when there is one, else the sum of per-entry
    ``costUSD`` (versions before 2.1), else None."""
    state = dict(_usage.read(path))
    _commit(state)
    cost = state["cost_state"] if state["cost_state"] is not None else state["cost"]
    return state["in"] + state["cache_read"] + state["cache_write"], state["out"], cost


def repository_root(workspace: Path) -> Path | None:
    """The main checkout of the git worktree ``workspace`` (None when it is not a linked
    worktree): where Claude Code keys a worktree's ``projects`` entry for what it records on exit.
    Read as 2.1.100 does: ``.git`` is a ``gitdir:`` file naming ``<repo>/.git/worktrees/<name>``,
    whose ``commondir`` is ``<repo>/.git``."""
    try:
        pointer = (workspace / ".git").read_text(encoding="utf-8").strip()
        if not pointer.startswith("gitdir:"):
            return None
        gitdir = Path(os.path.normpath(workspace.absolute() / pointer[len("gitdir:") :].strip()))
        common = Path(os.path.normpath(gitdir / (gitdir / "commondir").read_text(encoding="utf-8").strip()))
    except (OSError, UnicodeDecodeError):
        return None
    if gitdir.parent != common / "worktrees" or common.name != ".git":
        return None
    return common.parent


_STATE_CACHE: dict[str, tuple[tuple[int, int, int], dict]] = {}


def _state_projects(state_file: Path) -> dict:
    """``projects`` of ``~/.claude.json`` (often large), parsed again only when the file changed."""
    try:
        stat = state_file.stat()
    except OSError:
        return {}
    key = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
    cached = _STATE_CACHE.get(str(state_file))
    if cached is not None and cached[0] == key:
        return cached[1]
    projects = (load_json_object(state_file) or {}).get("projects")
    projects = projects if isinstance(projects, dict) else {}
    if len(_STATE_CACHE) >= 16:
        _STATE_CACHE.clear()
    _STATE_CACHE[str(state_file)] = (key, projects)
    return projects


def last_cost(state_file: Path, keys: list[str], conversation_id: str) -> float | None:
    """``projects[<key>].lastCost`` from ``~/.claude.json`` when it is this conversation's
    (``lastSessionId``): what versions without ``cost-state`` record on exit. ``keys``: the
    working directory's spellings and, for a git worktree, its main checkout's (2.1.100 records
    a worktree's cost there, shared by every worktree of the repository: the newest exit wins)."""
    projects = _state_projects(state_file)
    for key in keys:
        project = projects.get(key)
        if not isinstance(project, dict) or project.get("lastSessionId") != conversation_id:
            continue
        cost = project.get("lastCost")
        if isinstance(cost, (int, float)) and not isinstance(cost, bool):
            return float(cost)
    return None


def model_of(entries: list[dict[str, Any]]) -> str:
    """The model of the newest assistant message answered by the API (not a ``<synthetic>`` one)."""
    for entry in reversed(entries):
        message = entry.get("message")
        if entry.get("type") != "assistant" or not isinstance(message, dict):
            continue
        model = message.get("model")
        if isinstance(model, str) and model and not model.startswith("<"):
            return model
    return ""


def _blocks(entry: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    message = entry.get("message")
    if not isinstance(message, dict):
        return [], None
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}], message.get("stop_reason")
    if isinstance(content, list):
        return [block for block in content if isinstance(block, dict)], message.get("stop_reason")
    return [], message.get("stop_reason")


def _is_interruption(text: str) -> bool:
    return text.lstrip().startswith("[Request interrupted by user")


def entry_state(entry: dict[str, Any]) -> tuple[str, str] | None:
    """(state, evidence) one transcript entry implies, or None when it is not evidence.

    The state "finished" means the turn ended: ready or idle depending on its age; "reply"
    means a text reply with no stop reason yet, finished once it has settled.
    """
    kind = entry.get("type")
    if kind == "system":
        level = str(entry.get("level") or "").lower()
        subtype = str(entry.get("subtype") or "").lower()
        if level == "error" or "error" in subtype:
            return BLOCKED, "system error: " + one_line(str(entry.get("content") or subtype or "error"), 80)
        return None
    if kind == "assistant":
        if entry.get("isApiErrorMessage") or entry.get("error"):
            blocks, _ = _blocks(entry)
            text = next((b.get("text", "") for b in blocks if b.get("type") == "text"), "") or "API error"
            return BLOCKED, "API error: " + one_line(text, 80)
        blocks, stop_reason = _blocks(entry)
        types = {block.get("type") for block in blocks}
        if types & {"tool_use", "server_tool_use"} or stop_reason == "tool_use":
            return ACTIVE, "tool call in progress"
        if stop_reason in FINISHED_STOP_REASONS:
            return "finished", f"turn ended ({stop_reason})"
        if types and types <= {"thinking", "redacted_thinking"}:
            return ACTIVE, "thinking"
        if "text" in types:
            return "reply", "text reply"
        return None
    if kind == "user":
        if entry.get("isMeta"):
            return None
        blocks, _ = _blocks(entry)
        texts = [str(block.get("text", "")) for block in blocks if block.get("type") == "text"]
        if any(_is_interruption(text) for text in texts):
            return "finished", "interrupted by the user"
        if any("<local-command-stdout>" in text for text in texts):
            return "finished", "local command output"
        if any(block.get("type") == "tool_result" for block in blocks):
            return ACTIVE, "tool result returned"
        if blocks:
            return ACTIVE, "prompt received"
        return None
    return None


def _relative(path: str, workspace: Path | None) -> str:
    if workspace is not None:
        for key in workspace_keys(workspace):
            if path.startswith(key.rstrip("/") + "/"):
                return path[len(key.rstrip("/")) + 1 :]
    return path


def describe_tool(name: str, tool_input: Any, workspace: Path | None = None) -> str:
    """A one-line description of a tool call: "Editing src/app.py", "Running pytest -q"."""
    data = tool_input if isinstance(tool_input, dict) else {}
    path = data.get("file_path") or data.get("notebook_path") or data.get("path")
    target = _relative(str(path), workspace) if path else ""
    if name in ("Edit", "MultiEdit", "NotebookEdit") and target:
        return one_line(f"Editing {target}")
    if name == "Write" and target:
        return one_line(f"Writing {target}")
    if name == "Read" and target:
        return one_line(f"Reading {target}")
    if name == "Bash" and data.get("command"):
        return one_line(f"Running {data['command']}")
    if name in ("Grep", "Glob") and data.get("pattern"):
        return one_line(f"Searching for {data['pattern']}")
    if name == "WebFetch" and data.get("url"):
        return one_line(f"Fetching {data['url']}")
    if name == "WebSearch" and data.get("query"):
        return one_line(f"Searching the web for {data['query']}")
    if name in ("Task", "Agent") and data.get("description"):
        return one_line(f"Delegating: {data['description']}")
    if name == "TodoWrite":
        return "Updating the to-do list"
    return one_line(f"Using {name or 'a tool'}")


def summarize(entries: list[dict[str, Any]], workspace: Path | None = None) -> str:
    """What the agent did last: its last tool call, or the first line of its last reply."""
    for entry in reversed(entries):
        if entry.get("type") != "assistant" or entry.get("isApiErrorMessage"):
            continue
        blocks, _ = _blocks(entry)
        for block in reversed(blocks):
            if block.get("type") in ("tool_use", "server_tool_use"):
                return describe_tool(str(block.get("name") or ""), block.get("input"), workspace)
            if block.get("type") == "text" and str(block.get("text", "")).strip():
                return one_line(str(block["text"]))
    return ""


# --- the pane ------------------------------------------------------------------------------------
# Screens where Claude Code waits for a person, beyond the shared patterns (see docs/AGENTS.md):
# 2.1.328's auto mode behind a gateway ("Auto mode can't check actions in this session … Enter
# to stay in auto mode · shift+Tab to leave … · Esc to cancel"), and any dialog footer that
# offers Enter and Esc.
PANE_PATTERNS = DEFAULT_PANE_PATTERNS.extended(
    waiting=[
        r"\bAuto mode can.t check actions\b",
        r"\bEnter to stay in auto mode\b",
        r"^\s*Enter to [^·]+·.*\bEsc to cancel\b",
    ]
)
# The status line under Claude's input box ("⏵⏵ accept edits on (shift+tab to cycle) · esc to
# interrupt"): a working indicator, but it says nothing about what the agent is doing.
_FOOTER_RE = re.compile(r"shift\+tab to cycle|\bfor shortcuts\b|^\W*esc to interrupt\W*$", re.IGNORECASE)
# Claude's spinner line: a glyph, a verb, "…", then "(4s · ↓ 7 tokens · esc to interrupt)".
_SPINNER_RE = re.compile(r"^\s*[✻✶✳✢✽·*]\s+(\w[\w ]*)…")


def working_summary(pane_text: str) -> str:
    """What the pane says Claude is doing when the transcript does not: its spinner verb
    ("Thinking (Ideating…)"), else "Working"; never the footer."""
    for line in reversed(last_lines(pane_text, 12)):
        match = _SPINNER_RE.match(line)
        if match:
            return f"Thinking ({match.group(1)}…)"
    return "Working"


def _newest_main(directory: Path) -> Path | None:
    """The newest ``*.jsonl`` of ``directory`` that is not a sub-agent's ``agent-*.jsonl``."""
    best: tuple[float, Path] | None = None
    try:
        candidates = list(directory.glob("*.jsonl"))
    except OSError:
        return None
    for candidate in candidates:
        if candidate.name.startswith("agent-") or not candidate.is_file():
            continue
        try:
            mtime = candidate.stat().st_mtime
        except OSError:
            continue
        if best is None or mtime > best[0]:
            best = (mtime, candidate)
    return best[1] if best else None


# --- the plugin ------------------------------------------------------------------------------------
def root_refusal(permissions: str, *, euid: int, environ) -> str:
    """Claude Code will not start with --dangerously-skip-permissions as root unless IS_SANDBOX is
    set (it prints a warning and exits): say so before spawning, with the fix, instead of a session
    that reads ``exited``. ao never sets IS_SANDBOX itself."""
    if permissions != "skip-permissions" or euid != 0 or environ.get("IS_SANDBOX"):
        return ""
    return (
        "claude-code agent: Claude Code refuses skip-permissions when run as root; run ao as a normal "
        "user, choose permissions: auto-edit, or, if this machine is a disposable sandbox, set "
        "IS_SANDBOX=1 in ao's environment"
    )


@agents.register("claude-code")
class ClaudeCodeAgent(CliAgent):
    binary = "claude"
    install_hint = "npm install -g @anthropic-ai/claude-code"
    # The first prompt is typed once Claude shows its prompt, never put on its argv, where `ps`
    # shows it to every local user. Claude draws its prompt before it takes an Enter (2.1.100 kept
    # a pasted prompt unsent; both versions after --resume): ao types only after its empty prompt
    # has been on screen this long (messaging._launch_settled), and presses Enter again when the
    # text stays in the input.
    prompt_in_command = False
    input_settle_seconds = 2.0
    resume_flag = "--resume"
    pane_patterns = PANE_PATTERNS
    # 2.1.100 takes Ctrl-E / Ctrl-U literally: they arrived as "\x05\x15" at the start of the
    # next message the model saw. ao types only into a ready (empty) input, so nothing is sent.
    clear_input_keys = ()
    permission_args: ClassVar = {
        "default": [],
        "auto-edit": ["--permission-mode", "acceptEdits"],
        "skip-permissions": ["--dangerously-skip-permissions"],
    }

    class Config(AgentConfig):
        allow: list[str] = HostSetting(
            default_factory=list,
            description='permission rules pre-approved in .claude/settings.local.json, e.g. "Bash(npm test:*)"',
        )

    config: Config

    def check_installed(self, *, path: str | None = None) -> str:
        found = super().check_installed(path=path)
        refusal = root_refusal(self.config.permissions, euid=os.geteuid(), environ=os.environ)
        if refusal:
            raise PermanentIntegrationError(refusal)
        return found

    def instructions_args(self, path: Path) -> list[str]:
        return ["--append-system-prompt=" + read_instructions(path)]

    # --- transcript ---
    def transcript_dir(self, workspace: Path) -> Path | None:
        projects = claude_config_dir(self.config.home) / "projects"
        keys = workspace_keys(workspace)
        for key in keys:
            candidate = projects / encode_project_path(key)
            if candidate.is_dir():
                return candidate
        for key in keys:  # long paths: newer versions shorten the name; match by prefix and cwd
            encoded = encode_project_path(key)
            if len(encoded) <= LONG_NAME:
                continue
            try:
                candidates = [p for p in projects.iterdir() if p.name.startswith(encoded[:LONG_NAME])]
            except OSError:
                return None
            for candidate in candidates:
                newest = newest_file(candidate, "*.jsonl")
                entries = parse_jsonl(read_tail_lines(newest)) if newest else []
                if any(entry.get("cwd") in keys for entry in entries):
                    return candidate
        return None

    def transcript_path(self, workspace: Path) -> Path | None:
        """The newest conversation of the workspace; sub-agent transcripts (``agent-*.jsonl``,
        beside it in versions before 2.1) are not conversations of their own."""
        directory = self.transcript_dir(workspace)
        return _newest_main(directory) if directory else None

    def transcript_reading(self, workspace: Path, now: datetime) -> ActivityReading | None:
        path = self.transcript_path(workspace)
        reading, entries = self.transcript_evidence(path, entry_state, now)
        if path is None or reading is None:
            return None
        tokens_in, tokens_out, cost = usage_totals(path)
        conversation_id = next((str(e["sessionId"]) for e in reversed(entries) if e.get("sessionId")), "")
        conversation_id = conversation_id or path.stem
        if cost is None:
            keys = workspace_keys(workspace)
            root = repository_root(workspace)
            keys += workspace_keys(root) if root is not None else []
            cost = last_cost(claude_state_file(self.config.home), keys, conversation_id)
        summary = summarize(entries, workspace)
        if not summary and reading.state == ACTIVE:
            summary = "Thinking"  # the prompt is in, nothing answered yet
        return replace(
            reading,
            summary=summary,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=cost,
            conversation_id=conversation_id,
            model=model_of(entries),
        )

    def detect_activity(
        self, *, workspace: Path, pane_text: str, now: datetime, process_alive: bool
    ) -> ActivityReading:
        native = self.transcript_reading(workspace, now)
        pane = terminal_reading(pane_text, now=now, patterns=self.pane_patterns)
        if pane is not None and pane.state == ACTIVE and _FOOTER_RE.search(pane.summary):
            pane = replace(pane, summary=(native.summary if native else "") or working_summary(pane_text))
        reading = decide(native, pane, now=now, process_alive=process_alive)
        if reading.state == WAITING_INPUT and native is not None:
            reading = replace(reading, model=native.model)
        return reading

    # --- start-up dialogs ---
    def prepare_workspace(self, workspace: Path, *, allow_trust: bool) -> list[str]:
        """Write the workspace's ``.claude/settings.local.json`` permissions (kept out of git via
        info/exclude) and, when ``allow_trust``, mark the folder trusted in ``~/.claude.json``
        (``projects[<path>].hasTrustDialogAccepted``), accepting the bypass-permissions warning
        (``bypassPermissionsModeAccepted`` there and ``skipDangerousModePermissionPrompt`` in
        ``~/.claude/settings.json``) only when skip-permissions is configured.

        API-key confirmation ("Do you want to use this API key?") is never pre-answered: it
        needs the key itself, and keys stay out of ao's writes. It reads as waiting_input.
        """
        done: list[str] = []
        done += self._write_settings(workspace)
        if allow_trust:
            done += self._write_trust(workspace)
        return done

    def _write_settings(self, workspace: Path) -> list[str]:
        mode = SETTINGS_MODE[self.config.permissions]
        if mode is None and not self.config.allow:
            return []
        path = workspace / ".claude" / "settings.local.json"
        settings = load_json_object(path)
        if settings is None or not isinstance(settings.get("permissions", {}), dict):
            return [f"left {path} unchanged: it is not a JSON object of the expected shape"]
        permissions = dict(settings.get("permissions") or {})
        if mode is not None:
            permissions["defaultMode"] = mode
        allow = [rule for rule in permissions.get("allow", []) if isinstance(rule, str)]
        for rule in self.config.allow:
            if rule not in allow:
                allow.append(rule)
        if allow:
            permissions["allow"] = allow
        if settings.get("permissions") == permissions:
            return []
        settings["permissions"] = permissions
        write_atomically(path, json.dumps(settings, indent=2) + "\n")
        git_exclude(workspace, "/.claude/settings.local.json")
        return [f"wrote permissions to {path}"]

    def _write_trust(self, workspace: Path) -> list[str]:
        path = claude_state_file(self.config.home)
        state = load_json_object(path)
        if state is None or not isinstance(state.get("projects", {}), dict):
            return [f"could not mark the folder trusted: {path} is not a JSON object; the dialog will show"]
        before = json.dumps(state, sort_keys=True)
        projects = state.setdefault("projects", {})
        for key in workspace_keys(workspace):
            project = projects.get(key)
            project = dict(project) if isinstance(project, dict) else {}
            project["hasTrustDialogAccepted"] = True
            project.setdefault("hasCompletedProjectOnboarding", True)
            projects[key] = project
        if self.config.permissions == "skip-permissions":
            # Read by versions before 2.1; later ones move it to skipDangerousModePermissionPrompt
            # in ~/.claude/settings.json on start (seen with 2.1.197), which is written below too.
            state["bypassPermissionsModeAccepted"] = True
        done = []
        if json.dumps(state, sort_keys=True) != before:
            write_atomically(path, json.dumps(state, indent=2) + "\n")
            done.append(f"marked {workspace} trusted in {path}")
        if self.config.permissions == "skip-permissions":
            done += self._accept_bypass_warning()
        return done

    def _accept_bypass_warning(self) -> list[str]:
        """``skipDangerousModePermissionPrompt: true`` in the user settings (``~/.claude/settings.json``):
        what Claude Code 2.1 records when a person accepts the Bypass Permissions warning."""
        path = claude_config_dir(self.config.home) / "settings.json"
        settings = load_json_object(path)
        if settings is None:
            return [
                f"left {path} unchanged: it is not a JSON object; the bypass-permissions warning may show"
            ]
        if settings.get("skipDangerousModePermissionPrompt") is True:
            return []
        settings["skipDangerousModePermissionPrompt"] = True
        write_atomically(path, json.dumps(settings, indent=2) + "\n")
        return [f"accepted the bypass-permissions warning in {path}"]
