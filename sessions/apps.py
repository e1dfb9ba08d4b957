from django.apps import AppConfig

from integrations import credentials
from sessions import secrets


class AgentSessionsConfig(AppConfig):
    # Django's own django.contrib.sessions (login, Channels auth) owns the label "sessions".
    name = "sessions"
    label = "agent_sessions"
    verbose_name = "Agent sessions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Plugins read stored secrets through integrations.credentials; the store is the core's.
        credentials.use_secret_store(secrets.secret_value)
        # The core announces a changed session; the dashboard renders it. The views are imported
        # at the first render, not here: a CLI command that renders nothing never loads them.
        from sessions import realtime

        realtime.use_renderers(card=_card_push, unread=_render_unread_push)
        # A spawn refused over its budget tells people; notifications sit above the core.
        from reactions import notify
        from sessions import hosts, usage

        usage.use_notifier(notify.notify)
        hosts.use_notifier(notify.notify)
        # Recording a session's facts asks the reactions to look at it; they sit above the core.
        from sessions import services

        services.use_reactor(_react_after_commit)
        # The orchestrator's session is run and prompted by the orchestrator, a watcher above the agents.
        from sessions import agents

        agents.use_orchestrator(context=_orchestrator_context, prompt=_orchestrator_prompt)


def _card_push(*args, **kwargs):
    from sessions import views

    return views.card_push(*args, **kwargs)


def _render_unread_push(*args, **kwargs):
    from sessions import views

    return views.render_unread_push(*args, **kwargs)


def _react_after_commit(*, session_id: str) -> None:
    from reactions import services as reactions

    reactions.session_react_after_commit(session_id=session_id)


def _orchestrator_context(session):
    from sessions import orchestrator

    return orchestrator.orchestrator_context(session)


def _orchestrator_prompt(project):
    from sessions import orchestrator

    return orchestrator.orchestrator_prompt(project)
