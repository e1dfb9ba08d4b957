"""Local CI: run a project's check command on a pushed head, in a clean throwaway checkout.

``run_check_command`` is the runner (no database): clone the bare remote with ``--local`` into a
temporary directory, check out the head detached, run the argv (never a shell) with a timeout
in its own process group and an environment without ao's secrets, keep the tail of the output,
and remove the directory. ``ci_run`` records it as a ``LocalCIRun``, at most once per
(PR, head sha, check name): a second call for the same sha returns the recorded run unless
``force`` is given. The sweep runs it in the background (``sessions.tasks.checks_run_task``).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from integrations.gitutil import GitError, GitTimeout, run_git
from integrations.models import LocalCIRun, LocalPullRequest

log = logging.getLogger(__name__)

SHA_RE = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?\Z")
# Variables never passed to a check command: ao's own settings and anything that looks like a
# credential. The check runs the project's code on an agent's branch: it gets no keys.
_SECRET_ENV_RE = re.compile(
    r"^AO_|^DATABASE_URL$|^REDIS_URL$|^DJANGO_|^CELERY_|TOKEN|SECRET|PASSW|API_?KEY|PRIVATE_KEY|CREDENTIAL"
    r"|^SSH_AUTH_SOCK$|^GH_|^GITHUB_|^LINEAR_|^SLACK_|^ANTHROPIC_|^OPENAI_",
    re.IGNORECASE,
)
CHECKOUT_TIMEOUT = 300.0
# A run left in progress this long after its timeout (a crashed worker) may be claimed again, by
# the sweep (``LocalSCM.checks_due``) or ``ao pr ci``; so may a run whose row was created and never
# claimed for this long.
STALE_GRACE = timedelta(minutes=2)


@dataclass(frozen=True)
class CheckResult:
    conclusion: str  # success | failure | error | timed_out
    exit_code: int | None
    log_excerpt: str
    duration: float


def ci_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) without ao's settings and credentials, plus CI=true."""
    source = os.environ if base is None else base
    env = {key: value for key, value in source.items() if not _SECRET_ENV_RE.search(key)}
    for key in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "VIRTUAL_ENV_PROMPT"):
        env.pop(key, None)
    env["CI"] = "true"
    return env


def tail_excerpt(data: bytes, limit: int) -> str:
    """The last ``limit`` bytes of ``data`` as text, starting at a line boundary when cut."""
    if len(data) <= limit:
        return data.decode("utf-8", errors="replace")
    tail = data[-limit:]
    newline = tail.find(b"\n")
    if 0 <= newline < len(tail) - 1 and newline < limit // 2:
        tail = tail[newline + 1 :]
    return "[… output truncated …]\n" + tail.decode("utf-8", errors="replace")


def _read_tail(path: Path, limit: int) -> bytes:
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        # One extra byte tells tail_excerpt the output was longer than the limit.
        fh.seek(max(0, size - limit - 1))
        return fh.read()


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def run_check_command(
    *,
    remote: Path,
    sha: str,
    argv: Sequence[str],
    timeout: float,
    excerpt_bytes: int = 8000,
    workdir_parent: Path | None = None,
) -> CheckResult:
    """Run ``argv`` in a fresh checkout of commit ``sha`` of the bare repository ``remote``.

    Never raises for the check's own failures: a command that cannot start or a checkout that
    fails is conclusion "error", with the reason in the excerpt.
    """
    if not SHA_RE.match(sha):
        raise ValueError(f"not a full commit sha: {sha!r}")
    if not argv:
        raise ValueError("no check command configured")
    started = time.monotonic()
    if workdir_parent is not None:
        workdir_parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="ao-ci-", dir=workdir_parent))
    try:
        checkout = tmp / "src"
        try:
            run_git(
                ["clone", "--local", "--no-checkout", "--quiet", "--", str(remote), str(checkout)],
                cwd=tmp,
                timeout=CHECKOUT_TIMEOUT,
            )
            run_git(["checkout", "--quiet", "--detach", sha], cwd=checkout, timeout=CHECKOUT_TIMEOUT)
            # The check works on a copy: it has no remote to push to.
            run_git(["remote", "remove", "origin"], cwd=checkout)
        except (GitError, GitTimeout) as exc:
            return CheckResult("error", None, f"ao: could not check out {sha[:12]}: {exc}", _since(started))
        log_path = tmp / "output.log"
        timed_out = False
        with log_path.open("wb") as out:
            try:
                proc = subprocess.Popen(
                    list(argv),
                    cwd=checkout,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=ci_environment(),
                    start_new_session=True,
                )
            except OSError as exc:
                return CheckResult("error", None, f"ao: could not start {argv[0]!r}: {exc}", _since(started))
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc)
                code = proc.wait()
        excerpt = tail_excerpt(_read_tail(log_path, excerpt_bytes), excerpt_bytes)
        if timed_out:
            note = f"\nao: timed out after {timeout:g}s; the process group was killed\n"
            return CheckResult("timed_out", None, _bounded(excerpt, note, excerpt_bytes), _since(started))
        conclusion = "success" if code == 0 else "failure"
        return CheckResult(conclusion, code, excerpt, _since(started))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)


