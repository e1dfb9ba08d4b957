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
# What decides the plugin settings: the slot keys, the settings per slot, the orchestrator's agent.
STATE_FIELDS = (*SLOTS, "plugin_settings", "orchestrator_agent", "orchestrator_agent_settings")


class HostSettingRefused(PermissionError):
    """A change to a host setting by someone who is not a superuser; names the settings."""

    def __init__(self, changes: Iterable[str]) -> None:
        self.changes = tuple(changes)
        super().__init__(
            f"only a superuser may change {', '.join(self.changes)}: these settings run programs or name "
            "places on the ao host"
        )


def project_state(project: Any) -> dict[str, Any]:
    """The fields of a Project (or a mapping of them) that ``host_setting_changes`` compares."""
    if isinstance(project, Mapping):
        return {name: project.get(name) for name in (*STATE_FIELDS, *PROJECT_HOST_FIELDS)}
    return {name: getattr(project, name, None) for name in (*STATE_FIELDS, *PROJECT_HOST_FIELDS)}


def _host_values(slot: str, plugin: str, settings: Any) -> dict | None:
    """{setting: value} of the host settings of ``plugin``'s ``settings``; None when they do not
    validate (the change is refused by validation already). Unknown plugins: their raw settings."""
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


def _defaults(slot: str, plugin: str) -> dict[str, Any]:
    try:
        fields = registry_for(slot).get(plugin).Config.model_fields
    except ConfigurationError:
        return {}
    return {name: info.get_default(call_default_factory=True) for name, info in fields.items()}


def _slot_changes(where: str, slot: str, before: tuple[str, Any], after: tuple[str, Any]) -> list[str]:
    """The host settings of the proposed plugin whose values differ from what runs now. A host
    setting the proposed plugin does not have (another plugin's) no longer runs anything; one the
    current plugin does not have compares with the proposed plugin's default."""
    after_values = _host_values(slot, *after)
    if after_values is None:
        return []  # invalid settings: refused by validation, whoever proposes them
    before_values = _host_values(slot, *before)
    if before_values is None:  # stored settings that no longer validate: compare what was written
        raw = before[1] if isinstance(before[1], Mapping) else {}
        before_values = {name: raw[name] for name in after_values if name in raw}
    defaults = _defaults(slot, after[0])
    return [
        f"{where}.{name}"
        for name, value in after_values.items()
        if before_values.get(name, defaults.get(name)) != value
    ]


def host_setting_changes(*, before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[str]:
    """The host settings that differ between two project states (``project_state``); ``before``
    None for a new project (compared with a project of the same plugins and no settings)."""
    after = project_state(after)
    if before is None:
        before = {**after, "plugin_settings": {}, "orchestrator_agent_settings": {}}
        before.update(dict.fromkeys(PROJECT_HOST_FIELDS))
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
            (old_key or new_key, _as_dict(old_settings, slot)),
            (new_key, _as_dict(new_settings, slot)),
        )
    old_orch = before.get("orchestrator_agent") or ""
    new_orch = after.get("orchestrator_agent") or ""
    if new_orch:
        changes += _slot_changes(
            "orchestrator_agent_settings",
            "agent",
            (old_orch or new_orch, before.get("orchestrator_agent_settings") or {}),
            (new_orch, after.get("orchestrator_agent_settings") or {}),
        )
    return changes


def _as_dict(settings: Any, slot: str) -> dict:
    value = settings.get(slot) if isinstance(settings, Mapping) else None
    return value if isinstance(value, dict) else {}


def may_change_host_settings(user) -> bool:
    """Only a superuser; ``None`` is the host itself (the CLI)."""
    return user is None or bool(getattr(user, "is_active", False) and getattr(user, "is_superuser", False))


def host_settings_guard(*, user, before: Any, after: Mapping[str, Any]) -> list[str]:
    """Refuse (HostSettingRefused) a change to a host setting by ``user`` unless they are a
    superuser (``None``: the host itself). ``before``: a Project, a mapping of its fields or None
    (a new project). Returns the host settings the change touches."""
    changes = host_setting_changes(before=before, after=after)
    if changes and not may_change_host_settings(user):
        raise HostSettingRefused(changes)
    return changes
