"""ao's own management commands, found by name through Django's registry: ``ao --help`` lists them
(``ao_site.cli``) and the orchestrator's prompt describes them from their own parsers. Standard
library only at import: the ``ao`` command imports this before it knows whether it needs Django."""

from __future__ import annotations

AO_APPS = ("sessions", "integrations", "reactions")
# The order ``ao --help`` lists the core commands in; other ao commands follow alphabetically.
CORE_ORDER = ("start", "stop", "status", "web", "worker", "beat", "version")


def ao_commands() -> dict[str, str]:
    """ao's own management commands (name -> app), core commands first."""
    from django.core.management import get_commands

    found = {name: app for name, app in get_commands().items() if app in AO_APPS}
    core = [name for name in CORE_ORDER if name in found]
    rest = sorted(name for name in found if name not in CORE_ORDER)
    return {name: found[name] for name in core + rest}
