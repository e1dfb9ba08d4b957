"""The tokens page (``/tokens/``): a person's API tokens, made and revoked from the dashboard.

The same services as ``ao token`` and ``/api/v1/tokens/`` (``sessions.api.tokens``), so creating
and revoking are audited the same way (source ``browser``). The raw token is in the body of the
response to the create POST only: never in a redirect, a flash message, the session or a log, so
reloading the page (or coming back) does not show it again. Anyone logged in manages their own
tokens; a superuser also sees and may revoke everyone else's active tokens. Another person's token
is a 404 to everyone else.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from sessions.api.tokens import api_token_create, api_token_revoke, api_tokens_for
from sessions.dashboard.views_common import page_context
from sessions.models import ApiToken


class TokenCreateForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="What uses it, e.g. 'ci-bot' or 'laptop CLI'.",
        widget=forms.TextInput(attrs={"placeholder": "e.g. ci-bot", "autocomplete": "off"}),
    )


def _page(request: HttpRequest, *, form: TokenCreateForm, created=None, raw: str = "", status=200):
    others = []
    if request.user.is_superuser:
        others = list(
            ApiToken.objects.select_related("user")
            .exclude(user=request.user)
            .filter(revoked_at__isnull=True)
            .order_by("user__username", "-created_at")
        )
    context = page_context(
        request,
        form=form,
        tokens=list(api_tokens_for(user=request.user)),
        others=others,
        created=created,
        raw_token=raw,
    )
    return render(request, "sessions/tokens.html", context, status=status)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    """GET lists the person's tokens; POST creates one and shows its raw value, this once."""
    if request.method == "GET":
        return _page(request, form=TokenCreateForm())
    form = TokenCreateForm(request.POST)
    if not form.is_valid():
        return _page(request, form=form, status=400)
    try:
        token, raw = api_token_create(user=request.user, name=form.cleaned_data["name"])
    except ValueError as exc:
        form.add_error("name", str(exc))
        return _page(request, form=form, status=400)
    return _page(request, form=TokenCreateForm(), created=token, raw=raw, status=201)


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """Revoke one of the person's tokens (a superuser: anyone's). Others' tokens are a 404."""
    qs = ApiToken.objects.all() if request.user.is_superuser else api_tokens_for(user=request.user)
    token = qs.filter(pk=pk).first()
    if token is None:
        raise Http404("no such token of yours")
    if api_token_revoke(token=token):
        owner = "" if token.user_id == request.user.pk else f" of {token.user.get_username()}"
        messages.success(request, f"Token {token.name} ({token.prefix}…){owner} revoked.")
    else:
        messages.info(request, f"Token {token.name} was already revoked.")
    return redirect("sessions:tokens")