def _bounded(excerpt: str, note: str, limit: int) -> str:
    keep = max(0, limit - len(note))
    return excerpt[-keep:] + note if keep else note[-limit:]


# --- recorded runs -------------------------------------------------------------------------------
def abandoned(*, timeout: float, now) -> Q:
    """Runs whose worker is gone (pure filter): in progress past ``timeout`` plus STALE_GRACE, or
    created and never claimed for STALE_GRACE. The sweep schedules them again; a claim takes them
    over."""
    return Q(
        status=LocalCIRun.Status.IN_PROGRESS, started_at__lt=now - timedelta(seconds=timeout) - STALE_GRACE
    ) | Q(status=LocalCIRun.Status.QUEUED, updated_at__lt=now - STALE_GRACE)


def ci_run(
    *,
    pr: LocalPullRequest,
    head_sha: str,
    remote: Path,
    argv: Sequence[str],
    name: str = "ci",
    timeout: float = 900.0,
    excerpt_bytes: int = 8000,
    force: bool = False,
) -> LocalCIRun:
    """Run the check on ``head_sha`` of ``pr`` once and record it; return the run.

    A run already completed or in progress for this sha is returned as is (a second delivery of
    the task does nothing); ``force`` reruns a completed one. A run left in progress long after
    its timeout (its worker died) is taken over.
    """
    run = _run_row(pr=pr, head_sha=head_sha, name=name)
    now = timezone.now()
    claimable = Q(status=LocalCIRun.Status.QUEUED) | abandoned(timeout=timeout, now=now)
    if force:
        claimable |= Q(status=LocalCIRun.Status.COMPLETED)
    claimed = (
        LocalCIRun.objects.filter(claimable, pk=run.pk).update(
            status=LocalCIRun.Status.IN_PROGRESS,
            conclusion="",
            exit_code=None,
            started_at=now,
            completed_at=None,
            duration=None,
            attempts=F("attempts") + 1,
            updated_at=now,
        )
        == 1
    )
    if not claimed:
        run.refresh_from_db()
        return run
    log.info("local CI %s: running %s on %s#%s @ %s", name, argv[0], pr.project_id, pr.number, head_sha[:12])
    result = run_check_command(
        remote=remote, sha=head_sha, argv=argv, timeout=timeout, excerpt_bytes=excerpt_bytes
    )
    done = timezone.now()
    LocalCIRun.objects.filter(pk=run.pk, started_at=now).update(
        status=LocalCIRun.Status.COMPLETED,
        conclusion=result.conclusion,
        exit_code=result.exit_code,
        log_excerpt=result.log_excerpt,
        completed_at=done,
        duration=result.duration,
        updated_at=done,
    )
    run.refresh_from_db()
    return run


def _run_row(*, pr: LocalPullRequest, head_sha: str, name: str) -> LocalCIRun:
    existing = LocalCIRun.objects.filter(pr=pr, head_sha=head_sha, name=name).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return LocalCIRun.objects.create(project_id=pr.project_id, pr=pr, head_sha=head_sha, name=name)
    except IntegrityError:  # another worker created it first
        return LocalCIRun.objects.get(pr=pr, head_sha=head_sha, name=name)


__all__ = [
    "CheckResult",
    "abandoned",
    "ci_environment",
    "ci_run",
    "run_check_command",
    "tail_excerpt",
]
