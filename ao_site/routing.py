"""Websocket URL routes."""

from django.urls import path

from sessions.dashboard import consumers
from sessions.dashboard.consumers_terminal import TerminalConsumer

websocket_urlpatterns = [
    path("ws/board/", consumers.BoardConsumer.as_asgi()),
    path("ws/inbox/", consumers.InboxConsumer.as_asgi()),
    path("ws/terminal/<str:session_id>/", TerminalConsumer.as_asgi()),
]
