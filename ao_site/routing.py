"""Websocket URL routes."""

from django.urls import path

from sessions import consumers
from sessions.consumers_terminal import TerminalConsumer

websocket_urlpatterns = [
    path("ws/board/", consumers.BoardConsumer.as_asgi()),
    path("ws/inbox/", consumers.InboxConsumer.as_asgi()),
    path("ws/terminal/<str:session_id>/", TerminalConsumer.as_asgi()),
]
