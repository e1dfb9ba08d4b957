"""The plugin registry: keys, settings validation, and third-party plugins via entry points."""

from __future__ import annotations

import logging
import textwrap

import pytest

from integrations import registry
from integrations.registry import ConfigurationError, agents, runtimes


@pytest.fixture
def restore_registries():
    saved = {slot: dict(r._plugins) for slot, r in registry.REGISTRIES.items()}
    yield
    for slot, plugins in saved.items():
        registry.REGISTRIES[slot]._plugins.clear()
        registry.REGISTRIES[slot]._plugins.update(plugins)


def test_builtin_plugins_of_every_slot_are_registered():
    assert {"claude-code", "codex", "aider", "opencode", "gemini", "custom"} <= set(agents.keys())
    assert {"tmux", "process"} <= set(runtimes.keys())
    assert {"worktree", "clone"} <= set(registry.workspaces.keys())
    assert {"github", "linear", "local"} <= set(registry.trackers.keys())
    assert {"github", "local"} <= set(registry.scms.keys())


def test_unknown_key_names_the_path_and_the_choices():
    with pytest.raises(ConfigurationError) as raised:
        runtimes.get("tmuxx", where="projects.web.runtime")
    message = str(raised.value)
    assert message.startswith("projects.web.runtime: unknown runtime plugin 'tmuxx'; valid choices: ")
    assert "process" in message and "tmux" in message
    assert raised.value.path == "projects.web.runtime"
    assert "tmux" in raised.value.choices


def test_invalid_settings_name_each_key_path():
    with pytest.raises(ConfigurationError) as raised:
        runtimes.validate_settings("tmux", {"socket_name": 5, "colour": "red"}, where="projects.web.runtime")
    message = str(raised.value)
    assert "projects.web.runtime.socket_name" in message
    assert "projects.web.runtime.colour" in message


def test_a_slot_only_takes_its_own_interface(restore_registries):
    from integrations.agent.custom import CustomAgent

    with pytest.raises(TypeError, match="is not a Runtime plugin"):
        runtimes.add("sneaky", CustomAgent)


def test_third_party_plugins_register_through_entry_points(tmp_path, monkeypatch, restore_registries, caplog):
    (tmp_path / "acme_ao_plugin.py").write_text(
        textwrap.dedent(
            """
            from integrations.base import Runtime, PluginConfig

            class AcmeRuntime(Runtime):
                class Config(PluginConfig):
                    region: str = "eu"
                def start(self, *, name, cwd, command, env): ...
                def send_text(self, handle, text): ...
                def read_output(self, handle, *, lines=200): return ""
                def is_alive(self, handle): return True
                def kill(self, handle): ...
            """
        )
    )
    (tmp_path / "acme_broken.py").write_text("raise ImportError('missing dependency acme-sdk')\n")
    dist = tmp_path / "acme_ao_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-ao-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[ao.plugins]\nacme-cloud = acme_ao_plugin:AcmeRuntime\nbroken = acme_broken:Thing\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    with caplog.at_level(logging.ERROR, logger="integrations.registry"):
        registry.load_entry_point_plugins()

    plugin = runtimes.create("acme-cloud", {"region": "us"})
    assert type(plugin).__name__ == "AcmeRuntime" and plugin.config.region == "us"
    assert plugin.key == "acme-cloud"
    assert "broken" not in runtimes
    assert any("could not load ao plugin entry point 'broken'" in r.getMessage() for r in caplog.records)
