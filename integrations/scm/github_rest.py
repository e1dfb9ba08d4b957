"""The `github` SCM's REST reader: a changed PR's facts from conditional REST reads, so the few
PRs a sweep finds changed cost requests (a 304 spends nothing of the hourly quota) and no GraphQL
points. ``GitHubSCM.fetch_pull_requests`` (integrations/scm/github.py) uses it for PRs ao already
knows, when few changed; the first read of a PR, the periodic complete read and many changes at
once go to GraphQL.

One read is five conditional GETs: the PR (state, head, mergeability, requested reviewers), its
head commit's check runs and statuses, its reviews, and its review comments. What REST cannot say
is left to GraphQL, and the reader answers None for that PR (it is then read with GraphQL in the
same sweep):

- thread resolution: a thread keeps what ao knew of it; a new thread (a new first comment) is
  unresolved, as on GitHub. A PR whose REST facts explain none of its own change (its body moved,
  reviews and comments did not, ao's facts are the same) while ao holds an unresolved thread may
  have had one resolved: GraphQL reads it;
- the review decision under branch protection: REST has no ``reviewDecision``. It is derived from
  each reviewer's latest approving or changes-requesting review (``review_decision_of``, the same
  rule GraphQL's answer falls back to), and trusted only where the PR's ``mergeable_state`` shows
  protection is not holding the PR back (or the derived decision is what ao already knew).

Thread identity: GraphQL names a thread by its node id (``PRRT_...``), which REST never shows. A
thread ao first sees through REST is named by its first comment's node id (``PRRC_...``) and
keeps that name: GraphQL reads match threads to what ao knows by the first comment's URL
(``adopt_thread_ids``), so a thread is one thread, forwarded once, whichever read saw it first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from integrations.github import GitHubNotFound
from integrations.records import CheckInfo, PullRequestInfo, ThreadInfo
from integrations.scm.github_probe import github_time

if TYPE_CHECKING:
    from integrations.github import GitHubClient

PAGE = 100
# mergeable_state values under which branch protection holds nothing back: a decision derived
# from the reviews is what GitHub's would be
UNBLOCKED = frozenset({"clean", "unstable", "has_hooks"})
OPINIONS = ("APPROVED", "CHANGES_REQUESTED")


def review_decision_of(opinions: Iterable[str], *, requested: int, state: str) -> str:
    """A decision from each reviewer's latest opinion (APPROVED / CHANGES_REQUESTED), for when
    GitHub gives none (no branch protection asks for reviews, or REST): changes requested by
    anyone wins, then an approval; an open PR on which people were asked for a review (the
    Reviewers box) waits for one; else none."""
    opinions = set(opinions)
    if "CHANGES_REQUESTED" in opinions:
        return "changes_requested"
    if "APPROVED" in opinions:
        return "approved"
    return "review_required" if state == "open" and requested > 0 else "none"


def login_of(user: Mapping[str, Any]) -> str:
    """A REST user's login as GraphQL spells it (REST names an app ``name[bot]``, GraphQL ``name``)."""
    login = user.get("login") or ""
    if user.get("type") == "Bot" and login.endswith("[bot]"):
        return login[: -len("[bot]")]
    return login


def adopt_thread_ids(
    threads: tuple[ThreadInfo, ...], previous: PullRequestInfo | None
) -> tuple[ThreadInfo, ...]:
    """GraphQL's threads under the names ao already gave them: a thread first seen through REST is
    known by its first comment's node id, found again here by that comment's URL."""
    if previous is None:
        return threads
    fresh = {t.external_id for t in threads}
    known = {t.external_id for t in previous.threads}
    by_url = {
        t.url: t.external_id
        for t in previous.threads
        if t.url and not t.review_state and t.external_id not in fresh
    }
    return tuple(
        replace(t, external_id=by_url[t.url])
        if t.external_id not in known and not t.review_state and t.url in by_url
        else t
        for t in threads
    )


