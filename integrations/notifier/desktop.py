"""Desktop notifications through ``notify-send`` (libnotify), run as an argv list with a timeout."""

from __future__ import annotations

import shutil
import subprocess

from pydantic import Field

from integrations.base import HostSetting, Notifier
from integrations.notifier import NotifierConfig, NotifyFailed, NotifyUnavailable, links_of, priority_of
from integrations.records import Notification
from integrations.registry import notifiers

URGENCY = {"urgent": "critical", "action": "normal", "warning": "normal", "info": "low"}


@notifiers.register("desktop")
class DesktopNotifier(Notifier):
    class Config(NotifierConfig):
        binary: str = HostSetting(
            default="notify-send", description="The notify-send command (a name on PATH or a path)."
        )
        app_name: str = Field(default="ao", description="Application name shown with the notification.")
        timeout: float = Field(default=5.0, gt=0, le=120, description="Seconds notify-send may take.")
        retries: int = Field(default=1, ge=0, le=10, description="Further tries after a transient failure.")

    def command(self, notification: Notification) -> list[str]:
        executable = shutil.which(self.config.binary)
        if executable is None:
            raise NotifyFailed(
                f"desktop: {self.config.binary} not found; install libnotify-bin",
                fix="install libnotify-bin (apt install libnotify-bin), or remove the desktop notifier "
                "on machines without a desktop",
            )
        lines = [notification.body] if notification.body else []
        lines += [f"{label}: {url}" for label, url in links_of(notification)]
        body = "\n".join(lines)
        return [
            executable,
            f"--urgency={URGENCY[priority_of(notification)]}",
            f"--app-name={self.config.app_name}",
            "--",
            notification.title,
            body,
        ]

    def send(self, notification: Notification) -> None:
        argv = self.command(notification)
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=self.config.timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise NotifyUnavailable(
                f"desktop: notify-send did not finish within {self.config.timeout:g} s",
                fix="check that a desktop notification daemon is running",
            ) from None
        except OSError as exc:
            raise NotifyFailed(f"desktop: could not run notify-send: {exc.strerror or exc}") from None
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise NotifyFailed(
                f"desktop: notify-send exited with {done.returncode}"
                + (f": {detail[0][:200]}" if detail else ""),
                fix="notify-send needs a desktop session (DBUS_SESSION_BUS_ADDRESS) on this machine",
            )
