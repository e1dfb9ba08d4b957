"""OpenCode (``opencode``): launch argv and terminal-based activity.

``opencode [project]`` starts the TUI; ao types the first message once its prompt shows (not
``--prompt``: a command line is readable by every local user with ``ps``), ``--model`` takes
``provider/model``, ``--session <id>`` continues a conversation (a ``--prompt`` is then
ignored) and ``--auto`` auto-approves permissions that are not explicitly denied (all checked
against opencode 1.18.33, see docs/AGENTS.md). OpenCode has no
flag for extra system instructions (it reads ``AGENTS.md``), so ``system_prompt_file`` is
refused at validation rather than silently ignored. Activity comes from the pane (a model API
it keeps retrying reads as blocked); the conversation id (for ``--session`` on restore), the
token and cost totals and the model come from OpenCode's SQLite store
(``~/.local/share/opencode/opencode.db``, table ``session``: ``id``, ``directory``,
``tokens_input``, ``tokens_output``, ``cost``, ``model``), read only, newest session of the
workspace; a store ao cannot read just means no totals and a restore that starts afresh.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import ClassVar

from integrations.agent.activity import (
    BLOCKED,
    DEFAULT_PANE_PATTERNS,
    EXITED,
    WAITING_INPUT,
    last_lines,
    unboxed,
)
from integrations.agent.common import CliAgent, NoInstructionsConfig, check_conversation_id
from integrations.agent.transcripts import one_line
from integrations.base import PermanentIntegrationError
from integrations.records import ActivityReading
from integrations.registry import agents


def opencode_store(home: Path | None) -> Path:
    """OpenCode's database: ``$XDG_DATA_HOME/opencode/opencode.db`` (default ``~/.local/share``);
    a configured ``home`` replaces the home directory."""
    if home is not None:
        return home / ".local" / "share" / "opencode" / "opencode.db"
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "opencode" / "opencode.db"


@dataclass(frozen=True)
class StoredSession:
    """What OpenCode's store says about a conversation: its id, totals and model."""

    id: str
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    model: str = ""


def newest_session(store: Path, workspace: Path) -> StoredSession | None:
    """The newest OpenCode session started in ``workspace`` (None: no store, no such session, a
    schema ao does not know, or the store busy: never an error). Its totals are the session row's
    ``tokens_input`` / ``tokens_output`` / ``cost`` (OpenCode's own sums over the conversation,
    which it shows in its footer) and its model ``{"providerID", "id"}``, when the schema has them."""
    if not store.is_file():
        return None
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=0.2) as db:
            db.row_factory = sqlite3.Row
            row = db.execute(
                "SELECT * FROM session WHERE directory IN (?, ?) ORDER BY rowid DESC LIMIT 1",
                (str(workspace), str(workspace.resolve())),
            ).fetchone()
    except sqlite3.Error:
        return None
    if row is None or not isinstance(row["id"], str):
        return None
    try:
        conversation = check_conversation_id(row["id"])
    except PermanentIntegrationError:
        return None
    columns = set(row.keys())

    def number(name: str) -> float | None:
        value = row[name] if name in columns else None
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None

    tokens_in, tokens_out, cost = number("tokens_input"), number("tokens_output"), number("cost")
    return StoredSession(
        id=conversation,
        tokens_in=int(tokens_in) if tokens_in is not None else None,
        tokens_out=int(tokens_out) if tokens_out is not None else None,
        cost_usd=float(cost) if cost is not None else None,
        model=_model_name(row["model"] if "model" in columns else None),
    )


def _model_name(value: object) -> str:
    """``provider/model`` from the session's model column (``{"id": …, "providerID": …}``)."""
    try:
        model = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        return ""
    if not isinstance(model, dict) or not isinstance(model.get("id"), str):
        return ""
    provider = model.get("providerID")
    return f"{provider}/{model['id']}" if isinstance(provider, str) and provider else model["id"]


def newest_session_id(store: Path, workspace: Path) -> str:
    """The id of the newest OpenCode session started in ``workspace``, or ""."""
    stored = newest_session(store, workspace)
    return stored.id if stored else ""


# "⬝⬝⬝ Cannot connect to API: Unable to connect. Is the computer able to access the url…
# [retrying attempt #5]" or "… [retrying in 30s attempt #5]": OpenCode retries a failing model
# API forever, with its working indicator still drawn. That is a problem a person has to see.
_RETRYING_RE = re.compile(
    r"^\W*(?P<error>.*?)\s*\[?retrying\b(?P<when>[^\]]*?)\s*attempt #(?P<attempt>\d+)", re.I
)


def retry_banner(pane_text: str) -> str:
    """The summary of OpenCode's retry banner near the bottom of the pane, or ""."""
    for line in reversed(last_lines(pane_text, 8)):
        match = _RETRYING_RE.search(unboxed(line))
        if match:
            error = one_line(match["error"].rstrip("…. "), 80) or "the model API fails"
            return f"{error}; retrying (attempt #{match['attempt']})"
    return ""


@agents.register("opencode")
class OpenCodeAgent(CliAgent):
    binary = "opencode"
    install_hint = "npm install -g opencode-ai"
    # typed once its prompt shows: ``--prompt=`` put the worker prompt where ``ps`` shows it
    prompt_in_command = False
    resume_flag = "--session"
    # OpenCode's default permission set lets the agent edit; only "skip" has a flag of its own.
    permission_args: ClassVar = {"default": [], "auto-edit": [], "skip-permissions": ["--auto"]}
    # The footer reads "<path> ... ctrl+p commands" when idle (followed by "• OpenCode 1.18.33"
    # in a wide terminal) and starts with a progress bar and
    # "esc interrupt" while it works (checked first).
    pane_patterns: ClassVar = DEFAULT_PANE_PATTERNS.extended(
        ready=[r"\bctrl\+p commands(\s+•\s*OpenCode\s+[\w.]+)?\s*$"], active=[r"\besc interrupt\b"]
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
        if reading.state not in (WAITING_INPUT, EXITED):
            retrying = retry_banner(pane_text)
            if retrying:
                reading = replace(reading, state=BLOCKED, summary=retrying, evidence="retrying the model API")
        stored = newest_session(opencode_store(self.config.home), workspace)
        if stored is None:
            return reading
        return replace(
            reading,
            conversation_id=stored.id,
            tokens_in=stored.tokens_in,
            tokens_out=stored.tokens_out,
            cost_usd=stored.cost_usd,
            model=stored.model,
        )

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
