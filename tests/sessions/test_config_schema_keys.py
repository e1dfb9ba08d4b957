"""Every setting a user can give a plugin is in `ao config schema`, the shipped schema file and
docs/CONFIG.md; the docs' examples pass `ao config check` with ao's real plugins."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import jsonschema
import pytest
import yaml
from pydantic_core import PydanticUndefined

from integrations.registry import registry_for
from sessions.core.config.export import config_json_schema, config_json_schema_text
from sessions.core.config.loading import config_load

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "docs" / "ao.config.schema.json"
GUIDE = ROOT / "docs" / "CONFIG.md"
# The slots a user writes plugins into: the five project slots and the notifiers.
PROJECT_SLOTS = ("agent", "runtime", "workspace", "tracker", "scm")
SLOTS = (*PROJECT_SLOTS, "notifier")


def every_setting() -> list[tuple[str, str, str]]:
    return [
        (slot, key, field.alias or name)
        for slot in SLOTS
        for key in registry_for(slot).keys()
        for name, field in registry_for(slot).get(key).Config.model_fields.items()
    ]


def _sample(annotation: Any) -> Any:
    """A value of the annotation's type, for settings whose default is unset."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return _sample(next(a for a in get_args(annotation) if a is not type(None)))
    if origin is Literal:
        return get_args(annotation)[0]
    if origin is list:
        return [_sample(get_args(annotation)[0])]
    return {str: "x", int: 1, float: 1.0, bool: True, Path: "/tmp"}[annotation]


def _value(field: Any) -> Any:
    default = field.default
    if default is PydanticUndefined and field.default_factory is not None:
        default = field.default_factory()
    if default is PydanticUndefined or default is None or default == "":
        return _sample(field.annotation)
    return str(default) if isinstance(default, Path) else default


def plugin_mapping(slot: str, key: str, **extra: Any) -> dict[str, Any]:
    """{plugin: key} plus the plugin's required settings, plus ``extra``."""
    model = registry_for(slot).get(key).Config
    required = {f.alias or n: _value(f) for n, f in model.model_fields.items() if f.is_required()}
    return {"plugin": key, **required, **extra}


def config_with(slot: str, spec: Any) -> dict[str, Any]:
    if slot == "notifier":
        return {"projects": {"web": {"path": "."}}, "notifiers": {"team": spec}}
    return {"projects": {"web": {"path": ".", slot: spec}}}


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(config_json_schema())


def test_the_settings_walk_covers_the_settings_of_the_issue():
    settings = set(every_setting())
    for name in ("command", "prompt_mode", "prompt_flag", "ready_pattern", "waiting_pattern", "extra_args"):
        assert ("agent", "custom", name) in settings
    for name in (
        "remote",
        "check_command",
        "check_name",
        "check_timeout",
        "merge_method",
        "log_excerpt_bytes",
        "require_review",
    ):
        assert ("scm", "local", name) in settings


@pytest.mark.parametrize(("slot", "key", "setting"), every_setting())
def test_the_schema_takes_each_setting_and_refuses_a_misspelt_one(validator, slot, key, setting):
    field = next(
        f for n, f in registry_for(slot).get(key).Config.model_fields.items() if (f.alias or n) == setting
    )

    good = config_with(slot, plugin_mapping(slot, key, **{setting: _value(field)}))
    misspelt = config_with(slot, plugin_mapping(slot, key, **{setting + "s": _value(field)}))

    assert list(validator.iter_errors(good)) == []
    assert list(validator.iter_errors(misspelt)) != []


def plugin_section(slot: str, key: str) -> str:
    """The part of docs/CONFIG.md's "Plugin settings" about one plugin."""
    text = GUIDE.read_text(encoding="utf-8")
    settings = text[text.index("\n## Plugin settings\n") :]
    settings = settings[: settings.index("\n## ", 1)]
    match = re.search(rf"^### {slot} `{re.escape(key)}`\n(.*?)(?=^### |\Z)", settings, re.M | re.S)
    assert match, f"docs/CONFIG.md has no section for the {slot} plugin {key!r}"
    return match.group(1)


@pytest.mark.parametrize(("slot", "key", "setting"), every_setting())
def test_each_setting_is_in_the_plugins_table_in_the_docs(slot, key, setting):
    section = plugin_section(slot, key)

    assert re.search(rf"^\| `{re.escape(setting)}`", section, re.M), section


def test_each_setting_says_what_it_does():
    undocumented = [
        f"{slot} {key}: {name}"
        for slot in SLOTS
        for key in registry_for(slot).keys()
        for name, field in registry_for(slot).get(key).Config.model_fields.items()
        if not (field.description or "").strip()
    ]
    assert undocumented == []


