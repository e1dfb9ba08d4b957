"""One-time login links: how the first admin (who has no password) gets into the dashboard; and
the page a login gets while password guessing is locked out (``sessions.core.login_lockout``).

A link carries the user's id and a token in the style of Django's password-reset tokens: an
HMAC over the user's pk, password hash and exact last-login time plus a timestamp. It expires
after 15 minutes and works once, because logging in changes ``last_login``. Nothing is stored.

A link logs its user in even while their password login is locked out: it is minted on the ao
host (``ao login-link``) or handed out by a superuser, and is an HMAC under the secret key, so it
is no way to guess a password. It is how the owner gets in while someone else keeps guessing.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model, login
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.encoding import force_bytes, force_str
from django.utils.http import base36_to_int, urlsafe_base64_decode, urlsafe_base64_encode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

ONE_TIME_LOGIN_MAX_AGE = 15 * 60


class OneTimeLoginTokenGenerator(PasswordResetTokenGenerator):
    key_salt = "sessions.dashboard.views_auth.OneTimeLoginTokenGenerator"
    max_age = ONE_TIME_LOGIN_MAX_AGE

    def _make_hash_value(self, user, timestamp: int) -> str:
        # The full last_login (microseconds included): a login even within the same second
        # invalidates the link.
        last_login = "" if user.last_login is None else user.last_login.isoformat()
        return f"{user.pk}|{user.password}|{last_login}|{user.is_active}|{timestamp}"

    def check_token(self, user, token) -> bool:
        if not super().check_token(user, token):
            return False
        try:
            issued = base36_to_int(token.split("-", 1)[0])
        except ValueError:
            return False
        return 0 <= self._num_seconds(self._now()) - issued <= self.max_age


one_time_login_tokens = OneTimeLoginTokenGenerator()


def one_time_login_url(user, *, base_url: str) -> str:
    uidb64 = urlsafe_base64_encode(force_bytes(user.pk))
    token = one_time_login_tokens.make_token(user)
    path = reverse("one_time_login", kwargs={"uidb64": uidb64, "token": token})
    return base_url.rstrip("/") + path


@never_cache
@require_GET
def one_time_login(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    """Log the link's user in and go to the board; a used or expired link goes to the login page.

    Failures redirect rather than answer 4xx so that the token never appears in a log line.
    """
    user_model = get_user_model()
    try:
        user = user_model._default_manager.get(pk=force_str(urlsafe_base64_decode(uidb64)), is_active=True)
    except (TypeError, ValueError, OverflowError, ValidationError, user_model.DoesNotExist):
        user = None
    if user is None or not one_time_login_tokens.check_token(user, token):
        return redirect(settings.LOGIN_URL)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return redirect("/")


def login_locked_out(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """The answer to a password login while its lockout holds (``AXES_LOCKOUT_CALLABLE``): a page
    that says so and what to do, with 429 and ``Retry-After``; both login pages use it."""
    cool_off = settings.AXES_COOLOFF_TIME
    username = str(request.POST.get("username", ""))[:150]
    response = render(
        request,
        "registration/locked_out.html",
        {"username": username, "minutes": round(cool_off.total_seconds() / 60)},
        status=429,
    )
    response["Retry-After"] = str(int(cool_off.total_seconds()))
    return response
