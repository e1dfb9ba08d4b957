"""Named secrets, encrypted at rest, referenced from plugin settings by name.

A plugin setting such as ``token_secret: github-prod`` names a ``Secret`` row; the plugin asks
for the value each time it needs it (``integrations.credentials.credential``, which calls
:func:`secret_value`), so a replaced secret is used from the next call on. Secrets are added in
the admin under Secrets or with ``ao secret set NAME`` (the value on stdin or a hidden prompt).
Values are encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) under a key
derived from ``SECRET_KEY`` with HKDF; rotating ``SECRET_KEY`` therefore makes stored secrets
unreadable (re-enter them in the admin). Values are write-only: nothing in ao shows them back.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from integrations.credentials import (  # noqa: F401  the errors are the plugins' too: re-exported
    SECRET_NAME_RE,
    SecretMissing,
    SecretUnavailable,
    SecretUnreadable,
)

MAX_SECRET_CHARS = 16 * 1024


def validate_secret_name(name: str) -> str:
    """A secret's name: letters, digits, - or _, at most 100 characters. ValueError otherwise."""
    if not isinstance(name, str) or not SECRET_NAME_RE.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a secret name: use letters, digits, - or _ (at most 100 characters)"
        )
    return name


@lru_cache(maxsize=4)
def _fernet(secret_key: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"ao-secrets-v1", info=b"ao secret store").derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(value: str) -> str:
    return _fernet(settings.SECRET_KEY).encrypt(value.encode()).decode("ascii")


def decrypt(ciphertext: str) -> str:
    return _fernet(settings.SECRET_KEY).decrypt(ciphertext.encode("ascii")).decode()


def secret_set(*, name: str, value: str):
    """Create or replace the secret ``name``. Returns the row (whose value stays encrypted)."""
    from sessions import audit
    from sessions.models import Secret

    validate_secret_name(name)
    if not value or len(value) > MAX_SECRET_CHARS:
        raise ValueError(f"a secret value is 1 to {MAX_SECRET_CHARS} characters")
    row, created = Secret.objects.update_or_create(name=name, defaults={"ciphertext": encrypt(value)})
    audit.record(action="secret.create" if created else "secret.replace", target=row)  # audit
    return row


def secret_value(name: str) -> str:
    """The decrypted value of the secret ``name``; SecretUnavailable if missing or unreadable."""
    from sessions.models import Secret

    row = Secret.objects.filter(name=name).only("ciphertext").first()
    if row is None:
        raise SecretMissing(
            f"no secret named {name!r} (add it in the admin under Secrets or with `ao secret set {name}`)"
        )
    try:
        return decrypt(row.ciphertext)
    except (InvalidToken, ValueError):
        raise SecretUnreadable(
            f"secret {name!r} cannot be decrypted (was SECRET_KEY changed?); replace it in the admin "
            f"or with `ao secret set {name}`"
        ) from None


def secret_delete(name: str) -> bool:
    """Delete the secret ``name``; False if there was none."""
    from sessions import audit
    from sessions.models import Secret

    row = Secret.objects.filter(name=name).first()
    if row is None:
        return False
    audit.record(action="secret.delete", target=row)  # audit
    row.delete()
    return True
