"""Websocket URL routes."""

from django.urls import path

from sessions import consumers

websocket_urlpatterns = [
    path("ws/board/", consumers.BoardConsumer.as_asgi()),
]