class GitHubRestReader:
    """``_rest_read`` for ``GitHubSCM``; the plugin provides ``client()``, ``repo_full_name`` and
    ``config.max_checks`` / ``config.max_threads``."""

    repo_full_name: str
    config: Any  # GitHubSCM.Config

    if TYPE_CHECKING:

        def client(self) -> GitHubClient: ...

    def _rest_read(
        self, client: GitHubClient, number: int, previous: PullRequestInfo
    ) -> PullRequestInfo | None:
        """PR ``number``'s facts from REST, or None when REST cannot tell them (gone, more than a
        page of reviews or comments, or a fact only GraphQL has: module docstring). ``client`` is
        the plugin's, taken by the caller (reading its token may read ao's secrets)."""
        path = f"/repos/{self.repo_full_name}/pulls/{int(number)}"
        try:
            pull_read = client.request("GET", path)
        except GitHubNotFound:
            return None  # GraphQL's read says what became of it
        reviews_read = client.request("GET", path + "/reviews", params={"per_page": PAGE})
        comments_read = client.request("GET", path + "/comments", params={"per_page": PAGE})
        pull = pull_read.data if isinstance(pull_read.data, dict) else {}
        reviews = [r for r in reviews_read.data or () if isinstance(r, dict)]
        comments = [c for c in comments_read.data or () if isinstance(c, dict)]
        if not pull or len(reviews) >= PAGE or len(comments) >= PAGE:
            return None
        head, base = pull.get("head") or {}, pull.get("base") or {}
        sha = head.get("sha") or ""
        state = "merged" if pull.get("merged") or pull.get("merged_at") else (pull.get("state") or "open")
        merge_state = (pull.get("mergeable_state") or "").lower()
        latest: dict[str, Mapping[str, Any]] = {}  # each reviewer's latest opinion
        for review in reviews:
            if review.get("state") in OPINIONS:
                latest[login_of(review.get("user") or {})] = review
        requested = len(pull.get("requested_reviewers") or ()) + len(pull.get("requested_teams") or ())
        derived = review_decision_of((r["state"] for r in latest.values()), requested=requested, state=state)
        if derived == "changes_requested" or merge_state in UNBLOCKED or derived == previous.review_decision:
            decision = derived
        elif derived == "none" and previous.review_decision == "review_required" and merge_state == "blocked":
            decision = "review_required"  # protection still asks for a review nobody has given
        else:
            return None  # protection may decide otherwise: GraphQL's reviewDecision
        mergeable = pull.get("mergeable")
        info = PullRequestInfo(
            number=int(pull.get("number") or number),
            branch=head.get("ref") or previous.branch,
            url=pull.get("html_url") or "",
            title=pull.get("title") or "",
            base_branch=base.get("ref") or "",
            state=state if state in ("open", "closed", "merged") else "open",
            draft=bool(pull.get("draft")),
            head_sha=sha,
            mergeable=mergeable if isinstance(mergeable, bool) else None,
            conflicts=mergeable is False or merge_state == "dirty",
            behind=merge_state == "behind",
            review_decision=decision,
            checks=self._rest_checks(client, sha) if sha else (),
            threads=_threads_of(comments, previous, self.config.max_threads) + _review_texts_of(latest),
            updated_at=github_time(pull.get("updated_at")),
            created_at=github_time(pull.get("created_at")),
        )
        moved_unseen = (
            not pull_read.not_modified
            and reviews_read.not_modified
            and comments_read.not_modified
            and _same(info, previous)
        )
        if moved_unseen and any(not t.resolved and not t.review_state for t in previous.threads):
            return None  # its change is nothing REST shows: perhaps a thread resolved
        return info

    def _rest_checks(self, client: GitHubClient, sha: str) -> tuple[CheckInfo, ...]:
        base = f"/repos/{self.repo_full_name}/commits/{sha}"
        runs = client.request("GET", base + "/check-runs", params={"per_page": PAGE}).data or {}
        status = client.request("GET", base + "/status", params={"per_page": PAGE}).data or {}
        checks = [_check_run(c) for c in runs.get("check_runs") or () if isinstance(c, dict)]
        checks += [_status(s) for s in status.get("statuses") or () if isinstance(s, dict)]
        return tuple(checks[: self.config.max_checks])


