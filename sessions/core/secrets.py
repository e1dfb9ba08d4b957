"""Named secrets, encrypted at rest, referenced from plugin settings by name.

A plugin setting such as ``token_secret: github-prod`` names a ``Secret`` row; the plugin asks
for the value each time it needs it (``integrations.credentials.credential``, which calls
:func:`secret_value`), so a replaced secret is used from the next call on. Secrets are added in
the admin under Secrets or with ``ao secret set NAME`` (the value on stdin or a hidden prompt).
Values are encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) under a key
derived from ``SECRET_KEY`` with HKDF; rotating ``SECRET_KEY`` therefore makes stored secrets
unreadable (re-enter them in the admin). Values are write-only: nothing in ao shows them back.

Personal secrets (``PersonalSecret``, issue 19) are a person's own model credentials, named by the
environment variable an agent reads (``ANTHROPIC_API_KEY``), encrypted the same way and handed only
to the agents of sessions that run with that person's credentials. Which credentials a session runs
with is decided once, at its spawn (:func:`spawn_credentials`, by the project's ``credentials``
setting), kept on the session, and used again on restore whoever restores it
(:func:`credentials_env`). A spawn without a person (the host's own ``ao spawn``, intake) runs with
the project's credentials.
"""

from __future__ import annotations

import base64
import re
from functools import lru_cache
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth.models import User

from integrations.credentials import (  # the errors are the plugins' too: re-exported
    SECRET_NAME_RE,
    CredentialUnavailable,
    SecretMissing,
    SecretUnavailable,
    SecretUnreadable,
)
from sessions.core import audit
from sessions.models import PersonalSecret, Secret

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

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
    # local: cryptography loads with the first secret used, not with every command that loads this
    # module (`ao status`, `ao session ls`, `ao send` read none): about 0.01 CPU-s
    from cryptography.fernet import Fernet
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"ao-secrets-v1", info=b"ao secret store").derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(value: str) -> str:
    return _fernet(settings.SECRET_KEY).encrypt(value.encode()).decode("ascii")


def decrypt(ciphertext: str) -> str:
    """The plain value; ValueError when it cannot be decrypted (another SECRET_KEY, a damaged value)."""
    from cryptography.fernet import InvalidToken  # local: as in _fernet

    try:
        return _fernet(settings.SECRET_KEY).decrypt(ciphertext.encode("ascii")).decode()
    except InvalidToken as exc:
        raise ValueError("the value cannot be decrypted with this SECRET_KEY") from exc


def secret_set(*, name: str, value: str):
    """Create or replace the secret ``name``. Returns the row (whose value stays encrypted)."""
    validate_secret_name(name)
    if not value or len(value) > MAX_SECRET_CHARS:
        raise ValueError(f"a secret value is 1 to {MAX_SECRET_CHARS} characters")
    row, created = Secret.objects.update_or_create(name=name, defaults={"ciphertext": encrypt(value)})
    audit.record(action="secret.create" if created else "secret.replace", target=row)  # audit
    return row


def secret_value(name: str) -> str:
    """The decrypted value of the secret ``name``; SecretUnavailable if missing or unreadable."""
    row = Secret.objects.filter(name=name).only("ciphertext").first()
    if row is None:
        raise SecretMissing(
            f"no secret named {name!r} (add it in the admin under Secrets or with `ao secret set {name}`)"
        )
    try:
        return decrypt(row.ciphertext)
    except ValueError:
        raise SecretUnreadable(
            f"secret {name!r} cannot be decrypted (was SECRET_KEY changed?); replace it in the admin "
            f"or with `ao secret set {name}`"
        ) from None


def secret_delete(name: str) -> bool:
    """Delete the secret ``name``; False if there was none."""
    row = Secret.objects.filter(name=name).first()
    if row is None:
        return False
    audit.record(action="secret.delete", target=row)  # audit
    row.delete()
    return True


# --- personal credentials (issue 19) -----------------------------------------------------------
CREDENTIALS_MODES = ("project", "personal", "personal-or-project")
# A personal secret is a credential an agent reads from its environment: the variable's name, and
# one that says it holds a credential (never PATH, LD_PRELOAD or ao's own AO_* variables).
PERSONAL_NAME_RE = re.compile(r"[A-Z][A-Z0-9_]{0,98}_(KEY|TOKEN|SECRET|PASSWORD)")
# The usual variables of model credentials: a session that runs with a person's credentials never
# gets these from ao's environment (the host's, i.e. the project's), only from that person.
MODEL_CREDENTIAL_ENV = (
    "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN", "OPENAI_API_KEY",
    "GEMINI_API_KEY", "GOOGLE_API_KEY", "OPENROUTER_API_KEY", "AZURE_OPENAI_API_KEY",
    "MISTRAL_API_KEY", "DEEPSEEK_API_KEY", "GROQ_API_KEY", "XAI_API_KEY",
)  # fmt: skip


