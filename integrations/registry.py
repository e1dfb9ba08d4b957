"""One registry per plugin slot, keyed by the names users write in config.

ao's own plugins register when their module is imported (``load_builtin_plugins``); third-party
packages declare an entry point in the ``ao.plugins`` group whose target is a module (imported
for its registrations) or a plugin class (registered under the entry point's name).

Both are loaded at the first look in any registry (``load_plugins``), not while Django sets up: a
command that uses no plugin (``ao status``, ``ao session ls``) does not import them (GitHub's
client, tmux, the notifiers' mail and HTTP code) nor scan the installed packages' entry points.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, Generic, Literal, TypeVar, overload

from pydantic import ValidationError

from integrations.base import (
    SCM,
    SLOT_INTERFACES,
    Agent,
    Notifier,
    Plugin,
    Runtime,
    Terminal,
    Tracker,
    Workspace,
)

log = logging.getLogger(__name__)

P = TypeVar("P", bound=Plugin)

ENTRY_POINT_GROUP = "ao.plugins"


class ConfigurationError(Exception):
    """A configuration problem a person must fix. The message names where and how."""

    def __init__(self, message: str, *, path: str = "", choices: Iterable[str] = ()) -> None:
        self.path = path
        self.choices = tuple(choices)
        super().__init__(message)


class Registry(Generic[P]):
    def __init__(self, slot: str) -> None:
        self.slot = slot
        self._registered: dict[str, type[P]] = {}

    @property
    def _plugins(self) -> dict[str, type[P]]:
        """The registered plugins, once ao's own and the third-party ones are loaded."""
        load_plugins()
        return self._registered

    @_plugins.setter
    def _plugins(self, plugins: dict[str, type[P]]) -> None:
        self._registered = plugins

    def register(self, key: str) -> Callable[[type[P]], type[P]]:
        def decorator(cls: type[P]) -> type[P]:
            self.add(key, cls)
            return cls

        return decorator

    def add(self, key: str, cls: type[P]) -> None:
        interface = SLOT_INTERFACES[self.slot]
        if not (isinstance(cls, type) and issubclass(cls, interface)):
            raise TypeError(f"{cls!r} is not a {interface.__name__} plugin")
        existing = self._registered.get(key)  # not loading the others: this may be one of them registering
        if existing is not None and existing is not cls:
            raise ValueError(f"{self.slot} plugin {key!r} is already registered by {existing.__module__}")
        cls.key = key
        self._registered[key] = cls

    def keys(self) -> list[str]:
        return sorted(self._plugins)

    def __contains__(self, key: object) -> bool:
        return key in self._plugins

    def get(self, key: str, *, where: str = "") -> type[P]:
        try:
            return self._plugins[key]
        except KeyError:
            location = f"{where}: " if where else ""
            raise ConfigurationError(
                f"{location}unknown {self.slot} plugin {key!r}; valid choices: {', '.join(self.keys()) or '(none)'}",
                path=where,
                choices=self.keys(),
            ) from None

    def validate_settings(self, key: str, settings: dict[str, Any] | None, *, where: str = "") -> Any:
        """Validate ``settings`` against the plugin's Config model; raise ConfigurationError."""
        cls = self.get(key, where=where)
        try:
            return cls.Config.model_validate(settings or {})
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                loc = ".".join(str(part) for part in error["loc"])
                full = ".".join(part for part in (where, loc) if part)
                problems.append(f"{full}: {error['msg']}")
            raise ConfigurationError(
                f"invalid settings for {self.slot} plugin {key!r}: " + "; ".join(problems), path=where
            ) from None

    def create(
        self, key: str, settings: dict[str, Any] | None = None, *, where: str = "", project: Any = None
    ) -> P:
        config = self.validate_settings(key, settings, where=where)
        return self.get(key, where=where)(config, project=project)


runtimes: Registry = Registry("runtime")
agents: Registry = Registry("agent")
workspaces: Registry = Registry("workspace")
trackers: Registry = Registry("tracker")
scms: Registry = Registry("scm")
notifiers: Registry = Registry("notifier")
terminals: Registry = Registry("terminal")

