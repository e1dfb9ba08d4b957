"""Two project fields a project admin (not a superuser) could misuse through the admin:

- ``repo`` says which repository ao's SCM and tracker tokens read and write (the GitHub plugins fall
  back on it): only a superuser may change it, in the admin, a config applied by a person, or any
  other path through ``host_settings_guard``; it is ``owner/name`` at model level.
- ``default_branch`` reaches git as a revision: the model accepts branch names only
  (``gitutil.validate_branch_name``), never ``--output=FILE``."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from sessions.core import services
from sessions.core.config.loading import config_load_text
from sessions.core.host_settings import HostSettingRefused, host_settings_guard, project_state
from sessions.models import Project
from tests.api.test_host_settings import _post
from tests.api.test_host_settings import staff_admin as staff_admin  # the fixture
from tests.integrations.conftest import FAST, TOKEN_ENV
from tests.integrations.conftest import gh as gh  # the fake GitHub (fixture)

pytestmark = pytest.mark.django_db


# --- repo ------------------------------------------------------------------------------------------
def test_a_project_admin_cannot_point_the_project_at_another_repository(
    client, world, staff_admin, gh
) -> None:
    gh.add_repo("acme/private")
    gh.repo("acme/private").add_issue("SECRET roadmap", body="do not share")
    gh.repo("acme/widgets").add_issue("public issue")
    Project.objects.filter(pk=world.project.pk).update(
        repo="acme/widgets",
        tracker="github",
        plugin_settings={
            "agent": {"model": "opus"},
            "tracker": {"base_url": gh.base_url, "token_env": TOKEN_ENV, **FAST},
        },
    )
    client.force_login(staff_admin)

    _post(client, world.project, {"repo": "acme/private"})

    assert Project.objects.get(pk=world.project.pk).repo == "acme/widgets"
    issues = world.client("viewer").get("/api/v1/projects/web/issues/").json()
    assert [issue["title"] for issue in issues] == ["public issue"]
    created = world.client("operator").post("/api/v1/projects/web/issues/", {"title": "new"}, format="json")
    assert created.status_code == 201
    assert [issue.title for issue in gh.repo("acme/private").issues.values()] == ["SECRET roadmap"]


def test_the_repository_is_read_only_for_a_project_admin_in_the_admin(client, world, staff_admin) -> None:
    client.force_login(staff_admin)
    page = client.get(reverse("admin:agent_sessions_project_change", args=[world.project.pk]))

    assert "repo" not in page.context["adminform"].form.fields
    assert "repo" in page.context["adminform"].readonly_fields


def test_the_guard_refuses_a_repository_change_to_a_project_admin(world, staff_admin) -> None:
    project = Project.objects.get(pk=world.project.pk)
    after = {**project_state(project), "repo": "acme/private"}

    with pytest.raises(HostSettingRefused, match=r"the repository \(repo\)"):
        host_settings_guard(user=staff_admin, before=project, after=after)
    assert host_settings_guard(user=world.users["root"], before=project, after=after) == ["repo"]
    assert host_settings_guard(user=None, before=project, after=after) == ["repo"]  # the host's CLI


CONFIG = """
projects:
  web:
    path: {path}
    repo: {repo}
    sessionPrefix: web
    scm: apitest
    agent:
      plugin: claude-code
      model: opus
"""


def test_a_config_applied_by_a_project_admin_cannot_change_the_repository(
    world, staff_admin, tmp_path
) -> None:
    Project.objects.filter(pk=world.project.pk).update(repo="acme/widgets", path=str(tmp_path))
    config = config_load_text(
        CONFIG.format(path=tmp_path, repo="acme/private").encode(), name="ao.config.yaml"
    )

    with pytest.raises(HostSettingRefused, match="repo"):
        services.config_apply(config=config, source="uploaded ao.config.yaml", by=staff_admin)

    assert Project.objects.get(pk=world.project.pk).repo == "acme/widgets"


def test_a_superuser_changes_the_repository_in_the_admin(client, world, staff_admin) -> None:
    client.force_login(world.users["root"])

    saved = _post(client, world.project, {"repo": "acme/other"})

    assert saved.status_code == 302, saved.context and saved.context["adminform"].form.errors
    assert Project.objects.get(pk=world.project.pk).repo == "acme/other"


@pytest.mark.parametrize("repo", ["acme", "../acme/web", "acme/web/extra", "-x/web", "a b/c"])
def test_a_repository_is_owner_name(client, world, staff_admin, repo) -> None:
    client.force_login(world.users["root"])

    refused = _post(client, world.project, {"repo": repo})

    assert refused.status_code == 200
    assert "repo" in refused.context["adminform"].form.errors
    with pytest.raises(ValidationError):
        Project(key="x", path="/srv/x", session_prefix="x", repo=repo).full_clean()


def test_the_model_matches_the_whole_repository() -> None:
    with pytest.raises(ValidationError):
        Project(key="x", path="/srv/x", session_prefix="x", repo="acme/web\n").full_clean()
    Project(key="x", path="/srv/x", session_prefix="x", repo="acme/web").full_clean()
    Project(key="x", path="/srv/x", session_prefix="x", repo="").full_clean()  # no SCM repository


# --- default_branch --------------------------------------------------------------------------------
@pytest.mark.parametrize("who", ["admin", "root"])
@pytest.mark.parametrize("branch", ["--output={victim}", "-b", "main..x", "a b", "x.lock"])
def test_the_default_branch_is_a_branch_name(client, world, staff_admin, tmp_path, who, branch) -> None:
    victim = tmp_path / "victim.txt"
    client.force_login(world.users[who])

    refused = _post(client, world.project, {"default_branch": branch.format(victim=victim)})

    assert refused.status_code == 200
    assert "default_branch" in refused.context["adminform"].form.errors
    assert Project.objects.get(pk=world.project.pk).default_branch == "main"


def test_a_project_admin_still_changes_the_default_branch(client, world, staff_admin) -> None:
    client.force_login(staff_admin)

    saved = _post(client, world.project, {"default_branch": "release/2.x"})

    assert saved.status_code == 302, saved.context and saved.context["adminform"].form.errors
    assert Project.objects.get(pk=world.project.pk).default_branch == "release/2.x"
