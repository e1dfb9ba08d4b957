"""Every change made in the Django admin is an AuditEntry (``sessions.dashboard.admin_audit``)."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin

from sessions.core import secrets
from sessions.dashboard.admin_audit import AuditedAdminMixin
from sessions.models import AuditEntry, Membership, Secret
from tests.factories import UserFactory


def _form_data(form) -> dict:
    """What the browser would post back for ``form`` as shown (its current values)."""
    data: dict = {}
    for field in form:
        value = field.value()
        if value is None:
            continue
        if isinstance(field.field, forms.BooleanField):
            if value:
                data[field.html_name] = "on"
        elif isinstance(value, list | tuple):
            data[field.html_name] = [str(v) for v in value]
        else:
            data[field.html_name] = str(value)
        if field.field.show_hidden_initial and field.html_name in data:  # fields with a callable default
            data[field.html_initial_name] = data[field.html_name]
    return data


def _change_page_data(page) -> dict:
    data = _form_data(page.context["adminform"].form)
    for inline in page.context["inline_admin_formsets"]:
        formset = inline.formset
        data.update(_form_data(formset.management_form))
        for form in formset.forms:
            data.update(_form_data(form))
    return data


def _entries(action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action).order_by("pk"))


def test_every_registered_admin_is_audited() -> None:
    admin.autodiscover()  # the apps' admin modules load with the URLs (ao_site/admin_app.py)
    assert len(admin.site._registry) > 10
    unaudited = [
        f"{model._meta.label}: {type(model_admin).__name__}"
        for model, model_admin in admin.site._registry.items()
        if not isinstance(model_admin, AuditedAdminMixin)
    ]
    assert unaudited == []


def test_project_change_and_membership_added_inline_are_audited(world, client) -> None:
    root, newcomer = world.users["root"], UserFactory(username="newcomer")
    client.force_login(root)
    url = f"/admin/agent_sessions/project/{world.project.pk}/change/"
    data = _change_page_data(client.get(url))
    total = int(data["memberships-TOTAL_FORMS"])
    data.update(
        {
            "max_sessions": "7",
            "name": "Web shop",
            "memberships-TOTAL_FORMS": str(total + 1),
            f"memberships-{total}-user": str(newcomer.pk),
            f"memberships-{total}-role": "operator",
        }
    )
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Membership.objects.filter(user=newcomer, project=world.project, role="operator").exists()

    [change] = _entries("project.change")
    assert (change.source, change.actor_kind, change.actor_user) == ("admin", "user", root)
    assert (change.target_type, change.target_id, change.project) == (
        "project",
        str(world.project.pk),
        world.project,
    )
    assert sorted(change.data["fields"]) == ["max_sessions", "name"]
    [grant] = _entries("membership.create")
    membership = Membership.objects.get(user=newcomer)
    assert (grant.target_id, grant.project, grant.source) == (str(membership.pk), world.project, "admin")
    assert sorted(grant.data["fields"]) == ["role", "user"]

    # nothing changed: nothing recorded
    client.post(url, _change_page_data(client.get(url)))
    assert len(_entries("project.change")) == 1


def test_membership_role_change_and_delete_are_audited(world, client) -> None:
    client.force_login(world.users["root"])
    membership = Membership.objects.get(user=world.users["viewer"], project=world.project)
    url = f"/admin/agent_sessions/membership/{membership.pk}/change/"
    data = _change_page_data(client.get(url))
    data["role"] = "admin"
    assert client.post(url, data).status_code == 302
    [change] = _entries("membership.change")
    assert (change.data["fields"], change.project, change.source) == (["role"], world.project, "admin")

    response = client.post(
        "/admin/agent_sessions/membership/",
        {"action": "delete_selected", "_selected_action": [membership.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert not Membership.objects.filter(pk=membership.pk).exists()
    [deleted] = _entries("membership.delete")
    assert (deleted.target_id, deleted.project) == (str(membership.pk), world.project)


def test_user_edits_record_field_names_never_values(world, client) -> None:
    client.force_login(world.users["root"])
    user = world.users["viewer"]
    response = client.post(
        f"/admin/auth/user/{user.pk}/password/",
        {"password1": "Very-secret-pw-1", "password2": "Very-secret-pw-1", "usable_password": "true"},
    )
    assert response.status_code == 302
    [entry] = _entries("user.change")
    assert (entry.target_id, entry.source) == (str(user.pk), "admin")
    assert "Very-secret" not in json.dumps(entry.data)
    assert entry.data["fields"] == ["password"]


def test_secret_admin_records_once_and_never_the_value(world, client) -> None:
    secrets.secret_set(name="slack-hook", value="https://hooks.example/T0/B0/xyz")
    row = Secret.objects.get(name="slack-hook")
    client.force_login(world.users["root"])
    client.post(f"/admin/agent_sessions/secret/{row.pk}/change/", {"replace": "https://hooks.example/new"})
    assert [(e.action, e.source) for e in AuditEntry.objects.filter(target_type="secret")] == [
        ("secret.replace", "admin")
    ]
    response = client.post(f"/admin/agent_sessions/secret/{row.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    [deleted] = _entries("secret.delete")
    assert (deleted.target_id, deleted.source) == (str(row.pk), "admin")
    assert "hooks.example" not in json.dumps([e.data for e in AuditEntry.objects.all()])


def test_token_revoked_in_the_admin_is_audited(world, client) -> None:
    from sessions.models import ApiToken

    token = ApiToken.objects.get(name="viewer-bot")
    client.force_login(world.users["root"])
    client.post("/admin/agent_sessions/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})
    [entry] = _entries("token.revoke")
    assert (entry.target_id, entry.source, entry.actor_user) == (str(token.pk), "admin", world.users["root"])
