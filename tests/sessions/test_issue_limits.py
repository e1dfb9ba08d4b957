"""A new issue's title has one limit, whoever creates it: `ao issue add`, the API and the dashboard
refuse a longer one with the same clear error (never cut it), and accept one at the limit."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from integrations.models import LocalIssue
from sessions.agents.issues import ISSUE_TITLE_MAX_CHARS
from sessions.api.tokens import api_token_create
from sessions.models import Membership
from tests.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db

LIMIT_ERROR = (
    f"the issue title is {ISSUE_TITLE_MAX_CHARS + 1:,} characters; the limit is {ISSUE_TITLE_MAX_CHARS:,}"
)


@pytest.fixture
def project():
    return ProjectFactory(key="web", session_prefix="web", tracker="local")


def test_ao_issue_add_refuses_a_title_over_the_limit_and_creates_nothing(project) -> None:
    with pytest.raises(CommandError) as refused:
        call_command("issue", "--project", "web", "add", "x" * (ISSUE_TITLE_MAX_CHARS + 1), stdout=StringIO())
    with pytest.raises(CommandError, match="the issue title is 102,400 characters; the limit is 300"):
        call_command("issue", "--project", "web", "add", "x" * 102_400, stdout=StringIO())

    assert str(refused.value) == LIMIT_ERROR
    assert not LocalIssue.objects.exists()


def test_the_api_refuses_the_same_title_with_the_same_error(project) -> None:
    user = UserFactory(username="olivia")
    Membership.objects.create(user=user, project=project, role="operator")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=user, name='bot')[1]}")

    refused = api.post(
        "/api/v1/projects/web/issues/", {"title": "x" * (ISSUE_TITLE_MAX_CHARS + 1)}, format="json"
    )

    assert refused.status_code == 400
    assert refused.json()["error"]["details"]["title"] == [LIMIT_ERROR]
    assert not LocalIssue.objects.exists()


def test_a_title_at_the_limit_is_kept_whole_everywhere(project) -> None:
    title = "y" * ISSUE_TITLE_MAX_CHARS
    out = StringIO()
    call_command("issue", "--project", "web", "add", title, stdout=out)

    assert LocalIssue.objects.get().title == title
