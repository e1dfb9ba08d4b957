"""Checking a parsed config file: keys ao does not know (errors in ``ao.config.yaml``, warnings in
``agent-orchestrator.yaml``; see docs/CONFIG.md for every key), the models' own rules, and each
plugin's settings (validated by the plugin); then the effective config: project paths
resolved, session prefixes and plugins filled in from the defaults.
"""

from __future__ import annotations

import difflib
import os
import types
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from integrations.registry import ConfigurationError, registry_for
from sessions.core.config.discovery import REFERENCE_FILENAME
from sessions.core.config.problems import ConfigProblem
from sessions.core.config.schema import (
    SLOTS,
    AoConfig,
    Defaults,
    PluginChoice,
    PluginSpec,
    Priority,
    ProjectConfig,
    describe_value,
    dotted_path,
    line_for,
    project_defaults,
    session_prefix_for,
)
from sessions.models import PROJECT_KEY_RE, SESSION_PREFIX_RE


# --- validation ---------------------------------------------------------------------------------------
def is_reference_file(path: Path) -> bool:
    return path.name.startswith("agent-orchestrator.")


class ProblemCollector:
    def __init__(self, file: str, lines: dict[tuple, int]) -> None:
        self.file = file
        self.lines = lines
        self.problems: list[ConfigProblem] = []
        self.warnings: list[ConfigProblem] = []

    def add(self, path: tuple, message: str, *, warning: bool = False, line: int | None = None) -> None:
        problem = ConfigProblem(self.file, line or line_for(self.lines, path), dotted_path(path), message)
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


def _error_message(error: ErrorDetails) -> str:
    if error["type"] == "missing":
        return "required key is missing"
    message = error["msg"]
    if message.startswith("Value error, "):
        return message[len("Value error, ") :]
    message = message[0].lower() + message[1:]
    if "input" in error:
        message += f", got {describe_value(error['input'])}"
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


def check_keys(
    model: type[BaseModel], data: Any, path: tuple, out: ProblemCollector, *, lenient: bool
) -> None:
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
            check_keys(submodel, data[key], (*path, str(key)), out, lenient=lenient)
        elif isinstance(data[key], dict):
            for name, value in data[key].items():
                check_keys(submodel, value, (*path, str(key), str(name)), out, lenient=lenient)


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


def _resolve_path(raw: str, base_dir: Path | None, where: tuple, out: ProblemCollector) -> Path | None:
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
    if expanded.is_absolute():
        candidate = expanded
    elif base_dir is None:
        out.add(
            where,
            f"{raw[:200]!r} is relative, and an uploaded file has no directory: write the absolute path "
            "on the server (the admin's export does)",
        )
        return None
    else:
        candidate = base_dir / expanded
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
    out: ProblemCollector,
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
        validated = registry.validate_settings(spec.plugin, settings_in, where=dotted_path(where))
    except ConfigurationError as exc:
        try:
            registry.get(spec.plugin).Config.model_validate(settings_in)
        except ValidationError as detail:
            for error in detail.errors():
                loc = tuple(str(part) for part in error["loc"])
                head = (setting_paths or {}).get(loc[0], (*where, loc[0])) if loc else where
                out.add((*head, *loc[1:]), f"{slot} plugin {spec.plugin!r}: {_error_message(error)}")
        else:
            out.add(where, str(exc).removeprefix(f"{dotted_path(where)}: "))
        return None
    if isinstance(validated, BaseModel):
        normalized = validated.model_dump(mode="json", by_alias=True, exclude_unset=True)
    else:
        normalized = dict(settings_in or {})
    return PluginSpec.model_validate({**normalized, "plugin": spec.plugin})


def resolve_config(
    config: AoConfig | None, data: dict, base_dir: Path | None, out: ProblemCollector, *, reference: bool
) -> AoConfig | None:
    """Semantic checks (keys, paths, prefixes, plugins); returns the effective config."""
    defaults, projects, notifiers, routing = _pieces(config, data)
    if "projects" in data and isinstance(data["projects"], dict) and not data["projects"]:
        out.add(("projects",), "no projects defined; add at least one under projects:")

    default_specs = _default_specs(defaults, out)
    resolved: dict[str, ProjectConfig] = {}
    prefixes: dict[str, str] = {}
    for key, project in projects.items():
        if not isinstance(key, str):
            continue
        checked_project = _resolve_project(
            key, project, base_dir, out, prefixes=prefixes, default_specs=default_specs, reference=reference
        )
        if checked_project is not None:
            resolved[key] = checked_project

    checked_notifiers = _resolve_notifiers(notifiers, defaults, routing, out)
    if config is None or out.problems:
        return None
    return config.model_copy(update={"projects": resolved, "notifiers": checked_notifiers})


