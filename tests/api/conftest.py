"""Fixtures for the API tests: one project, a person per role, their tokens, a fake SCM."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from sessions.agents.plugins import token_hash
from sessions.api.tokens import api_token_create
from sessions.models import Membership, Project
from tests.factories import ProjectFactory, SessionFactory, UserFactory
from tests.helpers.scm import in_memory_scm

ApiTestSCM = in_memory_scm("apitest")


@dataclass
class World:
    project: object
    session: object
    users: dict
    tokens: dict  # role -> raw token
    agent_token: str

    def client(self, who: str) -> APIClient:
        client = APIClient()
        if who == "anonymous":
            return client
        if who == "agent":
            client.credentials(
                HTTP_AUTHORIZATION=f"Bearer {self.agent_token}", HTTP_X_AO_SESSION=self.session.id
            )
            return client
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.tokens[who]}")
        return client


ROLES = ("viewer", "operator", "admin")


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_throttle_cache():
    cache.clear()
    ApiTestSCM.prs, ApiTestSCM.merged = {}, []
    yield
    cache.clear()


@pytest.fixture
def world(db) -> World:
    project = ProjectFactory(key="web", session_prefix="web", scm="apitest")
    session = SessionFactory(project=project, api_token_hash=token_hash("agent-secret"))
    Project.objects.filter(pk=project.pk).update(next_session_number=1000)  # spawns never meet factory ids
    users, tokens = {}, {}
    for role in ROLES:
        user = UserFactory(username=role)
        Membership.objects.create(user=user, project=project, role=role)
        users[role] = user
        tokens[role] = api_token_create(user=user, name=f"{role}-bot")[1]
    users["outsider"] = UserFactory(username="outsider")
    tokens["outsider"] = api_token_create(user=users["outsider"], name="outsider-bot")[1]
    users["root"] = UserFactory(username="root", is_superuser=True, is_staff=True)
    tokens["root"] = api_token_create(user=users["root"], name="root-bot")[1]
    return World(project=project, session=session, users=users, tokens=tokens, agent_token="agent-secret")
