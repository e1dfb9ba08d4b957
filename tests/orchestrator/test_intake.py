"""Backlog intake: claims up to the cap, labels on claim, merge and release, idempotent across racing
sweeps."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from io import StringIO

import pytest
from django.core.management import call_command

from integrations.models import LocalIssue
from integrations.registry import plugin_for
from sessions.agents import operating, spawning
from sessions.core import services
from sessions.models import Event, IntakeClaim, Session
from sessions.watchers import intake
from tests.factories import ProjectFactory, PullRequestFactory
from tests.helpers.procs import REPO, MigratedDatabases, manage

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_start(monkeypatch):
    """Spawns are accepted and written; their start (worktree, agent) is not what is tested here."""
    monkeypatch.setattr(spawning, "_enqueue_start", lambda session: None)


@pytest.fixture
def project(no_start):
    project = ProjectFactory(
        key="web", session_prefix="web", tracker="local", max_sessions=2, intake_enabled=True
    )
    tracker = plugin_for(project, "tracker")
    for title, labels in (
        ("First", ["agent:backlog"]),
        ("Second", ["agent:backlog", "bug"]),
        ("Not for agents", []),
        ("Third", ["agent:backlog"]),
    ):
        tracker.create_issue(title=title, labels=labels)
    return project


def labels(project, number: int) -> list[str]:
    return LocalIssue.objects.get(project=project, number=number).labels


def test_claims_up_to_the_cap_and_moves_labels_on_claim_and_merge(project) -> None:
    notes = intake.intake_sweep(project=project)
    assert notes[:2] == ["#1 → web-1", "#2 → web-2"]
    assert notes[2].startswith("stopped: project web has 2 live sessions (cap 2)")
    assert sorted(Session.objects.values_list("id", "issue_ref")) == [("web-1", "1"), ("web-2", "2")]
    assert labels(project, 1) == ["agent:in-progress"]
    assert labels(project, 2) == ["bug", "agent:in-progress"]
    assert labels(project, 3) == [] and labels(project, 4) == ["agent:backlog"]
    assert Event.objects.get(session_id="web-1", kind="intake.claimed").summary.startswith(
        "claimed backlog issue 1"
    )

    assert intake.intake_sweep(project=project) == ["stopped: project web has 2 live sessions (cap 2)"]
    assert Session.objects.count() == 2

    # web-1's PR merges: #1 is done, and the slot goes to #4
    Session.objects.filter(pk="web-1").update(phase="running")
    web1 = Session.objects.get(pk="web-1")
    PullRequestFactory(session=web1, state="merged")
    web1.refresh_from_db()
    services.session_rederive(session=web1)
    assert web1.zone == "done"
    assert intake.intake_sweep(project=project) == ["#1 done", "#4 → web-3"]
    assert labels(project, 1) == ["agent:done"]
    assert labels(project, 4) == ["agent:in-progress"]
    assert intake.intake_sweep(project=project) == []  # nothing labelled for intake is left
    assert Event.objects.filter(kind="intake.done").count() == 1
    assert IntakeClaim.objects.get(issue_ref="1").state == "done"

    out = StringIO()
    call_command("intake", "status", "--json", stdout=out)
    status = json.loads(out.getvalue())
    assert status["enabled"] is True
    assert sorted((c["issue"], c["state"], c["session"]) for c in status["claims"]) == [
        ("1", "done", "web-1"),
        ("2", "spawned", "web-2"),
        ("4", "spawned", "web-3"),
    ]


def test_off_claims_nothing_and_an_issue_with_a_worker_is_adopted(project) -> None:
    call_command("intake", "off", stdout=StringIO())
    project.refresh_from_db()
    assert intake.intake_sweep(project=project) == []
    assert not IntakeClaim.objects.exists() and labels(project, 1) == ["agent:backlog"]

    spawned = spawning.session_spawn(project=project, issue_ref="2")  # a person got there first
    call_command("intake", "on", stdout=StringIO())
    assert intake.intake_sweep(project=project) == [
        "#1 → web-2",
        "#2 adopted by web-1",
        "stopped: project web has 2 live sessions (cap 2)",
    ]
    assert spawned.id == "web-1"
    assert Session.objects.filter(issue_ref="2").count() == 1
    assert labels(project, 2) == ["bug", "agent:in-progress"]
    assert Event.objects.filter(kind="intake.switched").count() == 2


def test_a_claim_left_without_a_worker_by_a_crashed_sweep_is_finished_by_the_next(project) -> None:
    from datetime import timedelta

    from django.utils import timezone

    # a sweep died after writing its claims: #1 before moving labels, #2 after its worker was spawned
    long_ago = timezone.now() - intake.CLAIM_STALE - timedelta(seconds=1)
    IntakeClaim.objects.create(project=project, issue_ref="1", state="claimed")
    IntakeClaim.objects.create(project=project, issue_ref="2", state="claimed")
    worker = spawning.session_spawn(project=project, issue_ref="2")
    IntakeClaim.objects.update(created_at=long_ago)
    fresh = IntakeClaim.objects.create(project=project, issue_ref="4", state="claimed")  # a live sweep's

    notes = intake.intake_sweep(project=project)

    assert notes[:2] == ["#1 → web-2", "#2 adopted by web-1"] and worker.id == "web-1"
    assert labels(project, 1) == ["agent:in-progress"]
    claims = {c.issue_ref: (c.state, c.session_id) for c in IntakeClaim.objects.all()}
    assert claims == {"1": ("spawned", "web-2"), "2": ("spawned", "web-1"), "4": ("claimed", None)}
    assert IntakeClaim.objects.get(pk=fresh.pk).created_at == fresh.created_at  # not touched
    assert Session.objects.filter(issue_ref="2").count() == 1
    intake.intake_sweep(project=project)
    assert Session.objects.count() == 2  # finished once


def test_a_failed_spawn_is_recorded_and_retried_when_intake_is_turned_on(project, monkeypatch) -> None:
    from integrations.base import PermanentIntegrationError
    from reactions.models import Notification

    def broken(**kwargs):
        raise PermanentIntegrationError("tracker said no")

    monkeypatch.setattr(spawning, "session_spawn", broken)
    assert intake.intake_sweep(project=project)[0] == "#1 failed: tracker said no"
    assert IntakeClaim.objects.get(issue_ref="1").state == "failed"
    assert labels(project, 1) == ["agent:backlog"]
    assert Notification.objects.filter(rule="intake-failed").exists()
    monkeypatch.undo()
    monkeypatch.setattr(spawning, "_enqueue_start", lambda session: None)
    assert "#1" not in " ".join(intake.intake_sweep(project=project))  # failed claims wait for a person
    assert intake.intake_set(project=project, enabled=True) == [
        "released 3 failed claim(s): they are tried again"
    ]
    assert intake.intake_sweep(project=project)[0].startswith("#1 → ")


def _released(session_id: str) -> list[Event]:
    return list(Event.objects.filter(session_id=session_id, kind="intake.released"))


def test_a_killed_worker_releases_its_issue_once_and_a_new_backlog_label_claims_it_again(project) -> None:
    assert intake.intake_sweep(project=project)[:2] == ["#1 → web-1", "#2 → web-2"]
    assert labels(project, 1) == ["agent:in-progress"]

    call_command("session", "kill", "web-1", stdout=StringIO())  # a person stops the worker
    assert Session.objects.get(pk="web-1").phase == "killed"
    assert intake.intake_sweep(project=project) == ["#1 released (killed)", "#4 → web-3"]
    assert labels(project, 1) == []  # in progress off, and not back in the backlog
    assert labels(project, 4) == ["agent:in-progress"]
    assert not IntakeClaim.objects.filter(issue_ref="1").exists()
    (event,) = _released("web-1")
    assert event.data == {"issue": "1", "reason": "killed"}
    assert "agent:backlog not put back (it was stopped on purpose)" in event.summary

    # sweeping again changes nothing: one event, no new worker for #1 (nothing is labelled for intake)
    assert intake.intake_sweep(project=project) == []
    assert len(_released("web-1")) == 1
    assert Session.objects.filter(issue_ref="1").count() == 1

    # a person puts #1 back in the backlog: once a slot frees up, intake takes it up again
    plugin_for(project, "tracker").set_labels("1", add=["agent:backlog"])
    operating.session_kill(session=Session.objects.get(pk="web-3"), reason="dashboard")
    assert intake.intake_sweep(project=project) == ["#4 released (killed)", "#1 → web-4"]
    assert labels(project, 1) == ["agent:in-progress"]
    claim = IntakeClaim.objects.get(issue_ref="1")
    assert (claim.state, claim.session_id) == ("spawned", "web-4")
    assert Event.objects.get(session_id="web-4", kind="intake.claimed").data == {"issue": "1"}
    assert len(_released("web-1")) == 1 and len(_released("web-3")) == 1


def test_merged_work_goes_to_done_and_a_closed_pr_releases_its_issue(project) -> None:
    intake.intake_sweep(project=project)
    Session.objects.filter(pk__in=["web-1", "web-2"]).update(phase="running")
    for session_id, state in (("web-1", "merged"), ("web-2", "closed")):
        session = Session.objects.get(pk=session_id)
        PullRequestFactory(session=session, state=state)
        session.refresh_from_db()
        services.session_rederive(session=session)
    # a merged worker killed afterwards is still merged work, never released
    operating.session_kill(session=Session.objects.get(pk="web-1"), reason="after the merge")
    assert Session.objects.get(pk="web-2").status == "pr_closed"
    assert intake.intake_release(project=project) == ["#2 released (pr_closed)"]
    assert IntakeClaim.objects.get(issue_ref="1").state == "spawned"

    assert intake.intake_sweep(project=project) == ["#1 done", "#4 → web-3"]
    assert labels(project, 1) == ["agent:done"]
    assert labels(project, 2) == ["bug"]
    assert _released("web-1") == [] and len(_released("web-2")) == 1
    assert "its PR was closed without merging" in _released("web-2")[0].summary
    assert sorted(IntakeClaim.objects.values_list("issue_ref", "state")) == [("1", "done"), ("4", "spawned")]


def test_a_tracker_error_on_release_is_logged_and_retried_next_sweep(project, monkeypatch, caplog) -> None:
    from integrations.base import TransientIntegrationError
    from integrations.tracker.local import LocalTracker

    intake.intake_sweep(project=project)
    operating.session_kill(session=Session.objects.get(pk="web-1"))
    real = LocalTracker.set_labels

    def down(self, ref, **kwargs):
        raise TransientIntegrationError("tracker unreachable")

    monkeypatch.setattr(LocalTracker, "set_labels", down)
    assert intake.intake_release(project=project) == []
    assert "1 not released" in caplog.text and "tracker unreachable" in caplog.text
    assert IntakeClaim.objects.get(issue_ref="1").state == "spawned"
    assert labels(project, 1) == ["agent:in-progress"] and _released("web-1") == []

    monkeypatch.setattr(LocalTracker, "set_labels", real)
    assert intake.intake_release(project=project) == ["#1 released (killed)"]
    assert labels(project, 1) == [] and len(_released("web-1")) == 1


def test_a_sweep_racing_another_release_records_it_once(project, monkeypatch) -> None:
    """Sweep B runs whole while sweep A is between its label change and its DELETE."""
    from integrations.tracker.local import LocalTracker

    intake.intake_sweep(project=project)
    operating.session_kill(session=Session.objects.get(pk="web-1"))
    real = LocalTracker.set_labels
    inner: list = []

    def racing(self, ref, **kwargs):
        real(self, ref, **kwargs)
        if not inner:
            inner.append("B runs")
            inner.append(intake.intake_release(project=project))  # sweep B, to the end

    monkeypatch.setattr(LocalTracker, "set_labels", racing)
    assert intake.intake_release(project=project) == []  # sweep A: B released it first
    assert inner == ["B runs", ["#1 released (killed)"]]
    assert len(_released("web-1")) == 1 and not IntakeClaim.objects.filter(issue_ref="1").exists()


# --- two sweeps racing, in two processes, on SQLite and PostgreSQL ---------------------------------------
SETUP = """
from django.core.management import call_command
call_command("migrate", verbosity=0)
from integrations.registry import plugin_for
from tests.factories import ProjectFactory
project = ProjectFactory(key="race", session_prefix="r", tracker="local", intake_enabled=True)
for n in range(4):
    plugin_for(project, "tracker").create_issue(title=f"issue {n}", labels=["agent:backlog"])