def test_notifier_settings_take_camel_case_or_snake_case_but_not_both(validator, tmp_path):
    snake = config_with("notifier", {"plugin": "slack", "webhook_url_env": "SLACK_URL", "max_delay": 5})
    camel = config_with("notifier", {"plugin": "slack", "webhookUrlEnv": "SLACK_URL", "maxDelay": 5})
    both = config_with("notifier", {"plugin": "slack", "webhookUrlEnv": "A", "webhook_url_env": "B"})

    assert list(validator.iter_errors(snake)) == []
    assert list(validator.iter_errors(camel)) == []
    assert list(validator.iter_errors(both)) != []
    # what the loader itself does with the same three
    for data, ok in ((snake, True), (camel, True), (both, False)):
        data = {**data, "projects": {"web": {"path": str(tmp_path)}}}
        path = tmp_path / "ao.config.yaml"
        path.write_text(yaml.safe_dump(data))
        if ok:
            config_load(path)
        else:
            with pytest.raises(Exception, match="webhook"):
                config_load(path)


def test_agent_config_takes_the_chosen_agents_settings_only(validator):
    def project(**keys: Any) -> dict[str, Any]:
        return {"projects": {"web": {"path": ".", **keys}}}

    custom = project(agent="custom", agentConfig={"command": ["my-agent"], "ready_pattern": "^> $"})
    split = project(agent={"plugin": "custom", "prompt_mode": "argv"}, agentConfig={"command": ["a"]})
    wrong_agent = project(agent="claude-code", agentConfig={"ready_pattern": "^> $"})
    misspelt = project(agent="custom", agentConfig={"command": ["a"], "ready_patern": "x"})
    unknown_plugin = project(agent={"plugin": "clod"})
    bad_value = project(scm={"plugin": "local", "merge_method": "rebase"})

    assert list(validator.iter_errors(custom)) == []
    assert list(validator.iter_errors(split)) == []
    for bad in (wrong_agent, misspelt, unknown_plugin, bad_value):
        assert list(validator.iter_errors(bad)) != [], bad


@pytest.mark.usefixtures("builtin_plugins_only")
def test_the_shipped_files_are_the_generated_ones():
    from sessions.core.config.export import config_plugin_docs

    assert SCHEMA_FILE.read_text(encoding="utf-8") == config_json_schema_text()
    assert config_plugin_docs() in GUIDE.read_text(encoding="utf-8")


def test_python_m_sessions_config_prints_the_shipped_schema():
    """The command line the docs name runs on its own (it sets Django up before loading the models)."""
    done = subprocess.run(
        [sys.executable, "-m", "sessions.core.config", "--schema"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == SCHEMA_FILE.read_text(encoding="utf-8")


def doc_examples() -> list[str]:
    blocks = re.findall(r"^```yaml\n(.*?)^```", GUIDE.read_text(encoding="utf-8"), re.M | re.S)
    return [block for block in blocks if re.search(r"^projects:", block, re.M)]


@pytest.mark.parametrize("example", doc_examples(), ids=lambda e: e.split("\n", 1)[0][:30])
def test_the_docs_examples_pass_ao_config_check_and_the_schema(example, tmp_path, validator):
    data = yaml.safe_load(example)
    for key, project in data["projects"].items():
        (tmp_path / key).mkdir()
        project["path"] = str(tmp_path / key)  # the examples' checkouts are somewhere else
    path = tmp_path / "ao.config.yaml"
    path.write_text(yaml.safe_dump(data))

    config = config_load(path)  # ao's real plugins validate every setting

    assert list(validator.iter_errors(data)) == []
    assert set(config.projects) == set(data["projects"])


def test_the_plugin_settings_example_sets_every_custom_agent_and_local_scm_setting(tmp_path):
    example = next(e for e in doc_examples() if "plugin: custom" in e)
    project = yaml.safe_load(example)["projects"]["tools"]
    project["path"] = str(tmp_path)
    path = tmp_path / "ao.config.yaml"
    path.write_text(yaml.safe_dump({"projects": {"tools": project}}))

    loaded = config_load(path).projects["tools"]

    assert set(loaded.settings_for("agent")) == set(registry_for("agent").get("custom").Config.model_fields)
    assert set(loaded.settings_for("scm")) == set(registry_for("scm").get("local").Config.model_fields)
    assert loaded.settings_for("scm")["check_command"] == ["make", "test"]


def test_ao_config_schema_covers_an_installed_third_party_plugin():
    from integrations.base import PluginConfig, Runtime

    class BoxRuntime(Runtime):
        class Config(PluginConfig):
            image: str = "ubuntu"

    runtimes = registry_for("runtime")
    runtimes.add("acme-box", BoxRuntime)
    try:
        validator = jsonschema.Draft202012Validator(config_json_schema())
        good = config_with("runtime", {"plugin": "acme-box", "image": "debian"})
        misspelt = config_with("runtime", {"plugin": "acme-box", "imag": "debian"})

        assert list(validator.iter_errors(good)) == []
        assert list(validator.iter_errors(misspelt)) != []
    finally:
        del runtimes._plugins["acme-box"]
    assert "acme-box" not in json.dumps(config_json_schema())
