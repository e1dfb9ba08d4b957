"""Per-user API tokens: create (the raw token is returned once), authenticate, revoke."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from sessions.core import audit
from sessions.models import ApiToken

TOKEN_PREFIX = "ao_"  # noqa: S105 - a prefix, not a secret
PREFIX_CHARS = 11  # "ao_" + 8 characters: enough to tell tokens apart in a list, useless to an attacker
LAST_USED_RESOLUTION = timedelta(seconds=60)  # last_used_at is written at most once a minute per token


def token_digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def api_token_create(*, user, name: str) -> tuple[ApiToken, str]:
    """A new token for ``user``; returns the row and the raw token (shown once, never stored)."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ValueError("a token name is 1 to 100 characters")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, prefix=raw[:PREFIX_CHARS], token_hash=token_digest(raw)
    )
    audit.record(action="token.create", target=token, data={"name": name, "user": user.get_username()})
    return token, raw


def api_token_revoke(*, token: ApiToken) -> bool:
    """Revoke ``token``; False if it already was."""
    revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    if revoked:
        token.refresh_from_db()
        audit.record(action="token.revoke", target=token, data={"name": token.name})
    return bool(revoked)


def api_tokens_for(*, user):
    return ApiToken.objects.filter(user=user)


def api_token_authenticate(raw: str) -> ApiToken | None:
    """The active token whose hash matches ``raw`` (with its user), or None. Marks it used."""
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    digest = token_digest(raw)
    token = ApiToken.objects.select_related("user").filter(token_hash=digest, revoked_at__isnull=True).first()
    if token is None or not hmac.compare_digest(token.token_hash, digest) or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
        ).update(last_used_at=now)
        token.last_used_at = now
    return token