"""

SWEEP = """
import os, time
from sessions.agents import operating, spawning
from sessions.watchers import intake
from sessions.models import Project
spawning._enqueue_start = lambda session: None
project = Project.objects.get(key="race")
go = float(os.environ["AO_TEST_GO_AT"])
while time.time() < go:
    time.sleep(0.002)
print(intake.intake_sweep(project=project))
"""


def _race(env: dict[str, str], query) -> None:
    manage("shell", "-c", SETUP, env=env)
    env = {**os.environ, **env, "AO_TEST_GO_AT": str(time.time() + 2.0)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    procs = [
        subprocess.Popen(
            [sys.executable, str(REPO / "manage.py"), "shell", "-c", SWEEP],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    sessions = query("SELECT issue_ref FROM agent_sessions_session ORDER BY issue_ref")
    claims = query("SELECT issue_ref, state FROM agent_sessions_intakeclaim ORDER BY issue_ref")
    assert [row[0] for row in sessions] == ["1", "2", "3", "4"]
    assert claims == [("1", "spawned"), ("2", "spawned"), ("3", "spawned"), ("4", "spawned")]


@pytest.mark.slow
def test_two_racing_sweeps_spawn_once_per_issue_on_sqlite(
    tmp_path, migrated_databases: MigratedDatabases
) -> None:
    migrated_databases.sqlite_into(tmp_path)

    def query(sql):
        with sqlite3.connect(tmp_path / "ao.sqlite3") as conn:
            return [tuple(row) for row in conn.execute(sql)]

    _race({"AO_HOME": str(tmp_path), "DATABASE_URL": "", "REDIS_URL": ""}, query)


@pytest.mark.slow
@pytest.mark.postgres
def test_two_racing_sweeps_spawn_once_per_issue_on_postgres(
    tmp_path, postgres_url, migrated_databases: MigratedDatabases
) -> None:
    import psycopg

    with migrated_databases.postgres(postgres_url) as url:

        def query(sql):
            with psycopg.connect(url.replace("postgres://", "postgresql://")) as conn:
                return [tuple(row) for row in conn.execute(sql)]

        _race({"AO_HOME": str(tmp_path), "DATABASE_URL": url, "REDIS_URL": ""}, query)
