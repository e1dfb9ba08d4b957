"""Gemini CLI (``gemini``): launch argv, terminal-based activity, trusted folders.

``gemini -i/--prompt-interactive <text>`` runs the first prompt and stays interactive;
``--approval-mode default|auto_edit|yolo`` sets permissions (``--yolo`` is the older,
deprecated spelling); ``--resume <id|latest>`` continues a conversation. Gemini has no flag to
add system instructions (``GEMINI.md`` is its context file; ``GEMINI_SYSTEM_MD`` replaces the
whole prompt), so ``system_prompt_file`` is refused at validation. Folder trust, when the user
enabled it, is recorded in ``~/.gemini/trustedFolders.json`` as ``{"<path>": "TRUST_FOLDER"}``.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import ClassVar

from pydantic import field_validator

from integrations.agent.common import (
    DEFAULT_PANE_PATTERNS,
    AgentConfig,
    check_conversation_id,
    decide,
    load_json_object,
    resume_or_fail,
    terminal_reading,
    workspace_keys,
    write_atomically,
)
from integrations.base import ActivityReading, Agent
from integrations.registry import agents

PERMISSION_ARGS = {
    "default": [],
    "auto-edit": ["--approval-mode", "auto_edit"],
    "skip-permissions": ["--approval-mode", "yolo"],
}


def gemini_dir(home: Path | None) -> Path:
    """``~/.gemini``; ``$GEMINI_CLI_HOME`` replaces the home directory, as in the CLI itself."""
    if home is None:
        configured = os.environ.get("GEMINI_CLI_HOME")
        home = Path(configured) if configured else Path.home()
    return home / ".gemini"


@agents.register("gemini")
class GeminiAgent(Agent):
    binary = "gemini"
    install_hint = "npm install -g @google/gemini-cli"
    prompt_in_command = True
    # The input line is " >   Type your message or @path/to/file" (no box in 0.61); the ">" is
    # "*" in YOLO mode and "!" in shell mode.
    pane_patterns: ClassVar = DEFAULT_PANE_PATTERNS.extended(
        ready=[r"^\s*[│|]?\s*[>*!]\s+Type your message\b"]
    )

    class Config(AgentConfig):
        @field_validator("system_prompt_file")
        @classmethod
        def _no_system_prompt_file(cls, value: str | None) -> str | None:
            if value:
                raise ValueError("gemini has no option to add instructions; put them in GEMINI.md")
            return value

    config: Config

    def _options(self) -> list[str]:
        argv = list(PERMISSION_ARGS[self.config.permissions])
        if self.config.model:
            argv += ["--model", self.config.model]
        return argv + list(self.config.extra_args)

    def launch_command(self, *, workspace: Path, prompt: str | None, resume: str | None = None) -> list[str]:
        if resume:
            return resume_or_fail(self, workspace=workspace, conversation_id=resume, prompt=prompt)
        argv = [self.executable(), *self._options()]
        if prompt:
            argv.append("--prompt-interactive=" + prompt)
        return argv

    def resume_command(
        self, *, workspace: Path, conversation_id: str, prompt: str | None = None
    ) -> list[str] | None:
        argv = [self.executable(), "--resume", check_conversation_id(conversation_id), *self._options()]
        if prompt:
            argv.append("--prompt-interactive=" + prompt)
        return argv

    def detect_activity(
        self, *, workspace: Path, pane_text: str, now: datetime, process_alive: bool
    ) -> ActivityReading:
        pane = terminal_reading(pane_text, now=now, patterns=self.pane_patterns)
        return decide(None, pane, now=now, process_alive=process_alive)

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
