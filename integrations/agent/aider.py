"""Aider (``aider``): launch argv, terminal-based activity, and totals from its chat history.

Aider keeps no machine-readable transcript. Activity comes from the pane: its ``>`` /
``architect>`` prompt means ready, its ``(Y)es/(N)o`` confirmations mean waiting_input. Its
Markdown chat history (``.aider.chat.history.md`` in the workspace) records what it printed,
including, after each reply, "Tokens: 2.6k sent, 80 received. Cost: $0.0064 message, $0.0064
session." and, at each start, "Main model: openai/gpt-4o with diff edit format": ao reads the
tokens, the cost and the model from there (at the precision aider prints them).

``--message`` would make aider exit after one reply, so the first prompt is sent after launch.
Aider has one conversation per directory, not conversation ids: once the history file exists
its name is recorded as the conversation, and resuming restores it (``--restore-chat-history``).
Start-up questions a person would have to answer are pre-answered by flags (see
``UNATTENDED_ARGS``); checked against aider 0.86.2 (docs/AGENTS.md).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import ClassVar

from integrations.agent.activity import ACTIVE, DEFAULT_PANE_PATTERNS, READY, last_lines
from integrations.agent.common import CliAgent, git_exclude
from integrations.records import ActivityReading
from integrations.registry import agents

HISTORY_FILE = ".aider.chat.history.md"
# Questions aider asks on start that have nothing to do with the task: "Would you like to see
# what's new in this version?" (first run of each version), "Allow collection of anonymous
# analytics?" (first run, for a random share of users), "Newer aider version … available. Run pip
# install?" (update check), "Add .aider* to .gitignore?" (ao excludes them in info/exclude).
UNATTENDED_ARGS = ["--no-show-release-notes", "--no-analytics", "--no-check-update", "--no-gitignore"]

_TOKENS_RE = re.compile(
    r"Tokens: ([\d.]+)(k?) sent(?:, ([\d.]+)(k?) cache write)?(?:, ([\d.]+)(k?) cache hit)?, "
    r"([\d.]+)(k?) received\.(?: Cost: \$([\d.]+) message, \$([\d.]+) session\.)?"
)
_MODEL_RE = re.compile(r"^>?\s*(?:Main model|Model): (\S+)")
_STARTED = "# aider chat started at"


def _count(number: str, k: str) -> int:
    return round(float(number) * (1000 if k else 1))


@dataclass
class _Totals:
    tokens_in: int = 0
    tokens_out: int = 0
    cost_before: float = 0.0  # the session costs of earlier aider runs in this history
    cost_run: float = 0.0  # the current run's session cost
    model: str = ""
    seen: bool = False  # any totals line at all

    @property
    def cost(self) -> float:
        return self.cost_before + self.cost_run

    def fold(self, line: str) -> None:
        if line.startswith(_STARTED):
            self.cost_before, self.cost_run = self.cost, 0.0
            return
        model = _MODEL_RE.match(line)
        if model:
            self.model = model.group(1)
            return
        match = _TOKENS_RE.search(line)
        if match:
            self.seen = True
            sent = _count(match.group(1), match.group(2))
            sent += _count(match.group(3), match.group(4)) if match.group(3) else 0
            sent += _count(match.group(5), match.group(6)) if match.group(5) else 0
            self.tokens_in += sent
            self.tokens_out += _count(match.group(7), match.group(8))
            if match.group(10):
                self.cost_run = float(match.group(10))


class HistoryTotals:
    """Totals over a growing chat history file, reading only what was appended since last time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[int, int, _Totals]] = {}  # path -> (inode, offset, totals)

    def read(self, path: Path) -> _Totals | None:
        key = str(path)
        with self._lock:
            try:
                stat = path.stat()
            except OSError:
                return None
            inode, offset, totals = self._seen.get(key, (stat.st_ino, 0, _Totals()))
            if inode != stat.st_ino or stat.st_size < offset:
                offset, totals = 0, _Totals()
            try:
                with path.open("rb") as handle:
                    handle.seek(offset)
                    data = handle.read(stat.st_size - offset)
            except OSError:
                return totals
            end = data.rfind(b"\n")
            if end >= 0:
                for line in data[: end + 1].decode("utf-8", errors="replace").splitlines():
                    totals.fold(line)
                offset += end + 1
            self._seen[key] = (stat.st_ino, offset, totals)
            return replace(totals)


_HISTORY = HistoryTotals()


def _at_prompt(pane_text: str) -> bool:
    """Whether the bare ">" at the bottom of the pane is aider's input prompt, not the echo of a
    message it took. The prompt sits below a rule line ("────") and the files in the chat; an
    echoed message is a block of "> …" lines."""
    lines = last_lines(pane_text, 40)
    for line in reversed(lines[:-1]):
        if set(line.strip()) == {"─"}:
            return True
        if line.lstrip().startswith(">"):
            return False
    return True


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

    def _options(self, workspace: Path) -> list[str]:
        # The pre-answers come first, so the settings' extra_args can still override them.
        return [*UNATTENDED_ARGS, *super()._options(workspace)]

    def resume_command(
        self, *, workspace: Path, conversation_id: str, prompt: str | None = None
    ) -> list[str] | None:
        return [self.executable(), *self._options(workspace), "--restore-chat-history"]

    def prepare_workspace(self, workspace: Path, *, allow_trust: bool) -> list[str]:
        """Keep aider's own files (``.aider*``) out of the agent's commits via info/exclude
        (aider checks with ``git check-ignore``, which honours it; ``--no-gitignore`` keeps it
        from asking to edit ``.gitignore``)."""
        if git_exclude(workspace, ".aider*"):
            return ["excluded .aider* from git in this repository"]
        return []

    def detect_activity(
        self, *, workspace: Path, pane_text: str, now: datetime, process_alive: bool
    ) -> ActivityReading:
        reading = super().detect_activity(
            workspace=workspace, pane_text=pane_text, now=now, process_alive=process_alive
        )
        if reading.state == READY and reading.source == "terminal" and not _at_prompt(pane_text):
            # Aider echoes a message it took as "> line" lines; the echo of an empty last line is a
            # bare ">" too, but it has no rule above it and the spinner is about to be drawn.
            reading = replace(reading, state=ACTIVE, evidence="message taken, no prompt below it")
        # A summary says what aider is doing now: at its prompt it is waiting for a message (not
        # still "Waiting for <model>", the last thing its spinner said).
        if reading.state == READY:
            reading = replace(reading, summary="at its prompt, waiting for a message")
        elif reading.state == ACTIVE and not reading.summary:
            reading = replace(reading, summary="working on the message")
        elif reading.state == ACTIVE and "Waiting for " in reading.summary:
            model = reading.summary.split("Waiting for ", 1)[1].strip()
            reading = replace(reading, summary=f"waiting for {model} to answer")
        totals = _HISTORY.read(workspace / HISTORY_FILE)
        if totals is None:
            return reading
        # The history file is the conversation --restore-chat-history brings back.
        reading = replace(reading, conversation_id=HISTORY_FILE, model=totals.model or reading.model)
        if totals.seen:
            reading = replace(
                reading, tokens_in=totals.tokens_in, tokens_out=totals.tokens_out, cost_usd=totals.cost
            )
        return reading
