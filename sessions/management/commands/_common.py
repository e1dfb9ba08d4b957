"""Shared bits of ao's management commands: one way to turn domain errors into CLI errors."""

from __future__ import annotations

from contextlib import contextmanager

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from integrations.base import IntegrationError
from integrations.registry import ConfigurationError
from sessions.agents.spawning import SpawnRefused
from sessions.cli import apiclient
from sessions.cli.apiclient import ApiError
from sessions.cli.light_commands import PROJECT_HELP as PROJECT_HELP  # one text, also for relayed commands
from sessions.core import audit, selectors
from sessions.domain.text import TextRejected
from sessions.models import Session, validate_session_id

DOMAIN_ERRORS = (
    ConfigurationError,
    IntegrationError,
    SpawnRefused,
    TextRejected,
    selectors.NotFound,
    ValidationError,
    ValueError,
)


@contextmanager
def cli_errors():
    """Report expected failures as one clear line (CommandError), not a traceback."""
    try:
        yield
    except DOMAIN_ERRORS as exc:
        message = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
        raise CommandError(message) from exc


def refuse_runtime_without_a_server(project) -> None:
    """The ``process`` runtime keeps an agent as a child of the process that starts it; from the CLI
    (which starts agents itself, inline) that agent would die with the command. Say so instead."""
    from django.conf import settings

    if project.plugin_key("runtime") == "process" and settings.CELERY_TASK_ALWAYS_EAGER:
        raise CommandError(
            f"project {project.key} uses the process runtime, whose agents live inside the ao process that "
            "starts them: start them from the dashboard or API of the running `ao start`, or use runtime: tmux"
        )


def get_session(session_id: str) -> Session:
    try:
        validate_session_id(session_id)
    except ValidationError as exc:
        raise CommandError(exc.messages[0]) from exc
    session = Session.objects.select_related("project").filter(pk=session_id).first()
    if session is None:
        raise CommandError(f"no session {session_id!r} (see `ao session ls`)")
    return session


# --- audit and remote mode (REST API issue) -----------------------------------------------------------
@contextmanager
def cli_audit():
    """What the command does is audited as the person (or orchestrator/agent) at this terminal."""
    with audit.audit_context(source=audit.CLI, **audit.cli_context_kwargs()):
        yield


def remote_client():
    """The API client when AO_URL + a user AO_TOKEN are set (and AO_SESSION is not): the command
    then works against that ao over its API instead of the local database. Else None."""
    return apiclient.client_from_env()


@contextmanager
def remote_errors():
    try:
        yield
    except ApiError as exc:
        raise CommandError(str(exc)) from exc
