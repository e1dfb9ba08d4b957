"""Fuzz every operation from the OpenAPI schema (schemathesis): no 500s, and every response's
status code, content type and body match what the schema says."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from sessions.models import Project
from tests.factories import PullRequestFactory, SessionFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db, pytest.mark.timeout(120)]

CHECKS = (not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance)
MAX_EXAMPLES = 20


def _for_agents(path: str) -> bool:
    return path.endswith(("/report", "/pr"))


def test_api_conforms_to_its_schema(world) -> None:
    PullRequestFactory(session=SessionFactory(project=world.project))
    Project.objects.filter(pk=world.project.pk).update(tracker="local")
    schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", get_wsgi_application())
    auth = {"Authorization": f"Bearer {world.tokens['root']}"}
    agent = {"Authorization": f"Bearer {world.agent_token}", "X-AO-Session": world.session.id}
    operations = [result.ok() for result in schema.get_all_operations()]
    # revoking tokens would revoke the fuzzer's own; that endpoint has its own tests
    operations = [op for op in operations if not (op.method.upper() == "DELETE" and "/tokens/" in op.path)]
    assert len(operations) >= 25
    agent_statuses: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def fuzz(case) -> None:
            if _for_agents(case.operation.path):
                # the agent endpoints, with the session's own token on its own session
                case.path_parameters = {**(case.path_parameters or {}), "session_id": world.session.id}
                case.headers = {**(case.headers or {}), **agent}
            else:
                case.headers = {**(case.headers or {}), **auth}
            response = case.call()
            if _for_agents(case.operation.path):
                agent_statuses.append(response.status_code)
            case.validate_response(response, checks=CHECKS)

        fuzz()
    # the agent endpoints were reached with valid bodies too, not only refused
    assert any(200 <= code < 300 for code in agent_statuses), agent_statuses
