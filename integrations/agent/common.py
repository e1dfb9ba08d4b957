"""Shared pieces of the agent plugins: settings, JSONL tail reading, terminal heuristics, and
``CliAgent``, the base that builds the launch and resume argv from a few per-CLI hooks.

Activity detection reads the agent's own transcript first (see ``claude_code`` and ``codex``)
and falls back to the terminal: the last non-empty lines of the pane. Transcripts are read from
the end, a bounded number of bytes at a time, never whole on every poll.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from integrations.base import Agent, HostSetting, PermanentIntegrationError, PluginConfig
from integrations.records import ActivityReading

TAIL_BYTES = 64 * 1024
SUMMARY_MAX = 120
SETTLE_SECONDS = 10.0  # a text reply without a stop reason counts as finished after this long

# sessions.lifecycle.Activity values; plain strings so this module needs no Django import.
ACTIVE = "active"
READY = "ready"
IDLE = "idle"
WAITING_INPUT = "waiting_input"
BLOCKED = "blocked"
EXITED = "exited"
UNKNOWN = "unknown"

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


# --- small helpers -----------------------------------------------------------------------------------
def one_line(text: str, limit: int = SUMMARY_MAX) -> str:
    """The first non-empty line of ``text``, whitespace-collapsed and cut to ``limit`` characters."""
    for line in str(text).splitlines():
        line = " ".join(line.split())
        if line:
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""


def parse_timestamp(value: Any) -> datetime | None:
    """An ISO-8601 timestamp ("2025-01-01T10:00:00.123Z") as an aware datetime, else None."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def mtime_of(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
    except OSError:
        return None


def newest_file(directory: Path, pattern: str) -> Path | None:
    """The most recently modified file in ``directory`` matching ``pattern``; None if there is none."""
    best: tuple[float, Path] | None = None
    try:
        candidates = list(directory.glob(pattern))
    except OSError:
        return None
    for candidate in candidates:
        try:
            stat = candidate.stat()
        except OSError:
            continue
        if not candidate.is_file():
            continue
        if best is None or stat.st_mtime > best[0]:
            best = (stat.st_mtime, candidate)
    return best[1] if best else None