def validate_personal_name(name: str) -> str:
    """A personal secret's name: the environment variable holding the credential, in capitals,
    ending in _KEY, _TOKEN, _SECRET or _PASSWORD (e.g. ANTHROPIC_API_KEY). ValueError otherwise."""
    if not isinstance(name, str) or not PERSONAL_NAME_RE.fullmatch(name) or name.startswith("AO_"):
        raise ValueError(
            f"{name!r} is not a personal credential's name: use the environment variable the agent "
            "reads, in capitals, ending in _KEY, _TOKEN, _SECRET or _PASSWORD (e.g. ANTHROPIC_API_KEY; "
            "not AO_...)"
        )
    return name


def personal_secret_set(*, user, name: str, value: str):
    """Create or replace ``user``'s personal secret ``name``. Returns the row (value encrypted)."""
    validate_personal_name(name)
    if not value or not value.strip() or len(value) > MAX_SECRET_CHARS:
        raise ValueError(f"a secret value is 1 to {MAX_SECRET_CHARS} characters")
    row, created = PersonalSecret.objects.update_or_create(
        user=user, name=name, defaults={"ciphertext": encrypt(value)}
    )
    audit.record(
        action="personal_secret.create" if created else "personal_secret.replace",
        target=("personal_secret", f"{user.get_username()}/{name}"),
    )  # audit
    return row


def personal_secret_delete(*, user, name: str) -> bool:
    """Delete ``user``'s personal secret ``name``; False if there was none."""
    deleted, _ = PersonalSecret.objects.filter(user=user, name=name).delete()
    if deleted:
        audit.record(
            action="personal_secret.delete", target=("personal_secret", f"{user.get_username()}/{name}")
        )
    return bool(deleted)


def personal_secrets_of(user):
    """``user``'s personal secrets (names and times; the values stay encrypted)."""
    if not getattr(user, "pk", None):
        return PersonalSecret.objects.none()
    return PersonalSecret.objects.filter(user=user).order_by("name")


def spawn_credentials(*, project, by) -> tuple[str, User | None]:
    """Whose model credentials a session spawned by ``by`` in ``project`` runs with:
    ("personal", by) or ("project", None). ValueError (the reason) when the project runs only on
    personal credentials and ``by`` has stored none. No person (the host's ``ao spawn``, intake):
    the project's."""
    mode = getattr(project, "credentials", "project") or "project"
    if mode == "project" or not getattr(by, "pk", None):
        return "project", None
    if personal_secrets_of(by).exists():
        return "personal", by
    if mode == "personal":
        raise ValueError(
            f"project {project.key} runs agents on each person's own model credentials (credentials: "
            f"personal) and {by.get_username()} has stored none: add yours on the Credentials page or "
            "with `ao secret set --mine ANTHROPIC_API_KEY`"
        )
    return "project", None


def credentials_label(session) -> str:
    """Whose credentials a session runs with, for the card, the timeline and the CLI."""
    if session.credentials == "personal":
        who = session.credentials_of.get_username() if session.credentials_of_id else "a deleted user"
        return f"{who}'s own credentials"
    return "the project's credentials"


def credentials_env(*, project, credentials: str, user) -> dict[str, str | None]:
    """The model credentials an agent gets, on top of ao's environment: {variable: value}, None
    for a variable removed.

    - "project": the project's ``agentSecrets`` (stored secrets), over whatever ao's environment
      holds (the host's own keys, as before personal credentials existed);
    - "personal": ``user``'s personal secrets, and removed every other model credential: the usual
      model variables (MODEL_CREDENTIAL_ENV), the project's ``agentSecrets`` and every variable
      anyone stored a personal secret under.

    CredentialUnavailable (a PermanentIntegrationError: the start fails with the reason) when a
    secret is missing or unreadable, or the person is gone or has no personal secret any more.
    Values never appear in a message."""
    agent_secrets = dict(getattr(project, "agent_secrets", None) or {})
    if credentials != "personal":
        env: dict[str, str | None] = {}
        for variable, secret in sorted(agent_secrets.items()):
            try:
                env[variable] = secret_value(secret)
            except SecretUnavailable as exc:
                raise CredentialUnavailable(
                    f"agentSecrets.{variable} of project {project.key}: {exc}"
                ) from None
        return env
    if user is None:
        raise CredentialUnavailable(
            "the person whose credentials this session ran with is no longer a user: spawn a new session"
        )
    rows = list(PersonalSecret.objects.filter(user=user).order_by("name").values_list("name", "ciphertext"))
    if not rows:
        raise CredentialUnavailable(
            f"{user.get_username()} has no personal credentials any more (this session runs with theirs): "
            "they can add one on the Credentials page or with `ao secret set --mine NAME`"
        )
    removed = set(MODEL_CREDENTIAL_ENV) | set(agent_secrets)
    removed |= set(PersonalSecret.objects.values_list("name", flat=True).distinct())
    env = dict.fromkeys(sorted(removed))
    for name, ciphertext in rows:
        try:
            env[name] = decrypt(ciphertext)
        except ValueError:
            raise CredentialUnavailable(
                f"{user.get_username()}'s personal secret {name} cannot be decrypted (was SECRET_KEY "
                "changed?): they can store it again"
            ) from None
    return env