REGISTRIES: dict[str, Registry] = {
    r.slot: r for r in (runtimes, agents, workspaces, trackers, scms, notifiers, terminals)
}

# Modules holding ao's own plugins; each registers its classes on import.
BUILTIN_PLUGIN_MODULES: list[str] = [
    "integrations.agent.claude_code",
    "integrations.agent.codex",
    "integrations.agent.aider",
    "integrations.agent.opencode",
    "integrations.agent.gemini",
    "integrations.agent.custom",
    "integrations.runtime.tmux",
    "integrations.runtime.process",
    "integrations.workspace.worktree",
    "integrations.workspace.clone",
    "integrations.tracker.local",
    "integrations.tracker.linear",
    "integrations.scm.local",
    "integrations.scm.github",
    "integrations.tracker.github",
    "integrations.notifier.desktop",
    "integrations.notifier.slack",
    "integrations.notifier.discord",
    "integrations.notifier.webhook",
    "integrations.notifier.email",
    "integrations.notifier.inapp",
]


# The registry of a slot holds only subclasses of its interface (Registry.add checks), so a
# slot named literally gives its interface's type.
@overload
def plugin_for(project: Any, slot: Literal["scm"]) -> SCM: ...
@overload
def plugin_for(project: Any, slot: Literal["tracker"]) -> Tracker: ...
@overload
def plugin_for(project: Any, slot: Literal["agent"]) -> Agent: ...
@overload
def plugin_for(project: Any, slot: Literal["runtime"]) -> Runtime: ...
@overload
def plugin_for(project: Any, slot: Literal["workspace"]) -> Workspace: ...
@overload
def plugin_for(project: Any, slot: Literal["notifier"]) -> Notifier: ...
@overload
def plugin_for(project: Any, slot: Literal["terminal"]) -> Terminal: ...
@overload
def plugin_for(project: Any, slot: str) -> Plugin: ...
def plugin_for(project: Any, slot: str) -> Plugin:
    """The project's configured plugin for ``slot``, with its validated settings, bound to it."""
    return registry_for(slot).create(
        project.plugin_key(slot),
        project.settings_for(slot),
        where=f"projects.{project.key}.{slot}",
        project=project,
    )


def registry_for(slot: str) -> Registry:
    try:
        return REGISTRIES[slot]
    except KeyError:
        raise ConfigurationError(
            f"unknown plugin slot {slot!r}; valid slots: {', '.join(sorted(REGISTRIES))}", choices=REGISTRIES
        ) from None


_load_lock = threading.RLock()
_load_state = "not loaded"  # "loading" while one thread imports them, then "loaded"


def load_plugins() -> None:
    """Import ao's own plugins, then the third-party ones, once per process. Another thread that
    looks in a registry meanwhile waits for them; a plugin module that looks in one while it loads
    sees the plugins registered so far. A failure to import one of ao's own raises, as at setup."""
    global _load_state
    if _load_state == "loaded":
        return
    with _load_lock:
        if _load_state != "not loaded":
            return
        _load_state = "loading"
        try:
            load_builtin_plugins()
            load_entry_point_plugins()
        except BaseException:
            _load_state = "not loaded"
            raise
        _load_state = "loaded"


def load_builtin_plugins() -> None:
    for module in BUILTIN_PLUGIN_MODULES:
        importlib.import_module(module)


def load_entry_point_plugins() -> None:
    """Import third-party plugins. A broken plugin is logged, never fatal to ao."""
    from importlib.metadata import entry_points  # the installed packages' metadata: only when plugins load

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            target = ep.load()
        except Exception:
            log.exception("could not load ao plugin entry point %r (%s)", ep.name, ep.value)
            continue
        if isinstance(target, type) and issubclass(target, Plugin):
            if not target.slot:
                log.error("ao plugin %r (%s) does not subclass a slot interface", ep.name, ep.value)
                continue
            try:
                registry_for(target.slot).add(ep.name, target)
            except (TypeError, ValueError) as exc:
                log.error("ao plugin %r not registered: %s", ep.name, exc)
