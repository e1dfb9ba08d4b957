"""Shared pieces of the agent plugins: settings (permissions), instructions and settings files,
argv helpers, and ``CliAgent``, the base that builds the launch and resume argv from a few
per-CLI hooks and reads activity with ``activity`` (states, terminal heuristics, combining) from
what ``transcripts`` reads of the agent's own records.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from integrations.agent.activity import (
    ACTIVE,
    DEFAULT_PANE_PATTERNS,
    IDLE,
    READY,
    PanePatterns,
    age_state,
    decide,
    terminal_reading,
    time_of,
)
from integrations.agent.transcripts import (
    mtime_of,
    parse_timestamp,
    tail_entries,
)
from integrations.base import Agent, HostSetting, PermanentIntegrationError, PluginConfig
from integrations.records import ActivityReading

SETTLE_SECONDS = 10.0  # a text reply without a stop reason counts as finished after this long


Permissions = Literal["default", "auto-edit", "skip-permissions"]
# The reference system's names (agent-orchestrator.yaml), read as ao's modes so its files load
# unchanged: its default ``permissionless`` and its docs' ``skip`` both skip the agent's permission
# prompts; ``suggest`` asks before every change, as ao's ``default`` does.
PERMISSION_ALIASES = {"permissionless": "skip-permissions", "skip": "skip-permissions", "suggest": "default"}
ReferencePermissions = Literal["permissionless", "skip", "suggest"]


class AgentConfig(PluginConfig):
    """Settings every built-in CLI agent understands."""

    permissions: Permissions = HostSetting(
        default="default",
        description=(
            "default (the agent asks), auto-edit (edits without asking) or skip-permissions (no prompts); "
            "permissionless and skip mean skip-permissions, suggest means default"
        ),
    )
    model: str | None = Field(default=None, description="the model, passed as the agent's --model")
    system_prompt_file: str | None = HostSetting(
        default=None, description="instructions added to the agent's system prompt; relative to the workspace"
    )
    extra_args: list[str] = HostSetting(
        default_factory=list, description="appended to the launch argv as given"
    )
    binary: str | None = HostSetting(default=None, description="command to run instead of the default binary")
    home: Path | None = HostSetting(
        default=None, description="home directory holding the agent's own files (default: the user's)"
    )
    ready_window_seconds: float = Field(
        default=120.0, gt=0, description="a finished turn counts as ready this long, then idle"
    )
    stale_after_seconds: float = Field(
        default=900.0,
        gt=0,
        description="an unfinished turn with no transcript writes for this long counts as idle",
    )

    @field_validator("permissions", mode="before", json_schema_input_type=Permissions | ReferencePermissions)
    @classmethod
    def _reference_permissions(cls, value: Any) -> Any:
        return PERMISSION_ALIASES.get(value, value) if isinstance(value, str) else value


class NoInstructionsConfig(AgentConfig):
    """Settings of an agent with no option to add instructions: ``system_prompt_file`` is refused
    at validation (saying ``instructions_refusal``) rather than silently ignored."""

    instructions_refusal: ClassVar[str] = "this agent has no option to add instructions"

    @field_validator("system_prompt_file")
    @classmethod
    def _no_system_prompt_file(cls, value: str | None) -> str | None:
        if value:
            raise ValueError(cls.instructions_refusal)
        return value


def resolve_in(workspace: Path, name: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() else workspace / path


def read_instructions(path: Path) -> str:
    """The text of a system-prompt file; PermanentIntegrationError when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PermanentIntegrationError(f"cannot read system_prompt_file {str(path)!r}: {exc}") from None


