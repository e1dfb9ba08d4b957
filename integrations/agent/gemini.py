"""Gemini CLI (``gemini``): launch argv, terminal-based activity, trusted folders.

``gemini -i/--prompt-interactive <text>`` runs the first prompt and stays interactive;
``--approval-mode default|auto_edit|yolo`` sets permissions (``--yolo`` is the older,
deprecated spelling); ``--resume <id|latest>`` continues a conversation. Gemini has no flag to
add system instructions (``GEMINI.md`` is its context file; ``GEMINI_SYSTEM_MD`` replaces the
whole prompt), so ``system_prompt_file`` is refused at validation. Folder trust, when the user
enabled it, is recorded in ``~/.gemini/trustedFolders.json`` as ``{"<path>": "TRUST_FOLDER"}``.

State comes from the pane. The conversation id (for ``--resume``) and token totals come from
Gemini's session file, ``~/.gemini/tmp/<project>/chats/session-<time>-<id8>.jsonl`` (checked
against 0.61.0): ``<project>`` is the short name ``~/.gemini/projects.json`` gives the
workspace (older versions used the SHA-256 of its path), the first line holds ``sessionId``
and ``projectHash``, then message lines ``{"id", "type": "user"|"gemini", "tokens"}`` (a
message is rewritten under the same id as it grows; a ``gemini`` one names its ``model``) and
``{"$set": {...}}`` updates, whose ``messages`` replace the list on resume.

Start-up: the folder-trust dialog is pre-answered in ``trustedFolders.json`` (when trust is
allowed); the first-run "How would you like to authenticate" dialog is pre-answered in
``settings.json`` (``security.auth.selectedType``) only when the environment already holds the
credential the CLI itself would pick (``GEMINI_API_KEY``, or Vertex AI); otherwise it stays and
reads as waiting_input.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from integrations.agent.activity import (
    ACTIVE,
    DEFAULT_PANE_PATTERNS,
    READY,
    WAITING_INPUT,
    age_state,
    last_lines,
    unboxed,
)
from integrations.agent.common import (
    CliAgent,
    NoInstructionsConfig,
    load_json_object,
    workspace_keys,
    write_atomically,
)
from integrations.agent.transcripts import JsonlTotals, newest_file, one_line, parse_timestamp, read_head_line
from integrations.records import ActivityReading
from integrations.registry import agents


def gemini_dir(home: Path | None) -> Path:
    """``~/.gemini``; ``$GEMINI_CLI_HOME`` replaces the home directory, as in the CLI itself."""
    if home is None:
        configured = os.environ.get("GEMINI_CLI_HOME")
        home = Path(configured) if configured else Path.home()
    return home / ".gemini"


# --- session files ---------------------------------------------------------------------------------
def _project_hash(path: str) -> str:
    return hashlib.sha256(path.encode("utf-8")).hexdigest()


def chats_dirs(gemini: Path, workspace: Path) -> list[Path]:
    """Where Gemini keeps the workspace's session files, most likely first."""
    keys = workspace_keys(workspace)
    registry = load_json_object(gemini / "projects.json") or {}
    names = registry.get("projects")
    names = names if isinstance(names, dict) else {}
    dirs = []
    for key in keys:
        name = names.get(key)
        if isinstance(name, str) and name.strip(".") and "/" not in name:
            dirs.append(gemini / "tmp" / name / "chats")
    dirs += [gemini / "tmp" / _project_hash(key) / "chats" for key in keys]
    return dirs


def session_file(gemini: Path, workspace: Path) -> Path | None:
    """The newest session file recorded for ``workspace`` (checked against its ``projectHash``)."""
    hashes = {_project_hash(key) for key in workspace_keys(workspace)}
    for directory in chats_dirs(gemini, workspace):
        newest = newest_file(directory, "session-*.jsonl")
        if newest is None:
            continue
        head = read_head_line(newest) or {}
        if head.get("projectHash") in (None, *hashes):
            return newest
    return None


