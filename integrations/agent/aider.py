"""Aider (``aider``): launch argv and terminal-based activity.

Aider keeps no machine-readable transcript (its ``.aider.chat.history.md`` is Markdown written
as it goes), so activity comes from the pane: its ``>`` / ``architect>`` prompt means ready,
its ``(Y)es/(N)o`` confirmations mean waiting_input. ``--message`` would make aider exit after
one reply, so the first prompt is sent after launch. Resuming restores the workspace's chat
history (``--restore-chat-history``): aider has one history per directory, not conversation ids.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from integrations.agent.common import DEFAULT_PANE_PATTERNS, CliAgent, git_exclude
from integrations.registry import agents


@agents.register("aider")
class AiderAgent(CliAgent):
    binary = "aider"
    install_hint = "python -m pip install aider-install && aider-install"
    prompt_in_command = False
    # Aider applies edits without asking; what it asks about is adding files, creating files and
    # running commands. --yes-always answers all of those.
    permission_args: ClassVar = {"default": [], "auto-edit": [], "skip-permissions": ["--yes-always"]}
    pane_patterns: ClassVar = DEFAULT_PANE_PATTERNS.extended(
        ready=[r"^\s*(ask|code|architect|help|context|multi)?\s*>\s*$"],
        # "        ░█ Waiting for openai/gpt-4o" with a spinner in front
        active=[r"^\W*(Waiting for|Thinking)\b"],
    )

    def instructions_args(self, path: Path) -> list[str]:
        # Aider has no system-prompt flag; --read adds a read-only file (conventions) to the chat.
        return ["--read", str(path)]

    def resume_command(
        self, *, workspace: Path, conversation_id: str, prompt: str | None = None
    ) -> list[str] | None:
        return [self.executable(), *self._options(workspace), "--restore-chat-history"]

    def prepare_workspace(self, workspace: Path, *, allow_trust: bool) -> list[str]:
        """Keep aider's own files (``.aider*``) out of the agent's commits via info/exclude.

        Aider may still ask to add ``.aider*`` to ``.gitignore`` on start; that question reads as
        waiting_input (whether aider honours info/exclude for that check is unverified).
        """
        if git_exclude(workspace, ".aider*"):
            return ["excluded .aider* from git in this repository"]
        return []
