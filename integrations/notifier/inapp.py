"""The in-app inbox. Every notification is already a row listed for the project's members, so
sending is a no-op; the plugin exists so ``notificationRouting`` can name it."""

from __future__ import annotations

from integrations.base import Notifier
from integrations.notifier import NotifierConfig
from integrations.records import Notification
from integrations.registry import notifiers


@notifiers.register("in-app")
class InAppNotifier(Notifier):
    Config = NotifierConfig

    def send(self, notification: Notification) -> None:
        return None
