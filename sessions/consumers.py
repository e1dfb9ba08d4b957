"""Websocket consumers: check who is asking, join groups, relay pre-rendered fragments."""

from __future__ import annotations

from channels.generic.websocket import AsyncWebsocketConsumer

from sessions import realtime

CLOSE_FORBIDDEN = 4403


class BoardConsumer(AsyncWebsocketConsumer):
    group = realtime.BOARD_GROUP

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        return  # the board is push-only

    async def card_html(self, event: dict) -> None:
        await self.send(text_data=event["html"])
