"""The sweep lease and the sweep fan-out: one sweep of a project at a time, renewed while it
runs, no duplicate tasks piling up. Times are explicit; nothing sleeps."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from sessions import tasks
from sessions.core import services
from sessions.flows import sweep
from sessions.models import Project
from tests.factories import ProjectFactory, SessionFactory

pytestmark = pytest.mark.django_db


def _lease_until(project) -> object:
    return Project.objects.values_list("sweep_lease_until", flat=True).get(pk=project.pk)


def test_a_project_being_swept_is_not_queued_again() -> None:
    now = timezone.now()
    project = ProjectFactory(sweep_interval=5, last_swept_at=now - timedelta(minutes=1))
    lease = services.project_sweep_claim(project_id=project.pk, now=now)
    assert lease is not None

    # a long sweep (its heartbeat renewing the lease): every later tick finds the project
    # overdue, but its lease held
    for seconds in (5, 10, 20, 40, 60, 200):
        lease.keep(now=now + timedelta(seconds=seconds))
        assert project.pk not in services.projects_due_for_sweep(now=now + timedelta(seconds=seconds))
    # a crashed sweep's lease expires: the project is queued again
    assert project.pk in services.projects_due_for_sweep(
        now=now + timedelta(seconds=200) + services.SWEEP_LEASE + timedelta(seconds=1)
    )


def test_a_duplicate_task_after_a_finished_sweep_does_nothing() -> None:
    now = timezone.now()
    project = ProjectFactory(sweep_interval=30)
    lease = services.project_sweep_claim(project_id=project.pk, now=now)
    services.project_sweep_release(lease=lease, now=now + timedelta(seconds=2))

    # a second task queued before the sweep took its lease runs right after it: not due yet
    assert services.project_sweep_claim(project_id=project.pk, now=now + timedelta(seconds=3)) is None
    assert services.project_sweep_claim(project_id=project.pk, now=now + timedelta(seconds=32)) is not None


def test_a_long_sweep_renews_its_lease_and_keeps_others_out() -> None:
    t0 = timezone.now()
    project = ProjectFactory()
    lease = services.project_sweep_claim(project_id=project.pk, now=t0)

    lease.keep(now=t0 + timedelta(seconds=10))  # renewed recently enough: no write
    assert _lease_until(project) == t0 + services.SWEEP_LEASE
    # the sweep keeps working past its first lease, renewing at each step
    step = t0
    while step < t0 + services.SWEEP_LEASE * 3:
        step += timedelta(seconds=40)
        lease.keep(now=step)
        assert services.project_sweep_claim(project_id=project.pk, now=step + timedelta(seconds=1)) is None
    assert _lease_until(project) == step + services.SWEEP_LEASE == lease.until

    services.project_sweep_release(lease=lease, now=step)
    assert _lease_until(project) is None


def test_a_sweep_whose_lease_was_taken_over_stops_and_leaves_the_new_lease_alone() -> None:
    t0 = timezone.now()
    project = ProjectFactory()
    stalled = services.project_sweep_claim(project_id=project.pk, now=t0)
    later = t0 + services.SWEEP_LEASE + timedelta(seconds=1)
    fresh = services.project_sweep_claim(project_id=project.pk, now=later)
    assert fresh is not None

    with pytest.raises(services.SweepLeaseLost):
        stalled.keep(now=later + timedelta(seconds=1))
    services.project_sweep_release(lease=stalled, now=later)
    assert _lease_until(project) == fresh.until  # still the running sweep's


def test_an_expired_lease_nobody_claimed_is_renewed() -> None:
    t0 = timezone.now()
    project = ProjectFactory()
    lease = services.project_sweep_claim(project_id=project.pk, now=t0)
    late = t0 + services.SWEEP_LEASE + timedelta(minutes=1)

    lease.keep(now=late)

    assert _lease_until(project) == late + services.SWEEP_LEASE


def test_the_sweep_renews_at_each_session_and_stops_when_the_lease_is_lost() -> None:
    project = ProjectFactory()
    for _ in range(3):
        SessionFactory(project=project, phase="spawning", status="spawning")
    calls = []
    assert sweep.project_sweep(project=project, keep=lambda: calls.append(1)) >= 0
    assert len(calls) >= 3 + 1  # each session, and the steps around them

    def lost() -> None:
        if len(calls) > 5:
            raise services.SweepLeaseLost("taken over")
        calls.append(1)

    calls.clear()
    with pytest.raises(services.SweepLeaseLost):
        sweep.project_sweep(project=project, keep=lost)


def test_sweep_tasks_expire_after_one_tick(monkeypatch, settings) -> None:
    settings.AO_SWEEP_INTERVAL = 30
    due, leased = ProjectFactory(), ProjectFactory()
    services.project_sweep_claim(project_id=leased.pk)
    queued = []
    monkeypatch.setattr(
        tasks.project_sweep_task, "apply_async", lambda args, **options: queued.append((args, options))
    )

    tasks.sweep_due_projects_task()

    assert queued == [([due.pk], {"expires": 5.0})]


def test_the_sweep_task_passes_its_lease_and_releases_it(monkeypatch) -> None:
    project = ProjectFactory()
    seen = []

    def project_sweep(*, project, keep):
        seen.append(_lease_until(project))
        keep()
        return 0

    monkeypatch.setattr(sweep, "project_sweep", project_sweep)
    tasks.project_sweep_task(project.pk)

    assert seen and seen[0] is not None
    project.refresh_from_db()
    assert project.sweep_lease_until is None and project.last_swept_at is not None
    # the task queued a moment later finds nothing to do
    seen.clear()
    tasks.project_sweep_task(project.pk)
    assert seen == []
