"""ao's config file: ``ao.config.yaml`` (or a reference ``agent-orchestrator.yaml``).

The file is found from the current directory upwards, or named by ``AO_CONFIG``. Loading is
strict and complete: every problem in the file is collected and reported at once, each with
file, line and key path (``ao.config.yaml:12: projects.web.agent: unknown agent plugin ...``).
Loading reads the file and the filesystem only; it never touches the database. Writing the
projects to the database is ``sessions.services.config_apply``.

Key names are those of agent-orchestrator.yaml (camelCase), so a team can rename that file.
Keys ao does not know are errors in ``ao.config.yaml`` and warnings in
``agent-orchestrator.yaml``. See docs/CONFIG.md for every key.

``python -m sessions.config --schema`` prints the JSON Schema (shipped as
docs/ao.config.schema.json); ``python -m sessions.config --check FILE`` validates a file;
``python -m sessions.config --update-docs`` regenerates docs/ao.config.schema.json and the plugin
settings tables of docs/CONFIG.md from the models (run it after changing a setting).
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import types
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

import yaml
from django.conf import settings
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    field_validator,
)
from pydantic.alias_generators import to_camel

from integrations.base import host_settings
from integrations.credentials import SECRET_NAME_RE
from integrations.notifier import NotifierConfig
from integrations.registry import ConfigurationError, registry_for
from sessions.models import PROJECT_KEY_RE, SESSION_PREFIX_RE, Project

CONFIG_FILENAME = "ao.config.yaml"
REFERENCE_FILENAME = "agent-orchestrator.yaml"
# Looked for in this order in each directory, from the start directory upwards.
CONFIG_FILENAMES = ("ao.config.yaml", "ao.config.yml", "agent-orchestrator.yaml", "agent-orchestrator.yml")
MAX_CONFIG_BYTES = 1024 * 1024
MAX_NESTING = 64
SLOTS = ("agent", "runtime", "workspace", "tracker", "scm")
PRIORITIES = ("urgent", "action", "warning", "info")
# Beat looks for due projects every this many seconds at most (ao_site.celery.sweep_tick): a
# project's sweepInterval below it could not be honoured, so it is refused, not raised silently.
MIN_SWEEP_INTERVAL = 5
REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}/[A-Za-z0-9._-]{1,100}$")
DURATION_RE = re.compile(r"^[0-9]{1,9}(ms|s|m|h|d)$")
# A git branch name, minus what git check-ref-format rejects anyway.
_ENV_VARIABLE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
_BRANCH_BAD = re.compile(r"(^[-/.])|([/.]$)|(\.\.)|(@\{)|(//)|([\x00-\x20\x7f~^:?*\[\\])|(\.lock$)|(^@$)")
GIT_TIMEOUT = 10.0
# Agent CLIs `ao init` looks for on PATH, in order of preference: binary -> agent plugin key.
AGENT_CLIS = (
    ("claude", "claude-code"),
    ("codex", "codex"),
    ("aider", "aider"),
    ("opencode", "opencode"),
    ("gemini", "gemini"),
)
DEFAULT_AGENT = "claude-code"


# --- problems -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong (or, as a warning, ignored) in a config file."""

    file: str
    line: int | None
    path: str  # dotted key path, e.g. "projects.web.agent"; "" for the file as a whole
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """The config file is unusable. ``problems`` lists every problem found, in file order."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def _problem_error(file: str | Path, message: str, *, line: int | None = None, path: str = "") -> ConfigError:
    return ConfigError([ConfigProblem(str(file), line, path, message)])


# --- the models -----------------------------------------------------------------------------------
def _title(name: str, info: Any) -> str:
    return info.alias or name


class _Model(BaseModel):
    """Strict: YAML gives real types, so "3" is not a number and unknown keys are errors."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        alias_generator=to_camel,
        validate_by_name=False,
        validate_by_alias=True,
        field_title_generator=_title,
    )


class PluginSpec(BaseModel):
    """A plugin for a slot plus its settings; the plugin validates the settings itself."""

    model_config = ConfigDict(extra="allow", strict=True, title="PluginSpec")

    plugin: str = Field(min_length=1, description="The plugin's key, e.g. claude-code, tmux, github.")

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def _plugin_spec_from(value: Any) -> Any:
    if isinstance(value, str):
        return {"plugin": value}
    if isinstance(value, dict | PluginSpec):
        return value
    raise ValueError(
        f"expected a plugin key (e.g. claude-code) or a mapping with a 'plugin' key, got {_describe(value)}"
    )


PluginChoice = Annotated[
    PluginSpec,
    BeforeValidator(_plugin_spec_from, json_schema_input_type=Union[str, PluginSpec]),  # noqa: UP007
]


def _count_or_duration(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"expected a count (e.g. 2) or a duration (e.g. 30m), got {_describe(value)}")
    if isinstance(value, int) and value < 0:
        raise ValueError("must not be negative")
    if isinstance(value, str) and not DURATION_RE.match(value):
        raise ValueError(f"{value!r} is not a duration: use a number and a unit ms, s, m, h or d, e.g. 30m")
    return value


def _duration(value: Any) -> Any:
    if not isinstance(value, str) or not DURATION_RE.match(value):
        raise ValueError(f"expected a duration such as 10m (units ms, s, m, h, d), got {_describe(value)}")
    return value


_DURATION_SCHEMA = {"type": "string", "pattern": DURATION_RE.pattern}
CountOrDuration = Annotated[
    int | str,
    BeforeValidator(_count_or_duration),
    WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 0}, _DURATION_SCHEMA]}),
]
Duration = Annotated[str, BeforeValidator(_duration), WithJsonSchema(_DURATION_SCHEMA)]
Priority = Literal["urgent", "action", "warning", "info"]


class ReactionConfig(_Model):
    """How ao reacts to one kind of change (rule), e.g. ci-failed, changes-requested."""

    auto: bool | None = Field(None, description="Act automatically (true) or only notify a human (false).")
    action: Literal["send-to-agent", "notify", "auto-merge"] | None = Field(
        None, description="What to do: send-to-agent, notify or auto-merge."
    )
    message: str | None = Field(None, description="Text sent to the agent (send-to-agent).")
    priority: Priority | None = Field(
        None, description="Notification priority: urgent, action, warning, info."
    )
    retries: int | None = Field(None, ge=0, description="How many times to act before escalating.")
    escalate_after: CountOrDuration | None = Field(
        None, description="Escalate to a human after this many attempts (2) or this long (30m)."
    )
    threshold: Duration | None = Field(None, description="How long a condition must last first, e.g. 10m.")
    include_summary: bool | None = Field(None, description="Include a fleet summary in the notification.")
    trusted_bots: list[str] | None = Field(
        None,
        description="bot-review-comments: bot logins whose review comments are forwarded (e.g. coderabbitai).",
    )
    required_checks: list[str] | None = Field(
        None,
        description=(
            "approved-and-green: checks that must pass on the PR's head commit for it to be green "
            "([] if the project has no CI). Unset: at least one check reported there, all passing."
        ),
    )
    require_approval: bool | None = Field(
        None,
        description="approved-and-green: require an approval even when the SCM requires no review.",
    )


class Defaults(_Model):
    """Plugins used by every project that does not choose its own."""

    agent: PluginChoice | None = Field(None, description="Default agent plugin.")
    runtime: PluginChoice | None = Field(None, description="Default runtime plugin.")
    workspace: PluginChoice | None = Field(None, description="Default workspace plugin.")
    tracker: PluginChoice | None = Field(None, description="Default tracker plugin.")
    scm: PluginChoice | None = Field(None, description="Default SCM plugin.")
    notifiers: list[str] = Field(
        default_factory=list, description="Notifiers used when notificationRouting does not say otherwise."
    )


