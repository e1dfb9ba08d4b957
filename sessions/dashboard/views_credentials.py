"""The credentials page (``/credentials/``): a person's own model credentials (issue 19).

Write-only, like ``ao secret set --mine`` and ``/api/v1/me/credentials/`` (the same services in
``sessions.core.secrets``): the page lists the names and when they changed, a form stores or replaces
a value, a button deletes one. No response, message, redirect or log ever holds a value, and
each person sees and manages only their own (superusers too). Which projects use them is the
projects' ``credentials`` setting.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from sessions.core import secrets, selectors
from sessions.dashboard.views_common import page_context


class CredentialForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="The environment variable your agents read, e.g. ANTHROPIC_API_KEY, OPENAI_API_KEY, GEMINI_API_KEY.",
        widget=forms.TextInput(attrs={"placeholder": "ANTHROPIC_API_KEY", "autocomplete": "off"}),
    )
    value = forms.CharField(
        max_length=secrets.MAX_SECRET_CHARS,
        strip=False,
        help_text="Never shown again, not even to you.",
        # render_value=False: a page re-rendered after an error never carries the value back
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        try:
            return secrets.validate_personal_name(name)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


def _page(request: HttpRequest, *, form: CredentialForm, status: int = 200) -> HttpResponse:
    projects = [
        p for p in selectors.projects_visible_to(request.user).order_by("key") if p.credentials != "project"
    ]
    context = page_context(
        request, form=form, credentials=list(secrets.personal_secrets_of(request.user)), projects=projects
    )
    return render(request, "sessions/credentials.html", context, status=status)


@never_cache
@sensitive_post_parameters("value")  # never in an error report
@login_required
@require_http_methods(["GET", "POST"])
def credentials(request: HttpRequest) -> HttpResponse:
    """GET lists the person's credentials (names only); POST stores or replaces one."""
    if request.method == "GET":
        return _page(request, form=CredentialForm())
    form = CredentialForm(request.POST)
    if not form.is_valid():
        return _page(request, form=form, status=400)
    name = form.cleaned_data["name"]
    existed = secrets.personal_secrets_of(request.user).filter(name=name).exists()
    try:
        secrets.personal_secret_set(user=request.user, name=name, value=form.cleaned_data["value"])
    except ValueError as exc:  # names the limit, never the value
        form.add_error("value", str(exc))
        return _page(request, form=form, status=400)
    messages.success(request, f"{name} {'replaced' if existed else 'stored'}.")
    return redirect("sessions:credentials")


@login_required
@require_POST
def credential_delete(request: HttpRequest, name: str) -> HttpResponse:
    """Delete one of the person's credentials; anything else is a 404."""
    if not secrets.personal_secret_delete(user=request.user, name=name):
        raise Http404("no such credential of yours")
    messages.success(request, f"{name} deleted.")
    return redirect("sessions:credentials")
