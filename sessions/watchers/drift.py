"""Drift watch: signals that an agent is going the wrong way, told to whoever can correct it.

``drift_check(project)`` runs from the sweep (at most every ``AO_DRIFT_INTERVAL`` seconds per
project) over the running worker sessions whose workspace is on this host, and looks for:

| signal | when | episode (fingerprint) |
| --- | --- | --- |
| ``no_commit`` | the agent has been active (activity within the last 15 min, zone working) and its branch has no commit for more than ``AO_DRIFT_NO_COMMIT_MINUTES`` (45): the time of the branch's last own commit (``git log``), or the session's start when it has none | the head commit |
| ``diff_size`` | the diff against the merge base with the default branch as the project's remote has it (``selectors.base_ref``; working tree included, ``git diff --shortstat``) exceeds the issue's thresholds: ``AO_DRIFT_MAX_LINES`` (800) lines or ``AO_DRIFT_MAX_FILES`` (30) files, scaled down for a small issue (below) | the size bucket: once past 1, 2, 4... times the threshold |
| ``out_of_area`` | at least ``AO_DRIFT_OUTSIDE_FILES`` (5) changed files lie outside the paths the issue names | the top-level directories of those files |
| ``same_check`` | the same check failed on ``AO_DRIFT_SAME_CHECK_CYCLES`` (3) different commits in a row (``ci.changed`` timeline entries); a failure on a commit where that check also passed (flaky *there*, ``sessions.watchers.decisions``) is not counted, and does not break the streak | the check + the first commit of the streak |

The *area* heuristic: path-like words in the issue's title and body (``sessions/dashboard/chat.py``,
``docs/``, ``README.md``; URLs are dropped) name the area. A changed file is inside it when it
is a named file, lies in a named directory, or sits in the directory of a named file (or has the
named file name anywhere). Tests, docs and lock files are always inside (changing them is part of
most work). An issue that names no paths has no area: no signal.

The *size* of an issue scales the ``diff_size`` thresholds; the settings are the default and the
upper bound. A size label (``size/XS``, ``size:S``, ``size-M``, ``size/large``...; case ignored)
takes 1/8 (XS), 1/4 (S), 1/2 (M) or all (L, XL) of them; without one, an issue that names N paths
(the area words above) takes min(N, 4)/4 of them, so a one-file fix gets a quarter; an issue with
neither gets them whole. A scaled threshold is never below ``MIN_LINES`` (100) lines / ``MIN_FILES``
(5) files (nor above the setting). The summary says which hint set the thresholds.

Each new signal episode is claimed once (a ``ReactionAttempt`` row with rule ``drift-<signal>``
and the episode as fingerprint, unique, so re-runs and concurrent sweeps never repeat it) and
recorded on the session's timeline (``drift.<signal>``, with what was done). The pass's new
signals are summarised in one message to the project's orchestrator session (sender ``system``),
which can send a course correction or escalate; without a live orchestrator a person is notified
at ``warning``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Set
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from integrations import gitutil
from integrations.base import IntegrationError
from integrations.registry import plugin_for
from reactions.models import ReactionAttempt
from reactions.notify import notify
from sessions.agents import messaging
from sessions.core import services
from sessions.core.selectors import base_ref, flaky_checks
from sessions.domain.lifecycle import CIState, Phase, Zone
from sessions.models import Actor, Event, Project, Session

log = logging.getLogger(__name__)

NO_COMMIT, DIFF_SIZE, OUT_OF_AREA, SAME_CHECK = "no_commit", "diff_size", "out_of_area", "same_check"
SIGNALS = (NO_COMMIT, DIFF_SIZE, OUT_OF_AREA, SAME_CHECK)
RECENT_ACTIVITY = timedelta(minutes=15)
GIT_TIMEOUT = 5.0
MAX_PATHS = 5000
ISSUE_CACHE_SECONDS = 3600
MIN_LINES, MIN_FILES = 100, 5  # the smallest diff_size thresholds an issue's size scales to
SIZE_FRACTIONS = {"xs": 1 / 8, "s": 1 / 4, "m": 1 / 2, "l": 1.0, "xl": 1.0}
SIZE_WORDS = {"tiny": "xs", "small": "s", "medium": "m", "large": "l", "huge": "xl"}
_SIZE_LABEL_RE = re.compile(r"^size\s*[/:\-]?\s*([a-z]+)$", re.IGNORECASE)
SENDER_NAME = "drift-watch"


@dataclass(frozen=True)
class Signal:
    session: Session
    kind: str
    fingerprint: str
    summary: str
    data: dict = field(default_factory=dict, compare=False)

    @property
    def rule(self) -> str:
        return "drift-" + self.kind.replace("_", "-")


# --- reading the workspace -----------------------------------------------------------------------------
def _workspace(session: Session) -> Path | None:
    if not session.workspace_path:
        return None
    path = Path(session.workspace_path)
    return path if path.is_dir() else None


def _git(cwd: Path, args: list[str]) -> str | None:
    try:
        proc = gitutil.run_git(args, cwd=cwd, timeout=GIT_TIMEOUT, check=False)
    except (IntegrationError, OSError) as exc:
        log.info("drift: git %s in %s failed: %s", args[0], cwd, exc)
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def _merge_base(session: Session, cwd: Path) -> str | None:
    """Where the branch left the base its worktree was made from (``selectors.base_ref``: the
    remote's default branch as last fetched), not the person's stale local one."""
    try:
        base = base_ref(project=session.project, repo=cwd)
    except (IntegrationError, OSError) as exc:
        log.info("drift: no base for %s in %s: %s", session.pk, cwd, exc)
        return None
    return _git(cwd, ["merge-base", "--end-of-options", base, "HEAD"]) if base else None


def _changed_since(cwd: Path, base: str) -> list[str] | None:
    out = _git(cwd, ["diff", "--no-renames", "--name-only", base, "--"])
    if out is None:
        return None
    return [line for line in out.splitlines() if line][:MAX_PATHS]


_SHORTSTAT_RE = re.compile(r"(\d+) files? changed(?:, (\d+) insertions?\(\+\))?(?:, (\d+) deletions?\(-\))?")


def parse_shortstat(text: str) -> tuple[int, int]:
    """``git diff --shortstat`` → (files, lines changed). Pure."""
    match = _SHORTSTAT_RE.search(text or "")
    if match is None:
        return 0, 0
    files, ins, dels = (int(g or 0) for g in match.groups())
    return files, ins + dels


# --- the area an issue names -----------------------------------------------------------------------------
_URL_RE = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
_TOKEN_RE = re.compile(r"[A-Za-z0-9_.\-/]+")
_EXT_RE = re.compile(r"^[^.].*\.[A-Za-z][A-Za-z0-9]{0,7}$")
INCIDENTAL_RE = re.compile(
    r"(^|/)(tests?|testing|__tests__|spec|docs?)/|(^|/)test_[^/]*$|_test\.[^/]+$|\.(test|spec)\.[^/]+$"
    r"|(^|/)(CHANGELOG|CHANGES|README)[^/]*$|(^|/)[^/]*\.lock$|(^|/)(package-lock\.json|go\.sum)$",
    re.IGNORECASE,
)


def issue_paths(text: str) -> list[str]:
    """Path-like words of an issue (files and directories), normalised. Pure."""
    text = _URL_RE.sub(" ", text or "")
    found: list[str] = []
    for token in _TOKEN_RE.findall(text):
        token = token.strip(".-")
        while token.startswith("./"):
            token = token[2:]
        if not token or token.startswith("/") or ".." in token.split("/"):
            continue
        if "/" in token:
            if len(token.strip("/")) < 2:
                continue
            found.append(token)
        elif _EXT_RE.match(token) and not token.replace(".", "").isdigit():
            found.append(token)
    return list(dict.fromkeys(found))


def outside_area(changed: list[str], mentioned: list[str]) -> list[str]:
    """The changed files outside the area the mentioned paths name (see the module doc). Pure."""
    if not mentioned:
        return []
    dirs, files, names = set(), set(), set()
    for m in mentioned:
        m = m.rstrip("/") if m.endswith("/") else m
        last = PurePosixPath(m).name
        if "/" not in m:
            names.add(m)
        elif _EXT_RE.match(last):
            files.add(m)
            parent = str(PurePosixPath(m).parent)
            if parent not in ("", "."):
                dirs.add(parent)
        else:
            dirs.add(m)
    out = []
    for path in changed:
        if INCIDENTAL_RE.search(path):
            continue
        if path in files or PurePosixPath(path).name in names:
            continue
        if any(path == d or path.startswith(d + "/") for d in dirs):
            continue
        out.append(path)
    return out


def _issue_facts(session: Session) -> tuple[str, tuple[str, ...]]:
    """The issue's body and labels from the tracker (cached ``ISSUE_CACHE_SECONDS``); empty when
    the session has no issue or the tracker cannot say."""
    if not session.issue_ref:
        return "", ()
    key = f"ao:drift:issue-facts:{session.project_id}:{session.issue_ref}"
    facts = cache.get(key)
    if not isinstance(facts, dict):
        try:
            issue = plugin_for(session.project, "tracker").get_issue(session.issue_ref)
            facts = {"body": issue.body or "", "labels": list(issue.labels)}
        except Exception as exc:  # no body: the title alone names the area
            log.info("drift: issue %s of %s unavailable: %s", session.issue_ref, session.pk, exc)
            facts = {"body": "", "labels": []}
        cache.set(key, facts, ISSUE_CACHE_SECONDS)
    return facts.get("body") or "", tuple(facts.get("labels") or ())


def _issue_text(session: Session) -> str:
    body, _labels = _issue_facts(session)
    return f"{session.issue_title or ''}\n{body}"


def size_label(labels) -> str:
    """``xs``/``s``/``m``/``l``/``xl`` from a size label (``size/S``, ``size:M``, ``size-large``), or
    "". The first such label wins. Pure."""
    for label in labels:
        match = _SIZE_LABEL_RE.match(str(label).strip())
        if match:
            size = match.group(1).lower()
            size = SIZE_WORDS.get(size, size)
            if size in SIZE_FRACTIONS:
                return size
    return ""


def diff_thresholds(
    *, max_lines: int, max_files: int, labels=(), mentioned: list[str] | None = None
) -> tuple[int, int, str]:
    """(lines, files, why): the ``diff_size`` thresholds for an issue with these labels and named
    paths (see the module doc); ``why`` is "" for the settings as they are. Pure."""
    size = size_label(labels)
    if size:
        fraction, why = SIZE_FRACTIONS[size], f"a size/{size.upper()} issue"
    elif mentioned:
        count = len(mentioned)
        fraction = min(count, 4) / 4
        why = f"an issue naming {count} path{'s' if count != 1 else ''}"
    else:
        return max_lines, max_files, ""
    if fraction >= 1:
        return max_lines, max_files, ""
    lines = min(max_lines, max(MIN_LINES, int(max_lines * fraction)))
    files = min(max_files, max(MIN_FILES, int(max_files * fraction)))
    if (lines, files) == (max_lines, max_files):
        return max_lines, max_files, ""
    return lines, files, why


# --- the signals of one session -------------------------------------------------------------------------
def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def _no_commit(session: Session, cwd: Path, base: str | None, now: datetime) -> Signal | None:
    if session.zone != Zone.WORKING or session.activity_at is None:
        return None
    if now - session.activity_at > RECENT_ACTIVITY:
        return None  # not active: idleness is the lifecycle's "stuck", not drift
    head = _git(cwd, ["rev-parse", "HEAD"]) or ""
    since = session.start_claimed_at or session.created_at
    last_commit = ""
    if head and base and head != base:
        stamp = _git(cwd, ["log", "-1", "--format=%ct", "HEAD"])
        if stamp and stamp.isdigit():
            since = datetime.fromtimestamp(int(stamp), tz=UTC)
            last_commit = head
    limit = timedelta(minutes=settings.AO_DRIFT_NO_COMMIT_MINUTES)
    if now - since <= limit:
        return None
    minutes = int((now - since).total_seconds() // 60)
    what = f"last commit {last_commit[:7]}" if last_commit else "no commit on its branch yet"
    return Signal(
        session,
        NO_COMMIT,
        f"head:{(last_commit or 'none')[:40]}",
        f"working for {minutes} min without a commit ({what})",
        {"minutes": minutes, "last_commit": last_commit},
    )


def _diff_size(session: Session, cwd: Path, base: str | None) -> Signal | None:
    if base is None:
        return None
    stat = _git(cwd, ["diff", "--shortstat", base, "--"])
    if stat is None:
        return None
    files, lines = parse_shortstat(stat)
    floor_lines = min(MIN_LINES, settings.AO_DRIFT_MAX_LINES)
    if lines <= floor_lines and files <= min(MIN_FILES, settings.AO_DRIFT_MAX_FILES):
        return None  # under every threshold an issue can have: no need to read it
    body, labels = _issue_facts(session)
    max_lines, max_files, why = diff_thresholds(
        max_lines=settings.AO_DRIFT_MAX_LINES,
        max_files=settings.AO_DRIFT_MAX_FILES,
        labels=labels,
        mentioned=issue_paths(f"{session.issue_title or ''}\n{body}"),
    )
    if lines <= max_lines and files <= max_files:
        return None
    bucket = max(lines // max(max_lines, 1), files // max(max_files, 1), 1).bit_length()
    scaled = f", scaled for {why}" if why else ""
    return Signal(
        session,
        DIFF_SIZE,
        f"x{2 ** (bucket - 1)}",
        f"diff has grown to {lines} lines in {files} files "
        f"(thresholds {max_lines} lines / {max_files} files{scaled})"
        + (f" for issue #{session.issue_ref}" if session.issue_ref else ""),
        {"lines": lines, "files": files, "max_lines": max_lines, "max_files": max_files},
    )


def _out_of_area(session: Session, changed: list[str] | None) -> Signal | None:
    if not changed:
        return None
    mentioned = issue_paths(_issue_text(session))
    outside = outside_area(changed, mentioned)
    if not outside or len(outside) < settings.AO_DRIFT_OUTSIDE_FILES:
        return None
    tops = sorted({p.split("/", 1)[0] if "/" in p else "/" for p in outside})
    sample = ", ".join(outside[:5]) + ("…" if len(outside) > 5 else "")
    return Signal(
        session,
        OUT_OF_AREA,
        _digest(*tops),
        f"{len(outside)} changed files lie outside what the issue names ({', '.join(mentioned[:5])}): {sample}",
        {"outside": outside[:50], "mentioned": mentioned[:20]},
    )


def same_check_streaks(
    events: list[dict], *, skip: Set[tuple[str, str]] = frozenset()
) -> dict[str, list[str]]:
    """{check: shas} of checks failing on consecutive distinct commits, from ``ci.changed`` data in
    time order. A passing CI or a failing CI without that check ends its streak. A failure in
    ``skip`` ((check, commit) pairs: the check flipped on that commit) neither counts nor ends it. Pure."""
    streaks: dict[str, list[str]] = {}
    for data in events:
        state, sha = data.get("ci"), data.get("sha") or ""
        reported = set(data.get("failed") or [])
        flaky_here = {name for name in reported if (name, sha) in skip}
        failed = reported - flaky_here
        if state != CIState.FAILING:
            if state == CIState.PASSING:
                streaks = {}
            continue
        for name in list(streaks):
            if name not in failed and name not in flaky_here:
                del streaks[name]
        for name in failed:
            shas = streaks.setdefault(name, [])
            if sha and sha not in shas:
                shas.append(sha)
    return streaks


def _same_check(session: Session, flaky: set[tuple[str, str]]) -> list[Signal]:
    rows = Event.objects.filter(session=session, kind="ci.changed").order_by("created_at", "pk")
    events = [row.data or {} for row in rows]
    out = []
    cycles = settings.AO_DRIFT_SAME_CHECK_CYCLES
    for name, shas in sorted(same_check_streaks(events, skip=flaky).items()):
        if len(shas) >= cycles:
            out.append(
                Signal(
                    session,
                    SAME_CHECK,
                    f"{name[:80]}:{shas[0][:12]}",
                    f"check {name} has failed on {len(shas)} commits in a row "
                    f"({', '.join(s[:7] for s in shas[-cycles:])}): the fixes are not working",
                    {"check": name, "shas": shas},
                )
            )
    return out


def session_signals(
    session: Session, *, now: datetime | None = None, flaky: set[tuple[str, str]] | None = None
) -> list[Signal]:
    """Every drift signal a session shows now (reads only). ``flaky``: the project's (check, commit)
    pairs that flipped on their commit (``selectors.flaky_checks``), read here when not given."""
    now = now or timezone.now()
    if flaky is None:
        flaky = flaky_checks(session.project, now=now)
    out: list[Signal] = []
    cwd = _workspace(session)
    if cwd is not None:
        base = _merge_base(session, cwd)
        for found in (_no_commit(session, cwd, base, now), _diff_size(session, cwd, base)):
            if found is not None:
                out.append(found)
        found = _out_of_area(session, _changed_since(cwd, base) if base else None)
        if found is not None:
            out.append(found)
    out += _same_check(session, flaky)
    return out


# --- acting -----------------------------------------------------------------------------------------------
def _claim(signal: Signal, *, now: datetime) -> bool:
    """Claim the signal's episode: True exactly once per (session, drift rule, fingerprint)."""
    try:
        with transaction.atomic():
            row, _ = ReactionAttempt.objects.get_or_create(
                session=signal.session,
                rule=signal.rule,
                fingerprint=signal.fingerprint[:128],
                defaults={"detail": {"summary": signal.summary[:300]}},
            )
    except IntegrityError:
        return False
    if row.attempts:
        return False
    return (
        ReactionAttempt.objects.filter(pk=row.pk, attempts=0).update(attempts=F("attempts") + 1, last_at=now)
        == 1
    )


def _orchestrator(project: Project) -> Session | None:
    return (
        Session.objects.filter(project=project, kind=Session.Kind.ORCHESTRATOR)
        .exclude(phase__in=[Phase.KILLED, Phase.CLEANED, Phase.ERRORED])
        .first()
    )


def drift_message(project: Project, signals: list[Signal]) -> str:
    lines = [f"ao drift watch ({project.key}): sessions that may be going the wrong way."]
    for signal in signals:
        issue = f" (issue #{signal.session.issue_ref})" if signal.session.issue_ref else ""
        lines.append(f"- {signal.session.pk}{issue}: {signal.summary}")
    lines.append(
        "For each: look at its diff and timeline, then send it a course correction "
        '(ao send <session> "...") or escalate to a person.'
    )
    return "\n".join(lines)


def drift_check(project: Project, *, now: datetime | None = None, force: bool = False) -> list[Signal]:
    """Look for drift in the project's running sessions; tell the orchestrator (or a person) about
    each new signal episode, once, and put it on the session's timeline. Returns the new signals.
    Never raises into the sweep."""
    interval = settings.AO_DRIFT_INTERVAL
    if not force and interval > 0 and not cache.add(f"ao:drift:due:{project.pk}", 1, timeout=interval):
        return []
    try:
        return _drift_check(project, now=now or timezone.now())
    except Exception:  # advice only: the sweep goes on
        log.exception("drift check of %s failed", project.key)
        return []


def _drift_check(project: Project, *, now: datetime) -> list[Signal]:
    flaky = flaky_checks(project, now=now)
    sessions = (
        Session.objects.filter(project=project, kind=Session.Kind.WORKER, phase=Phase.RUNNING)
        .exclude(zone=Zone.DONE)
        .select_related("project")
        .order_by("created_at", "pk")
    )
    found: list[Signal] = []
    for session in sessions:
        if (session.host or settings.AO_HOST_NAME) != settings.AO_HOST_NAME:
            continue  # its workspace lives on another agent host
        try:
            found += session_signals(session, now=now, flaky=flaky)
        except Exception:
            log.exception("drift signals of %s failed", session.pk)
    if not found:
        return []
    with transaction.atomic():  # claimed and told together: a failure to tell releases the claims
        fresh = [s for s in found if _claim(s, now=now)]
        if fresh:
            _tell(project, fresh)
    return fresh


def _tell(project: Project, signals: list[Signal]) -> None:
    text = drift_message(project, signals)
    orchestrator = _orchestrator(project)
    data: dict = {}
    if orchestrator is not None:
        message = messaging.message_queue(
            session=orchestrator, text=text, sender=Actor.SYSTEM, sender_name=SENDER_NAME
        )
        done = f"told the orchestrator {orchestrator.pk}"
        data = {"orchestrator": orchestrator.pk, "message": message.pk}
    else:
        one = signals[0].session if len({s.session.pk for s in signals}) == 1 else None
        title = (
            f"{one.pk}: drift — {signals[0].summary}"
            if one is not None and len(signals) == 1
            else f"{project.key}: {len(signals)} drift signals"
        )
        notification = notify(
            project=project, session=one, title=title, body=text, priority="warning", rule="drift"
        )
        done = "notified a person (no orchestrator session)"
        data = {"notification": notification.pk}
    for signal in signals:
        services.event_record(
            project=project,
            session=signal.session,
            kind=f"drift.{signal.kind}",
            summary=f"drift: {signal.summary}; {done}",
            actor=Actor.SYSTEM,
            actor_name=SENDER_NAME,
            data={**signal.data, "fingerprint": signal.fingerprint, **data},
        )
