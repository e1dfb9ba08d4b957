"""Any agent command (``custom``): an argv list from settings, terminal-based activity.

The first prompt goes on the command line (``prompt_mode: argv``, after ``prompt_flag`` when
set) or is sent through the runtime once the agent shows its prompt (``prompt_mode: send``).
``ready_pattern`` and ``waiting_pattern`` add regular expressions, matched against the last
lines of the pane, to the built-in prompt and question heuristics.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from integrations.agent.activity import DEFAULT_PANE_PATTERNS, PanePatterns
from integrations.agent.common import CliAgent
from integrations.base import HostSetting, PluginConfig
from integrations.registry import agents


@agents.register("custom")
class CustomAgent(CliAgent):
    install_hint = ""  # the command is the project's own: nothing to suggest

    class Config(PluginConfig):
        command: list[str] = HostSetting(
            min_length=1, description='argv of the agent, e.g. ["my-agent", "--tui"]'
        )
        prompt_mode: Literal["argv", "send"] = Field(
            default="send",
            description="argv: the first prompt is the last argument; send: typed in once the agent shows its prompt",
        )
        prompt_flag: str | None = HostSetting(
            default=None, description='with prompt_mode argv: put the prompt after this, e.g. "--prompt"'
        )
        ready_pattern: str | None = Field(
            default=None,
            description="regex matching the agent's input prompt in the last lines of its pane (it is ready)",
        )
        waiting_pattern: str | None = Field(
            default=None, description="regex matching a question the agent asks (it waits for a person)"
        )
        extra_args: list[str] = HostSetting(default_factory=list, description="appended to command as given")
        model: str | None = Field(
            default=None,
            description="the model the command runs, recorded for its sessions (the Ao-Model trailer, "
            "the card, the API, ao retro); not passed to the command: put it in command if it needs it",
        )

        @field_validator("command")
        @classmethod
        def _command(cls, value: list[str]) -> list[str]:
            if not value[0].strip():
                raise ValueError("the command's first element must name a program")
            return value

        @field_validator("ready_pattern", "waiting_pattern")
        @classmethod
        def _regex(cls, value: str | None) -> str | None:
            if value is not None:
                try:
                    re.compile(value)
                except re.error as exc:
                    raise ValueError(f"not a valid regular expression: {exc}") from None
            return value

    config: Config

    @property
    def prompt_in_command(self) -> bool:  # type: ignore[override]
        return self.config.prompt_mode == "argv"

    @property
    def pane_patterns(self) -> PanePatterns:
        return DEFAULT_PANE_PATTERNS.extended(
            ready=[self.config.ready_pattern] if self.config.ready_pattern else [],
            waiting=[self.config.waiting_pattern] if self.config.waiting_pattern else [],
        )

    @property
    def recognizes_ready(self) -> bool:  # type: ignore[override]
        return bool(self.config.ready_pattern)

    def executable(self) -> str:
        return self.config.command[0]

    def _options(self, workspace: Path) -> list[str]:
        """The command's own arguments and ``extra_args``: custom agents have no permissions or
        instructions settings, and ``model`` only says which model the command runs."""
        return [*self.config.command[1:], *self.config.extra_args]

    def prompt_args(self, prompt: str) -> list[str]:
        return [self.config.prompt_flag, prompt] if self.config.prompt_flag else [prompt]
