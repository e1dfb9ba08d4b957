"""Email through Django's email backend (SMTP in production; locmem in tests).

The mail server is Django's ``EMAIL_*`` settings, read from the environment (ao_site/settings.py:
EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD, EMAIL_USE_TLS / EMAIL_USE_SSL,
DEFAULT_FROM_EMAIL), unless the notifier names its own (``host``, ``port``, ``username``,
``password_secret`` — a secret stored in ao —, ``use_tls`` / ``use_ssl``).

Recipients: the ``to`` list, and with ``to_recipient`` the person a notification concerns (a
session's owner, a person whose spawn was refused) at their account's e-mail address: each person
hears about their own sessions. A notification for nobody in particular goes to ``to`` only; with
an empty ``to`` it has nobody to go to and its delivery fails saying so."""

from __future__ import annotations

import re
import smtplib

from django.conf import settings
from django.core.mail import BadHeaderError, get_connection, send_mail
from pydantic import Field, field_validator, model_validator

from integrations.base import Notifier
from integrations.credentials import SecretName, secret_name
from integrations.notifier import (
    NotifierConfig,
    NotifyFailed,
    NotifyUnavailable,
    links_of,
    priority_of,
    secret_from,
)
from integrations.records import Notification
from integrations.registry import notifiers

ADDRESS_RE = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")


def _address(value: str) -> str:
    value = value.strip()
    if not ADDRESS_RE.match(value):
        raise ValueError(f"{value!r} is not an email address")
    return value


def email_subject(notification: Notification, *, prefix: str) -> str:
    priority = priority_of(notification)
    tag = f"[{priority.upper()}] " if priority in ("urgent", "action") else ""
    subject = " ".join(f"{prefix} {tag}{notification.title}".split())  # no newlines in headers
    return subject[:250]


def email_body(notification: Notification) -> str:
    lines = [notification.body.strip()] if notification.body.strip() else []
    facts = []
    if notification.project_key:
        facts.append(f"Project: {notification.project_key}")
    if notification.session_id:
        facts.append(f"Session: {notification.session_id}")
    facts.append(f"Priority: {priority_of(notification)}")
    facts += [f"{label}: {url}" for label, url in links_of(notification)]
    return "\n\n".join([*lines, "\n".join(facts)]) + "\n\n-- \nSent by ao\n"


@notifiers.register("email")
class EmailNotifier(Notifier):
    class Config(NotifierConfig):
        to: list[str] = Field(default_factory=list, description="Recipients (every notification).")
        to_recipient: bool = Field(
            default=False,
            description="Also the person a notification concerns (a session's owner, a refused "
            "spawner), at their account's e-mail address.",
        )
        from_email: str | None = Field(
            default=None, description="Sender; default: Django's DEFAULT_FROM_EMAIL."
        )
        subject_prefix: str = Field(default="[ao]", max_length=40, description="Put before every subject.")
        host: str | None = Field(default=None, description="Mail server; default: EMAIL_HOST.")
        port: int | None = Field(default=None, ge=1, le=65535, description="Its port; default: EMAIL_PORT.")
        username: str | None = Field(default=None, description="SMTP AUTH user; default: EMAIL_HOST_USER.")
        password_secret: str | None = SecretName(
            "Name of the secret stored in ao holding the SMTP password; default: EMAIL_HOST_PASSWORD."
        )
        use_tls: bool | None = Field(default=None, description="STARTTLS; default: EMAIL_USE_TLS.")
        use_ssl: bool | None = Field(default=None, description="Implicit TLS; default: EMAIL_USE_SSL.")

        @field_validator("password_secret")
        @classmethod
        def _password_secret(cls, value: str | None) -> str | None:
            return secret_name(value)

        @field_validator("to")
        @classmethod
        def _recipients(cls, value: list[str]) -> list[str]:
            return [_address(v) for v in value]

        @model_validator(mode="after")
        def _someone(self) -> EmailNotifier.Config:
            if not self.to and not self.to_recipient:
                raise ValueError("set to (a list of addresses), to_recipient: true, or both")
            return self

        @field_validator("from_email")
        @classmethod
        def _sender(cls, value: str | None) -> str | None:
            return _address(value) if value is not None else None

    def _server(self) -> dict:
        """The notifier's own mail-server settings; those it leaves unset are Django's EMAIL_*."""
        config = self.config
        own = {
            "host": config.host,
            "port": config.port,
            "username": config.username,
            "use_tls": config.use_tls,
            "use_ssl": config.use_ssl,
        }
        if config.password_secret:
            own["password"] = secret_from(
                env=None, secret=config.password_secret, what="SMTP password", who="email"
            )
        return {name: value for name, value in own.items() if value is not None}

    def recipients(self, notification: Notification) -> list[str]:
        """``to``, and with ``to_recipient`` the address of the person the notification concerns."""
        addresses = list(self.config.to)
        person = getattr(notification, "recipient_email", "") if self.config.to_recipient else ""
        if person and ADDRESS_RE.match(person) and person.lower() not in {a.lower() for a in addresses}:
            addresses.append(person)
        return addresses

    def send(self, notification: Notification) -> None:
        to = self.recipients(notification)
        if not to:
            who = getattr(notification, "recipient", "")
            raise NotifyFailed(
                f"email: nobody to send to ({who} has no e-mail address)"
                if who
                else "email: nobody to send to (a notification for the whole project, and `to` is empty)",
                fix=f"give {who} an e-mail address" if who else "add addresses to the notifier's `to`",
            )
        connection = get_connection(timeout=self.config.timeout, **self._server())
        try:
            send_mail(
                email_subject(notification, prefix=self.config.subject_prefix),
                email_body(notification),
                self.config.from_email or settings.DEFAULT_FROM_EMAIL,
                to,
                fail_silently=False,
                connection=connection,
            )
        except BadHeaderError as exc:
            raise NotifyFailed(f"email: {exc}") from None
        except (
            smtplib.SMTPAuthenticationError,
            smtplib.SMTPRecipientsRefused,
            smtplib.SMTPSenderRefused,
        ) as exc:
            raise NotifyFailed(
                f"email: the mail server refused the message ({type(exc).__name__})",
                fix="check EMAIL_HOST_USER/EMAIL_HOST_PASSWORD and the recipients",
            ) from None
        except smtplib.SMTPResponseException as exc:
            message = f"email: the mail server answered {exc.smtp_code}"
            if 400 <= exc.smtp_code < 500:
                raise NotifyUnavailable(
                    message, fix="the mail server is busy; ao retries by itself"
                ) from None
            raise NotifyFailed(message, fix="check the mail server's settings") from None
        except (smtplib.SMTPException, OSError) as exc:  # socket timeouts are OSErrors
            raise NotifyUnavailable(
                f"email: could not talk to the mail server ({type(exc).__name__})",
                fix="check EMAIL_HOST/EMAIL_PORT and that the mail server is reachable",
            ) from None
