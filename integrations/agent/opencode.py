"""OpenCode (``opencode``): launch argv and terminal-based activity.

``opencode [project]`` starts the TUI; ``--prompt`` gives the first message, ``--model`` takes
``provider/model``, ``--session <id>`` continues a conversation (its ``--prompt`` is then
ignored) and ``--auto`` auto-approves permissions that are not explicitly denied (all checked
against opencode 1.18.33, see docs/AGENTS.md). OpenCode has no
flag for extra system instructions (it reads ``AGENTS.md``), so ``system_prompt_file`` is
refused at validation rather than silently ignored. Its session store is not read: activity
comes from the pane.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import ClassVar

from pydantic import field_validator

from integrations.agent.common import (
    DEFAULT_PANE_PATTERNS,
    AgentConfig,
    check_conversation_id,
    decide,
    resume_or_fail,
    terminal_reading,
)
from integrations.base import ActivityReading, Agent, PermanentIntegrationError
from integrations.registry import agents

# OpenCode's default permission set lets the agent edit; only "skip" has a flag of its own.
PERMISSION_ARGS = {"default": [], "auto-edit": [], "skip-permissions": ["--auto"]}


@agents.register("opencode")
class OpenCodeAgent(Agent):
    binary = "opencode"
    install_hint = "npm install -g opencode-ai"
    prompt_in_command = True
    # The footer reads "<path> ... ctrl+p commands" when idle and starts with a progress bar and
    # "esc interrupt" while it works (checked first).
    pane_patterns: ClassVar = DEFAULT_PANE_PATTERNS.extended(
        ready=[r"\bctrl\+p commands\s*$"], active=[r"\besc interrupt\b"]
    )

    class Config(AgentConfig):
        @field_validator("system_prompt_file")
        @classmethod
        def _no_system_prompt_file(cls, value: str | None) -> str | None:
            if value:
                raise ValueError("opencode has no option for extra instructions; put them in AGENTS.md")
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
            argv.append("--prompt=" + prompt)
        return argv

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
        return [self.executable(), "--session", check_conversation_id(conversation_id), *self._options()]

    def detect_activity(
        self, *, workspace: Path, pane_text: str, now: datetime, process_alive: bool
    ) -> ActivityReading:
        pane = terminal_reading(pane_text, now=now, patterns=self.pane_patterns)
        return decide(None, pane, now=now, process_alive=process_alive)
