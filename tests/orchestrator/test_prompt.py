"""The orchestrator's prompt: its command reference is generated from the real CLI parsers."""

from __future__ import annotations

import argparse

import pytest
from django.core.management import load_command_class
from django.core.management.base import BaseCommand

from ao_site.cli import ao_commands
from sessions.domain.lifecycle import Zone
from sessions.management.commands import spawn
from sessions.watchers import orchestrator
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def _parser_options(name: str, sub: str | None = None) -> set[str]:
    """Option strings and positional names ao's parser defines for a command (minus Django's own)."""
    parser = load_command_class(ao_commands()[name], name).create_parser("ao", name)
    defaults = {a.dest for a in BaseCommand().create_parser("ao", "x")._actions}  # Django's own options
    found: set[str] = set()

    def walk(p: argparse.ArgumentParser) -> None:
        for action in p._actions:
            if isinstance(action, argparse._HelpAction) or action.dest in defaults:
                continue
            if isinstance(action, argparse._SubParsersAction):
                walk(action.choices[sub])
                continue
            found.update(action.option_strings or [(action.metavar or action.dest).upper()])

    walk(parser)
    return found


def test_the_prompt_carries_the_generated_reference_and_the_projects_rules(tmp_path) -> None:
    (tmp_path / "ORCH.md").write_text("Never spawn more than two workers on the billing code.\n")
    project = ProjectFactory(
        key="web",
        session_prefix="web",
        path=str(tmp_path),
        orchestrator_rules="Prefer small issues first.",
        orchestrator_rules_file="ORCH.md",
        max_sessions=3,
    )
    prompt = orchestrator.orchestrator_prompt(project)

    assert "You are web-orchestrator, the orchestrator of the project" in prompt
    assert "never write product code yourself" in prompt
    assert orchestrator.command_reference_text() in prompt
    for usage in (
        "ao spawn [ISSUE] [--project PROJECT] [--agent AGENT] [--prompt PROMPT] [--branch BRANCH]",
        "ao batch-spawn ISSUES...",
        "ao status [--json]",
        "ao send SESSION TEXT...",
        "ao session ls",
        "ao session kill SESSION",
        "ao session restore SESSION",
        "ao issue [--project PROJECT] ls",
        "ao issue [--project PROJECT] show REF",
        "ao intake on",
        "ao intake off",
    ):
        assert f"`{usage}" in prompt, usage
    for usage in ("ao session cleanup", "ao session attach SESSION", "ao session claim-pr SESSION PR"):
        assert f"`{usage}" in prompt, usage
    for zone in Zone:
        assert f"- **{zone}** (" in prompt
    assert "maxSessions 3" in prompt
    assert "When to escalate to a human" in prompt
    assert prompt.rstrip().endswith(
        "Prefer small issues first.\n\nNever spawn more than two workers on the billing code."
    )


@pytest.mark.parametrize(
    ("name", "sub"),
    [
        ("spawn", None),
        ("batch-spawn", None),
        ("status", None),
        ("send", None),
        ("session", "ls"),
        ("session", "kill"),
        ("session", "cleanup"),
        ("session", "attach"),
        ("session", "claim-pr"),
        ("issue", "ls"),
        ("issue", "show"),
        ("intake", "on"),
    ],
)
def test_every_argument_the_parser_defines_is_in_the_reference(name, sub) -> None:
    docs = [
        d
        for d in orchestrator.command_reference()
        if d.usage.startswith(f"ao {name} ") and (sub is None or f" {sub}" in d.usage)
    ]
    assert docs, (name, sub)
    text = orchestrator.command_reference_text(docs)
    for option in _parser_options(name, sub):
        assert option in text, (name, sub, option)


def test_the_reference_has_every_sub_command_of_every_command_the_orchestrator_may_use() -> None:
    """Issue 18.7: `claim-pr`, `session cleanup` and `session attach` were missing; now every ao
    command is either the orchestrator's (all its sub-commands taught) or left to people, with why."""
    taught = [d.usage.split() for d in orchestrator.command_reference()]
    for name in orchestrator.ORCHESTRATOR_COMMANDS:
        parser = load_command_class(ao_commands()[name], name).create_parser("ao", name)
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        for sub in subs[0].choices if subs else [None]:
            assert any(words[1] == name and (sub is None or sub in words) for words in taught), (name, sub)
    unclassified = (
        set(ao_commands())
        - set(orchestrator.ORCHESTRATOR_COMMANDS)
        - set(orchestrator.NOT_FOR_THE_ORCHESTRATOR)
    )
    assert not unclassified, f"decide whether the orchestrator may use: {sorted(unclassified)}"


def test_a_changed_command_changes_the_prompt(monkeypatch) -> None:
    project = ProjectFactory()
    before = orchestrator.orchestrator_prompt(project)
    assert "[--branch BRANCH]" in before
    original = spawn.Command.add_arguments

    class WithoutBranch:
        def __init__(self, parser):
            self.parser = parser

        def add_argument(self, *names, **kwargs):
            if "--branch" not in names:
                self.parser.add_argument(*names, **kwargs)

    monkeypatch.setattr(
        spawn.Command, "add_arguments", lambda self, parser: original(self, WithoutBranch(parser))
    )
    after = orchestrator.orchestrator_prompt(project)
    assert after != before
    assert "--branch" not in after
    assert "[--prompt PROMPT]" in after

    # a new option shows up with its help, without touching the prompt's code
    def with_dry_run(self, parser):
        original(self, parser)
        parser.add_argument("--dry-run", action="store_true", help="only say what would be spawned")

    monkeypatch.setattr(spawn.Command, "add_arguments", with_dry_run)
    assert "`[--dry-run]`: only say what would be spawned" in orchestrator.orchestrator_prompt(project)


def test_a_reference_to_a_missing_command_is_an_error() -> None:
    from integrations.registry import ConfigurationError

    with pytest.raises(ConfigurationError, match="ao nonesuch"):
        orchestrator.command_reference(commands=(("nonesuch", ()),))
    with pytest.raises(ConfigurationError, match="ao session nonesuch"):
        orchestrator.command_reference(commands=(("session", ("nonesuch",)),))


def test_the_cli_prints_the_prompt(capsys) -> None:
    from django.core.management import call_command

    ProjectFactory(key="solo", session_prefix="solo")
    call_command("orchestrator", "prompt")
    assert "You are solo-orchestrator" in capsys.readouterr().out
