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

from pathlib import Path
from typing import ClassVar

from integrations.agent.common import DEFAULT_PANE_PATTERNS, CliAgent, NoInstructionsConfig
from integrations.base import PermanentIntegrationError
from integrations.registry import agents


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
