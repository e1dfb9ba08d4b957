"""Named secrets, encrypted at rest, referenced from plugin settings by name.

A plugin setting such as ``token_secret: github-prod`` names a ``Secret`` row; the plugin asks
:func:`secret_value` for the value when it needs it. Values are encrypted with Fernet
(AES-128-CBC + HMAC-SHA256, from ``cryptography``) under a key derived from ``SECRET_KEY`` with
HKDF; rotating ``SECRET_KEY`` therefore makes stored secrets unreadable (re-enter them in the
admin). Values are write-only: nothing in ao shows them back.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

MAX_SECRET_CHARS = 16 * 1024


class SecretUnavailable(LookupError):
    """No such secret, or it cannot be decrypted (SECRET_KEY changed). The message says which."""


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
        raise SecretUnavailable(f"no secret named {name!r} (add it in the admin under Secrets)")
    try:
        return decrypt(row.ciphertext)
    except (InvalidToken, ValueError) as exc:
        raise SecretUnavailable(
            f"secret {name!r} cannot be decrypted (was SECRET_KEY changed?); replace it in the admin"
        ) from exc
