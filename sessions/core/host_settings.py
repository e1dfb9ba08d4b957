"""Settings that act on the ao host: only a superuser may change them.

A project's settings can name a program ao runs (an agent's ``binary`` or the custom agent's
``command``), arguments it passes (``extra_args``), a command it runs on every push (the local
SCM's ``check_command``), hooks (``postCreate``), a place on the host it runs in, reads or writes
(``path``, an agent's ``home``, the local SCM's ``remote``) or how freely an agent runs commands
(``permissions``, claude-code's ``allow``). Whoever changes one runs code as ao's user, so a project
admin who is not a superuser may not, in the admin or anywhere else that edits settings.

The one definition lives here and in the plugins' own settings models: a plugin declares such a
setting with ``integrations.base.HostSetting`` (an undeclared setting whose name looks like one
counts too, so a third-party plugin fails closed); the Project fields are ``PROJECT_HOST_FIELDS``.
``host_setting_changes`` names what a proposed change touches; ``host_settings_guard`` refuses it
for anyone but a superuser. The CLI (``ao config apply``, ``ao start``) is a host operation: whoever
runs it already runs code as ao's user.

The same guard keeps the settings that route ao's credentials superusers' only
(``CREDENTIAL_FIELDS``, ``CREDENTIAL_SLOTS``): the repository ao's SCM and tracker tokens read and
write (``repo``: the GitHub plugins fall back on it), and the SCM and tracker plugins and their
settings (which server, which variable or secret). Whoever changes one makes ao's token read or
write somewhere else for every member of the project.

Settings that do not validate say nothing about what would run: proposed ones count as a change
to every host setting of their plugin; stored ones as the plugin's defaults (a plugin is never
created from settings that do not validate, so nothing ran with them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from integrations.base import host_settings
from integrations.registry import ConfigurationError, registry_for

# Project fields that run something on the host, or name a place there ao reads, runs in or
# hands to agents (the config file's own path; tokens handed to agents).
PROJECT_HOST_FIELDS = (
    "path",
    "config_source",
    "agent_rules_file",
    "orchestrator_rules_file",
    "symlinks",
    "post_create",
    "pass_tokens_to_agents",
    "agent_secrets",  # hands stored secrets to agents
)
SLOTS = ("agent", "runtime", "workspace", "tracker", "scm")
# Project fields that choose where ao's credentials go: the repository ao's tokens read and write,
# the plugins that hold the tokens. The settings of CREDENTIAL_SLOTS count as a whole.
CREDENTIAL_FIELDS = ("repo", "scm", "tracker")
CREDENTIAL_SLOTS = ("scm", "tracker")
# What decides the plugin settings: the slot keys, the settings per slot, the orchestrator's agent.
STATE_FIELDS = (*SLOTS, "repo", "plugin_settings", "orchestrator_agent", "orchestrator_agent_settings")


class HostSettingRefused(PermissionError):
    """A change to a host setting, or to where credentials go, by someone who is not a superuser;
    names the settings."""

    def __init__(self, changes: Iterable[str]) -> None:
        self.changes = tuple(changes)
        host = [c for c in self.changes if not is_credential_change(c)]
        routing = [_credential_label(c) for c in self.changes if is_credential_change(c)]
        reasons = []
        if host:
            reasons.append(
                f"only a superuser may change {', '.join(host)}: these settings run programs or name "
                "places on the ao host"
            )
        if routing:
            reasons.append(
                f"only a superuser may change {' and '.join(routing)}: they say which credentials ao "
                "uses and where it sends them"
            )
        super().__init__("; ".join(reasons))


def is_credential_change(change: str) -> bool:
    """Whether a change ``host_setting_changes`` names routes credentials (not a host setting)."""
    return change in CREDENTIAL_FIELDS or change in {f"plugin_settings.{s}" for s in CREDENTIAL_SLOTS}


def _credential_label(change: str) -> str:
    if change.startswith("plugin_settings."):
        return f"the {change.removeprefix('plugin_settings.')} settings"
    return {"repo": "the repository (repo)"}.get(change, f"the {change} plugin")


def project_state(project: Any) -> dict[str, Any]:
    """The fields of a Project (or a mapping of them) that ``host_setting_changes`` compares."""
    if isinstance(project, Mapping):
        return {name: project.get(name) for name in (*STATE_FIELDS, *PROJECT_HOST_FIELDS)}
    return {name: getattr(project, name, None) for name in (*STATE_FIELDS, *PROJECT_HOST_FIELDS)}


def _host_values(slot: str, plugin: str, settings: Any) -> dict | None:
    """{setting: value} of the host settings of ``plugin``'s ``settings``; None when they do not
    validate. Unknown plugins: their raw settings."""
    try:
        cls = registry_for(slot).get(plugin)
    except ConfigurationError:
        return {"(settings of an unknown plugin)": settings or {}}
    names = host_settings(cls.Config)
    try:
        dumped = cls.Config.model_validate(settings or {}).model_dump(mode="json")
    except ValidationError:
        return None
    return {name: dumped.get(name) for name in names}


def _host_names(slot: str, plugin: str) -> tuple[str, ...]:
    """The host settings ``plugin``'s settings could set (all of them for an unknown plugin)."""
    try:
        cls = registry_for(slot).get(plugin)
    except ConfigurationError:
        return ("(settings of an unknown plugin)",)
    return host_settings(cls.Config)