# --- settings files ---------------------------------------------------------------------------------
def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename, keeping its permission bits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        mode = 0o600
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_json_object(path: Path) -> dict[str, Any] | None:
    """A JSON file's object; {} when missing; None when it exists but is not a JSON object."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError):
        return None
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def git_exclude(workspace: Path, pattern: str) -> bool:
    """Add ``pattern`` to the repository's info/exclude (shared by its worktrees) unless present."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--git-path", "info/exclude"],
            cwd=workspace,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    if result.returncode != 0 or not result.stdout.strip():
        return False
    exclude = resolve_in(workspace, result.stdout.strip())
    try:
        existing = exclude.read_text(encoding="utf-8") if exclude.exists() else ""
        if pattern in existing.splitlines():
            return True
        exclude.parent.mkdir(parents=True, exist_ok=True)
        with exclude.open("a", encoding="utf-8") as handle:
            handle.write(("" if not existing or existing.endswith("\n") else "\n") + pattern + "\n")
    except OSError:
        return False
    return True


# --- argv helpers -----------------------------------------------------------------------------------
def resume_or_fail(agent: Agent, *, workspace: Path, conversation_id: str, prompt: str | None) -> list[str]:
    argv = agent.resume_command(workspace=workspace, conversation_id=conversation_id, prompt=prompt)
    if argv is None:
        raise PermanentIntegrationError(
            f"{agent.key or type(agent).__name__} agent cannot resume a conversation"
        )
    return argv


_CONVERSATION_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}\Z")


def check_conversation_id(conversation_id: str) -> str:
    """A conversation id safe to pass as one argv element (no leading dash, no spaces)."""
    if not _CONVERSATION_ID_RE.match(conversation_id or ""):
        raise PermanentIntegrationError(f"not a valid conversation id: {conversation_id!r}")
    return conversation_id


def workspace_keys(workspace: Path) -> list[str]:
    """The spellings of ``workspace`` an agent may have recorded: as given (absolute) and resolved."""
    keys = [str(workspace.absolute())]
    try:
        resolved = str(workspace.resolve())
    except OSError:
        resolved = keys[0]
    if resolved not in keys:
        keys.append(resolved)
    return keys


