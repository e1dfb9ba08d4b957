"""One-time login links: how the first admin (who has no password) gets into the dashboard; and
the page a login gets while password guessing is locked out (``sessions.core.login_lockout``).

A link carries the user's id and a token in the style of Django's password-reset tokens: an
HMAC over the user's pk, password hash and exact last-login time plus a timestamp. It expires
after 15 minutes and works once, because logging in changes ``last_login``. Nothing is stored.
Opening it shows a confirmation page; its button (a CSRF-checked POST) signs in. Failures
redirect rather than answer 4xx so that the token never appears in a log line.

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
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_POST

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


def _link_user(uidb64: str, token: str):
    """The active person a valid, unused, unexpired link is for, or None."""
    user_model = get_user_model()
    try:
        user = user_model._default_manager.get(pk=force_str(urlsafe_base64_decode(uidb64)), is_active=True)
    except (TypeError, ValueError, OverflowError, ValidationError, user_model.DoesNotExist):
        return None
    return user if one_time_login_tokens.check_token(user, token) else None


@never_cache
@require_GET
def one_time_login(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    """The link: a page that asks "Sign in as <name>?" (and says so plainly when this browser is
    signed in as someone else), whose button posts to :func:`one_time_login_confirm`. A used or
    expired link goes to the login page.

    Opening the link never signs in: any page the browser shows (an ``<img>`` on an agent's dev
    server) can make it GET a URL, and would otherwise switch the operator's browser into the
    sender's account (login CSRF). Nor does it use the link up (a link preview, a reload).
    """
    user = _link_user(uidb64, token)
    if user is None:
        return redirect(settings.LOGIN_URL)
    current = request.user if request.user.is_authenticated else None
    return render(
        request,
        "registration/one_time_login.html",
        {
            "person": user.get_username(),
            "uidb64": uidb64,
            "token": token,
            "signed_in_as": current.get_username() if current is not None else "",
            "same_person": current is not None and current.pk == user.pk,
        },
    )


@never_cache
@sensitive_post_parameters("token")
@require_POST
def one_time_login_confirm(request: HttpRequest) -> HttpResponse:
    """The confirmation page's button: log the link's person in and go to the board. Django's
    CSRF check applies (the page's token, and ao's own origin); the link is used up here
    (logging in changes ``last_login``). The link's id and token come in the form, not the path,
    so that a refused post (logged with its path) does not write a live token to the log."""
    user = _link_user(str(request.POST.get("uidb64", "")), str(request.POST.get("token", "")))
    if user is None:
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
