"""The admin tells the truth when a project cannot be deleted: while one of its agents runs on
another host, `operating.project_delete` refuses; the admin shows that refusal as an error, keeps the
project (and its history), and says "deleted" only of what was deleted."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.messages import get_messages

from sessions.models import Project, Session
from tests.factories import ProjectFactory, SessionFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, settings):
    settings.AO_EMBEDDED = False  # agents may run on other hosts
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def busy_elsewhere(key: str) -> Project:
    project = ProjectFactory(key=key, session_prefix=key)
    SessionFactory(project=project, host="gpu-box-2", runtime_handle={"runtime": "tmux", "name": f"{key}-1"})
    return project


def said(response) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


def test_a_refused_delete_is_an_error_and_the_project_stays(admin_client):
    project = busy_elsewhere("web")

    done = admin_client.post(
        f"/admin/agent_sessions/project/{project.pk}/delete/", {"post": "yes"}, follow=True
    )

    assert said(done) == [
        (
            "error",
            "project web has agents on host(s) gpu-box-2: kill its sessions first (`ao session kill ID`), "
            "then delete it",
        )
    ]
    assert Project.objects.filter(key="web").exists() and Session.objects.filter(project=project).exists()
    assert not LogEntry.objects.filter(action_flag=DELETION).exists()  # nothing was deleted


def test_deleting_several_says_deleted_only_of_those_that_were(admin_client):
    busy = busy_elsewhere("web")
    stray = ProjectFactory(key="stray", session_prefix="stray")

    done = admin_client.post(
        "/admin/agent_sessions/project/",
        {"action": "delete_selected", "_selected_action": [busy.pk, stray.pk], "post": "yes"},
        follow=True,
    )

    messages = said(done)
    assert ("success", "Successfully deleted 2 projects.") not in messages
    assert ("success", "Deleted the project stray.") in messages
    assert any(
        level == "error" and text.startswith("project web has agents on host(s) gpu-box-2")
        for level, text in messages
    )
    assert list(Project.objects.values_list("key", flat=True)) == ["web"]
    assert list(LogEntry.objects.filter(action_flag=DELETION).values_list("object_repr", flat=True)) == [
        str(stray)
    ]
