"""Session creation, status re-derivation and the sweep lease, against the real database."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from sessions.core import services
from sessions.models import Event, Project, Session, validate_session_id
from tests.factories import ProjectFactory, PullRequestFactory, SessionFactory, UserFactory
from tests.helpers.procs import REPO, MigratedDatabases, manage

pytestmark = pytest.mark.django_db


def test_session_ids_count_up_per_project() -> None:
    web = ProjectFactory(session_prefix="web")
    api = ProjectFactory(session_prefix="api")

    ids = [services.session_create(project=web).id for _ in range(3)] + [
        services.session_create(project=api).id
    ]

    assert ids == ["web-1", "web-2", "web-3", "api-1"]
    assert Project.objects.get(pk=web.pk).next_session_number == 4


def test_session_create_records_event_and_derives_status() -> None:
    user = UserFactory()
    project = ProjectFactory(session_prefix="ao", agent="codex")

    session = services.session_create(project=project, issue_ref="42", issue_title="Fix login", by=user)

    session.refresh_from_db()
    assert (session.status, session.zone, session.agent) == ("spawning", "working", "codex")
    event = Event.objects.get(session=session)
    assert (event.kind, event.actor, event.actor_user) == ("session.created", "user", user)
    assert "42" in event.summary


def test_orchestrator_id_and_only_one_per_project() -> None:
    project = ProjectFactory(session_prefix="ao")
    orchestrator = services.session_create(project=project, kind=Session.Kind.ORCHESTRATOR)
    assert orchestrator.id == "ao-orchestrator"
    assert orchestrator.number is None
    with pytest.raises(Exception):  # noqa: B017 - the primary key and the partial unique constraint
        services.session_create(project=project, kind=Session.Kind.ORCHESTRATOR)


@pytest.mark.parametrize("value", ["ao-1", "ao-12", "web2-999", "ao-orchestrator"], ids=lambda v: v)
def test_valid_session_ids(value: str) -> None:
    validate_session_id(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "ao",
        "ao-",
        "ao-0",
        "ao-01",
        "AO-1",
        "ao-1;rm",
        "ao-1\n",
        "../ao-1",
        "-ao-1",
        "ao-x",
        "a" * 17 + "-1",
        "ao-1-2",
    ],
)
def test_invalid_session_ids(value: str) -> None:
    with pytest.raises(ValidationError):
        validate_session_id(value)


def test_rederive_writes_status_event_and_is_idempotent() -> None:
    session = SessionFactory(status="working", zone="working")
    Session.objects.filter(pk=session.pk).update(activity="waiting_input")
    session.refresh_from_db()

    assert services.session_rederive(session=session) is True
    assert services.session_rederive(session=session) is False

    session.refresh_from_db()
    assert (session.status, session.zone) == ("needs_input", "respond")
    events = list(Event.objects.filter(session=session, kind="status.changed"))
    assert len(events) == 1
    assert events[0].data == {
        "before": {"status": "working", "zone": "working"},
        "after": {"status": "needs_input", "zone": "respond"},
    }


def test_rederive_reads_pull_request_facts() -> None:
    pr = PullRequestFactory(ci_state="failing", session__status="working", session__zone="working")
    session = Session.objects.get(pk=pr.session_id)

    services.session_rederive(session=session)

    session.refresh_from_db()
    assert (session.status, session.zone) == (
        "ci_failed",
        "working",
    )  # the agent is sent the failure (zone_for)


def test_sweep_lease_blocks_a_second_sweep_until_released_or_expired() -> None:
    project = ProjectFactory(sweep_interval=30)
    now = timezone.now()

    first = services.project_sweep_claim(project_id=project.pk, now=now)
    assert first is not None
    assert services.project_sweep_claim(project_id=project.pk, now=now + timedelta(seconds=1)) is None
    # a crashed sweep's lease expires
    later = now + services.SWEEP_LEASE * 2
    second = services.project_sweep_claim(project_id=project.pk, now=later)
    assert second is not None
    services.project_sweep_release(lease=second, now=later)
    assert services.project_sweep_claim(project_id=project.pk, now=later + timedelta(seconds=31)) is not None


def test_sweep_rederives_live_sessions_only() -> None:
    project = ProjectFactory()
    live = SessionFactory(project=project, activity="blocked")
    done = SessionFactory(project=project, status="merged", zone="done", activity="blocked")

    changed = services.project_sweep(project=project)

    assert changed == 1
    live.refresh_from_db()
    done.refresh_from_db()
    assert live.status == "blocked"
    assert done.status == "merged"


def test_projects_due_for_sweep_honours_intervals(settings) -> None:
    settings.AO_SWEEP_INTERVAL = 30
    now = timezone.now()
    never = ProjectFactory()
    recent = ProjectFactory(last_swept_at=now - timedelta(seconds=10))
    old = ProjectFactory(last_swept_at=now - timedelta(seconds=31))
    fast = ProjectFactory(last_swept_at=now - timedelta(seconds=10), sweep_interval=5)

    due = services.projects_due_for_sweep(now=now)

    assert set(due) == {never.pk, old.pk, fast.pk}
    assert recent.pk not in due


def test_events_are_append_only() -> None:
    event = services.event_record(project=ProjectFactory(), session=None, kind="note", summary="x")
    event.summary = "changed"
    with pytest.raises(ValueError, match="append-only"):
        event.save()


SETUP_SCRIPT = """
from django.core.management import call_command
call_command("migrate", verbosity=0)
from tests.factories import ProjectFactory
ProjectFactory(key="race", session_prefix="r")
"""

CREATE_SCRIPT = """
from sessions.core import services
from sessions.models import Project
project = Project.objects.get(key="race")
print("IDS", *(services.session_create(project=project).id for _ in range(5)))
"""


def _race(env: dict[str, str]) -> list[str]:
    """Four processes create five sessions each at the same time; return every id they got."""
    manage("shell", "-c", SETUP_SCRIPT, env=env)
    procs = [
        subprocess.Popen(
            [sys.executable, str(REPO / "manage.py"), "shell", "-c", CREATE_SCRIPT],
            env={**os.environ, **env},
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    ids = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        ids += next(line for line in out.splitlines() if line.startswith("IDS ")).split()[1:]
    return sorted(ids)


EXPECTED_RACE_IDS = sorted(f"r-{n}" for n in range(1, 21))


@pytest.mark.slow
def test_concurrent_spawns_get_distinct_ids_on_sqlite(
    tmp_path, migrated_databases: MigratedDatabases
) -> None:
    migrated_databases.sqlite_into(tmp_path)
    env = {"AO_HOME": str(tmp_path), "DATABASE_URL": "", "REDIS_URL": ""}
    assert _race(env) == EXPECTED_RACE_IDS


@pytest.mark.slow
def test_concurrent_spawns_get_distinct_ids_on_postgres(
    tmp_path, postgres_url, migrated_databases: MigratedDatabases
) -> None:
    with migrated_databases.postgres(postgres_url) as url:
        env = {"AO_HOME": str(tmp_path), "DATABASE_URL": url, "REDIS_URL": ""}
        assert _race(env) == EXPECTED_RACE_IDS


def test_roles_rank_and_visibility() -> None:
    from sessions.core import selectors
    from sessions.models import Membership

    web, api = ProjectFactory(), ProjectFactory()
    viewer, operator, outsider = UserFactory(), UserFactory(), UserFactory()
    root = UserFactory(is_superuser=True)
    Membership.objects.create(user=viewer, project=web, role="viewer")
    Membership.objects.create(user=operator, project=web, role="operator")

    assert selectors.can(viewer, web, "viewer") and not selectors.can(viewer, web, "operator")
    assert selectors.can(operator, web, "operator") and not selectors.can(operator, web, "admin")
    assert not selectors.can(operator, api, "viewer")
    assert not selectors.can(outsider, web, "viewer")
    assert selectors.can(root, api, "admin")
    assert list(selectors.projects_visible_to(viewer)) == [web]
    assert list(selectors.projects_visible_to(outsider)) == []
    assert set(selectors.projects_visible_to(root)) == {web, api}
