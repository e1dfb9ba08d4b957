"""Project admins configure their own projects in the Django admin, and only those
(``sessions.dashboard.admin_scope``); superusers see everything."""

from __future__ import annotations

import pytest
from django.urls import reverse

from sessions.models import AuditEntry, Membership, Project
from tests.api.test_admin_audit import _change_page_data
from tests.factories import ProjectFactory, SessionFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def two(world):
    """``world.project`` (web) whose admin is staff, and another project they have no role in."""
    other = ProjectFactory(key="other", session_prefix="oth")
    SessionFactory(project=other, id="oth-1", number=1)
    admin_user = world.users["admin"]
    admin_user.is_staff = True
    admin_user.save(update_fields=["is_staff"])
    return world.project, other, admin_user


def test_a_staff_project_admin_sees_only_their_project(client, two) -> None:
    mine, _other, admin_user = two
    client.force_login(admin_user)

    assert client.get(reverse("admin:index")).status_code == 200
    page = client.get(reverse("admin:agent_sessions_project_changelist"))

    assert page.status_code == 200
    assert list(page.context["cl"].queryset) == [mine]
    assert "Import ao.config.yaml" not in page.content.decode()
    sessions = client.get(reverse("admin:agent_sessions_session_changelist"))
    assert {s.project_id for s in sessions.context["cl"].queryset} == {mine.pk}
    memberships = client.get(reverse("admin:agent_sessions_membership_changelist"))
    assert {m.project_id for m in memberships.context["cl"].queryset} == {mine.pk}
    assert "other" not in memberships.content.decode()  # not even in the project filter


def test_a_project_admin_edits_their_project_but_not_another(client, two) -> None:
    mine, other, admin_user = two
    client.force_login(admin_user)

    assert client.get(reverse("admin:agent_sessions_project_change", args=[mine.pk])).status_code == 200
    for name in ("change", "delete", "history"):
        url = reverse(f"admin:agent_sessions_project_{name}", args=[other.pk])
        assert client.get(url).status_code == 404, name
    assert client.get(reverse("admin:agent_sessions_session_change", args=["oth-1"])).status_code == 404
    assert client.get(reverse("admin:agent_sessions_project_add")).status_code == 403
    assert client.get(reverse("admin:ao-import-config")).status_code == 403
    assert client.get(reverse("admin:ao-export-config")).status_code == 403
    # Host-level fields stay the superusers'.
    form = client.get(reverse("admin:agent_sessions_project_change", args=[mine.pk])).context["adminform"]
    assert "path" not in form.form.fields and "post_create" not in form.form.fields
    assert "max_sessions" in form.form.fields


def test_a_project_admin_saves_a_change_to_their_project(client, two) -> None:
    mine, _other, admin_user = two
    client.force_login(admin_user)
    url = reverse("admin:agent_sessions_project_change", args=[mine.pk])
    data = _change_page_data(client.get(url))
    data["max_sessions"] = "3"

    response = client.post(url, data)

    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    mine.refresh_from_db()
    assert mine.max_sessions == 3
    assert AuditEntry.objects.filter(action="project.change", actor_user=admin_user).exists()


def test_a_project_admin_cannot_grant_roles_on_another_project(client, two) -> None:
    mine, other, admin_user = two
    newcomer = UserFactory(username="newcomer")
    client.force_login(admin_user)
    add = reverse("admin:agent_sessions_membership_add")

    page = client.get(add)
    assert list(page.context["adminform"].form.fields["project"].queryset) == [mine]
    response = client.post(add, {"user": newcomer.pk, "project": other.pk, "role": "admin"})

    assert response.status_code == 200  # the form again, with an error on the project
    assert "project" in response.context["adminform"].form.errors
    assert not Membership.objects.filter(user=newcomer).exists()
    newcomer.refresh_from_db()
    assert not newcomer.is_staff


def test_giving_the_admin_role_in_the_admin_makes_the_person_staff(client, two) -> None:
    mine, _other, admin_user = two
    newcomer = UserFactory(username="newcomer")
    client.force_login(admin_user)

    response = client.post(
        reverse("admin:agent_sessions_membership_add"),
        {"user": newcomer.pk, "project": mine.pk, "role": "admin"},
    )

    assert response.status_code == 302
    newcomer.refresh_from_db()
    assert newcomer.is_staff and not newcomer.is_superuser
    assert AuditEntry.objects.filter(action="user.change", target_id=str(newcomer.pk)).exists()
    client.force_login(newcomer)
    page = client.get(reverse("admin:agent_sessions_project_changelist"))
    assert list(page.context["cl"].queryset) == [mine]


def test_staff_without_the_admin_role_sees_no_project(client, world) -> None:
    operator = world.users["operator"]
    operator.is_staff = True
    operator.save(update_fields=["is_staff"])
    client.force_login(operator)

    assert client.get(reverse("admin:agent_sessions_project_changelist")).status_code == 403
    url = reverse("admin:agent_sessions_project_change", args=[world.project.pk])
    assert client.get(url).status_code in (403, 404)


def test_a_superuser_sees_every_project(client, two) -> None:
    mine, other, _admin = two
    client.force_login(UserFactory(username="root"))

    page = client.get(reverse("admin:agent_sessions_project_changelist"))

    assert set(page.context["cl"].queryset) == set(Project.objects.all()) == {mine, other}
    assert client.get(reverse("admin:agent_sessions_project_change", args=[other.pk])).status_code == 200
    assert "Import ao.config.yaml" in page.content.decode()


def test_the_board_links_project_admins_to_the_configure_page(client, two) -> None:
    mine, _other, admin_user = two
    url = reverse("admin:agent_sessions_project_change", args=[mine.pk])
    client.force_login(admin_user)
    assert url in client.get(reverse("sessions:project", args=[mine.key])).content.decode()

    operator = UserFactory(username="staff-operator", is_staff=True)
    Membership.objects.create(user=operator, project=mine, role="operator")
    client.force_login(operator)
    assert url not in client.get(reverse("sessions:project", args=[mine.key])).content.decode()


def test_a_project_admin_cannot_redirect_the_projects_credentials(client, two) -> None:
    mine, _other, admin_user = two
    Project.objects.filter(pk=mine.pk).update(
        plugin_settings={"scm": {"token_env": "GITHUB_TOKEN"}, "agent": {"model": "opus"}}
    )
    client.force_login(admin_user)
    url = reverse("admin:agent_sessions_project_change", args=[mine.pk])
    data = _change_page_data(client.get(url))

    # pointing the SCM at another host or another secret would send ao's token there
    data["plugin_settings"] = '{"scm": {"token_env": "AO_SECRET_KEY"}, "agent": {"model": "opus"}}'
    refused = client.post(url, data)
    assert refused.status_code == 200
    assert "only a superuser may change the scm settings" in str(refused.context["adminform"].form.errors)
    # the agent's settings are theirs to change
    data["plugin_settings"] = '{"scm": {"token_env": "GITHUB_TOKEN"}, "agent": {"model": "sonnet"}}'
    assert client.post(url, data).status_code == 302
    mine.refresh_from_db()
    assert mine.plugin_settings == {"scm": {"token_env": "GITHUB_TOKEN"}, "agent": {"model": "sonnet"}}
