"""What ``ao.config.yaml`` may say: its pydantic models (strict; the key names are those of
agent-orchestrator.yaml, camelCase, so a team can rename that file), and the limits and patterns
it is checked against.

The config package: ``discovery`` finds the file, ``loading`` reads it, ``problems`` says what is
wrong in one (``ConfigProblem``, ``ConfigError``), ``validation`` checks it against these
models and the plugins' settings, ``export`` generates its JSON Schema and the settings tables of
docs/CONFIG.md, ``init`` writes a first one (``ao init``), ``command`` is ``python -m sessions.core.config``.
Writing the projects to the database is ``sessions.core.services.config_apply``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    WithJsonSchema,
    field_validator,
)
from pydantic.alias_generators import to_camel

from integrations.credentials import SECRET_NAME_RE
from integrations.gitutil import BranchNameError, validate_branch_name
from sessions.core.config.problems import ConfigProblem
from sessions.models import REPO_RE, Project

MAX_CONFIG_BYTES = 1024 * 1024
MAX_NESTING = 64
SLOTS = ("agent", "runtime", "workspace", "tracker", "scm")
PRIORITIES = ("urgent", "action", "warning", "info")
# Beat looks for due projects every this many seconds at most (ao_site.celery.sweep_tick): a
# project's sweepInterval below it could not be honoured, so it is refused, not raised silently.
MIN_SWEEP_INTERVAL = 5
DURATION_RE = re.compile(r"^[0-9]{1,9}(ms|s|m|h|d)$")
# A git branch name, minus what git check-ref-format rejects anyway.
_ENV_VARIABLE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
BRANCH_BAD = re.compile(r"(^[-/.])|([/.]$)|(\.\.)|(@\{)|(//)|([\x00-\x20\x7f~^:?*\[\\])|(\.lock$)|(^@$)")


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
        f"expected a plugin key (e.g. claude-code) or a mapping with a 'plugin' key, got {describe_value(value)}"
    )


PluginChoice = Annotated[
    PluginSpec,
    BeforeValidator(_plugin_spec_from, json_schema_input_type=Union[str, PluginSpec]),  # noqa: UP007
]


def _count_or_duration(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"expected a count (e.g. 2) or a duration (e.g. 30m), got {describe_value(value)}")
    if isinstance(value, int) and value < 0:
        raise ValueError("must not be negative")
    if isinstance(value, str) and not DURATION_RE.match(value):
        raise ValueError(f"{value!r} is not a duration: use a number and a unit ms, s, m, h or d, e.g. 30m")
    return value


def _duration(value: Any) -> Any:
    if not isinstance(value, str) or not DURATION_RE.match(value):
        raise ValueError(
            f"expected a duration such as 10m (units ms, s, m, h, d), got {describe_value(value)}"
        )
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
        if value is not None and not REPO_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not owner/name (e.g. acme/web)")
        return value

    @field_validator("default_branch")
    @classmethod
    def _branch_is_sane(cls, value: str) -> str:
        if not value or len(value) > 255 or BRANCH_BAD.search(value):
            raise ValueError(f"{value!r} is not a valid branch name")
        try:  # what the Project model accepts (git passes it to git as a revision)
            validate_branch_name(value)
        except BranchNameError as exc:
            raise ValueError(str(exc)) from None
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
        return line_for(self._lines, tuple(path))


# --- helpers ---------------------------------------------------------------------------------------
def describe_value(value: Any) -> str:
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


def dotted_path(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def line_for(lines: dict[tuple, int], path: tuple) -> int | None:
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


def project_defaults() -> dict[str, str]:
    fields = {field.name: field for field in Project._meta.concrete_fields}
    return {slot: fields[slot].default for slot in SLOTS}


def yaml_scalar(value: Any) -> str:
    return (
        yaml.safe_dump(value, default_flow_style=True, width=10_000).removesuffix("\n").removesuffix("\n...")
    )