def _defaults(slot: str, plugin: str) -> dict[str, Any]:
    """``plugin``'s default settings, as the validated settings are dumped (JSON values)."""
    try:
        config = registry_for(slot).get(plugin).Config
    except ConfigurationError:
        return {}
    try:
        return config.model_validate({}).model_dump(mode="json")
    except ValidationError:  # a plugin with required settings: the defaults of the others
        return {
            name: info.get_default(call_default_factory=True) for name, info in config.model_fields.items()
        }


def _slot_changes(where: str, slot: str, before: tuple[str, Any], after: tuple[str, Any]) -> list[str]:
    """The host settings of the proposed plugin whose values differ from what runs now. A host
    setting the proposed plugin does not have (another plugin's) no longer runs anything; one the
    current plugin does not have compares with the proposed plugin's default.

    Proposed settings that do not validate change every host setting of their plugin: what they
    would run is unknown, and refusing them only because they do not validate would let the next
    change (the same settings, valid) be compared with them. Stored settings that do not validate
    compare as the plugin's defaults, never as what was written: nothing ran with them."""
    if before == after:
        return []  # the same plugin with the same settings: nothing changes
    after_values = _host_values(slot, *after)
    if after_values is None:
        return [f"{where}.{name}" for name in _host_names(slot, after[0])]
    before_values = _host_values(slot, *before) or {}
    defaults = _defaults(slot, after[0])
    return [
        f"{where}.{name}"
        for name, value in after_values.items()
        if before_values.get(name, defaults.get(name)) != value
    ]


