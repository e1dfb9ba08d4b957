"""Conflict watch: tell people before two parallel workers turn into a merge conflict.

Each sweep compares the files every live worker of a project changes — its branch against the
default branch as the project's remote has it, else the local one (``gitutil.base_refs``; ``git diff
--name-only <base>...<branch>`` in the project's repository) plus the
uncommitted changes in its worktree (``git status --porcelain``) — and records each pair that
shares files as a ``FileOverlap``. A new set of shared files goes on both sessions' timelines
(``conflict.overlap``), to the orchestrator (a message) and to people (a warning notification),
once per set. When one of the two merges, the other is told to rebase, once.

What it costs: one ``git for-each-ref`` in the project's repository per sweep; a branch's diff is
read again only when its commit or the base's moved (cached by the two SHAs). A workspace's own
git (``git status``, and a clone's refs and diff) runs only when something there may have
changed: its ``HEAD``, index or refs moved (``gitutil.worktree_stamp``, read without a process),
the agent's activity reading changed (its state, or the time of its last transcript entry) or
says it is working, or the last look is older than
``WORKSPACE_RECHECK_SECONDS``. So a new commit on either side is seen by the next sweep, an
agent's edits by the sweep after it made them, and an edit made by someone else while the agent
sits idle within ``WORKSPACE_RECHECK_SECONDS``.

``overlaps_for(session)`` / ``overlaps_by_session(project)`` are the selectors the board reads.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from integrations import gitutil
from integrations.base import IntegrationError
from reactions.notify import notify
from sessions.agents import messaging
from sessions.core import hosts, realtime, selectors, services
from sessions.domain.lifecycle import Activity, Phase, PRState
from sessions.models import Actor, FileOverlap, Project, Session

log = logging.getLogger(__name__)

SHOWN_FILES = 10
_DIFF_CACHE: dict[tuple[str, str, str], frozenset[str]] = {}
_DIFF_CACHE_MAX = 512
# a workspace's git is run again at least this often even when nothing says it changed: edits by
# someone other than its agent while the agent is idle
WORKSPACE_RECHECK_SECONDS = 300.0
# workspace path -> (what it was checked against, when (monotonic), the files it changes)
_WORKSPACE_CACHE: dict[str, tuple[tuple, float, frozenset[str]]] = {}
_WORKSPACE_CACHE_MAX = 4096


# --- selectors ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Overlap:
    other: str  # the other session's id
    files: tuple[str, ...]
    first_seen: datetime
    last_seen: datetime


def _view(overlap: FileOverlap, session_id: str) -> Overlap:
    other = overlap.session_b_id if overlap.session_a_id == session_id else overlap.session_a_id
    return Overlap(
        other=other, files=tuple(overlap.files), first_seen=overlap.first_seen, last_seen=overlap.last_seen
    )


def overlaps_for(session: Session) -> list[Overlap]:
    """Open overlaps of one session with other live workers, newest first."""
    rows = FileOverlap.objects.filter(resolved_at__isnull=True).filter(
        Q(session_a_id=session.pk) | Q(session_b_id=session.pk)
    )
    return [_view(row, session.pk) for row in rows]


def overlaps_by_session(*, project: Project) -> dict[str, list[Overlap]]:
    """All open overlaps of a project by session id (one query, for the board)."""
    out: dict[str, list[Overlap]] = {}
    for row in FileOverlap.objects.filter(project=project, resolved_at__isnull=True):
        out.setdefault(row.session_a_id, []).append(_view(row, row.session_a_id))
        out.setdefault(row.session_b_id, []).append(_view(row, row.session_b_id))
    return out


# --- what each session changes -----------------------------------------------------------------------------
def _refs(repo: Path) -> dict[str, str]:
    out = gitutil.git_out(
        ["for-each-ref", "--format=%(refname) %(objectname)", "refs/heads", "refs/remotes"], cwd=repo
    )
    refs = {}
    for line in out.splitlines():
        name, _, sha = line.rpartition(" ")
        refs[name] = sha
    return refs


def _base_sha(refs: dict[str, str], bases: tuple[str, ...]) -> str:
    """The first of ``bases`` (``gitutil.base_refs``: the remote's default branch, else the local
    one) that ``refs`` has."""
    return next((refs[ref] for ref in bases if ref in refs), "")


def _diff_names(cwd: Path, base: str, head: str) -> frozenset[str]:
    """Files changed between two commits (by SHA: cached, a SHA names one tree for ever)."""
    key = (str(cwd), base, head)
    cached = _DIFF_CACHE.get(key)
    if cached is not None:
        return cached
    names = _diff(cwd, base, head)
    if len(_DIFF_CACHE) >= _DIFF_CACHE_MAX:
        _DIFF_CACHE.clear()
    _DIFF_CACHE[key] = names
    return names


def _diff(cwd: Path, base: str, head: str) -> frozenset[str]:
    out = gitutil.run_git(["diff", "--name-only", "-z", f"{base}...{head}", "--"], cwd=cwd).stdout
    return frozenset(name for name in out.split("\0") if name)


def changed_files(
    session: Session, *, repo: Path, refs: dict[str, str], remote: str | None = None
) -> set[str]:
    """Files the session's branch changes against the default branch as the project's remote
    (``remote``, else the project's) has it, plus uncommitted ones."""
    bases = gitutil.base_refs(
        remote=remote or selectors.workspace_remote(session.project), branch=session.project.default_branch
    )
    files: set[str] = set()
    head = refs.get(f"refs/heads/{session.branch}") if session.branch else None
    base_sha = _base_sha(refs, bases)
    workspace = Path(session.workspace_path) if session.workspace_path else None
    on_this_host = (session.host or settings.AO_HOST_NAME) == settings.AO_HOST_NAME
    local = workspace if workspace is not None and on_this_host and workspace.is_dir() else None
    in_repo = bool(head and base_sha)
    if head and base_sha:
        files |= _diff_names(repo, base_sha, head)
    if local is not None:
        files |= _workspace_files(session, local, bases=bases, clone=not in_repo)
    return files


def _workspace_files(
    session: Session, workspace: Path, *, bases: tuple[str, ...], clone: bool
) -> frozenset[str]:
    """What the workspace's own git says: its uncommitted files and, for a clone (its branch lives
    in the workspace only), what its HEAD changes against its base. Read again only when something
    there may have changed (see the module's docstring); else the last answer."""
    stamp = gitutil.worktree_stamp(workspace, list(bases))
    # the agent's activity reading: its state, since when, and when it last did something (a
    # reading from the screen alone has no time of its own: its activity_at is the observation's)
    did_at = session.activity_at if session.activity_at != session.runtime_checked_at else None
    key = (stamp, clone, session.activity, session.activity_since, did_at)
    now = time.monotonic()
    cached = _WORKSPACE_CACHE.get(str(workspace))
    if (
        stamp is not None
        and cached is not None
        and cached[0] == key
        and session.activity != Activity.ACTIVE
        and now - cached[1] < WORKSPACE_RECHECK_SECONDS
    ):
        return cached[2]
    files: set[str] = set()
    if clone:
        ws_base = _base_sha(_refs(workspace), bases)
        if ws_base:
            files |= _diff(workspace, ws_base, "HEAD")
    files |= {path for _code, path in gitutil.status_entries(workspace)}
    if len(_WORKSPACE_CACHE) >= _WORKSPACE_CACHE_MAX:
        _WORKSPACE_CACHE.clear()
    _WORKSPACE_CACHE[str(workspace)] = (key, now, frozenset(files))
    return frozenset(files)


# --- the watch (each sweep) --------------------------------------------------------------------------------
def _fingerprint(files: list[str]) -> str:
    return hashlib.sha256("\0".join(files).encode()).hexdigest()


def _shown(files: list[str]) -> str:
    more = len(files) - SHOWN_FILES
    return ", ".join(files[:SHOWN_FILES]) + (f" and {more} more" if more > 0 else "")


def conflicts_watch(*, project: Project) -> list[str]:
    """One pass: rebase messages after merges, then overlaps between the live workers now."""
    notes = _after_merges(project)
    repo = Path(project.path)
    live = sorted(
        hosts.live_sessions(project=project).exclude(branch="").select_related("project"), key=lambda s: s.pk
    )
    if not repo.is_dir():
        return notes
    refs = _refs(repo)
    remote = selectors.workspace_remote(project)
    files: dict[str, set[str]] = {}
    for session in live:
        try:
            files[session.pk] = changed_files(session, repo=repo, refs=refs, remote=remote)
        except IntegrationError as exc:
            log.info("conflict watch: %s skipped: %s", session.pk, exc)
    by_id = {s.pk: s for s in live}
    now = timezone.now()
    current: dict[tuple[str, str], list[str]] = {}
    for a, b in itertools.combinations([s.pk for s in live if s.pk in files], 2):
        shared = files[a] & files[b]
        if shared:
            current[(a, b)] = sorted(shared)
    # pairs of live workers that no longer share files: resolved
    for overlap in FileOverlap.objects.filter(project=project, resolved_at__isnull=True):
        pair = (overlap.session_a_id, overlap.session_b_id)
        if pair not in current and pair[0] in files and pair[1] in files:
            FileOverlap.objects.filter(pk=overlap.pk, resolved_at__isnull=True).update(resolved_at=now)
            _cards_changed(pair)
            notes.append(f"{pair[0]} and {pair[1]} no longer share files")
    for (a, b), names in current.items():
        if _record(project, by_id[a], by_id[b], names, now):
            notes.append(f"{a} and {b} change the same files: {_shown(names)}")
    return notes


def _cards_changed(ids) -> None:
    for session_id in ids:
        transaction.on_commit(partial(realtime.card_changed, session_id))


def _record(project: Project, a: Session, b: Session, files: list[str], now) -> bool:
    """Store the pair's shared files; announce a set not announced before. True if announced."""
    fingerprint = _fingerprint(files)
    with transaction.atomic():
        overlap, _created = FileOverlap.objects.get_or_create(
            session_a=a, session_b=b, defaults={"project": project, "first_seen": now, "last_seen": now}
        )
        reopened = {}
        if overlap.resolved_at is not None:
            reopened = {"resolved_at": None, "first_seen": now, "rebase_sent_at": None}
        announced = (
            FileOverlap.objects.filter(pk=overlap.pk)
            .exclude(fingerprint=fingerprint, resolved_at__isnull=True)
            .update(fingerprint=fingerprint, files=files, last_seen=now, **reopened)
        )
        if not announced:
            FileOverlap.objects.filter(pk=overlap.pk).update(last_seen=now)
            return False
        for session, other in ((a, b), (b, a)):
            services.event_record(
                project=project,
                session=session,
                kind="conflict.overlap",
                summary=f"changes the same files as {other.id}: {_shown(files)}",
                data={"other": other.id, "files": files},
            )
        _cards_changed((a.pk, b.pk))
        text = (
            f"Conflict watch: {a.id} and {b.id} change the same files ({_shown(files)}). "
            "Decide which goes first and tell the other to wait, coordinate, or rebase after it merges."
        )
        orchestrator = Session.objects.filter(
            project=project, kind=Session.Kind.ORCHESTRATOR, phase=Phase.RUNNING
        ).first()
        if orchestrator is not None:
            messaging.message_queue(
                session=orchestrator, text=text, sender=Actor.SYSTEM, sender_name="conflict-watch"
            )
        notify(
            project=project,
            session=a,
            title=f"{a.id} and {b.id} change the same files",
            body=f"{_shown(files)}\nOne of them will have to rebase after the other merges.",
            priority="warning",
            rule="conflict-overlap",
        )
    return True


def _after_merges(project: Project) -> list[str]:
    """Open overlaps where one side merged: tell the other to rebase (once); where one side ended
    without merging: resolve quietly."""
    notes = []
    now = timezone.now()
    rows = FileOverlap.objects.filter(project=project, resolved_at__isnull=True, rebase_sent_at__isnull=True)
    for overlap in rows.select_related(
        "session_a__pull_request", "session_b__pull_request", "session_a__project"
    ):
        a, b = overlap.session_a, overlap.session_b
        merged = [s for s in (a, b) if _merged(s)]
        if not merged:
            if not (a.is_live and b.is_live):
                FileOverlap.objects.filter(pk=overlap.pk, resolved_at__isnull=True).update(resolved_at=now)
                _cards_changed((a.pk, b.pk))
            continue
        winner = merged[0]
        other = b if winner is a else a
        with transaction.atomic():
            claimed = FileOverlap.objects.filter(pk=overlap.pk, rebase_sent_at__isnull=True).update(
                rebase_sent_at=now, resolved_at=now
            )
            if claimed != 1:
                continue
            _cards_changed((a.pk, b.pk))
            if other in merged or not other.is_live or other.kind != Session.Kind.WORKER:
                continue
            base, remote = project.default_branch, selectors.workspace_remote(project)
            text = (
                f"{winner.id} merged and touched the same files: rebase on {remote}/{base} "
                f"(`git fetch {remote} && git rebase {remote}/{base}`), resolve conflicts, re-run the tests and push. "
                f"Shared files: {_shown(list(overlap.files))}"
            )
            messaging.message_queue(
                session=other, text=text, sender=Actor.SYSTEM, sender_name="conflict-watch"
            )
            services.event_record(
                project=project,
                session=other,
                kind="conflict.rebase_requested",
                summary=f"{winner.id} merged and touched the same files: asked to rebase on {remote}/{base}",
                data={"merged": winner.id, "files": list(overlap.files)},
            )
        notes.append(f"{other.id} asked to rebase after {winner.id} merged")
    return notes


def _merged(session: Session) -> bool:
    pr = getattr(session, "pull_request", None)
    return pr is not None and pr.state == PRState.MERGED