class OrchestratorConfig(_Model):
    """The project's orchestrator agent: one session (<prefix>-orchestrator) that coordinates the workers."""

    enabled: bool = Field(
        True,
        description="Start the orchestrator with `ao start` and keep it alive (restarted by the sweeps).",
    )
    agent: PluginChoice | None = Field(
        None,
        description="Agent plugin of the orchestrator (key or {plugin, ...settings}); default: the project's.",
    )
    rules: str | None = Field(None, description="Instructions added to the orchestrator's prompt.")
    rules_file: str | None = Field(
        None, description="File in the checkout holding orchestrator rules (relative path)."
    )

    @field_validator("rules_file")
    @classmethod
    def _rules_file_stays_inside(cls, value: str | None) -> str | None:
        problem = _relative_path_problem(value) if value is not None else ""
        if problem:
            raise ValueError(f"{value!r} {problem}")
        return value


class IntakeConfig(_Model):
    """Backlog intake: issues with ``label`` are claimed and given to a worker, up to maxSessions."""

    enabled: bool | None = Field(
        None,
        description="Claim labelled issues automatically. Unset: keep what `ao intake on|off` chose (off at first).",
    )
    label: str = Field("agent:backlog", min_length=1, max_length=100, description="Label of issues to claim.")
    in_progress_label: str = Field(
        "agent:in-progress", min_length=1, max_length=100, description="Label set when a worker is spawned."
    )
    done_label: str = Field(
        "agent:done", min_length=1, max_length=100, description="Label set when the worker's PR merged."
    )


class ProjectConfig(_Model):
    """One repository ao runs agents on. Its key is its name under ``projects``."""

    name: str | None = Field(None, description="Display name; defaults to the project key.")
    repo: str | None = Field(
        None,
        description="owner/name on the SCM, e.g. acme/web.",
        json_schema_extra={"pattern": REPO_RE.pattern},
    )
    path: str = Field(
        description="The project's own checkout: absolute, ~/..., or relative to the config file's directory."
    )
    default_branch: str = Field("main", description="Branch that sessions branch from and PRs target.")
    session_prefix: str | None = Field(
        None, description="Session ids are <prefix>-<n>; defaults to a prefix derived from the project key."
    )
    agent: PluginChoice | None = Field(None, description="Agent plugin (the coding agent CLI).")
    runtime: PluginChoice | None = Field(None, description="Runtime plugin (where the agent runs).")
    workspace: PluginChoice | None = Field(None, description="Workspace plugin (the agent's checkout).")
    tracker: PluginChoice | None = Field(None, description="Issue tracker plugin.")
    scm: PluginChoice | None = Field(None, description="SCM plugin (PRs, CI, reviews).")
    agent_config: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "The agent plugin's settings, e.g. permissions (default, auto-edit, skip-permissions; the "
            "reference system's permissionless and skip mean skip-permissions, suggest means default), model."
        ),
    )
    symlinks: list[str] = Field(
        default_factory=list, description="Paths in the checkout symlinked into every workspace."
    )
    post_create: list[str | list[str]] = Field(
        default_factory=list,
        description=(
            "Commands run in a new workspace before the agent starts: an argv list, a script in the "
            "checkout, or a command line split into words (no shell: pipes, && and $VARS do nothing)."
        ),
    )
    agent_rules: str | None = Field(None, description="Instructions given to every agent of this project.")
    agent_rules_file: str | None = Field(
        None, description="File in the checkout holding agent rules (relative path)."
    )
    reactions: dict[str, ReactionConfig] = Field(
        default_factory=dict, description="Per-project overrides of the top-level reactions."
    )
    max_sessions: int | None = Field(None, ge=1, description="Cap on live sessions for this project.")
    auto_cleanup_on_merge: bool | None = Field(
        None,
        description="End a session and remove its workspace once its PR merged (never losing unpushed work).",
    )
    refuse_over_cap: bool = Field(
        False, description="Refuse spawns over maxSessions instead of queueing them until a slot frees up."
    )
    monthly_budget_usd: float | None = Field(
        None,
        ge=0,
        le=10**9,
        description=(
            "Cap on the agents' cost (USD) in this project per calendar month (UTC); once the month's "
            "sessions cost this much, spawns are refused with the reason and members are notified."
        ),
    )
    credentials: Literal["project", "personal", "personal-or-project"] = Field(
        "project",
        description=(
            "Whose model credentials a person's session runs with: project (the project's: agentSecrets "
            "and ao's own environment), personal (the spawner's personal secrets; a spawn by someone "
            "who stored none is refused), personal-or-project (theirs when they stored any, else the "
            "project's). A spawn without a person (the host's ao spawn, intake) runs with the project's."
        ),
    )
    agent_secrets: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "The project's model credentials from secrets stored in ao: {environment variable: secret "
            "name}, e.g. ANTHROPIC_API_KEY: team-anthropic. Given to agents that run with the project's "
            "credentials; only a superuser may change it."
        ),
    )
    allow_agent_trust: bool = Field(
        True,
        description="Let ao pre-answer the agent's folder-trust dialog through the agent's own settings files.",
    )
    pass_tokens_to_agents: bool = Field(
        False, description="Pass ao's SCM/tracker tokens (GITHUB_TOKEN, LINEAR_API_KEY, ...) into agents."
    )
    sweep_interval: float | None = Field(
        None,
        ge=MIN_SWEEP_INTERVAL,
        description="Seconds between reconciliation sweeps (at least 5); default from ao's settings. "
        "Activity reaches the board within seconds without shorter sweeps (the activity watcher).",
    )
    orchestrator: OrchestratorConfig = Field(
        default_factory=OrchestratorConfig, description="The project's orchestrator agent."
    )
    orchestrator_rules: str | None = Field(
        None, description="agent-orchestrator's key for orchestrator.rules (both may be set: joined)."
    )
    intake: IntakeConfig = Field(default_factory=IntakeConfig, description="Backlog intake from the tracker.")

    @field_validator("sweep_interval", mode="before")
    @classmethod
    def _sweep_interval_not_below_the_tick(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool) and value < MIN_SWEEP_INTERVAL:
            raise ValueError(
                f"{value:g} s is shorter than ao sweeps can run (every {MIN_SWEEP_INTERVAL} s at most): "
                f"use at least {MIN_SWEEP_INTERVAL}. Shorter sweeps are not needed to see activity "
                "sooner: the activity watcher brings each agent's changes to the board within seconds"
            )
        return value

    @field_validator("agent_secrets")
    @classmethod
    def _agent_secrets_name_variables_and_secrets(cls, value: dict[str, str]) -> dict[str, str]:
        for variable, secret in value.items():
            if not _ENV_VARIABLE_RE.fullmatch(variable) or variable.startswith("AO_"):
                raise ValueError(f"{variable!r} is not an environment variable an agent reads (nor AO_...)")
            if not isinstance(secret, str) or not SECRET_NAME_RE.fullmatch(secret):
                raise ValueError(
                    f"{variable}: {secret!r} is not the name of a secret stored in ao (letters, digits, - or _)"
                )
        return value

    @field_validator("repo")
    @classmethod
    def _repo_is_owner_name(cls, value: str | None) -> str | None:
        if value is not None and not REPO_RE.match(value):
            raise ValueError(f"{value!r} is not owner/name (e.g. acme/web)")
        return value

    @field_validator("default_branch")
    @classmethod
    def _branch_is_sane(cls, value: str) -> str:
        if not value or len(value) > 255 or _BRANCH_BAD.search(value):
            raise ValueError(f"{value!r} is not a valid branch name")
        return value

    @field_validator("symlinks")
    @classmethod
    def _symlinks_stay_inside(cls, value: list[str]) -> list[str]:
        for item in value:
            problem = _relative_path_problem(item)
            if problem:
                raise ValueError(f"{item!r} {problem}")
        return value

    @field_validator("agent_rules_file")
    @classmethod
    def _rules_file_stays_inside(cls, value: str | None) -> str | None:
        problem = _relative_path_problem(value) if value is not None else ""
        if problem:
            raise ValueError(f"{value!r} {problem}")
        return value

    @field_validator("post_create")
    @classmethod
    def _commands_not_empty(cls, value: list[str | list[str]]) -> list[str | list[str]]:
        for item in value:
            words = [item] if isinstance(item, str) else item
            if not words or any(not word.strip() or "\0" in word for word in words):
                raise ValueError("commands must not be empty (nor hold empty words or NUL characters)")
        return value

    # After loading, each slot holds the effective plugin (defaults applied) with its validated
    # settings (for the agent: merged with agentConfig).
    def plugin_key(self, slot: str) -> str:
        spec = getattr(self, slot)
        return spec.plugin if spec is not None else ""

    def settings_for(self, slot: str) -> dict[str, Any]:
        spec = getattr(self, slot)
        return spec.settings if spec is not None else {}


