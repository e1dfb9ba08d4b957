"""The config's JSON Schema (shipped as docs/ao.config.schema.json) and the plugin settings tables
of docs/CONFIG.md, generated from the models and from the settings model of every plugin
registered (``python -m sessions.core.config --update-docs`` rewrites both after a setting changed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from pydantic.alias_generators import to_camel

from integrations.base import host_settings
from integrations.notifier import NotifierConfig
from integrations.registry import registry_for
from sessions.core.config.schema import SLOTS, AoConfig, yaml_scalar
from sessions.models import PROJECT_KEY_RE, SESSION_PREFIX_RE


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
    names: dict[str, tuple[str, ...]] = {}
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
        _slot_schema(slot, defs)
    _point_at_slot_schemas(schema)
    _agent_config_schema(defs)


def _slot_schema(slot: str, defs: dict[str, Any]) -> None:
    """The slot's choice in ``defs``: one of its keys, or a mapping per plugin with its settings."""
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


def _point_at_slot_schemas(schema: dict[str, Any]) -> None:
    """Every plugin field (projects, defaults, orchestrator, notifiers) points at its slot's
    choice, in place of the generic PluginSpec (removed)."""
    defs = schema["$defs"]

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


def _agent_config_schema(defs: dict[str, Any]) -> None:
    """A project's agentConfig: one agent's settings, that of the agent the project names."""
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
DOCS_DIR = Path(settings.BASE_DIR) / "docs"
PLUGIN_DOCS_BEGIN = "<!-- plugin settings: generated by `python -m sessions.core.config --update-docs` -->"
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
    return f"`{value}`" if isinstance(value, str | Path) else f"`{yaml_scalar(value)}`"


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
