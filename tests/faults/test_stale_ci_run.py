"""A local CI run left "in progress" by a worker that crashed is taken over by the sweep once it
is older than the check's timeout and a grace period: the PR does not stay pending until the next
push. A run still inside that window is left alone."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from integrations import localci
from integrations.models import LocalCIRun
from sessions.prs import prsync
from tests.helpers.fixtures import Repo
from tests.integrations.test_localci import REPORT
from tests.integrations.test_scm_local import make_scm, push_branch

pytestmark = pytest.mark.django_db


def test_the_sweep_reruns_a_check_its_crashed_worker_left_in_progress(repo: Repo, tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    scm = make_scm(repo, check_command=[sys.executable, "-c", REPORT, str(counter)], check_timeout=60)
    crashed_head = push_branch(repo, "feat/crashed", {"c.txt": "c\n"})
    crashed_pr, _ = scm.open_pull_request(branch="feat/crashed")
    running_head = push_branch(repo, "feat/running", {"r.txt": "r\n"})
    running_pr, _ = scm.open_pull_request(branch="feat/running")
    long_ago = timezone.now() - timedelta(seconds=60) - localci.STALE_GRACE - timedelta(minutes=1)
    crashed = LocalCIRun.objects.create(
        project=scm.project,
        pr=crashed_pr,
        head_sha=crashed_head,
        status="in_progress",
        started_at=long_ago,
        attempts=1,
    )
    running = LocalCIRun.objects.create(
        project=scm.project,
        pr=running_pr,
        head_sha=running_head,
        status="in_progress",
        started_at=timezone.now(),
        attempts=1,
    )

    notes = prsync.scm_housekeeping(project=scm.project)  # the sweep's step; its task runs inline here

    assert notes == [f"checks scheduled for PR #{crashed_pr.number}"]
    crashed.refresh_from_db()
    assert (crashed.status, crashed.conclusion, crashed.attempts) == ("completed", "success", 2)
    assert counter.read_text() == "x"  # run once, for the crashed run only
    running.refresh_from_db()
    assert (running.status, running.attempts) == ("in_progress", 1)
