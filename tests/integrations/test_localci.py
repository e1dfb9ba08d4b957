"""Local CI: the check command on a clean checkout of the pushed head, recorded once per sha."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from integrations.localci import ci_environment, tail_excerpt
from integrations.models import LocalCIRun
from tests.helpers.fixtures import Repo, git
from tests.integrations.test_scm_local import commit_and_push, make_scm, push_branch, worktree

pytestmark = pytest.mark.django_db

# Prints what the check sees: its checkout, whether ao's secrets reached it, and counts its runs.
REPORT = (
    "import os, pathlib, sys\n"
    "print('cwd=' + os.getcwd())\n"
    "print('files=' + ','.join(sorted(p for p in os.listdir('.') if not p.startswith('.'))))\n"
    "print('secrets=' + ','.join(k for k in ('AO_SECRET_KEY', 'GITHUB_TOKEN', 'DATABASE_URL', 'AO_HOME')"
    " if k in os.environ))\n"
    "print('ci=' + os.environ.get('CI', ''))\n"
    "counter = pathlib.Path(sys.argv[1])\n"
    "counter.write_text(counter.read_text() + 'x' if counter.exists() else 'x')\n"
)


def test_tail_excerpt_keeps_the_end_from_a_line_boundary() -> None:
    assert tail_excerpt(b"short\n", 100) == "short\n"
    text = b"".join(b"line %d\n" % i for i in range(1000))
    excerpt = tail_excerpt(text, 100)
    assert excerpt.startswith("[… output truncated …]\nline ")
    assert excerpt.endswith("line 999\n")
    assert len(excerpt.split("\n", 1)[1].encode()) <= 100


def test_ci_environment_drops_ao_settings_and_credentials() -> None:
    env = ci_environment(
        {
            "PATH": "/usr/bin",
            "HOME": "/home/a",
            "AO_SECRET_KEY": "s",
            "AO_SESSION": "ao-1",
            "GITHUB_TOKEN": "t",
            "GH_TOKEN": "t",
            "ANTHROPIC_API_KEY": "k",
            "DATABASE_URL": "postgres://x",
            "REDIS_URL": "redis://x",
            "AWS_SECRET_ACCESS_KEY": "k",
            "MY_PASSWORD": "p",
            "LANG": "C.UTF-8",
        }
    )
    assert env == {"PATH": "/usr/bin", "HOME": "/home/a", "LANG": "C.UTF-8", "CI": "true"}


def test_success_runs_in_a_clean_checkout_without_secrets(repo: Repo, tmp_path: Path, monkeypatch) -> None:
    counter = tmp_path / "runs"
    scm = make_scm(repo, check_command=[sys.executable, "-c", REPORT, str(counter)])
    head = push_branch(repo, "feat/ok", {"feature.py": "ok\n"})
    (repo.root / "feat-ok" / "untracked.txt").write_text("not committed\n")  # not in the checkout
    scm.open_pull_request(branch="feat/ok")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secret")
    monkeypatch.setenv("DATABASE_URL", "postgres://secret")

    assert scm.fetch_pull_requests(numbers=[1])[1].checks[0].status == "queued"
    assert scm.checks_due() == [1]
    run = scm.run_checks(number=1)

    assert (run.status, run.conclusion, run.exit_code, run.head_sha, run.attempts) == (
        "completed",
        "success",
        0,
        head,
        1,
    )
    assert run.duration > 0 and run.started_at <= run.completed_at
    lines = dict(line.split("=", 1) for line in run.log_excerpt.splitlines())
    assert lines["files"] == "README.md,feature.py"
    assert (lines["secrets"], lines["ci"]) == ("", "true")
    assert not Path(lines["cwd"]).exists()  # the checkout was removed
    assert git("worktree", "list", cwd=repo.origin).count("\n") == 0  # the bare remote gained nothing
    check = scm.fetch_pull_requests(numbers=[1])[1].checks[0]
    assert (check.name, check.source, check.status, check.conclusion, check.log_excerpt) == (
        "ci",
        "local",
        "completed",
        "success",
        "",
    )
    assert scm.checks_due() == []


def test_failure_records_the_log_excerpt(repo: Repo, capsys) -> None:
    scm = make_scm(
        repo,
        check_command=[sys.executable, "-c", "import sys; print('boom'); sys.exit(1)"],
        check_name="tests",
    )
    push_branch(repo, "feat/bad", {"bad.py": "bad\n"})
    scm.open_pull_request(branch="feat/bad")

    call_command("pr", "--project", scm.project.key, "ci", "1")

    run = LocalCIRun.objects.get()
    assert (run.status, run.conclusion, run.exit_code, run.log_excerpt) == (
        "completed",
        "failure",
        1,
        "boom\n",
    )
    check = scm.fetch_pull_requests(numbers=[1])[1].checks[0]
    assert (check.name, check.conclusion, check.log_excerpt) == ("tests", "failure", "boom\n")
    assert "tests on " in capsys.readouterr().out


def test_idempotent_per_sha_forced_rerun_and_rerun_on_a_new_push(repo: Repo, tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    scm = make_scm(repo, check_command=[sys.executable, "-c", REPORT, str(counter)])
    path = worktree(repo, "feat/i")
    first = commit_and_push(repo, path, "feat/i", {"i.txt": "1\n"})
    scm.open_pull_request(branch="feat/i")

    run = scm.run_checks(number=1)
    again = scm.run_checks(number=1)
    assert (again.pk, again.attempts, counter.read_text()) == (run.pk, 1, "x")

    forced = scm.run_checks(number=1, force=True)
    assert (forced.pk, forced.attempts, counter.read_text()) == (run.pk, 2, "xx")

    second = commit_and_push(repo, path, "feat/i", {"i.txt": "2\n"})
    assert scm.checks_due() == [1]
    newer = scm.run_checks(number=1)

    assert newer.pk != run.pk and newer.head_sha == second and counter.read_text() == "xxx"
    assert sorted(LocalCIRun.objects.values_list("head_sha", flat=True)) == sorted([first, second])
    checks = scm.fetch_pull_requests(numbers=[1])[1].checks
    assert [(c.external_id, c.conclusion) for c in checks] == [(str(newer.pk), "success")]


def test_a_run_in_progress_is_not_started_twice(repo: Repo, tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    scm = make_scm(repo, check_command=[sys.executable, "-c", REPORT, str(counter)])
    head = push_branch(repo, "feat/p", {"p.txt": "p\n"})
    row, _ = scm.open_pull_request(branch="feat/p")
    LocalCIRun.objects.create(
        project=scm.project, pr=row, head_sha=head, status="in_progress", started_at=timezone.now()
    )

    run = scm.run_checks(number=1, force=True)

    assert (run.status, run.attempts) == ("in_progress", 0)
    assert not counter.exists()
    assert scm.fetch_pull_requests(numbers=[1])[1].checks[0].status == "in_progress"


@pytest.mark.slow
def test_timeout_kills_the_check_and_bounds_the_log(repo: Repo) -> None:
    program = (
        "import sys, time\nfor i in range(20000): print('noise', i)\nsys.stdout.flush()\ntime.sleep(30)\n"
    )
    scm = make_scm(
        repo, check_command=[sys.executable, "-c", program], check_timeout=1.0, log_excerpt_bytes=500
    )
    push_branch(repo, "feat/slow", {"s.txt": "s\n"})
    scm.open_pull_request(branch="feat/slow")

    run = scm.run_checks(number=1)

    assert (run.status, run.conclusion, run.exit_code) == ("completed", "timed_out", None)
    assert run.duration < 25  # killed at its timeout, not left to its 30 s sleep
    assert "noise 19999" in run.log_excerpt and "timed out after 1s" in run.log_excerpt
    assert len(run.log_excerpt) <= 500


def test_a_command_that_cannot_start_is_an_error(repo: Repo) -> None:
    scm = make_scm(repo, check_command="./no-such-check --flag")
    push_branch(repo, "feat/e", {"e.txt": "e\n"})
    scm.open_pull_request(branch="feat/e")

    run = scm.run_checks(number=1)

    assert (run.status, run.conclusion) == ("completed", "error")
    assert "could not start './no-such-check'" in run.log_excerpt


def test_no_check_command_means_no_checks(repo: Repo) -> None:
    scm = make_scm(repo)
    push_branch(repo, "feat/n", {"n.txt": "n\n"})
    scm.open_pull_request(branch="feat/n")

    assert scm.run_checks(number=1) is None
    assert scm.checks_due() == []
    assert scm.fetch_pull_requests(numbers=[1])[1].checks == ()
    assert not LocalCIRun.objects.exists()
