"""Chat endpoints (``sessions/dashboard/views_chat.py``), included at ``chat/`` by ``ao_site/urls.py``."""

from django.urls import path

from sessions.dashboard import views_chat

app_name = "chat"

urlpatterns = [
    path("slack/commands", views_chat.slack_commands, name="slack-commands"),
    path("slack/interactive", views_chat.slack_interactive, name="slack-interactive"),
    path("telegram/webhook", views_chat.telegram_webhook, name="telegram-webhook"),
]