def host_setting_changes(*, before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[str]:
    """The host settings, and the settings routing credentials (``credential_changes``), that differ
    between two project states (``project_state``); ``before`` None for a new project (compared with
    a project of the same plugins, no repository and no settings)."""
    after = project_state(after)
    if before is None:
        before = {**after, "plugin_settings": {}, "orchestrator_agent_settings": {}}
        before.update(dict.fromkeys(PROJECT_HOST_FIELDS))
        before["repo"] = ""  # a new project's repository is a change like any other
    else:
        before = project_state(before)
    changes = []
    for field in PROJECT_HOST_FIELDS:
        if (before.get(field) or None) != (after.get(field) or None):
            changes.append(field)
    old_settings = before.get("plugin_settings") or {}
    new_settings = after.get("plugin_settings") or {}
    for slot in SLOTS:
        old_key, new_key = before.get(slot) or "", after.get(slot) or ""
        if not new_key:
            continue
        changes += _slot_changes(
            f"plugin_settings.{slot}",
            slot,
            # settings stored without a plugin ran nothing: the plugin's defaults ran
            (old_key, _as_dict(old_settings, slot)) if old_key else (new_key, {}),
            (new_key, _as_dict(new_settings, slot)),
        )
    old_orch = before.get("orchestrator_agent") or ""
    new_orch = after.get("orchestrator_agent") or ""
    if new_orch:
        # What ran before: the orchestrator's own agent, or (none chosen) the project's agent with
        # the project's agent settings; orchestrator settings stored without an agent ran nothing.
        if old_orch:
            ran = (old_orch, before.get("orchestrator_agent_settings") or {})
        else:
            ran = (before.get("agent") or new_orch, _as_dict(old_settings, "agent"))
        changes += _slot_changes(
            "orchestrator_agent_settings", "agent", ran, (new_orch, after.get("orchestrator_agent_settings"))
        )
    return changes + credential_changes(before, after)


def credential_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """The settings that route ao's credentials which differ between two project states: ``repo``,
    the SCM and tracker plugins, and their settings as a whole."""
    changes = [field for field in CREDENTIAL_FIELDS if (before.get(field) or "") != (after.get(field) or "")]
    old_settings = before.get("plugin_settings") or {}
    new_settings = after.get("plugin_settings") or {}
    for slot in CREDENTIAL_SLOTS:
        old = old_settings.get(slot) if isinstance(old_settings, Mapping) else old_settings
        new = new_settings.get(slot) if isinstance(new_settings, Mapping) else new_settings
        if (old or {}) != (new or {}):
            changes.append(f"plugin_settings.{slot}")
    return changes


def _as_dict(settings: Any, slot: str) -> Any:
    """The settings of ``slot``: what was written when it is not a mapping (it will not validate)."""
    return settings.get(slot) if isinstance(settings, Mapping) else settings


def settings_problems(
    state: Mapping[str, Any], *, key: str, only: Iterable[str] | None = None
) -> list[tuple[str, str]]:
    """(field, problem) for each plugin key and settings of a proposed project state that its plugin
    refuses: every slot's, and the orchestrator's agent's (``orchestrator_agent_settings``, which
    the orchestrator's agent is created from as any agent is). Orchestrator settings without an
    orchestrator agent are refused too: nothing reads them, until someone chooses an agent.
    ``only``: the plugin key fields to check (e.g. those a form lets the person change)."""
    problems: list[tuple[str, str]] = []
    plugin_settings = state.get("plugin_settings") or {}
    if not isinstance(plugin_settings, Mapping):
        return [("plugin_settings", "a mapping {slot: {setting: value}}")]
    unknown = sorted(set(plugin_settings) - set(SLOTS))
    if unknown:
        problems.append(
            ("plugin_settings", f"unknown slot(s) {', '.join(unknown)}; slots: {', '.join(SLOTS)}")
        )
    checks = [(slot, slot, "plugin_settings", state.get(slot), plugin_settings.get(slot)) for slot in SLOTS]
    checks.append(
        (
            "agent",
            "orchestrator_agent",
            "orchestrator_agent_settings",
            state.get("orchestrator_agent"),
            state.get("orchestrator_agent_settings"),
        )
    )
    for slot, key_field, settings_field, plugin, settings in checks:
        if only is not None and key_field not in only:
            continue
        if not plugin:
            if key_field == "orchestrator_agent" and settings:
                problems.append(
                    (
                        settings_field,
                        "settings of the orchestrator's own agent, which is not chosen: choose it (orchestrator "
                        "agent) or leave these empty (the orchestrator then runs the project's agent)",
                    )
                )
            continue
        if settings is not None and not isinstance(settings, Mapping):
            problems.append((settings_field, f"the {slot} settings: a mapping {{setting: value}}"))
            continue
        where = (
            f"projects.{key}.orchestrator.agent"
            if key_field == "orchestrator_agent"
            else f"projects.{key}.{slot}"
        )
        try:
            registry_for(slot).validate_settings(plugin, dict(settings or {}), where=where)
        except ConfigurationError as exc:
            problems.append((key_field if exc.choices else settings_field, str(exc)))
    return problems


def may_change_host_settings(user) -> bool:
    """Only a superuser; ``None`` is the host itself (the CLI)."""
    return user is None or bool(getattr(user, "is_active", False) and getattr(user, "is_superuser", False))


def host_settings_guard(*, user, before: Any, after: Mapping[str, Any]) -> list[str]:
    """Refuse (HostSettingRefused) a change to a host setting, or to where credentials go, by
    ``user`` unless they are a superuser (``None``: the host itself). ``before``: a Project, a
    mapping of its fields or None (a new project). Returns the settings the change touches."""
    changes = host_setting_changes(before=before, after=after)
    if changes and not may_change_host_settings(user):
        raise HostSettingRefused(changes)
    return changes