class AoConfig(_Model):
    """The whole ao.config.yaml file."""

    model_config = ConfigDict(title="ao.config.yaml")

    port: int | None = Field(None, ge=1, le=65535, description="Port of ao's web server (ao start).")
    defaults: Defaults = Field(default_factory=Defaults, description="Plugins for projects that set none.")
    projects: dict[str, ProjectConfig] = Field(description="The projects, by key.")
    reactions: dict[str, ReactionConfig] = Field(
        default_factory=dict, description="Reaction rules for every project, by rule name."
    )
    notifiers: dict[str, PluginChoice] = Field(
        default_factory=dict, description="Named notifier instances: a notifier plugin key or {plugin, ...}."
    )
    notification_routing: dict[Priority, list[str]] = Field(
        default_factory=dict, description="Which notifiers get each priority: urgent, action, warning, info."
    )

    _source: Path | None = PrivateAttr(default=None)
    _name: str = PrivateAttr(default="")
    _sha256: str = PrivateAttr(default="")
    _warnings: list[ConfigProblem] = PrivateAttr(default_factory=list)
    _lines: dict[tuple, int] = PrivateAttr(default_factory=dict)

    @property
    def source(self) -> Path | None:
        """The file this config was loaded from (None unless made by config_load)."""
        return self._source

    @property
    def sha256(self) -> str:
        """The sha256 of the bytes loaded ("" unless made by config_load or config_load_text)."""
        return self._sha256

    @property
    def name(self) -> str:
        """The file name shown in problems (the path, or the uploaded file's name)."""
        return self._name

    @property
    def warnings(self) -> list[ConfigProblem]:
        """Keys ignored from an agent-orchestrator.yaml, and other non-fatal findings."""
        return list(self._warnings)

    def line_of(self, *path: str) -> int | None:
        """Line of a key path in the source file, e.g. line_of("projects", "web")."""
        return _line_for(self._lines, tuple(path))


# --- helpers ---------------------------------------------------------------------------------------
def _describe(value: Any) -> str:
    kind = {dict: "a mapping", list: "a list", type(None): "null", bool: "a boolean"}.get(type(value))
    if kind:
        return kind
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _relative_path_problem(value: str) -> str:
    if not value.strip():
        return "is empty"
    if "\x00" in value:
        return "contains a NUL byte"
    if value.startswith(("/", "~")) or os.path.isabs(value):
        return "must be a path relative to the project's checkout"
    if ".." in Path(value).parts:
        return "must not contain '..' (it must stay inside the project's checkout)"
    return ""