def _session_fold(state: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    updates = entry.get("$set")
    if isinstance(updates, dict):
        if isinstance(updates.get("sessionId"), str):
            state["id"] = updates["sessionId"]
        messages = updates.get("messages")
        if isinstance(messages, list):
            state["tokens"] = {}
            for message in messages:
                if isinstance(message, dict):
                    _count(state, message)
        return state
    if isinstance(entry.get("sessionId"), str) and not state["id"]:
        state["id"] = entry["sessionId"]
    _count(state, entry)
    return state


def _last_said(message: dict[str, Any]) -> str:
    """What a ``gemini`` message says it did: the first line of its text, else its last tool call."""
    content = message.get("content")
    if isinstance(content, list):  # parts, as user messages are stored
        content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    if isinstance(content, str) and content.strip():
        return one_line(content)
    calls = message.get("toolCalls")
    if isinstance(calls, list) and calls and isinstance(calls[-1], dict):
        call = calls[-1]
        args = call.get("args") if isinstance(call.get("args"), dict) else {}
        detail = next((str(args[k]) for k in ("command", "file_path", "path", "pattern") if k in args), "")
        return one_line(f"{call.get('displayName') or call.get('name') or 'tool'} {detail}".strip())
    return ""


def _count(state: dict[str, Any], message: dict[str, Any]) -> None:
    at = parse_timestamp(message.get("timestamp"))
    if message.get("type") in ("user", "gemini") and at is not None:
        state["at"] = at if state["at"] is None else max(state["at"], at)
    tokens = message.get("tokens")
    if message.get("type") != "gemini" or not isinstance(tokens, dict) or not message.get("id"):
        return
    if isinstance(message.get("model"), str) and message["model"]:
        state["model"] = message["model"]
    said = _last_said(message)
    if said:
        state["said"] = said

    def number(key: str) -> int:
        value = tokens.get(key)
        return value if isinstance(value, int) and value > 0 else 0

    # "input" is the prompt incl. cached tokens; thinking is billed as output.
    state["tokens"][str(message["id"])] = (number("input"), number("output") + number("thoughts"))


_sessions = JsonlTotals(_session_fold, lambda: {"id": "", "tokens": {}, "model": "", "said": "", "at": None})


# --- start-up dialogs -----------------------------------------------------------------------------
def auth_type_from_env(environ: Mapping[str, str]) -> str:
    """The auth method the CLI's own dialog preselects from the environment, when it needs no
    sign-in: an API key (``gemini-api-key``) or Vertex AI; "" otherwise."""
    if environ.get("GOOGLE_GENAI_USE_GCA") == "true":
        return ""  # Google sign-in: a person must do it once
    if environ.get("GOOGLE_GENAI_USE_VERTEXAI") == "true":
        return "vertex-ai"
    if environ.get("GEMINI_API_KEY"):
        return "gemini-api-key"
    return ""


# The header of a tool-approval dialog: "? Shell  git commit -m x" / "? WriteFile  Writing to a.txt".
_APPROVAL_HEADER = re.compile(r"^\?\s+(\S+)\s+(.*\S)\s*$")
_APPROVAL_QUESTION = re.compile(r"^(Allow execution of\b.*|Apply this change)\?$|^Allow\b.*\?$")
# "⠋ Thinking... (esc to cancel, 4s)": the spinner and the hint are not what the agent does.
_SPINNER_HINT = re.compile(r"^[\W_]*|\s*\(esc to cancel\b[^)]*\)?.*$", re.IGNORECASE)


def approval_summary(pane_text: str, question: str) -> str:
    """For a tool-approval dialog, what it asks to run ("Waiting for approval: Shell git commit");
    ``question`` unchanged for any other dialog."""
    if not _APPROVAL_QUESTION.match(question.strip()):
        return question
    for line in reversed(last_lines(pane_text, 60)):
        match = _APPROVAL_HEADER.match(unboxed(line))
        if match:
            return one_line(f"Waiting for approval: {match[1]} {' '.join(match[2].split())}")
    return question


@agents.register("gemini")
class GeminiAgent(CliAgent):
    binary = "gemini"
    install_hint = "npm install -g @google/gemini-cli"
    # The first prompt is typed once Gemini shows its prompt (not on the argv, where `ps` shows
    # it), and every message is pasted: a typed "?" on an empty input opens Gemini's shortcuts
    # panel instead of being text. After --resume it draws its prompt before it takes an Enter.
    prompt_in_command = False
    paste_input = True
    input_settle_seconds = 2.0
    # With CI=true or GITHUB_ACTIONS=true (a CI runner, many containers) Gemini 0.61 takes itself
    # for a headless run, prints "No input provided via stdin" and exits 42 (isHeadlessMode)
    unset_env = ("CI", "GITHUB_ACTIONS")
    resume_flag = "--resume"
    permission_args: ClassVar = {
        "default": [],
        "auto-edit": ["--approval-mode", "auto_edit"],
        "skip-permissions": ["--approval-mode", "yolo"],
    }
    # The input line is " >   Type your message or @path/to/file" (no box in 0.61); the ">" is
    # "*" in YOLO mode and "!" in shell mode.
    # The edit approval asks "Apply this change?" above "● 1. Allow once".
    pane_patterns: ClassVar = DEFAULT_PANE_PATTERNS.extended(
        waiting=[r"^\W*Apply this change\?\s*$"],
        ready=[r"^\s*[│|]?\s*[>*!]\s+Type your message\b"],
    )

    class Config(NoInstructionsConfig):
        instructions_refusal = "gemini has no option to add instructions; put them in GEMINI.md"

    config: Config

    def prompt_args(self, prompt: str) -> list[str]:
        return ["--prompt-interactive=" + prompt]

    def detect_activity(
        self, *, workspace: Path, pane_text: str, now: datetime, process_alive: bool
    ) -> ActivityReading:
        """The pane decides the state; the session file adds the conversation id, tokens, the
        model, when the turn ended (ready, then idle after ``ready_window_seconds``) and the last
        reply for the summary."""
        reading = super().detect_activity(
            workspace=workspace, pane_text=pane_text, now=now, process_alive=process_alive
        )
        if reading.state == WAITING_INPUT:
            reading = replace(reading, summary=approval_summary(pane_text, reading.summary))
        elif reading.state == ACTIVE:
            reading = replace(reading, summary=one_line(_SPINNER_HINT.sub("", reading.summary)))
        path = session_file(gemini_dir(self.config.home), workspace)
        if path is None:
            return reading
        session = _sessions.read(path)
        conversation_id = session["id"] or str((read_head_line(path) or {}).get("sessionId") or "")
        totals = list(session["tokens"].values())
        reading = replace(
            reading,
            conversation_id=conversation_id,
            tokens_in=sum(t[0] for t in totals) if totals else None,
            tokens_out=sum(t[1] for t in totals) if totals else None,
            model=session["model"],
        )
        if reading.state == READY:
            # The prompt is back: the turn ended with the last record written.
            at = session["at"] or reading.at
            reading = replace(
                reading,
                state=age_state(at, now, self.config.ready_window_seconds),
                at=at,
                summary=session["said"] or reading.summary,
            )
        return reading

    def prepare_workspace(self, workspace: Path, *, allow_trust: bool) -> list[str]:
        notes = self._select_auth(os.environ)
        if allow_trust:
            notes += self._trust(workspace)
        return notes

    def _select_auth(self, environ: Mapping[str, str]) -> list[str]:
        """Answer the first-run auth dialog the way the CLI preselects it, when the environment
        holds that credential and no method was chosen yet (never overriding a choice)."""
        auth_type = auth_type_from_env(environ)
        if not auth_type:
            return []
        path = gemini_dir(self.config.home) / "settings.json"
        settings = load_json_object(path)
        if settings is None:
            return [
                f"could not select {auth_type} sign-in: {path} is not plain JSON; the auth dialog may show"
            ]
        security = settings.setdefault("security", {})
        auth = security.setdefault("auth", {}) if isinstance(security, dict) else None
        if not isinstance(auth, dict):
            return [f"could not select {auth_type} sign-in: {path} has an unexpected 'security' entry"]
        if auth.get("selectedType"):
            return []
        auth["selectedType"] = auth_type
        write_atomically(path, json.dumps(settings, indent=2) + "\n")
        return [f"selected {auth_type} sign-in in {path} (the credential is in the environment)"]

    def _trust(self, workspace: Path) -> list[str]:
        path = gemini_dir(self.config.home) / "trustedFolders.json"
        folders = load_json_object(path)
        if folders is None:
            return [f"could not mark the folder trusted: {path} is not a JSON object; the dialog may show"]
        changed = False
        for key in workspace_keys(workspace):
            if folders.get(key) != "TRUST_FOLDER":
                folders[key] = "TRUST_FOLDER"
                changed = True
        if not changed:
            return []
        write_atomically(path, json.dumps(folders, indent=2) + "\n")
        return [f"marked {workspace} trusted in {path}"]
