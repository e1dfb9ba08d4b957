"""OpenCode (``opencode``): launch argv and terminal-based activity.

``opencode [project]`` starts the TUI; ``--prompt`` gives the first message, ``--model`` takes
``provider/model``, ``--session <id>`` continues a conversation (its ``--prompt`` is then
ignored) and ``--auto`` auto-approves permissions that are not explicitly denied (all checked
against opencode 1.18.33, see docs/AGENTS.md). OpenCode has no
flag for extra system instructions (it reads ``AGENTS.md``), so ``system_prompt_file`` is
refused at validation rather than silently ignored. Activity comes from the pane; the
conversation id (for ``--session`` on restore) comes from OpenCode's SQLite store
(``~/.local/share/opencode/opencode.db``, table ``session`` with ``id`` and ``directory``), read
only, newest session of the workspace; a store ao cannot read just means a restore starts afresh.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import ClassVar

from integrations.agent.common import (
    DEFAULT_PANE_PATTERNS,
    CliAgent,
    NoInstructionsConfig,
    check_conversation_id,
)
from integrations.base import ActivityReading, PermanentIntegrationError
from integrations.registry import agents


def opencode_store(home: Path | None) -> Path:
    """OpenCode's database: ``$XDG_DATA_HOME/opencode/opencode.db`` (default ``~/.local/share``);
    a configured ``home`` replaces the home directory."""
    if home is not None:
        return home / ".local" / "share" / "opencode" / "opencode.db"
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "opencode" / "opencode.db"


def newest_session_id(store: Path, workspace: Path) -> str:
    """The id of the newest OpenCode session started in ``workspace``, or "" (no store, no such
    session, a schema ao does not know, or the store busy: never an error)."""
    if not store.is_file():
        return ""
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=0.2) as db:
            row = db.execute(
                "SELECT id FROM session WHERE directory IN (?, ?) ORDER BY rowid DESC LIMIT 1",
                (str(workspace), str(workspace.resolve())),
            ).fetchone()
    except sqlite3.Error:
        return ""
    if row is None or not isinstance(row[0], str):
        return ""
    try:
        return check_conversation_id(row[0])
    except PermanentIntegrationError:
        return ""


@agents.register("opencode")
class OpenCodeAgent(CliAgent):
    binary = "opencode"
    install_hint = "npm install -g opencode-ai"
    prompt_in_command = True
    resume_flag = "--session"
    # OpenCode's default permission set lets the agent edit; only "skip" has a flag of its own.
    permission_args: ClassVar = {"default": [], "auto-edit": [], "skip-permissions": ["--auto"]}
    # The footer reads "<path> ... ctrl+p commands" when idle and starts with a progress bar and
    # "esc interrupt" while it works (checked first).
    pane_patterns: ClassVar = DEFAULT_PANE_PATTERNS.extended(
        ready=[r"\bctrl\+p commands\s*$"], active=[r"\besc interrupt\b"]
    )

    class Config(NoInstructionsConfig):
        instructions_refusal = "opencode has no option for extra instructions; put them in AGENTS.md"

    config: Config

    def prompt_args(self, prompt: str) -> list[str]:
        return ["--prompt=" + prompt]

    def detect_activity(
        self, *, workspace: Path, pane_text: str, now: datetime, process_alive: bool
    ) -> ActivityReading:
        reading = super().detect_activity(
            workspace=workspace, pane_text=pane_text, now=now, process_alive=process_alive
        )
        conversation = newest_session_id(opencode_store(self.config.home), workspace)
        return replace(reading, conversation_id=conversation) if conversation else reading

    def resume_command(
        self, *, workspace: Path, conversation_id: str, prompt: str | None = None
    ) -> list[str] | None:
        """``opencode --session <id>``. opencode 1.18 silently drops ``--prompt`` when ``--session``
        is given (checked against the real binary), so a prompt is refused rather than lost:
        resume without one and send it once the pane reads ready."""
        if prompt:
            raise PermanentIntegrationError(
                "opencode ignores --prompt together with --session; resume without a prompt and send it after"
            )
        return super().resume_command(workspace=workspace, conversation_id=conversation_id)
