"""Plugin credentials: from an environment variable or from a secret stored in ao, by name.

Every credential-bearing plugin setting comes in two forms: ``<what>_env`` names an environment
variable of ao's processes, ``<what>_secret`` names a secret stored in ao (encrypted, write-only:
the admin under Secrets, or ``ao secret set NAME``). A plugin declares the secret form with
:func:`SecretName` and the variable form with :func:`EnvName` (or names the setting ``*_env``),
refuses both forms at once with :func:`one_source`, and reads the value with :func:`credential`
each time it needs it, so a secret replaced in the admin is used on the next call without a
restart. :func:`env_settings` finds the variables a plugin's settings name: ao removes them from
every agent's environment.

Values never appear in an error message or a log line: only the variable's or the secret's name.
"""

from __future__ import annotations

import os
import re
from typing import Any, Protocol

from pydantic import BaseModel, Field

from integrations.base import PermanentIntegrationError
from integrations.secret_store import read_secret as _read_secret

# The names a Secret row may have (its SlugField), at most 100 characters.
SECRET_NAME_RE = re.compile(r"[-a-zA-Z0-9_]{1,100}")
# A token pasted where its *name* belongs; refused so that it never shows up in an error.
TOKEN_LIKE_RE = re.compile(r"(gh[pousr]_|github_pat_|lin_api_|lin_oauth_|xox[abposr]-|sk-)", re.IGNORECASE)
NAME_REF_MARK = "x-ao-secret"
ENV_REF_MARK = "x-ao-env"
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class CredentialUnavailable(PermanentIntegrationError):
    """A credential a plugin needs is missing or unreadable; the message says which and how to fix it."""

    def __init__(self, message: str, *, fix: str = "") -> None:
        super().__init__(f"{message}: {fix}" if fix else message)
        self.problem = message
        self.fix = fix


class SecretUnavailable(LookupError):
    """No such secret, or it cannot be decrypted (SECRET_KEY changed). The message says which."""


class SecretMissing(SecretUnavailable):
    """No secret of that name is stored."""


class SecretUnreadable(SecretUnavailable):
    """The secret is stored but cannot be decrypted (SECRET_KEY changed)."""


class _ErrorFactory(Protocol):
    def __call__(self, message: str, *, fix: str = "") -> Exception: ...


def SecretName(description: str) -> Any:
    """A plugin setting holding the *name* of a stored secret (not its value)."""
    return Field(default=None, description=description, json_schema_extra={NAME_REF_MARK: True})


def EnvName(description: str, default: str | None = None) -> Any:
    """A plugin setting holding the *name* of an environment variable that holds a credential."""
    return Field(default=default, description=description, json_schema_extra={ENV_REF_MARK: True})


def env_settings(config: BaseModel) -> dict[str, str]:
    """The settings of ``config`` naming an environment variable that holds a credential:
    {setting: variable}. The one place that knows: settings declared with :func:`EnvName`, and by
    convention (third-party plugins) any setting named ``*_env`` holding a variable name."""
    found = {}
    for key, field in type(config).model_fields.items():
        extra = field.json_schema_extra
        marked = isinstance(extra, dict) and bool(extra.get(ENV_REF_MARK))
        value = getattr(config, key, None)
        if (marked or key.endswith("_env")) and isinstance(value, str) and ENV_NAME_RE.fullmatch(value):
            found[key] = value
    return found


def env_settings_raw(settings: dict[str, Any]) -> set[str]:
    """The variables named by unvalidated settings (a plugin that cannot be loaded or whose
    settings no longer validate), by the naming convention only: ``*_env`` / ``*Env`` keys."""
    return {
        value
        for key, value in (settings or {}).items()
        if isinstance(key, str)
        and (key.endswith("_env") or key.endswith("Env"))
        and isinstance(value, str)
        and ENV_NAME_RE.fullmatch(value)
    }


def secret_name(value: str | None) -> str | None:
    """Validate a secret name (for a field validator of a :func:`SecretName` setting)."""
    if value is None:
        return None
    value = value.strip()
    if TOKEN_LIKE_RE.match(value):
        raise ValueError(
            "this looks like a token, not a secret's name: store the value with `ao secret set NAME` "
            "(or in the admin under Secrets) and put NAME here"
        )
    if not SECRET_NAME_RE.fullmatch(value):
        raise ValueError(
            "must be the name of a secret stored in ao: letters, digits, - or _, at most 100 characters"
        )
    return value


def one_source(config: BaseModel, env_key: str, secret_key: str) -> None:
    """Refuse settings that give both the environment-variable form and the secret form."""
    fields_set = config.model_fields_set
    env_given = env_key in fields_set and getattr(config, env_key) is not None
    if env_given and getattr(config, secret_key) is not None:
        raise ValueError(
            f"{env_key} and {secret_key} are both set: use one ({secret_key} names a secret stored in ao, "
            f"{env_key} an environment variable)"
        )


def secret_settings(config: BaseModel) -> dict[str, str]:
    """The settings of ``config`` naming a stored secret: {setting: secret name}."""
    found = {}
    for key, field in type(config).model_fields.items():
        extra = field.json_schema_extra
        if isinstance(extra, dict) and extra.get(NAME_REF_MARK) and getattr(config, key, None):
            found[key] = getattr(config, key)
    return found


def credential_source(*, env: str | None, secret: str | None) -> str:
    """Where a credential comes from, safe to show: ``secret 'gh-prod'`` or ``$GITHUB_TOKEN``."""
    return f"secret {secret!r}" if secret else f"${env}"


def credential(
    *,
    env: str | None,
    secret: str | None,
    what: str,
    who: str,
    hint: str = "",
    stored_as: str = "",
    error: _ErrorFactory = CredentialUnavailable,
) -> str:
    """The value of a credential, read now: the secret ``secret`` if named, else ``$env``.

    ``what`` says what it is ("GitHub token"), ``who`` which plugin needs it; ``hint`` is added to
    the fix (what kind of value to store), ``stored_as`` the setting that names a secret instead
    of the variable (suggested when the variable is unset). Raises ``error(message, fix=...)`` when
    it is missing, empty or cannot be decrypted: ``CredentialUnavailable`` by default, notifiers
    pass their own.
    """
    hint = f" ({hint})" if hint else ""
    if secret:
        store = f"`ao secret set {secret}` (the value on stdin) or the admin under Secrets"
        try:
            value = _read_secret(secret).strip()
        except SecretMissing:
            raise error(
                f"{who}: no secret named {secret!r} holding the {what} is stored in ao",
                fix=f"add it with {store}{hint}",
            ) from None
        except SecretUnavailable:
            raise error(
                f"{who}: the secret {secret!r} holding the {what} cannot be decrypted "
                "(was SECRET_KEY changed?)",
                fix=f"store it again with {store}{hint}",
            ) from None
        if not value:
            raise error(
                f"{who}: the secret {secret!r} holding the {what} is empty", fix=f"replace it with {store}"
            )
        return value
    if not env:
        raise error(f"{who}: no {what} configured", fix="name a stored secret or an environment variable")
    value = os.environ.get(env, "").strip()
    if not value:
        raise error(
            f"{who}: the environment variable {env} holding the {what} is not set",
            fix=f"export {env}=... in the environment of ao's worker (and of `ao doctor`){hint}"
            + (f", or store it with `ao secret set NAME` and set {stored_as}: NAME" if stored_as else ""),
        )
    return value
