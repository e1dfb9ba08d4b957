"""``?project=`` on list endpoints: an unknown project, or one you cannot see, is the same 404."""

from __future__ import annotations

import pytest

from tests.factories import ProjectFactory

LISTS = ("/api/v1/sessions/", "/api/v1/events/", "/api/v1/reactions/attempts/", "/api/v1/notifications/")


@pytest.mark.parametrize("path", LISTS)
def test_unknown_or_invisible_project_filter_is_not_found(world, path) -> None:
    ProjectFactory(key="hidden", session_prefix="hid")  # exists, but the viewer has no role in it
    client = world.client("viewer")
    for key in ("nope", "hidden"):
        response = client.get(path, {"project": key})
        assert response.status_code == 404, (path, key)
        error = response.json()["error"]
        assert error["code"] == "not_found"
        assert error["message"] == f"no project '{key}' visible to you"
    assert client.get(path, {"project": "web"}).status_code == 200
    assert world.client("root").get(path, {"project": "hidden"}).status_code == 200
