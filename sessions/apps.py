"""The composition root: at start, hands the layers above the core's what the core calls without
naming them (the dashboard's renderers, the reactions, the orchestrator's agent and prompt, the
notifications and the secret store). Its imports wait for ready(): the modules import the models,
which Django loads after this module. Those above the core are imported at first use, so a CLI
command that renders nothing, reacts to nothing or runs no orchestrator never loads them."""

from django.apps import AppConfig


class AgentSessionsConfig(AppConfig):
    # Django's own django.contrib.sessions (login, Channels auth) owns the label "sessions".
    name = "sessions"
    label = "agent_sessions"
    verbose_name = "Agent sessions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from integrations import secret_store  # local: the composition root, once the models are loaded
        from sessions.agents import plugins  # local: the same
        from sessions.core import hosts, realtime, secrets, services, usage  # local: the same

        # Plugins read stored secrets through integrations.credentials; the store is the core's.
        secret_store.use_secret_store(secrets.secret_value)
        # The core announces a changed session; the dashboard renders it.
        realtime.use_renderers(card=_card_push, unread=_render_unread_push)
        # A spawn refused over its budget tells people.
        usage.use_notifier(_notify)
        hosts.use_notifier(_notify)
        # The operator's actions below the reactions (a send, a delivery, a claim, a merge, a review,
        # `ao pr create`) ask them to look at a session; they sit above the core.
        services.use_reactor(_react_after_commit)
        # The orchestrator's session is run and prompted by the orchestrator, a watcher above the agents.
        plugins.use_orchestrator(context=_orchestrator_context, prompt=_orchestrator_prompt)


def _views():
    from sessions.dashboard import views_push  # local: the dashboard loads at the first render, not at start

    return views_push


def _card_push(*args, **kwargs):
    return _views().card_push(*args, **kwargs)


def _render_unread_push(*args, **kwargs):
    return _views().render_unread_push(*args, **kwargs)


def _notify(*args, **kwargs):
    from reactions import notify  # local: the notifiers load with the first notification, not at start

    return notify.notify(*args, **kwargs)


def _reactions():
    from reactions import services as reactions  # local: the reactions load at the first one, not at start

    return reactions


def _react_after_commit(*, session_id: str) -> None:
    _reactions().session_react_after_commit(session_id=session_id)


def _orchestrator():
    # local: loaded when an orchestrator session runs, not at start
    from sessions.watchers import orchestrator

    return orchestrator


def _orchestrator_context(session):
    return _orchestrator().orchestrator_context(session)


def _orchestrator_prompt(project):
    return _orchestrator().orchestrator_prompt(project)