def resolve_in(workspace: Path, name: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() else workspace / path


def read_instructions(path: Path) -> str:
    """The text of a system-prompt file; PermanentIntegrationError when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PermanentIntegrationError(f"cannot read system_prompt_file {str(path)!r}: {exc}") from None


# --- JSONL transcripts ---------------------------------------------------------------------------
def read_tail_lines(path: Path, max_bytes: int = TAIL_BYTES) -> list[str]:
    """The complete lines among the last ``max_bytes`` of ``path`` (oldest first).

    A line cut by the window's start is dropped; the last line is kept even without a newline
    (a writer may be mid-line: the JSON parser then rejects it). Missing file: [].
    """
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            start = max(0, size - max_bytes)
            handle.seek(start)
            data = handle.read(size - start)
    except OSError:
        return []
    if start > 0:
        newline = data.find(b"\n")
        data = b"" if newline < 0 else data[newline + 1 :]
    return [line for line in data.decode("utf-8", errors="replace").split("\n") if line.strip()]


def parse_jsonl(lines: Iterable[str]) -> list[dict[str, Any]]:
    """JSON objects from ``lines``; lines that are not a complete JSON object are skipped."""
    entries = []
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            entries.append(value)
    return entries


_TAIL_CACHE: dict[str, tuple[tuple[int, int, int], list[dict[str, Any]]]] = {}
_TAIL_CACHE_MAX = 1024
_tail_lock = threading.Lock()


def tail_entries(path: Path) -> list[dict[str, Any]]:
    """``parse_jsonl(read_tail_lines(path))``, read again only when the file's size, modification
    time or inode changed (every sweep reads every agent's transcript; most were not written
    since). The list is shared: callers must not change it."""
    try:
        stat = path.stat()
    except OSError:
        return []
    key = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
    cached = _TAIL_CACHE.get(str(path))
    if cached is not None and cached[0] == key:
        return cached[1]
    entries = parse_jsonl(read_tail_lines(path))
    with _tail_lock:
        if len(_TAIL_CACHE) >= _TAIL_CACHE_MAX:
            _TAIL_CACHE.clear()
        _TAIL_CACHE[str(path)] = (key, entries)
    return entries


def read_head_line(path: Path, max_bytes: int = 512 * 1024) -> dict[str, Any] | None:
    """The first line of a JSONL file as an object (None when absent, unparsable or too long)."""
    try:
        with path.open("rb") as handle:
            data = handle.readline(max_bytes)
    except OSError:
        return None
    entries = parse_jsonl([data.decode("utf-8", errors="replace")])
    return entries[0] if entries else None


class JsonlTotals:
    """Running totals over a growing JSONL file, reading only what was appended since last time.

    ``fold(state, entry)`` returns the new state. A file that shrank or was replaced is read
    again from the start. One instance per kind of total; safe across threads.
    """

    def __init__(self, fold: Callable[[Any, dict[str, Any]], Any], initial: Callable[[], Any]) -> None:
        self._fold = fold
        self._initial = initial
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[int, int, Any]] = {}  # path -> (inode, offset, state)

    def read(self, path: Path, *, chunk: int = 1024 * 1024) -> Any:
        key = str(path)
        with self._lock:
            try:
                stat = path.stat()
            except OSError:
                return self._initial()
            inode, offset, state = self._seen.get(key, (stat.st_ino, 0, None))
            if state is None or inode != stat.st_ino or stat.st_size < offset:
                offset, state = 0, self._initial()
            try:
                with path.open("rb") as handle:
                    handle.seek(offset)
                    while offset < stat.st_size:
                        data = handle.read(min(chunk, stat.st_size - offset))
                        if not data:
                            break
                        end = data.rfind(b"\n")
                        if end < 0:
                            if len(data) == chunk:  # one enormous line: skip past it
                                offset += len(data)
                                continue
                            break  # a partial last line: wait for its newline
                        for entry in parse_jsonl(
                            data[: end + 1].decode("utf-8", errors="replace").split("\n")
                        ):
                            state = self._fold(state, entry)
                        offset += end + 1
                        handle.seek(offset)
            except OSError:
                pass
            self._seen[key] = (stat.st_ino, offset, state)
            return state


# --- terminal heuristics -------------------------------------------------------------------------
ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def last_lines(pane_text: str, count: int = 12) -> list[str]:
    """The last ``count`` non-empty lines of a pane capture, escape sequences removed."""
    text = ANSI_RE.sub("", pane_text or "").replace("\r", "")
    lines = [line.rstrip() for line in text.split("\n")]
    return [line for line in lines if line.strip()][-count:]


# Frame characters TUIs draw around dialogs and input boxes (gemini "│ ... │", opencode "┃").
_FRAME = "│┃║|╭╮╰╯╹╻"


def unboxed(line: str) -> str:
    """``line`` without the frame characters and blanks around it: "│ Allow x? │" -> "Allow x?"."""
    return line.strip().strip(_FRAME).strip().strip(_FRAME).strip()


def _compile(patterns: Iterable[str]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, re.IGNORECASE | re.MULTILINE) for p in patterns)


# Questions an agent asks a person: permissions, trust, API keys, start-up consent. Typing a
# message into one of these would answer it, so they always read as waiting_input.
WAITING_PATTERNS = _compile(
    [
        r"\bDo you want to (proceed|make this edit|create|allow|run|use this API key)\b",
        r"\bDo you want to\b.*\?",
        # aider's confirmations; once answered the line ends with the answer ("[Yes]: n").
        r"\(Y\)es/\(N\)o[^\[]*(\[\w+\])?:?\s*$",
        r"\[y/N\]|\[Y/n\]|\(y/n\)|\[yes/no\]",
        r"^\W*Allow\b.*\?\s*$",
        r"\bAllow (once|always|for this session)\b",
        r"\bYes, allow\b",
        r"\bWould you like to (run|make|apply|proceed)\b",
        r"\bDo you trust the (files|contents|folder|authors)\b",
        r"\bDo you trust this (folder|directory|workspace)\b",
        r"\bone you trust\b",
        r"\btrust (this|the) (folder|directory|workspace)\?",
        r"\bBypass Permissions mode\b",
        r"\bYes, I accept\b",
        r"\bAPI key\b.*[?:]\s*$",
        r"\bSelect login method\b",
        r"\bPress Enter to (continue|retry)\b",
        r"^\s*[❯›>●]\s*1\.\s+(Yes|Allow|Approve|Trust)\b",
        # Dialog footers and sign-in screens seen in the real CLIs (see docs/AGENTS.md).
        r"\benter (to )?confirm\b",  # claude "Enter to confirm", codex "Press enter to confirm", opencode
        r"\(Use Enter to select\)",  # gemini selection dialogs
        r"\bHow would you like to authenticate\b",  # gemini sign-in
        r"\bSign in with (ChatGPT|Google|Device Code)\b",  # codex / gemini sign-in
        r"\bPermission required\b",  # opencode
        r"\bTab to amend\b",  # claude permission dialog footer
    ]
)
ACTIVE_PATTERNS = _compile(
    [
        r"\besc to interrupt\b",
        r"\(esc to cancel\b",  # gemini "⠋ Thinking... (esc to cancel, 4s)"; dialogs say "Esc to cancel" bare
        r"\bctrl\+c to (interrupt|cancel)\b",
        r"^\s*[✻✶✳✢✽·*⏺◐◓◑◒⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]\s+\w[\w ]*…",
        r"^\s*[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]\s",
        r"\bWorking \(\d",
        r"\bWaiting for (the )?(LLM|model|response)\b",
    ]
)
# A bare input prompt: ">", "> " with a placeholder inside a box, "aider>", "architect>", a chevron.
READY_PATTERNS = _compile(
    [
        r"^\s*[│|]?\s*[>❯›]\s*[│|]?\s*$",
        r"^\s*[│|]\s*[>❯›]\s.*[│|]\s*$",
        r"^\s*[\w-]*>\s*$",
    ]
)


@dataclass(frozen=True)
class PanePatterns:
    waiting: tuple[re.Pattern[str], ...] = WAITING_PATTERNS
    active: tuple[re.Pattern[str], ...] = ACTIVE_PATTERNS
    ready: tuple[re.Pattern[str], ...] = READY_PATTERNS
    waiting_lines: int = 12  # a question this close to the bottom is the one on screen
    active_lines: int = 8
    ready_lines: int = 6

    def extended(
        self, *, waiting: Sequence[str] = (), active: Sequence[str] = (), ready: Sequence[str] = ()
    ) -> PanePatterns:
        return replace(
            self,
            waiting=self.waiting + _compile(waiting),
            active=self.active + _compile(active),
            ready=self.ready + _compile(ready),
        )


DEFAULT_PANE_PATTERNS = PanePatterns()


def _matches(patterns: Sequence[re.Pattern[str]], line: str) -> bool:
    """Whether a pattern matches ``line`` as drawn or with its dialog frame removed."""
    bare = unboxed(line)
    return any(pattern.search(line) or pattern.search(bare) for pattern in patterns)


def _last_match(
    patterns: Sequence[re.Pattern[str]],
    lines: Sequence[str],
    window: int,
    unless: Sequence[re.Pattern[str]] = (),
) -> int | None:
    """Index (into ``lines``) of the lowest line within the last ``window`` lines matching a
    pattern (and none of ``unless``)."""
    for index in range(len(lines) - 1, max(len(lines) - window, 0) - 1, -1):
        if _matches(patterns, lines[index]) and not (unless and _matches(unless, lines[index])):
            return index
    return None


def terminal_reading(
    pane_text: str, *, now: datetime, patterns: PanePatterns = DEFAULT_PANE_PATTERNS
) -> ActivityReading | None:
    """Read the bottom of the pane: a question -> waiting_input, a spinner -> active, a prompt -> ready.

    A question counts only when neither an input prompt nor a working indicator is drawn below
    it (an answered question that scrolled up is not pending). Readings are weak and stamped
    ``now``; None when the pane says nothing recognisable.
    """
    reading = _screen_reading(pane_text, patterns)  # the same screen reads the same (cached)
    return replace(reading, at=now) if reading is not None else None


@functools.lru_cache(maxsize=512)
def _screen_reading(pane_text: str, patterns: PanePatterns) -> ActivityReading | None:
    now = None  # stamped by terminal_reading
    lines = last_lines(pane_text, max(patterns.waiting_lines, patterns.active_lines, patterns.ready_lines))
    if not lines:
        return None
    question = _last_match(patterns.waiting, lines, patterns.waiting_lines)
    prompt = _last_match(patterns.ready, lines, patterns.ready_lines)
    # A dialog's own footer ("Enter to confirm · Esc to cancel") is not a working indicator.
    working = _last_match(patterns.active, lines, patterns.active_lines, unless=patterns.waiting)
    if (
        question is not None
        and (prompt is None or prompt < question)
        and (working is None or working < question)
    ):
        # Name the question itself rather than its "1. Yes" option or its footer: the lowest
        # matching line that asks something, else the first matching line of the dialog.
        start = max(len(lines) - patterns.waiting_lines, 0)
        candidates = [
            unboxed(line) for line in lines[start : question + 1] if _matches(patterns.waiting, line)
        ]
        asked = next((line for line in reversed(candidates) if "?" in line), candidates[0])
        return ActivityReading(
            state=WAITING_INPUT,
            at=now,
            weak=True,
            summary=one_line(asked),
            source="terminal",
            evidence="question on screen",
        )
    if working is not None:
        return ActivityReading(
            state=ACTIVE,
            at=now,
            weak=True,
            summary=one_line(lines[working]),
            source="terminal",
            evidence="working indicator",
        )
    if prompt is not None:
        return ActivityReading(state=READY, at=now, weak=True, source="terminal", evidence="input prompt")
    return None


# --- combining evidence ---------------------------------------------------------------------------
def exited_reading(now: datetime) -> ActivityReading:
    return ActivityReading(state=EXITED, at=now, source="process", evidence="agent process is not running")


def with_totals(reading: ActivityReading, native: ActivityReading, *, summary: str) -> ActivityReading:
    """``reading`` keeping the transcript's token and cost totals and conversation id."""
    return replace(
        reading,
        summary=summary,
        tokens_in=native.tokens_in,
        tokens_out=native.tokens_out,
        cost_usd=native.cost_usd,
        conversation_id=native.conversation_id,
    )


def combine(
    native: ActivityReading | None, pane: ActivityReading | None, *, now: datetime
) -> ActivityReading:
    """The agent's transcript decides, except that a question on screen always wins, and a
    working indicator on screen turns a finished-looking turn back into active.

    Transcripts do not record pending permission or trust dialogs: while one is open the last
    entry is a tool call (active) or nothing at all, so the pane's waiting_input takes over,
    keeping the transcript's totals and conversation id.
    """
    if pane is not None and pane.state == WAITING_INPUT:
        if native is None:
            return pane
        return with_totals(pane, native, summary=pane.summary or native.summary)
    if native is not None:
        if pane is not None and pane.state == ACTIVE and native.state in (READY, IDLE):
            # The turn looked finished (or a reply had no stop reason yet) but the agent is
            # drawing its working indicator: it is streaming the next step.
            return replace(native, state=ACTIVE, at=now, weak=True, source="terminal", evidence=pane.evidence)
        return native
    if pane is not None:
        return pane
    return ActivityReading(
        state=UNKNOWN, at=None, weak=True, source="terminal", evidence="nothing recognisable"
    )


def age_state(finished_at: datetime | None, now: datetime, ready_window: float) -> str:
    """ready within ``ready_window`` seconds of a finished turn, idle after."""
    if finished_at is None:
        return IDLE
    return READY if (now - finished_at).total_seconds() < ready_window else IDLE


def time_of(entry: dict[str, Any], fallback: datetime | None) -> datetime | None:
    return parse_timestamp(entry.get("timestamp")) or fallback


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


def decide(
    native: ActivityReading | None, pane: ActivityReading | None, *, now: datetime, process_alive: bool
) -> ActivityReading:
    """The reading ``detect_activity`` returns: exited when the process is gone, else ``combine``.

    An exited reading keeps the transcript's totals and conversation id, so the conversation
    can be resumed and its cost is not lost.
    """
    if not process_alive:
        reading = exited_reading(now)
        if native is not None:
            reading = with_totals(reading, native, summary=native.summary)
        return reading
    return combine(native, pane, now=now)


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