# --- the base of the CLI plugins ------------------------------------------------------------------
class CliAgent(Agent):
    """An agent CLI whose argv is ``<binary> <options> <prompt>``: each plugin declares only what
    differs between CLIs.

    - ``permission_args``: the flags for each ``permissions`` setting (every value must be there).
    - ``instructions_args(path)``: the flags adding ``system_prompt_file`` (resolved against the
      workspace); the default refuses it. For a CLI without such a flag, base the settings on
      ``NoInstructionsConfig`` so that it is refused at validation.
    - ``prompt_args(prompt)``: how the first prompt is passed when ``prompt_in_command``
      (default ``-- <prompt>``).
    - ``resume_flag``: the flag taking a conversation id (``claude --resume <id> <options>``);
      empty when the CLI cannot resume. Other forms override ``resume_command``.
    - ``transcript_reading(workspace, now)``: the agent's own record of its state, when it keeps
      one (``transcript_evidence`` reads a JSONL one); the pane (``pane_patterns``) decides
      otherwise, and always for a question on screen.

    ``_options(workspace)`` assembles the flags between the program and the prompt: permissions,
    ``--model``, instructions, then ``extra_args``.
    """

    Config = AgentConfig
    config: AgentConfig
    permission_args: ClassVar[dict[str, list[str]]] = {}
    resume_flag: ClassVar[str] = ""
    pane_patterns: ClassVar[PanePatterns] = DEFAULT_PANE_PATTERNS

    def instructions_args(self, path: Path) -> list[str]:
        raise PermanentIntegrationError(f"{self.key or type(self).__name__} agent cannot add instructions")

    def prompt_args(self, prompt: str) -> list[str]:
        return ["--", prompt]

    def _options(self, workspace: Path) -> list[str]:
        config = self.config
        permissions = self.permission_args.get(config.permissions)
        if permissions is None:
            raise PermanentIntegrationError(
                f"{self.key or type(self).__name__} agent has no flags for permissions {config.permissions!r}"
            )
        argv = list(permissions)
        if config.model:
            argv += ["--model", config.model]
        if config.system_prompt_file:
            argv += self.instructions_args(resolve_in(workspace, config.system_prompt_file))
        return argv + list(config.extra_args)

    def launch_command(self, *, workspace: Path, prompt: str | None, resume: str | None = None) -> list[str]:
        if resume:
            return resume_or_fail(self, workspace=workspace, conversation_id=resume, prompt=prompt)
        argv = [self.executable(), *self._options(workspace)]
        if prompt and self.prompt_in_command:
            argv += self.prompt_args(prompt)
        return argv

    def resume_command(
        self, *, workspace: Path, conversation_id: str, prompt: str | None = None
    ) -> list[str] | None:
        if not self.resume_flag:
            return None
        argv = [
            self.executable(),
            self.resume_flag,
            check_conversation_id(conversation_id),
            *self._options(workspace),
        ]
        if prompt and self.prompt_in_command:
            argv += self.prompt_args(prompt)
        return argv

    def transcript_reading(self, workspace: Path, now: datetime) -> ActivityReading | None:
        return None

    def transcript_evidence(
        self,
        path: Path | None,
        entry_state: Callable[[dict[str, Any]], tuple[str, str] | None],
        now: datetime,
        *,
        record: str = "transcript",
    ) -> tuple[ActivityReading | None, list[dict[str, Any]]]:
        """For ``transcript_reading``: the reading the newest entry of the tail of ``path`` that
        ``entry_state`` takes as evidence implies (None without one), and the tail's entries.

        ``entry_state`` gives (state, evidence) or None. Its state "finished" (the turn ended) is
        ready within ``ready_window_seconds``, idle after; "reply" (a text reply with no stop
        reason yet) is active until it has settled, then finished; active with no writes to the
        ``record`` for ``stale_after_seconds`` is idle. Entries without a timestamp take the
        file's modification time.

        The newest entry is the one stamped newest, not always the last one written: Claude Code
        2.1.100 on a loaded machine appended a pasted prompt's user entry after its reply's
        ``end_turn`` (stamped earlier), and that "prompt received" read active for 15 minutes.
        """
        if path is None:
            return None, []
        entries = tail_entries(path)
        file_time = mtime_of(path)
        evidence = [(entry, decided) for entry in entries if (decided := entry_state(entry)) is not None]
        if evidence and parse_timestamp(evidence[-1][0].get("timestamp")) is not None:
            stamped = [
                (at, index)
                for index, (entry, _) in enumerate(evidence)
                if (at := parse_timestamp(entry.get("timestamp"))) is not None
            ]
            evidence = evidence[: max(stamped)[1] + 1]
        if not evidence:
            return None, entries
        entry, (state, why) = evidence[-1]
        at = time_of(entry, file_time)
        age = (now - at).total_seconds() if at is not None else 0.0
        if state == "reply":
            state = "finished" if age >= SETTLE_SECONDS else ACTIVE
        if state == "finished":
            state = age_state(at, now, self.config.ready_window_seconds)
        elif state == ACTIVE and age > self.config.stale_after_seconds:
            state, why = IDLE, f"{why}; no {record} writes for {int(age // 60)} min"
        return ActivityReading(state=state, at=at, source="transcript", evidence=why), entries

    def detect_activity(
        self, *, workspace: Path, pane_text: str, now: datetime, process_alive: bool
    ) -> ActivityReading:
        native = self.transcript_reading(workspace, now)
        pane = terminal_reading(pane_text, now=now, patterns=self.pane_patterns)
        return decide(native, pane, now=now, process_alive=process_alive)

    def screen_ready(self, pane_text: str) -> bool | None:
        """The pane alone (``pane_patterns``) reads ready: the agent's prompt is drawn, with no
        question or working indicator below it. None when the plugin has no prompt pattern of
        its own to go by (``recognizes_ready``)."""
        if not self.recognizes_ready:
            return None
        reading = terminal_reading(pane_text, now=datetime.now(UTC), patterns=self.pane_patterns)
        return reading is not None and reading.state == READY
