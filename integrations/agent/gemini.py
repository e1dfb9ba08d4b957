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
message is rewritten under the same id as it grows) and ``{"$set": {...}}`` updates, whose
``messages`` replace the list on resume.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from integrations.agent.common import (
    DEFAULT_PANE_PATTERNS,
    CliAgent,
    JsonlTotals,
    NoInstructionsConfig,
    load_json_object,
    newest_file,
    read_head_line,
    workspace_keys,
    write_atomically,
)
from integrations.base import ActivityReading
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


def _count(state: dict[str, Any], message: dict[str, Any]) -> None:
    tokens = message.get("tokens")
    if message.get("type") != "gemini" or not isinstance(tokens, dict) or not message.get("id"):
        return

    def number(key: str) -> int:
        value = tokens.get(key)
        return value if isinstance(value, int) and value > 0 else 0

    # "input" is the prompt incl. cached tokens; thinking is billed as output.
    state["tokens"][str(message["id"])] = (number("input"), number("output") + number("thoughts"))


_sessions = JsonlTotals(_session_fold, lambda: {"id": "", "tokens": {}})


@agents.register("gemini")
class GeminiAgent(CliAgent):
    binary = "gemini"
    install_hint = "npm install -g @google/gemini-cli"
    prompt_in_command = True
    resume_flag = "--resume"
    permission_args: ClassVar = {
        "default": [],
        "auto-edit": ["--approval-mode", "auto_edit"],
        "skip-permissions": ["--approval-mode", "yolo"],
    }
    # The input line is " >   Type your message or @path/to/file" (no box in 0.61); the ">" is
    # "*" in YOLO mode and "!" in shell mode.
    pane_patterns: ClassVar = DEFAULT_PANE_PATTERNS.extended(
        ready=[r"^\s*[│|]?\s*[>*!]\s+Type your message\b"]
    )

    class Config(NoInstructionsConfig):
        instructions_refusal = "gemini has no option to add instructions; put them in GEMINI.md"

    config: Config

    def prompt_args(self, prompt: str) -> list[str]:
        return ["--prompt-interactive=" + prompt]

    def detect_activity(
        self, *, workspace: Path, pane_text: str, now: datetime, process_alive: bool
    ) -> ActivityReading:
        """The pane decides the state; the session file adds the conversation id and tokens."""
        reading = super().detect_activity(
            workspace=workspace, pane_text=pane_text, now=now, process_alive=process_alive
        )
        path = session_file(gemini_dir(self.config.home), workspace)
        if path is None:
            return reading
        session = _sessions.read(path)
        conversation_id = session["id"] or str((read_head_line(path) or {}).get("sessionId") or "")
        totals = list(session["tokens"].values())
        return replace(
            reading,
            conversation_id=conversation_id,
            tokens_in=sum(t[0] for t in totals) if totals else None,
            tokens_out=sum(t[1] for t in totals) if totals else None,
        )

    def prepare_workspace(self, workspace: Path, *, allow_trust: bool) -> list[str]:
        if not allow_trust:
            return []
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