def _same(info: PullRequestInfo, previous: PullRequestInfo) -> bool:
    """``info`` changes none of ao's facts of ``previous`` but its times and checks."""

    def facts(i: PullRequestInfo) -> PullRequestInfo:
        return replace(
            i,
            updated_at=None,
            created_at=None,
            opened_by="",
            checks=(),
            threads=tuple(sorted(i.threads, key=lambda t: t.external_id)),
        )

    return facts(info) == facts(previous)


def _threads_of(
    comments: Sequence[Mapping[str, Any]], previous: PullRequestInfo, limit: int
) -> tuple[ThreadInfo, ...]:
    """One thread per first comment (REST's ``in_reply_to_id`` marks replies), oldest first;
    a thread ao knows keeps its name and resolution."""
    known = {t.url: t for t in previous.threads if t.url and not t.review_state}
    out = []
    for comment in sorted(comments, key=lambda c: c.get("id") or 0):
        if comment.get("in_reply_to_id"):
            continue
        user = comment.get("user") or {}
        url = comment.get("html_url") or ""
        old = known.get(url)
        line = comment.get("line")
        out.append(
            ThreadInfo(
                external_id=old.external_id
                if old
                else str(comment.get("node_id") or f"comment:{comment.get('id')}"),
                path=comment.get("path") or "",
                line=line if isinstance(line, int) else None,
                author=login_of(user),
                author_association=comment.get("author_association") or "",
                body=comment.get("body") or "",
                url=url,
                resolved=old.resolved if old else False,
                is_bot=user.get("type") == "Bot",
                created_at=github_time(comment.get("created_at")),
            )
        )
    return tuple(out[:limit])


def _review_texts_of(latest: Mapping[str, Mapping[str, Any]]) -> tuple[ThreadInfo, ...]:
    """Each reviewer's latest review when it requests changes with words (as GraphQL's read)."""
    out = []
    for review in latest.values():
        if review.get("state") != "CHANGES_REQUESTED" or not (review.get("body") or "").strip():
            continue
        user = review.get("user") or {}
        out.append(
            ThreadInfo(
                external_id=str(review.get("node_id") or ""),
                author=login_of(user),
                author_association=review.get("author_association") or "",
                body=review.get("body") or "",
                url=review.get("html_url") or "",
                is_bot=user.get("type") == "Bot",
                created_at=github_time(review.get("submitted_at")),
                review_state="changes_requested",
            )
        )
    return tuple(out)


def check_status(value: str | None) -> str:
    """A check run's status as ao keeps it (GraphQL says IN_PROGRESS, REST in_progress)."""
    status = (value or "").lower()
    return status if status in ("queued", "in_progress", "completed") else "queued"


def check_conclusion(status: str, value: str | None) -> str:
    """A finished check run's conclusion as ao keeps it; none while it runs."""
    conclusion = (value or "").lower()
    conclusion = {"startup_failure": "failure", "stale": "skipped"}.get(conclusion, conclusion)
    return conclusion if status == "completed" else ""


def _check_run(run: Mapping[str, Any]) -> CheckInfo:
    status = check_status(run.get("status"))
    return CheckInfo(
        name=run.get("name") or "",
        source="check_run",
        status=status,
        conclusion=check_conclusion(status, run.get("conclusion")),
        url=run.get("details_url") or "",  # GraphQL's detailsUrl: the same for either read
        external_id=str(run.get("id") or ""),
        started_at=github_time(run.get("started_at")),
        completed_at=github_time(run.get("completed_at")),
    )


# a commit status's state (GraphQL's StatusContext upper-cased, REST's lower) as (status, conclusion)
STATUS_STATES = {
    "success": ("completed", "success"),
    "failure": ("completed", "failure"),
    "error": ("completed", "error"),
    "pending": ("in_progress", ""),
    "expected": ("queued", ""),
}


def _status(status: Mapping[str, Any]) -> CheckInfo:
    state, conclusion = STATUS_STATES.get((status.get("state") or "").lower(), ("queued", ""))
    return CheckInfo(
        name=status.get("context") or "",
        source="status",
        status=state,
        conclusion=conclusion,
        url=status.get("target_url") or "",
        external_id=f"status:{status.get('context') or ''}",
        started_at=github_time(status.get("created_at")),
    )
