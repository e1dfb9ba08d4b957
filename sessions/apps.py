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
        # The core announces a changed session; the dashboard renders it. (The views import the
        # models, which exist only once the apps are ready.)
        from sessions import realtime, views

        realtime.use_renderers(card=views.card_push, unread=views.render_unread_push)
        # A spawn refused over its budget tells people; notifications sit above the core.
        from reactions import notify
        from sessions import usage

        usage.use_notifier(notify.notify)