def _dotted(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_for(lines: dict[tuple, int], path: tuple) -> int | None:
    while True:
        if path in lines:
            return lines[path]
        if not path:
            return None
        path = path[:-1]


def session_prefix_for(key: str) -> str:
    """A session prefix derived from a project key, as agent-orchestrator derives it.

    Short keys as they are; kebab/snake-case keys by initials (agent-orchestrator -> ao); other
    keys by their first three characters (frontend -> fro); then made to match SESSION_PREFIX_RE.
    """
    key = key.lower()
    if len(key) <= 4:
        raw = key
    elif "-" in key or "_" in key:
        raw = "".join(word[0] for word in re.split(r"[-_]+", key) if word)
    else:
        raw = key[:3]
    raw = re.sub(r"[^a-z0-9]", "", raw)
    if not raw or not raw[0].isalpha():
        raw = "p" + raw
    return raw[:16]


def _project_defaults() -> dict[str, str]:
    return {slot: Project._meta.get_field(slot).default for slot in SLOTS}


# --- reading and parsing ----------------------------------------------------------------------------
class _Rejected(yaml.YAMLError):
    def __init__(self, mark: Any, message: str) -> None:
        super().__init__(message)
        self.problem_mark = mark
        self.message = message


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases (no YAML bombs) and deep nesting."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Rejected(
                event.start_mark,
                f"YAML aliases are not allowed (*{event.anchor}); write the value out in full",
            )
        if getattr(event, "anchor", None):
            raise _Rejected(
                event.start_mark,
                f"YAML anchors are not allowed (&{event.anchor}); write the value out in full",
            )
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                raise _Rejected(event.start_mark, f"nested more than {MAX_NESTING} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _read_bytes(path: Path, file: str) -> bytes:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise _problem_error(file, "file not found") from None
    except (OSError, ValueError) as exc:
        raise _problem_error(file, f"cannot read the file: {exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise _problem_error(file, "not a regular file")
    if info.st_size > MAX_CONFIG_BYTES:
        raise _problem_error(file, f"file is {info.st_size} bytes; the limit is {MAX_CONFIG_BYTES} (1 MiB)")
    try:
        with path.open("rb") as handle:
            return handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise _problem_error(file, f"cannot read the file: {exc}") from None


def _decode(raw: bytes, file: str) -> str:
    if len(raw) > MAX_CONFIG_BYTES:
        raise _problem_error(file, f"file is larger than the limit of {MAX_CONFIG_BYTES} bytes (1 MiB)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise _problem_error(
            file,
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); is this a binary file?",
            line=line,
        ) from None


def _parse(text: str, file: str) -> tuple[Any, dict[tuple, int], list[ConfigProblem]]:
    """YAML text -> (data, {key path: line}, problems such as duplicate keys)."""
    try:
        loader = _Loader(text)  # the reader rejects unprintable characters already here
        try:
            node = loader.get_single_node()
            if node is None:
                return None, {}, []
            lines: dict[tuple, int] = {}
            problems: list[ConfigProblem] = []
            _walk_nodes(node, (), lines, problems, file)
            data = loader.construct_document(node)
        finally:
            loader.dispose()
    except _Rejected as exc:
        raise _problem_error(file, exc.message, line=exc.problem_mark.line + 1) from None
    except yaml.MarkedYAMLError as exc:
        message = exc.problem or "invalid YAML"
        if exc.context:
            message = f"{message} ({exc.context})"
        mark = exc.problem_mark or exc.context_mark
        raise _problem_error(file, f"invalid YAML: {message}", line=mark.line + 1 if mark else None) from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise _problem_error(
            file, f"not a YAML text file: unacceptable character #x{exc.character:04x}", line=line
        ) from None
    except yaml.YAMLError as exc:
        raise _problem_error(file, f"invalid YAML: {exc}") from None
    return data, lines, problems


def _walk_nodes(node: Any, path: tuple, lines: dict, problems: list, file: str) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[tuple, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                problems.append(ConfigProblem(file, line, _dotted(path), "merge keys (<<) are not supported"))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(ConfigProblem(file, line, _dotted(path), "keys must be plain strings"))
                continue
            identity = (key_node.tag, key_node.value)
            child = (*path, str(key_node.value))
            if identity in seen:
                problems.append(
                    ConfigProblem(
                        file,
                        line,
                        _dotted(child),
                        f"duplicate key {key_node.value!r} (first defined at line {seen[identity]})",
                    )
                )
                continue
            seen[identity] = line
            lines[child] = line
            _walk_nodes(value_node, child, lines, problems, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            lines[child] = item.start_mark.line + 1
            _walk_nodes(item, child, lines, problems, file)


# --- validation ---------------------------------------------------------------------------------------
def _is_reference_file(path: Path) -> bool:
    return path.name.startswith("agent-orchestrator.")


class _Collector:
    def __init__(self, file: str, lines: dict[tuple, int]) -> None:
        self.file = file
        self.lines = lines
        self.problems: list[ConfigProblem] = []
        self.warnings: list[ConfigProblem] = []

    def add(self, path: tuple, message: str, *, warning: bool = False, line: int | None = None) -> None:
        problem = ConfigProblem(self.file, line or _line_for(self.lines, path), _dotted(path), message)
        target = self.warnings if warning else self.problems
        if problem not in target:
            target.append(problem)

    def add_validation_error(self, exc: ValidationError, data: Any, base: tuple = ()) -> None:
        grouped: dict[tuple, list[str]] = {}
        for error in exc.errors():
            path = base + _data_path(data, error["loc"], missing=error["type"] == "missing")
            messages = grouped.setdefault(path, [])
            message = _error_message(error)
            if message not in messages:
                messages.append(message)
        for path, messages in grouped.items():
            self.add(path, "; ".join(messages))

    def sorted(self, problems: list[ConfigProblem]) -> list[ConfigProblem]:
        return sorted(problems, key=lambda p: (p.line or 0, p.path))


def _data_path(data: Any, loc: tuple, *, missing: bool) -> tuple:
    """Turn a pydantic error location into a path through the data, dropping union/validator tags."""
    path: list = []
    current = data
    for index, part in enumerate(loc):
        if isinstance(current, dict) and part in current:
            path.append(str(part))
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            path.append(part)
            current = current[part]
        elif missing and index == len(loc) - 1:
            path.append(str(part))
    return tuple(path)


def _error_message(error: dict) -> str:
    if error["type"] == "missing":
        return "required key is missing"
    message = error["msg"]
    if message.startswith("Value error, "):
        return message[len("Value error, ") :]
    message = message[0].lower() + message[1:]
    if "input" in error:
        message += f", got {_describe(error['input'])}"
    return message


def _submodel(annotation: Any) -> tuple[str, type[BaseModel]] | None:
    """('model', M) for a field holding M, ('dict', M) for dict[str, M]; None otherwise."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _submodel(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        for arg in get_args(annotation):
            found = _submodel(arg)
            if found:
                return found
        return None
    if origin is dict:
        found = _submodel(get_args(annotation)[1])
        return ("dict", found[1]) if found and found[0] == "model" else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return ("model", annotation)
    return None


def _check_keys(model: type[BaseModel], data: Any, path: tuple, out: _Collector, *, lenient: bool) -> None:
    """Report (and drop) keys the model does not know: errors, or warnings in lenient mode."""
    if not isinstance(data, dict) or model.model_config.get("extra") != "forbid":
        return
    known = {(field.alias or name): field for name, field in model.model_fields.items()}
    for key in list(data):
        if key not in known:
            if lenient:
                message = f"ao does not use {key!r} from {REFERENCE_FILENAME}; ignored"
            else:
                message = f"unknown key {key!r}"
                close = difflib.get_close_matches(str(key), list(known), n=1)
                message += f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(known)}"
            out.add((*path, str(key)), message, warning=lenient)
            del data[key]
            continue
        sub = _submodel(known[key].annotation)
        if sub is None:
            continue
        kind, submodel = sub
        if kind == "model":
            _check_keys(submodel, data[key], (*path, str(key)), out, lenient=lenient)
        elif isinstance(data[key], dict):
            for name, value in data[key].items():
                _check_keys(submodel, value, (*path, str(key), str(name)), out, lenient=lenient)


_NOTIFIER: TypeAdapter = TypeAdapter(PluginChoice)
_ROUTING: TypeAdapter = TypeAdapter(dict[Priority, list[str]])


def _validate_piece(model: type[BaseModel], data: Any) -> Any:
    """Validate what can be: drop the keys that failed (already reported) and try again."""
    if not isinstance(data, dict):
        return None
    data = dict(data)
    for _attempt in range(3):
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            failed = {error["loc"][0] for error in exc.errors() if error["loc"]} & data.keys()
            if not failed:
                return None
            for key in failed:
                del data[key]
    return None


def _resolve_path(raw: str, base_dir: Path | None, where: tuple, out: _Collector) -> Path | None:
    if not raw.strip():
        out.add(where, "must not be empty")
        return None
    if "\x00" in raw:
        out.add(where, "not a valid path (it contains a NUL byte)")
        return None
    expanded = Path(os.path.expanduser(raw))
    if raw.startswith("~") and not expanded.is_absolute():
        out.add(where, f"{raw[:200]!r}: cannot expand '~' (unknown user?)")
        return None
    if base_dir is None and not expanded.is_absolute():
        out.add(
            where,
            f"{raw[:200]!r} is relative, and an uploaded file has no directory: write the absolute path "
            "on the server (the admin's export does)",
        )
        return None
    candidate = expanded if expanded.is_absolute() else base_dir / expanded
    shown_raw = repr(raw) if len(raw) <= 200 else repr(raw[:100] + "..." + raw[-20:])
    try:
        resolved = candidate.resolve()
        exists, is_dir = resolved.exists(), resolved.is_dir()
    except (OSError, RuntimeError) as exc:
        out.add(where, f"{shown_raw} is not a usable path: {getattr(exc, 'strerror', None) or exc}")
        return None
    shown = raw if str(resolved) == raw else f"{shown_raw} (resolved to {resolved})"
    if resolved == Path(resolved.anchor):
        out.add(where, f"{shown} is the filesystem root; give the project's own checkout")
        return None
    if not exists:
        out.add(where, f"{shown} does not exist")
        return None
    if not is_dir:
        out.add(where, f"{shown} is not a directory")
        return None
    return resolved


def _validate_plugin(
    out: _Collector,
    slot: str,
    spec: PluginSpec,
    where: tuple,
    setting_paths: dict[str, tuple] | None = None,
    settings_override: dict[str, Any] | None = None,
    note: str = "",
) -> PluginSpec | None:
    """Check the plugin key and its settings; return the spec with validated settings."""
    registry = registry_for(slot)
    settings_in = spec.settings if settings_override is None else settings_override
    if spec.plugin not in registry:
        choices = ", ".join(registry.keys()) or "(none registered)"
        out.add(where, f"unknown {slot} plugin {spec.plugin!r}; valid choices: {choices}{note}")
        return None
    try:
        validated = registry.validate_settings(spec.plugin, settings_in, where=_dotted(where))
    except ConfigurationError as exc:
        try:
            registry.get(spec.plugin).Config.model_validate(settings_in)
        except ValidationError as detail:
            for error in detail.errors():
                loc = tuple(str(part) for part in error["loc"])
                head = (setting_paths or {}).get(loc[0], (*where, loc[0])) if loc else where
                out.add((*head, *loc[1:]), f"{slot} plugin {spec.plugin!r}: {_error_message(error)}")
        else:
            out.add(where, str(exc).removeprefix(f"{_dotted(where)}: "))
        return None
    if isinstance(validated, BaseModel):
        normalized = validated.model_dump(mode="json", by_alias=True, exclude_unset=True)
    else:
        normalized = dict(settings_in or {})
    return PluginSpec.model_validate({**normalized, "plugin": spec.plugin})


def _resolve(
    config: AoConfig | None, data: dict, base_dir: Path | None, out: _Collector, *, reference: bool
) -> AoConfig | None:
    """Semantic checks (keys, paths, prefixes, plugins); returns the effective config."""
    if config is not None:
        defaults, projects = config.defaults, dict(config.projects)
        notifiers, routing = dict(config.notifiers), dict(config.notification_routing)
    else:  # something failed validation: check what did validate, so every problem is reported
        defaults = _validate_piece(Defaults, data.get("defaults", {})) or Defaults()
        raw_projects = data.get("projects") if isinstance(data.get("projects"), dict) else {}
        projects = {
            key: project
            for key, raw in raw_projects.items()
            if (project := _validate_piece(ProjectConfig, raw)) is not None
        }
        notifiers = {}
        raw_notifiers = data.get("notifiers") if isinstance(data.get("notifiers"), dict) else {}
        for name, raw in raw_notifiers.items():
            try:
                notifiers[name] = _NOTIFIER.validate_python(raw)
            except ValidationError:
                pass
        try:
            routing = _ROUTING.validate_python(data.get("notificationRouting", {}))
        except ValidationError:
            routing = {}

    if "projects" in data and isinstance(data["projects"], dict) and not data["projects"]:
        out.add(("projects",), "no projects defined; add at least one under projects:")

    builtin = _project_defaults()
    default_specs: dict[str, tuple[PluginSpec | None, tuple]] = {}
    for slot in SLOTS:
        spec = getattr(defaults, slot)
        checked = _validate_plugin(out, slot, spec, ("defaults", slot)) if spec is not None else None
        default_specs[slot] = (checked, ("defaults", slot)) if spec is not None else (None, ())

    resolved: dict[str, ProjectConfig] = {}
    prefixes: dict[str, str] = {}
    for key, project in projects.items():
        if not isinstance(key, str):
            continue
        where = ("projects", key)
        ok = True
        if not PROJECT_KEY_RE.match(key):
            out.add(
                where,
                f"project key {key!r} is not valid: use lowercase letters, digits, '-' or '_' "
                "(at most 63), starting with a letter or digit",
            )
            ok = False
        path = _resolve_path(project.path, base_dir, (*where, "path"), out)
        ok = ok and path is not None

        if project.session_prefix is not None:
            prefix = project.session_prefix
            if not SESSION_PREFIX_RE.match(prefix):
                out.add(
                    (*where, "sessionPrefix"),
                    f"{prefix!r} is not a valid session prefix: 1-16 lowercase letters or digits, "
                    "starting with a letter",
                )
                ok = False
        else:
            prefix = session_prefix_for(key)
        if prefix in prefixes:
            explicit = "" if project.session_prefix is not None else " (derived from the project key)"
            out.add(
                (*where, "sessionPrefix") if project.session_prefix is not None else where,
                f"session prefix {prefix!r}{explicit} is already used by project {prefixes[prefix]!r}; "
                "give each project its own sessionPrefix",
            )
            ok = False
        else:
            prefixes[prefix] = key

        slots: dict[str, PluginSpec] = {}
        for slot in SLOTS:
            spec = getattr(project, slot)
            spec_where = (*where, slot)
            note = ""
            if spec is None:
                default_spec, default_where = default_specs[slot]
                if default_where:
                    if default_spec is None:  # the default itself is wrong: reported once, there
                        ok = False
                        continue
                    spec, spec_where = default_spec, default_where
                else:
                    inferred = "github" if reference and slot in ("tracker", "scm") and project.repo else None
                    spec = PluginSpec(plugin=inferred or builtin[slot])
                    spec_where = where
                    note = f" (ao's default {slot}; choose one with {slot}: here or under defaults:)"
            settings_in = spec.settings
            setting_paths = {name: (*spec_where, name) for name in settings_in}
            if slot == "agent" and project.agent_config:
                for name in project.agent_config:
                    if name in settings_in:
                        out.add(
                            (*where, "agentConfig", name),
                            f"{name!r} is also set in {_dotted(spec_where)}; set it in one place",
                        )
                        ok = False
                    setting_paths[name] = (*where, "agentConfig", name)
                settings_in = {**settings_in, **project.agent_config}
            checked = _validate_plugin(out, slot, spec, spec_where, setting_paths, settings_in, note)
            if checked is None:
                ok = False
            else:
                slots[slot] = checked

        # the orchestrator's own agent (orchestrator issue): validated like the slots above
        orchestrator = project.orchestrator
        if orchestrator.agent is not None:
            checked = _validate_plugin(out, "agent", orchestrator.agent, (*where, "orchestrator", "agent"))
            ok = ok and checked is not None
            orchestrator = orchestrator.model_copy(update={"agent": checked})
        rules_file = orchestrator.rules_file
        if rules_file and path is not None and not (path / rules_file).is_file():
            out.add(
                (*where, "orchestrator", "rulesFile"), f"{rules_file!r} is not a file in {path}", warning=True
            )
        if project.agent_rules_file and path is not None and not (path / project.agent_rules_file).is_file():
            out.add(
                (*where, "agentRulesFile"),
                f"{project.agent_rules_file!r} is not a file in {path}",
                warning=True,
            )
        if ok:
            resolved[key] = project.model_copy(
                update={
                    "name": project.name or key,
                    "path": str(path),
                    "session_prefix": prefix,
                    **slots,
                    "orchestrator": orchestrator,
                }
            )

    known_notifiers: set[str] = set()
    notifier_registry = registry_for("notifier")
    checked_notifiers: dict[str, PluginSpec] = {}
    for name, spec in notifiers.items():
        checked = _validate_plugin(out, "notifier", spec, ("notifiers", name))
        known_notifiers.add(name)
        if checked is not None:
            checked_notifiers[name] = checked
    references = [(("defaults", "notifiers", i), name) for i, name in enumerate(defaults.notifiers)]
    for priority, names in routing.items():
        references += [(("notificationRouting", priority, i), name) for i, name in enumerate(names)]
    for where, name in references:
        if name not in known_notifiers and name not in notifier_registry:
            plugins = ", ".join(notifier_registry.keys()) or "(none registered)"
            out.add(
                where,
                f"unknown notifier {name!r}: define it under notifiers, or use a notifier plugin: {plugins}",
            )

    if config is None or out.problems:
        return None
    return config.model_copy(update={"projects": resolved, "notifiers": checked_notifiers})


# --- public API ------------------------------------------------------------------------------------
def config_load(path: Path | str) -> AoConfig:
    """Read, parse and validate a config file; raise ConfigError listing every problem.

    The result is the effective config: project paths resolved, session prefixes and plugins
    filled in from defaults, plugin settings validated by their plugins. Never touches the database.
    ``sha256`` is the digest of the bytes read (what ``ao start`` compares to decide whether the
    file changed since it was last applied).
    """
    path = Path(path)
    file = str(path)
    raw = _read_bytes(path, file)
    effective = _load(raw, file, path.resolve().parent, reference=_is_reference_file(path))
    effective._source = path.resolve()
    return effective


def config_load_text(raw: bytes | str, *, name: str) -> AoConfig:
    """Validate config text that is not a file on the server (an upload in the admin), exactly as
    ``config_load`` does, except that a relative project ``path`` is a problem (there is no file
    directory to resolve it from). ``name`` is shown in problems; ``source`` stays None."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    return _load(raw, name, None, reference=_is_reference_file(Path(name)))


def _load(raw: bytes, file: str, base_dir: Path | None, *, reference: bool) -> AoConfig:
    text = _decode(raw, file)
    data, lines, parse_problems = _parse(text, file)
    out = _Collector(file, lines)
    out.problems.extend(parse_problems)
    if data is None:
        raise _problem_error(file, "the file is empty; expected a mapping with a 'projects' key")
    if not isinstance(data, dict):
        raise _problem_error(
            file, f"the top level must be a mapping with a 'projects' key, not {_describe(data)}", line=1
        )
    _check_keys(AoConfig, data, (), out, lenient=reference)
    try:
        config: AoConfig | None = AoConfig.model_validate(data)
    except ValidationError as exc:
        out.add_validation_error(exc, data)
        config = None
    effective = _resolve(config, data, base_dir, out, reference=reference)
    if out.problems or effective is None:
        raise ConfigError(out.sorted(out.problems))
    effective._warnings = out.sorted(out.warnings)
    effective._lines = lines
    effective._sha256 = hashlib.sha256(raw).hexdigest()
    effective._name = file
    return effective


_discovered: ContextVar[tuple[Path | None] | None] = ContextVar("config_discovered", default=None)


@contextmanager
def discovery_pinned() -> Iterator[None]:
    """Within it, ``config_discover()`` (from the current directory) looks for the config file
    once: a sweep asked three times per session (for the top-level reactions), searching every
    directory upwards each time. The file's content is still read afresh by its callers when it
    changes (they compare its stat)."""
    try:
        found: tuple[Path | None] | None = (config_discover(),)
    except ConfigError:
        found = None  # said by each caller as before
    token = _discovered.set(found)
    try:
        yield
    finally:
        _discovered.reset(token)


def config_discover(start: Path | None = None) -> Path | None:
    """The config file to use: AO_CONFIG if set, else the nearest one from ``start`` upwards.

    ``start`` defaults to the current directory. Returns None when there is none; raises
    ConfigError when AO_CONFIG names something that does not exist.
    """
    pinned = _discovered.get() if start is None else None
    if pinned is not None:
        return pinned[0]
    named = getattr(settings, "AO_CONFIG", "") or os.environ.get("AO_CONFIG", "")
    if named:
        target = Path(os.path.expanduser(named)).absolute()
        if target.is_dir():
            found = _config_in(target)
            if found is None:
                raise _problem_error(
                    target,
                    f"AO_CONFIG names this directory, which holds none of {', '.join(CONFIG_FILENAMES)}",
                )
            return found
        if not target.exists():
            raise _problem_error(target, "AO_CONFIG names this file, which does not exist")
        return target
    here = Path(start if start is not None else Path.cwd()).absolute()
    for directory in (here, *here.parents):
        found = _config_in(directory)
        if found is not None:
            return found
    return None


def _config_in(directory: Path) -> Path | None:
    for name in CONFIG_FILENAMES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def config_json_schema() -> dict[str, Any]:
    """JSON Schema of ao.config.yaml, generated from the pydantic models and from the settings
    model (``Config``) of every plugin registered: ao's own and installed ones."""
    schema = AoConfig.model_json_schema(by_alias=True, mode="validation")
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
    schema["properties"]["projects"]["propertyNames"] = {"pattern": PROJECT_KEY_RE.pattern}
    defs = schema["$defs"]
    prefix = defs["ProjectConfig"]["properties"]["sessionPrefix"]
    for option in prefix.get("anyOf", [prefix]):
        if option.get("type") == "string":
            option["pattern"] = SESSION_PREFIX_RE.pattern
    _plugin_schemas(schema)
    return schema


# The config's plugin slots and the registry each one chooses from.
PLUGIN_SLOTS = (*SLOTS, "notifier")


def _def_name(slot: str, kind: str = "Plugin") -> str:
    return f"{slot.capitalize()}{kind}"


def plugin_settings_fields(slot: str, key: str) -> dict[str, tuple[str, ...]]:
    """{setting: the names it may be written as} for a plugin: its field names (or aliases);
    notifiers also take them camelCase (``webhookUrlEnv`` for ``webhook_url_env``)."""
    model = registry_for(slot).get(key).Config
    names = {}
    for name, field in model.model_fields.items():
        written = field.alias or name
        camel = to_camel(written) if issubclass(model, NotifierConfig) else written
        names[name] = (written, camel) if camel != written else (written,)
    return names


def _settings_schema(slot: str, key: str, defs: dict[str, Any]) -> tuple[dict[str, Any], list[Any], bool]:
    """The plugin's settings as (properties, required-clauses, whether other keys are refused);
    nested models go into ``defs``. A model JSON Schema cannot express (a third party's) takes
    any key here: the loader checks it all the same."""
    model = registry_for(slot).get(key).Config
    prefix = f"{slot}.{key}."
    try:
        raw = model.model_json_schema(
            by_alias=True, mode="validation", ref_template=f"#/$defs/{prefix}{{model}}"
        )
    except Exception:
        return {}, [], False
    for name, nested in raw.pop("$defs", {}).items():
        defs[prefix + name] = nested
    properties: dict[str, Any] = {}
    clauses: list[Any] = []
    names = plugin_settings_fields(slot, key)
    by_written = {written[0]: written for written in names.values()}
    for written, prop in raw.get("properties", {}).items():
        prop = {**prop, "title": written}
        forms = by_written.get(written, (written,))
        for form in forms:
            properties[form] = prop
        if len(forms) > 1:  # snake_case or camelCase, not both
            clauses.append({"not": {"required": list(forms)}})
    required = []
    for written in raw.get("required", []):
        forms = by_written.get(written, (written,))
        if len(forms) > 1:
            clauses.append({"anyOf": [{"required": [form]} for form in forms]})
        else:
            required.append(written)
    if required:
        clauses.append({"required": required})
    return properties, clauses, raw.get("additionalProperties") is False


def _plugin_schemas(schema: dict[str, Any]) -> None:
    """Replace the generic PluginSpec with one choice per slot: a key, or {plugin: key, ...} with
    exactly that plugin's settings; point agentConfig at the agent's settings."""
    defs = schema["$defs"]
    for slot in PLUGIN_SLOTS:
        registry = registry_for(slot)
        keys = registry.keys()
        plain: list[str] = []
        mappings = []
        for key in keys:
            properties, clauses, closed = _settings_schema(slot, key, defs)
            if slot == "agent":
                # agent settings may be split between agent: and agentConfig: the loader checks
                # the merged settings, so neither place alone requires a setting
                clauses = [c for c in clauses if "required" not in c and "anyOf" not in c]
                defs[f"{_def_name(slot, 'Settings')}.{key}"] = {
                    "type": "object",
                    "title": f"{key} settings",
                    "properties": properties,
                    "additionalProperties": not closed,
                    **({"allOf": clauses} if clauses else {}),
                }
            if slot == "agent" or not any("required" in c or "anyOf" in c for c in clauses):
                plain.append(key)
            mapping = {
                "type": "object",
                "title": f"{slot} {key}",
                "description": f"The {slot} plugin {key!r} with its settings (docs/CONFIG.md, Plugin settings).",
                "properties": {"plugin": {"const": key}, **properties},
                "required": ["plugin"],
                "additionalProperties": not closed,
                **({"allOf": clauses} if clauses else {}),
            }
            defs[f"{_def_name(slot)}.{key}"] = mapping
            mappings.append({"$ref": f"#/$defs/{_def_name(slot)}.{key}"})
        choices: list[Any] = []
        if plain:
            choices.append({"type": "string", "enum": plain, "description": f"Key of the {slot} plugin."})
        if mappings:
            choices.append(
                {
                    "type": "object",
                    "required": ["plugin"],
                    "properties": {"plugin": {"enum": keys}},
                    "oneOf": mappings,
                }
            )
        defs[_def_name(slot)] = {
            "title": f"{slot} plugin",
            "description": f"The {slot} plugin: its key, or a mapping with plugin and its settings.",
            "anyOf": choices or [{"type": "string", "enum": []}],
        }

    def point(prop: dict[str, Any], slot: str) -> None:
        ref = {"$ref": f"#/$defs/{_def_name(slot)}"}
        options = prop.get("anyOf")
        if options is None:
            prop.clear()
            prop.update(ref)
            return
        prop["anyOf"] = [ref] + [o for o in options if o.get("type") == "null"]

    for model in ("ProjectConfig", "Defaults"):
        for slot in SLOTS:
            point(defs[model]["properties"][slot], slot)
    point(defs["OrchestratorConfig"]["properties"]["agent"], "agent")
    schema["properties"]["notifiers"]["additionalProperties"] = {"$ref": f"#/$defs/{_def_name('notifier')}"}
    del defs["PluginSpec"]

    agent_keys = registry_for("agent").keys()
    project = defs["ProjectConfig"]
    agent_config = project["properties"]["agentConfig"]
    agent_config.pop("additionalProperties", None)
    agent_config["anyOf"] = [
        {"$ref": f"#/$defs/{_def_name('agent', 'Settings')}.{key}"} for key in agent_keys
    ]
    project["allOf"] = [
        {
            "if": {
                "required": ["agent"],
                "properties": {
                    "agent": {
                        "anyOf": [
                            {"const": key},
                            {
                                "type": "object",
                                "required": ["plugin"],
                                "properties": {"plugin": {"const": key}},
                            },
                        ]
                    }
                },
            },
            "then": {
                "properties": {"agentConfig": {"$ref": f"#/$defs/{_def_name('agent', 'Settings')}.{key}"}}
            },
        }
        for key in agent_keys
    ]


def config_json_schema_text() -> str:
    return json.dumps(config_json_schema(), indent=2, ensure_ascii=False) + "\n"


# --- plugin settings, for docs/CONFIG.md --------------------------------------------------------------
DOCS_DIR = Path(__file__).resolve().parent.parent / "docs"
PLUGIN_DOCS_BEGIN = "<!-- plugin settings: generated by `python -m sessions.config --update-docs` -->"
PLUGIN_DOCS_END = "<!-- end of plugin settings -->"


def _type_text(prop: dict[str, Any]) -> str:
    """A JSON Schema property as the type column of docs/CONFIG.md."""
    if "enum" in prop:
        return " \\| ".join(f"`{value}`" for value in prop["enum"])
    if "anyOf" in prop:
        options = [o for o in prop["anyOf"] if o.get("type") != "null"]
        if all("enum" in o for o in options):
            return _type_text({"enum": [value for o in options for value in o["enum"]]})
        return " or ".join(_type_text(o) for o in options)
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list of {_type_text(prop.get('items', {}))}s"
    bounds = []
    for word, sign in (
        ("minimum", "≥"),
        ("exclusiveMinimum", ">"),
        ("maximum", "≤"),
        ("exclusiveMaximum", "<"),
    ):
        if word in prop:
            bounds.append(
                f"{sign} {prop[word]:g}" if isinstance(prop[word], float) else f"{sign} {prop[word]}"
            )
    if "maxLength" in prop:
        bounds.append(f"at most {prop['maxLength']} characters")
    return f"{kind} ({', '.join(bounds)})" if bounds else kind


def _default_text(field: Any) -> str:
    if field.is_required():
        return "**required**"
    value = field.get_default(call_default_factory=True)
    if value is None or value == "":
        return "—"
    return f"`{value}`" if isinstance(value, str | Path) else f"`{_scalar(value)}`"


def config_plugin_docs() -> str:
    """The "Plugin settings" tables of docs/CONFIG.md: one per registered plugin, every setting."""
    schema = config_json_schema()["$defs"]
    out = [PLUGIN_DOCS_BEGIN, ""]
    for slot in PLUGIN_SLOTS:
        for key in registry_for(slot).keys():
            model = registry_for(slot).get(key).Config
            properties = schema[f"{_def_name(slot)}.{key}"]["properties"]
            out += [f"### {slot} `{key}`", ""]
            names = plugin_settings_fields(slot, key)
            if not names:
                out += ["No settings.", ""]
                continue
            out += ["| setting | type | default | meaning |", "| --- | --- | --- | --- |"]
            host_setting_names = host_settings(model)
            for name, forms in names.items():
                field = model.model_fields[name]
                prop = properties.get(forms[0], {})
                written = " / ".join(f"`{form}`" for form in forms)
                meaning = " ".join((field.description or "").split())
                meaning = meaning.replace("|", "\\|").replace("<", "\\<")
                if name in host_setting_names:
                    meaning += " *Host setting: superusers only.*"
                out.append(f"| {written} | {_type_text(prop)} | {_default_text(field)} | {meaning} |")
            out.append("")
    out.append(PLUGIN_DOCS_END)
    return "\n".join(out) + "\n"


def config_docs_update(docs: Path = DOCS_DIR) -> list[Path]:
    """Regenerate docs/ao.config.schema.json and the plugin tables of docs/CONFIG.md."""
    schema_file = docs / "ao.config.schema.json"
    schema_file.write_text(config_json_schema_text(), encoding="utf-8")
    guide = docs / "CONFIG.md"
    text = guide.read_text(encoding="utf-8")
    start, end = text.find(PLUGIN_DOCS_BEGIN), text.find(PLUGIN_DOCS_END)
    if start < 0 or end < start:
        raise ValueError(f"{guide} has no generated plugin settings section ({PLUGIN_DOCS_BEGIN})")
    text = text[:start] + config_plugin_docs() + text[end + len(PLUGIN_DOCS_END) + 1 :]
    guide.write_text(text, encoding="utf-8")
    return [schema_file, guide]


# --- ao init -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GitRemote:
    host: str
    owner: str
    name: str

    @property
    def repo(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def is_github(self) -> bool:
        """github.com, or a GitHub Enterprise host such as github.acme.com."""
        return (
            self.host == "github.com" or self.host.endswith(".github.com") or "github" in self.host.split(".")
        )


_SCP_RE = re.compile(r"^(?:[^@/:]+@)?(?P<host>[^/:]+):(?P<path>[^/].*)$")


def git_remote_parse(url: str) -> GitRemote | None:
    """owner/name and host from a git remote URL: https, ssh://, git://, or scp-like git@host:o/n.git.

    Credentials in the URL are dropped. None for local paths and paths that are not owner/name.
    """
    url = url.strip()
    if "://" in url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https", "ssh", "git", "git+ssh", "ssh+git"):
            return None
        host, path = (parts.hostname or ""), parts.path
    else:
        match = _SCP_RE.match(url)
        if not match or url.startswith(("/", ".")):
            return None
        host, path = match["host"], match["path"]
    segments = [s for s in path.strip("/").split("/") if s]
    if not host or len(segments) != 2:
        return None
    owner, name = segments[0], segments[1].removesuffix(".git")
    if not REPO_RE.match(f"{owner}/{name}"):
        return None
    return GitRemote(host=host.lower(), owner=owner, name=name)


def _git(repo: Path, *args: str) -> str | None:
    git = shutil.which("git")
    if git is None:
        raise _problem_error(repo, "git is not installed (not found on PATH)")
    try:
        done = subprocess.run(
            [git, "-C", str(repo), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"},
        )
    except subprocess.TimeoutExpired:
        raise _problem_error(repo, f"git {' '.join(args)} took longer than {GIT_TIMEOUT:.0f}s") from None
    return done.stdout.strip() if done.returncode == 0 else None


# The test command `ao init` proposes as the local SCM's check_command, looked for in this order:
# a Makefile's test target (the project's own entry point, often wrapping more than one tool), a
# package.json test script, then pytest (its config, a dependency on it, or a tests directory).
_MAKEFILES = ("GNUmakefile", "makefile", "Makefile")  # make's own order
_MAKE_TEST_RE = re.compile(r"^(?:[\w.%/-]+[ \t]+)*test(?:[ \t]+[\w.%/-]+)*[ \t]*::?(?!=)", re.MULTILINE)
_NPM_NO_TEST = "no test specified"  # npm init's placeholder script, which always fails
_PYTEST_MARKS = (
    ("pytest.ini", None),
    ("pyproject.toml", re.compile(r"\bpytest\b")),
    ("setup.cfg", re.compile(r"^\[tool:pytest\]", re.MULTILINE)),
    ("tox.ini", re.compile(r"^\[pytest\]", re.MULTILINE)),
    ("conftest.py", None),
)
_MAX_PROBE_BYTES = 1024 * 1024


def _probe_text(path: Path) -> str | None:
    try:
        if not path.is_file() or path.stat().st_size > _MAX_PROBE_BYTES:
            return None
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _has_python_tests(root: Path) -> bool:
    for name in ("tests", "test"):
        directory = root / name
        if directory.is_dir() and not directory.is_symlink():
            for count, found in enumerate(directory.rglob("*.py")):
                if found.name.startswith("test_") or found.name.endswith("_test.py"):
                    return True
                if count > 2000:
                    break
    return False


def check_command_detect(root: Path) -> tuple[tuple[str, ...], str] | None:
    """The test command of the repository at ``root`` and where it was found, or None."""
    for name in _MAKEFILES:
        text = _probe_text(root / name)
        if text is not None:
            if _MAKE_TEST_RE.search(text):
                return ("make", "test"), f"the test target of {name}"
            break  # make reads only the first of these it finds
    text = _probe_text(root / "package.json")
    if text is not None:
        try:
            scripts = json.loads(text).get("scripts")
        except (ValueError, AttributeError):
            scripts = None
        script = scripts.get("test") if isinstance(scripts, dict) else None
        if isinstance(script, str) and script.strip() and _NPM_NO_TEST not in script:
            runner = (
                "pnpm"
                if (root / "pnpm-lock.yaml").is_file()
                else "yarn"
                if (root / "yarn.lock").is_file()
                else "npm"
            )
            return (runner, "test"), "the test script of package.json"
    for name, pattern in _PYTEST_MARKS:
        text = _probe_text(root / name)
        if text is not None and (pattern is None or pattern.search(text)):
            return ("pytest",), f"pytest ({name})"
    if _has_python_tests(root):
        return ("pytest",), "pytest (a tests directory)"
    return None


@dataclass(frozen=True)
class RepoFacts:
    root: Path
    remote: GitRemote | None
    default_branch: str
    agents_found: tuple[str, ...]  # agent plugin keys whose CLI is on PATH
    check: tuple[tuple[str, ...], str] | None = None  # (test command, where it was found)

    @property
    def agent(self) -> str:
        return self.agents_found[0] if self.agents_found else DEFAULT_AGENT


def repo_inspect(*, repo: Path) -> RepoFacts:
    """What `ao init` learns from a repository: remote, default branch, agent CLIs on PATH."""
    repo = Path(repo).expanduser().absolute()
    if not repo.is_dir():
        raise _problem_error(repo, "not a directory")
    top = _git(repo, "rev-parse", "--show-toplevel")
    if not top:
        raise _problem_error(repo, "not inside a git repository (run `git init` first)")
    root = Path(top)
    url = _git(root, "remote", "get-url", "origin")
    remote = git_remote_parse(url) if url else None
    branch = _git(root, "symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD")
    if branch and "/" in branch:
        branch = branch.split("/", 1)[1]
    else:
        branch = _git(root, "symbolic-ref", "--quiet", "--short", "HEAD")
    if not branch or _BRANCH_BAD.search(branch):
        branch = "main"
    found = tuple(key for binary, key in AGENT_CLIS if shutil.which(binary))
    return RepoFacts(
        root=root, remote=remote, default_branch=branch, agents_found=found, check=check_command_detect(root)
    )


def project_key_for(name: str) -> str:
    """A valid project key (PROJECT_KEY_RE) from a directory or repository name."""
    key = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")
    return key[:63].rstrip("-_") or "project"


def _scalar(value: Any) -> str:
    return (
        yaml.safe_dump(value, default_flow_style=True, width=10_000).removesuffix("\n").removesuffix("\n...")
    )


def config_init_text(*, repo: Path) -> str:
    """The ao.config.yaml `ao init` would write for ``repo``."""
    return _init_text(repo_inspect(repo=repo))


def _init_text(facts: RepoFacts) -> str:
    key = project_key_for(facts.remote.name if facts.remote else facts.root.name)
    hosted = facts.remote is not None and facts.remote.is_github
    found = ", ".join(binary for binary, k in AGENT_CLIS if k in facts.agents_found) or "none"
    lines = [
        "# ao configuration, written by `ao init`. Every key: docs/CONFIG.md.",
        "# Key names are those of agent-orchestrator.yaml, so either file works.",
        "",
        "projects:",
        f"  {key}:",
        f"    name: {_scalar(facts.remote.name if facts.remote else facts.root.name)}",
    ]
    if facts.remote is not None:
        lines.append(f"    repo: {_scalar(facts.remote.repo)}")
    lines += [
        "    path: .  # relative to this file",
        f"    defaultBranch: {_scalar(facts.default_branch)}",
        f"    sessionPrefix: {session_prefix_for(key)}",
        f"    agent: {_scalar(facts.agent)}  # agent CLIs found on PATH: {found}",
        "    runtime: tmux",
        "    workspace: worktree",
    ]
    enterprise = hosted and facts.remote is not None and facts.remote.host != "github.com"
    if enterprise:  # GitHub Enterprise Server: its API, not api.github.com, knows its repositories
        api = f"https://{facts.remote.host}/api/v3"
        for slot in ("tracker", "scm"):
            lines += [f"    {slot}:", "      plugin: github", f"      base_url: {_scalar(api)}"]
    elif hosted:
        lines += ["    tracker: github", "    scm: github"]
    else:
        lines.append("    tracker: local")
        lines += ["    scm:", "      plugin: local"]
        if facts.check is not None:
            command, source = facts.check
            lines += [
                "      # Local CI: ao runs check_command on every pushed PR head, in a fresh clone, and",
                f"      # sends failures to the agent. Found: {source}.",
                f"      check_command: {_scalar(list(command))}",
            ]
        else:
            lines += [
                "      # No test command found. Set check_command and ao runs it on every pushed PR head",
                "      # (local CI, in a fresh clone) and sends failures to the agent. Without one no check",
                "      # runs and no PR counts as green (for a project without tests, set the project's",
                "      # reactions: {approved-and-green: {requiredChecks: []}}).",
                "      # check_command: [pytest, -q]",
            ]
    if enterprise:
        lines.append(f"    # GitHub Enterprise host: {facts.remote.host}")
    lines += [
        "    # maxSessions: 4",
        "    # agentRules: |",
        "    #   Run the tests before pushing.",
        "",
    ]
    return "\n".join(lines)


def config_init(*, repo: Path, force: bool = False) -> Path:
    """Write ao.config.yaml at the root of the git repository ``repo``; return its path.

    Refuses to replace an existing file unless ``force``. Raises ConfigError.
    """
    facts = repo_inspect(repo=repo)
    text, root = _init_text(facts), facts.root
    target = root / CONFIG_FILENAME
    if target.exists() and not force:
        raise _problem_error(target, "already exists; use --force to replace it")
    fd, temp = tempfile.mkstemp(prefix=".ao.config.", suffix=".yaml", dir=root)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        if force:
            os.replace(temp, target)
        else:
            os.link(temp, target)  # fails if the file appeared meanwhile: never overwrite silently
    except FileExistsError:
        raise _problem_error(target, "already exists; use --force to replace it") from None
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return target


# --- command line ---------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sessions.config", description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--schema", action="store_true", help="print the JSON Schema of ao.config.yaml")
    group.add_argument("--check", metavar="FILE", type=Path, help="validate a config file")
    group.add_argument(
        "--update-docs",
        action="store_true",
        help="regenerate docs/ao.config.schema.json and the plugin settings tables of docs/CONFIG.md",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ao_site.settings")
    import django

    django.setup()
    if args.schema:
        sys.stdout.write(config_json_schema_text())
        return 0
    if args.update_docs:
        for written in config_docs_update():
            print(f"wrote {written}")
        return 0
    try:
        config = config_load(args.check)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{args.check}: OK ({len(config.projects)} projects)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
