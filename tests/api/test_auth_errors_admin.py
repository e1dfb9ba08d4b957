"""Token lifecycle, the error shape, limits, secrets, the admin and the docs."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.test import Client

from sessions.api.tokens import api_token_create
from sessions.core import secrets
from sessions.models import ApiToken, AuditEntry, Project, Secret

pytestmark = pytest.mark.django_db


def test_token_lifecycle_create_use_revoke(world) -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command("token", "create", "deploy-bot", "--user", "operator", stdout=out, stderr=err)
    raw = out.getvalue().strip()
    assert raw.startswith("ao_") and "shown once" in err.getvalue()
    token = ApiToken.objects.get(name="deploy-bot")
    assert token.token_hash != raw and raw not in json.dumps(list(ApiToken.objects.values()), default=str)
    assert token.last_used_at is None

    client = world.client("anonymous")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/me").json()["username"] == "operator"
    token.refresh_from_db()
    assert token.last_used_at is not None

    listed = io.StringIO()
    call_command("token", "ls", "--json", stdout=listed)
    row = next(r for r in json.loads(listed.getvalue()) if r["name"] == "deploy-bot")
    assert row["prefix"] == raw[:11] and "token" not in row

    call_command("token", "revoke", str(token.pk), stdout=io.StringIO())
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert response["WWW-Authenticate"].startswith("Bearer")
    actions = list(AuditEntry.objects.filter(target_id=str(token.pk)).values_list("action", "source"))
    assert actions == [("token.revoke", "cli"), ("token.create", "cli")]


def test_error_shapes(world) -> None:
    anonymous = world.client("anonymous").get("/api/v1/sessions/")
    assert anonymous.status_code == 401
    assert anonymous.json() == {
        "error": {"code": "not_authenticated", "message": "Authentication credentials were not provided."}
    }
    bogus = world.client("anonymous")
    bogus.credentials(HTTP_AUTHORIZATION="Bearer ao_not-a-real-token")
    assert bogus.get("/api/v1/sessions/").status_code == 401
    viewer = world.client("viewer")
    missing = viewer.get("/api/v1/sessions/nope-1/")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    no_endpoint = viewer.get("/api/v1/no-such-thing/")  # outside DRF's views: still the API's JSON
    assert no_endpoint.status_code == 404
    assert no_endpoint.json() == {
        "error": {"code": "not_found", "message": "no such endpoint: /api/v1/no-such-thing/"}
    }
    wrong_method = viewer.delete("/api/v1/sessions/")
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["code"] == "method_not_allowed"
    not_json = world.client("operator").post(
        f"/api/v1/sessions/{world.session.id}/send",
        "text=hi",
        content_type="application/x-www-form-urlencoded",
    )
    assert not_json.status_code == 415 and not_json.json()["error"]["code"] == "unsupported_media_type"
    malformed = world.client("operator").post(
        f"/api/v1/sessions/{world.session.id}/send", "{", content_type="application/json"
    )
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "parse_error"


def test_oversized_body_is_413(world, settings) -> None:
    settings.AO_API_MAX_BODY_BYTES = 1000
    response = world.client("operator").post(
        f"/api/v1/sessions/{world.session.id}/send", {"text": "x" * 2000}, format="json"
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert not AuditEntry.objects.exists()


def test_throttled_per_token(world, settings) -> None:
    settings.AO_API_THROTTLE_RATE = "3/min"
    viewer, operator = world.client("viewer"), world.client("operator")
    assert [viewer.get("/api/v1/me").status_code for _ in range(3)] == [200, 200, 200]
    throttled = viewer.get("/api/v1/me")
    assert throttled.status_code == 429 and int(throttled["Retry-After"]) > 0
    assert throttled.json()["error"]["code"] == "throttled"
    assert operator.get("/api/v1/me").status_code == 200  # another token has its own budget


def test_browser_session_needs_csrf_for_actions(world) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(world.users["operator"])
    assert browser.get("/api/v1/sessions/").status_code == 200
    refused = browser.post(
        f"/api/v1/sessions/{world.session.id}/send", {"text": "x"}, content_type="application/json"
    )
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]["message"]


def test_secrets_are_encrypted_and_write_only(world, client) -> None:
    secrets.secret_set(name="github-prod", value="ghp_supersecret")
    row = Secret.objects.get(name="github-prod")
    assert "ghp_supersecret" not in row.ciphertext
    assert secrets.secret_value("github-prod") == "ghp_supersecret"
    with pytest.raises(secrets.SecretUnavailable):
        secrets.secret_value("nope")

    client.force_login(world.users["root"])
    page = client.get(f"/admin/agent_sessions/secret/{row.pk}/change/")
    assert page.status_code == 200 and b"ghp_supersecret" not in page.content
    assert row.ciphertext.encode() not in page.content
    client.post(f"/admin/agent_sessions/secret/{row.pk}/change/", {"replace": "ghp_new"})
    assert secrets.secret_value("github-prod") == "ghp_new"
    entry = AuditEntry.objects.filter(action="secret.replace").get()
    assert (entry.source, entry.actor_user) == ("admin", world.users["root"])
    assert "ghp_" not in json.dumps(entry.data)


def test_admin_project_plugin_settings_validated_on_the_field(world, client) -> None:
    client.force_login(world.users["root"])
    url = f"/admin/agent_sessions/project/{world.project.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and not isinstance(v, list | dict)}
    data.update(
        {
            "agent": "no-such-agent",
            "plugin_settings": json.dumps({"runtime": {"bogus": 1}}),
            "reactions": json.dumps({"ci-failed": {"retries": "many"}}),
            "symlinks": "[]",
            "post_create": "[]",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        }
    )
    response = client.post(url, data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "unknown agent plugin 'no-such-agent'" in errors["agent"][0]
    assert "bogus" in " ".join(errors["plugin_settings"])
    assert "ci-failed" in " ".join(errors["reactions"])


def test_admin_token_shows_raw_once_and_export(world, client) -> None:
    client.force_login(world.users["root"])
    response = client.post(
        "/admin/agent_sessions/apitoken/add/",
        {"user": world.users["viewer"].pk, "name": "grafana"},
        follow=True,
    )
    token = ApiToken.objects.get(name="grafana")
    shown = [str(m) for m in response.context["messages"]]
    assert any(token.prefix in m and "not shown again" in m for m in shown)
    detail = client.get(f"/admin/agent_sessions/apitoken/{token.pk}/change/")
    assert detail.status_code == 200 and token.token_hash.encode() not in detail.content

    exported = client.post(
        "/admin/agent_sessions/project/",
        {"action": "export_config", "_selected_action": [world.project.pk]},
    )
    assert exported["Content-Disposition"] == 'attachment; filename="ao.config.yaml"'
    import yaml

    config = yaml.safe_load(exported.content)
    assert config["projects"]["web"]["sessionPrefix"] == "web"
    assert config["projects"]["web"]["scm"] == "apitest"


def test_admin_import_config(world, client, tmp_path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (tmp_path / "ao.config.yaml").write_text(
        "projects:\n  shop:\n    path: repo\n    sessionPrefix: shop\n    agent: claude-code\n"
        "    runtime: tmux\n    workspace: worktree\n    tracker: local\n    scm: local\n"
    )
    client.force_login(world.users["root"])
    response = client.post(
        "/admin/agent_sessions/project/import-config/", {"path": str(tmp_path / "ao.config.yaml")}
    )
    assert response.status_code == 302, response.content[:2000]
    assert Project.objects.filter(key="shop", path=str(repo)).exists()
    entry = AuditEntry.objects.get(action="config.apply")
    assert entry.source == "admin"
    bad = client.post(
        "/admin/agent_sessions/project/import-config/", {"path": str(tmp_path / "missing.yaml")}
    )
    assert bad.status_code == 200 and bad.context["problems"]


def test_schema_and_docs_are_served_without_a_cdn(world, client) -> None:
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    paths = json.loads(schema.content)["paths"]
    assert "/api/v1/sessions/{session_id}/merge" in paths
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "drf_spectacular_sidecar" in html and "cdn.jsdelivr" not in html
    asset = client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert asset.status_code == 200


def test_a_new_token_via_the_service(world) -> None:
    token, raw = api_token_create(user=world.users["viewer"], name="x")
    assert token.prefix == raw[:11] and token.is_active


def test_a_server_error_answers_machines_in_json_and_people_with_a_page(rf) -> None:
    from ao_site.errors import server_error

    api = server_error(rf.get("/api/v1/sessions/"))
    assert api.status_code == 500 and api["Content-Type"] == "application/json"
    assert json.loads(api.content)["error"]["code"] == "server_error"
    page = server_error(rf.get("/s/web-1/"))
    assert page.status_code == 500 and b"Something went wrong in ao" in page.content
