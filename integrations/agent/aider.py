"""Aider (``aider``): launch argv and terminal-based activity.

Aider keeps no machine-readable transcript (its ``.aider.chat.history.md`` is Markdown written
as it goes), so activity comes from the pane: its ``>`` / ``architect>`` prompt means ready,
its ``(Y)es/(N)o`` confirmations mean waiting_input. ``--message`` would make aider exit after
one reply, so the first prompt is sent after launch. Resuming restores the workspace's chat
history (``--restore-chat-history``): aider has one history per directory, not conversation ids.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import ClassVar

from integrations.agent.common import (
    DEFAULT_PANE_PATTERNS,
    AgentConfig,
    decide,
    git_exclude,
    resolve_in,
    resume_or_fail,
    terminal_reading,
)
from integrations.base import ActivityReading, Agent
from integrations.registry import agents

# Aider applies edits without asking; what it asks about is adding files, creating files and
# running commands. --yes-always answers all of those.
PERMISSION_ARGS = {"default": [], "auto-edit": [], "skip-permissions": ["--yes-always"]}


@agents.register("aider")
class AiderAgent(Agent):
    binary = "aider"
    install_hint = "python -m pip install aider-install && aider-install"
    prompt_in_command = False
    pane_patterns: ClassVar = DEFAULT_PANE_PATTERNS.extended(
        ready=[r"^\s*(ask|code|architect|help|context|multi)?\s*>\s*$"],
        # "        ░█ Waiting for openai/gpt-4o" with a spinner in front
        active=[r"^\W*(Waiting for|Thinking)\b"],
    )

    class Config(AgentConfig):
        pass

    config: Config

    def _options(self, workspace: Path) -> list[str]:
        config = self.config
        argv = list(PERMISSION_ARGS[config.permissions])
        if config.model:
            argv += ["--model", config.model]
        if config.system_prompt_file:
            # Aider has no system-prompt flag; --read adds a read-only file (conventions) to the chat.
            argv += ["--read", str(resolve_in(workspace, config.system_prompt_file))]
        return argv + list(config.extra_args)

    def launch_command(self, *, workspace: Path, prompt: str | None, resume: str | None = None) -> list[str]:
        if resume:
            return resume_or_fail(self, workspace=workspace, conversation_id=resume, prompt=prompt)
        return [self.executable(), *self._options(workspace)]

    def resume_command(
        self, *, workspace: Path, conversation_id: str, prompt: str | None = None
    ) -> list[str] | None:
        return [self.executable(), *self._options(workspace), "--restore-chat-history"]

    def detect_activity(
        self, *, workspace: Path, pane_text: str, now: datetime, process_alive: bool
    ) -> ActivityReading:
        pane = terminal_reading(pane_text, now=now, patterns=self.pane_patterns)
        return decide(None, pane, now=now, process_alive=process_alive)

    def prepare_workspace(self, workspace: Path, *, allow_trust: bool) -> list[str]:
        """Keep aider's own files (``.aider*``) out of the agent's commits via info/exclude.

        Aider may still ask to add ``.aider*`` to ``.gitignore`` on start; that question reads as
        waiting_input (whether aider honours info/exclude for that check is unverified).
        """
        if git_exclude(workspace, ".aider*"):
            return ["excluded .aider* from git in this repository"]
        return []
