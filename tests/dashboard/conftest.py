"""People with each role in one project, and another project none of them can see."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from sessions.models import Membership
from tests.factories import ProjectFactory, SessionFactory, UserFactory


@dataclass
class Team:
    project: object
    other: object
    session: object
    hidden: object
    viewer: object
    operator: object
    admin: object
    outsider: object


@pytest.fixture
def team(db) -> Team:
    project = ProjectFactory(key="webapp", repo="acme/webapp", session_prefix="web", next_session_number=2)
    other = ProjectFactory(key="secret", repo="acme/secret", session_prefix="sec")
    session = SessionFactory(
        project=project, id="web-1", number=1, issue_ref="42", issue_title="Make the board live"
    )
    hidden = SessionFactory(project=other, id="sec-1", number=1, issue_title="Hidden work")
    users = {}
    for role in ("viewer", "operator", "admin"):
        users[role] = UserFactory(username=role)
        Membership.objects.create(user=users[role], project=project, role=role)
    outsider = UserFactory(username="outsider")
    Membership.objects.create(user=outsider, project=other, role="admin")
    return Team(project, other, session, hidden, users["viewer"], users["operator"], users["admin"], outsider)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