def _pieces(config: AoConfig | None, data: dict) -> tuple[Defaults, dict, dict, dict]:
    """The defaults, projects, notifiers and routing: the config's, or what of ``data`` validates."""
    if config is not None:
        return (
            config.defaults,
            dict(config.projects),
            dict(config.notifiers),
            dict(config.notification_routing),
        )
    # something failed validation: check what did validate, so every problem is reported
    defaults = _validate_piece(Defaults, data.get("defaults", {})) or Defaults()
    raw_projects = data.get("projects")
    if not isinstance(raw_projects, dict):
        raw_projects = {}
    projects = {
        key: project
        for key, raw in raw_projects.items()
        if (project := _validate_piece(ProjectConfig, raw)) is not None
    }
    notifiers = {}
    raw_notifiers = data.get("notifiers")
    if not isinstance(raw_notifiers, dict):
        raw_notifiers = {}
    for name, raw in raw_notifiers.items():
        try:
            notifiers[name] = _NOTIFIER.validate_python(raw)
        except ValidationError:
            pass
    try:
        routing = _ROUTING.validate_python(data.get("notificationRouting", {}))
    except ValidationError:
        routing = {}
    return defaults, projects, notifiers, routing


def _default_specs(defaults: Defaults, out: ProblemCollector) -> dict[str, tuple[PluginSpec | None, tuple]]:
    """Each slot's checked ``defaults:`` plugin and where it was written (``()`` when not set)."""
    default_specs: dict[str, tuple[PluginSpec | None, tuple]] = {}
    for slot in SLOTS:
        spec = getattr(defaults, slot)
        checked = _validate_plugin(out, slot, spec, ("defaults", slot)) if spec is not None else None
        default_specs[slot] = (checked, ("defaults", slot)) if spec is not None else (None, ())
    return default_specs


def _resolve_project(
    key: str,
    project: ProjectConfig,
    base_dir: Path | None,
    out: ProblemCollector,
    *,
    prefixes: dict[str, str],
    default_specs: dict[str, tuple[PluginSpec | None, tuple]],
    reference: bool,
) -> ProjectConfig | None:
    """One project checked (key, path, prefix, plugins, rules files): its effective config, or None."""
    where: tuple = ("projects", key)
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
    prefix, prefix_ok = _project_prefix(key, project, where, out, prefixes)
    slots, slots_ok = _project_slots(project, where, out, default_specs, reference=reference)
    ok = ok and prefix_ok and slots_ok

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
    if not ok:
        return None
    return project.model_copy(
        update={
            "name": project.name or key,
            "path": str(path),
            "session_prefix": prefix,
            **slots,
            "orchestrator": orchestrator,
        }
    )


def _project_prefix(
    key: str, project: ProjectConfig, where: tuple, out: ProblemCollector, prefixes: dict[str, str]
) -> tuple[str, bool]:
    """The project's session prefix (its own or derived from the key), claimed in ``prefixes``; ok."""
    ok = True
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
    return prefix, ok


def _project_slots(
    project: ProjectConfig,
    where: tuple,
    out: ProblemCollector,
    default_specs: dict[str, tuple[PluginSpec | None, tuple]],
    *,
    reference: bool,
) -> tuple[dict[str, PluginSpec], bool]:
    """The project's plugin per slot (its own, else the default, else ao's), checked; ok."""
    builtin = project_defaults()
    ok = True
    slots: dict[str, PluginSpec] = {}
    for slot in SLOTS:
        spec = getattr(project, slot)
        spec_where: tuple = (*where, slot)
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
                        f"{name!r} is also set in {dotted_path(spec_where)}; set it in one place",
                    )
                    ok = False
                setting_paths[name] = (*where, "agentConfig", name)
            settings_in = {**settings_in, **project.agent_config}
        checked = _validate_plugin(out, slot, spec, spec_where, setting_paths, settings_in, note)
        if checked is None:
            ok = False
        else:
            slots[slot] = checked
    return slots, ok


def _resolve_notifiers(
    notifiers: dict, defaults: Defaults, routing: dict, out: ProblemCollector
) -> dict[str, PluginSpec]:
    """The notifiers checked, and every notifier name used in defaults and routing known."""
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
    return checked_notifiers
