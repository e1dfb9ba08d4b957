"""Flaky checks, the pure part: what a flip is and how long a flag counts. No Django, no I/O.

``CheckRun`` keeps one row per (PR, commit, source, name), updated in place, so a re-run that
flips a check on the same commit would leave no trace. PR sync hands the stored states of a
commit's checks and the states it is about to store to ``flips``; each check that went failed →
success or success → failed on that commit is flagged (``services.check_flips_record`` writes the
``FlakyCheck`` row and its ``ci.flaky`` timeline entry). A flag holds for that check on that
commit only, while it is younger than ``AO_FLAKY_CHECK_HOURS`` (``window_start``); the reads are
``selectors.is_flaky`` and ``selectors.flaky_checks``. Who uses them: the reactions engine (the
agent is told a failing check also passed on this commit), PR sync (records flips), the drift
watch (a flaky commit's failure does not count towards a streak) and the decisions list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sessions.domain.lifecycle import FAILED_CONCLUSIONS

NAME_MAX = 255  # FlakyCheck.name and CheckRun.name
SHA_MAX = 64


class CheckState(Protocol):
    """A check as PR sync reads it from the SCM (``integrations.records.CheckInfo``)."""

    @property
    def source(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def conclusion(self) -> str: ...


@dataclass(frozen=True)
class Flip:
    name: str  # the check's name, cut to NAME_MAX
    verb: str  # "failed, then passed" | "passed, then failed"

    def detail(self, *, head_sha: str, number: int) -> str:
        return f"{self.name} {self.verb} on the same commit {head_sha[:7]} of PR #{number}"


def failed(status: str, conclusion: str) -> bool:
    return status == "completed" and conclusion in FAILED_CONCLUSIONS


def passed(status: str, conclusion: str) -> bool:
    return status == "completed" and conclusion == "success"


def flips(stored: Mapping[tuple[str, str], tuple[str, str]], checks: Iterable[CheckState]) -> list[Flip]:
    """The checks whose new state flips the stored one on the same commit. ``stored``:
    {(source, name): (status, conclusion)} of the commit's checks as stored before this sync."""
    out: list[Flip] = []
    for check in checks:
        name = check.name[:NAME_MAX]
        before = stored.get((check.source, name))
        if before is None:
            continue
        was_failed, was_passed = failed(*before), passed(*before)
        if (was_failed and passed(check.status, check.conclusion)) or (
            was_passed and failed(check.status, check.conclusion)
        ):
            out.append(Flip(name, "failed, then passed" if was_failed else "passed, then failed"))
    return out


def window_start(now: datetime, hours: float) -> datetime:
    """The oldest detection time of a flag that still counts."""
    return now - timedelta(hours=hours)
