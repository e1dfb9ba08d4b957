"""A sweep whose process died holds its project for a short lease only, and a live sweep keeps
its lease by a heartbeat however long one of its steps takes."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from sessions.core import services
from sessions.models import Project
from tests.factories import ProjectFactory


def _lease_until(project):
    return Project.objects.values_list("sweep_lease_until", flat=True).get(pk=project.pk)


@pytest.mark.django_db
def test_a_dead_sweepers_lease_lapses_within_a_minute() -> None:
    t0 = timezone.now()
    project = ProjectFactory(sweep_interval=5, last_swept_at=t0 - timedelta(minutes=1))
    assert services.project_sweep_claim(project_id=project.pk, now=t0) is not None
    # the sweeping worker is killed here: nothing renews or releases the lease

    assert project.pk not in services.projects_due_for_sweep(now=t0 + timedelta(seconds=10))
    a_minute_later = t0 + timedelta(seconds=60)
    assert project.pk in services.projects_due_for_sweep(now=a_minute_later)
    assert services.project_sweep_claim(project_id=project.pk, now=a_minute_later) is not None


@pytest.mark.django_db(transaction=True)
def test_a_live_sweep_keeps_its_lease_while_one_step_takes_long() -> None:
    project = ProjectFactory()
    lease = services.project_sweep_claim(project_id=project.pk)
    first = lease.until

    with lease.heartbeat(every=0.05):
        # one step (a slow forge, say) runs past renewals without calling keep()
        deadline = time.monotonic() + 10
        while _lease_until(project) == first and time.monotonic() < deadline:
            time.sleep(0.05)
        renewed = _lease_until(project) > first

    assert renewed
    assert _lease_until(project) == lease.until > first
    lease.keep()  # still this sweep's
    services.project_sweep_release(lease=lease)
    assert _lease_until(project) is None
