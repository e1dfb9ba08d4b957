"""The `github` SCM's REST reader: a changed PR's facts from conditional REST reads, so the few
PRs a sweep finds changed cost requests (a 304 spends nothing of the hourly quota) and no GraphQL
points. ``GitHubSCM.fetch_pull_requests`` (integrations/scm/github.py) uses it for PRs ao already
knows, when few changed; the first read of a PR, the periodic complete read and many changes at
once go to GraphQL.

One read is five conditional GETs: the PR (state, head, mergeability, requested reviewers), its
head commit's check runs and statuses, its reviews, and its review comments. What REST cannot say
is left to GraphQL, and the reader answers None for that PR (it is then read with GraphQL in the
same sweep), as it does when a REST request fails (GraphQL has its own budget) or a list is
longer than a page:

- thread resolution: a thread keeps what ao knew of it; a new thread (a new first comment) is
  unresolved, as on GitHub. A PR whose REST facts explain none of its own change (its body moved,
  reviews and comments did not, ao's facts are the same) while a thread is open may have had one
  resolved; so may a PR a reviewer just approved with threads open: GraphQL reads both. A
  resolution with nothing else is seen by the PR's `pull_request_review_thread` delivery when
  webhooks come (flows/webhooks.py reads it the complete way), else at the hourly complete read;
  the "moved unseen" test needs this process's ETags of the PR's reviews and comments, so the
  first REST read of a PR in a process cannot make it;
- the review decision under branch protection: REST has no ``reviewDecision``. It is derived from
  the latest opinion of each reviewer who can write to the repository (``review_decision_of``,
  the same rule GraphQL's answer falls back to when GitHub gives none), and trusted only where the
  PR's ``mergeable_state`` shows protection is not holding the PR back, or where it is what ao
  already knew; while GitHub says ``blocked``, only a request for changes is certain.

Thread identity: GraphQL names a thread by its node id (``PRRT_...``), which REST never shows. A
thread ao first sees through REST is named by its first comment's node id (``PRRC_...``) and
keeps that name: the first GraphQL read that sees it matches it by the first comment's URL
(``adopt_thread_ids``) and keeps GraphQL's id as its ``node_id``, by which later GraphQL reads
know it from their first query; a thread is one thread, forwarded once, whichever read saw it
first.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from integrations.base import TransientIntegrationError
from integrations.github import GitHubError
from integrations.records import CheckInfo, PullRequestInfo, ThreadInfo
from integrations.scm.github_probe import github_time
from sessions.domain.lifecycle import WRITER_ASSOCIATIONS

if TYPE_CHECKING:
    from integrations.github import GitHubClient

log = logging.getLogger(__name__)

PAGE = 100
REVIEWS = 10  # each reviewer's latest opinion, as many as GraphQL's read asks for
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
    known by its first comment's node id, found again here by that comment's URL; GraphQL's id
    is kept as its ``node_id``, so the next GraphQL read knows it without its comments."""
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
        replace(t, external_id=by_url[t.url], node_id=t.external_id)
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
        """PR ``number``'s facts from REST, or None when REST cannot tell them (a fact only GraphQL
        has: module docstring; more than a page of anything; or a REST request failed: GraphQL has
        its own budget and may still answer). ``client`` is the plugin's, taken by the caller
        (reading its token may read ao's secrets)."""
        try:
            return self._rest_facts(client, number, previous)
        except (GitHubError, TransientIntegrationError) as exc:
            log.info(
                "REST read of %s#%s failed, reading it with GraphQL: %s", self.repo_full_name, number, exc
            )
            return None

    def _rest_facts(
        self, client: GitHubClient, number: int, previous: PullRequestInfo
    ) -> PullRequestInfo | None:
        path = f"/repos/{self.repo_full_name}/pulls/{int(number)}"
        pull_read = client.request("GET", path)
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
        latest = latest_opinions(reviews)
        if len(latest) > REVIEWS:
            return None  # GraphQL reads the first REVIEWS of them: read the same way
        requested = len(pull.get("requested_reviewers") or ()) + len(pull.get("requested_teams") or ())
        decision = _decision(
            latest, requested=requested, state=state, merge_state=merge_state, previous=previous
        )
        checks = self._rest_checks(client, sha) if sha else ()
        if decision is None or checks is None:
            return None
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
            checks=checks,
            threads=_threads_of(comments, previous, self.config.max_threads) + _review_texts_of(latest),
            updated_at=github_time(pull.get("updated_at")),
            created_at=github_time(pull.get("created_at")),
            from_fork=(head.get("repo") or {}).get("full_name") != (base.get("repo") or {}).get("full_name"),
        )
        open_threads = any(not t.resolved and not t.review_state for t in info.threads)
        if open_threads and decision == "approved" and previous.review_decision != "approved":
            return None  # a reviewer who approves often resolves their threads too: REST cannot see that
        moved_unseen = (
            not pull_read.not_modified
            and reviews_read.not_modified
            and comments_read.not_modified
            and _same(info, previous)
        )
        if moved_unseen and open_threads:
            return None  # its change is nothing REST shows: perhaps a thread resolved
        return info

    def _rest_checks(self, client: GitHubClient, sha: str) -> tuple[CheckInfo, ...] | None:
        """The head's check runs and commit statuses; None when there are more than a page (then
        which of them GraphQL's first ``max_checks`` are is GitHub's order: read them that way)."""
        base = f"/repos/{self.repo_full_name}/commits/{sha}"
        runs = client.request("GET", base + "/check-runs", params={"per_page": PAGE}).data or {}
        status = client.request("GET", base + "/status", params={"per_page": PAGE}).data or {}
        listed_runs = [c for c in runs.get("check_runs") or () if isinstance(c, dict)]
        listed_statuses = [s for s in status.get("statuses") or () if isinstance(s, dict)]
        if (runs.get("total_count") or 0) > len(listed_runs) or (status.get("total_count") or 0) > len(
            listed_statuses
        ):
            return None
        checks = [_check_run(c) for c in listed_runs] + [_status(s) for s in listed_statuses]
        if len(checks) > self.config.max_checks:
            return None
        return tuple(checks)


def latest_opinions(reviews: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Each reviewer's latest approve or request-changes, oldest first, as GraphQL's
    ``latestOpinionatedReviews``: a dismissed review is that reviewer's latest word, and leaves
    them with none (GitHub keeps it in the list as DISMISSED; their older reviews stay as they were)."""
    latest: dict[str, Mapping[str, Any]] = {}
    for review in reviews:
        if review.get("state") in (*OPINIONS, "DISMISSED"):
            login = login_of(review.get("user") or {})
            latest.pop(login, None)
            latest[login] = review
    return {login: r for login, r in latest.items() if r.get("state") in OPINIONS}


def writers_opinions(
    reviews: Iterable[Mapping[str, Any]], association: str = "author_association"
) -> list[str]:
    """The opinions of reviewers who can write to the repository (GitHub counts only theirs in a
    decision): a drive-by approval does not approve."""
    return [r.get("state") or "" for r in reviews if (r.get(association) or "") in WRITER_ASSOCIATIONS]


def _decision(
    latest: Mapping[str, Mapping[str, Any]],
    *,
    requested: int,
    state: str,
    merge_state: str,
    previous: PullRequestInfo,
) -> str | None:
    """The review decision from REST, or None when branch protection may decide otherwise (GraphQL
    then gives GitHub's ``reviewDecision``). While GitHub says protection holds the PR back
    (``blocked``), only a writer's request for changes is certain (or a review still missing that ao
    knew protection wants); elsewhere the derived decision holds where nothing is held back, or
    where it is what ao knew."""
    derived = review_decision_of(writers_opinions(latest.values()), requested=requested, state=state)
    if derived == "changes_requested":
        return derived
    if merge_state == "blocked":
        if derived in ("none", "review_required") and previous.review_decision == "review_required":
            return "review_required"  # protection still asks for a review nobody has given
        return None
    if merge_state in UNBLOCKED or derived == previous.review_decision:
        return derived
    return None


def _same(info: PullRequestInfo, previous: PullRequestInfo) -> bool:
    """``info`` changes none of ao's facts of ``previous`` but its times and checks (ao keeps a
    review's text it no longer hears about as resolved; REST, like GraphQL, does not report it)."""

    def facts(i: PullRequestInfo) -> PullRequestInfo:
        kept = [t for t in i.threads if not (t.review_state and t.resolved)]
        return replace(
            i,
            updated_at=None,
            created_at=None,
            opened_by="",
            checks=(),
            threads=tuple(sorted(kept, key=lambda t: t.external_id)),
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
                node_id=old.node_id if old else "",
            )
        )
    return tuple(out[:limit])


def review_text(
    *, state: Any, review_id: Any, author: str, association: Any, body: Any, url: Any, is_bot: bool, at: Any
) -> ThreadInfo | None:
    """A review's own words as a thread ao forwards, when the review requests changes and has
    words (``review_state``: it is resolved once no longer the reviewer's latest word)."""
    if state != "CHANGES_REQUESTED" or not str(body or "").strip():
        return None
    return ThreadInfo(
        external_id=str(review_id or ""),
        author=author,
        author_association=str(association or ""),
        body=str(body),
        url=str(url or ""),
        is_bot=is_bot,
        created_at=github_time(at),
        review_state="changes_requested",
    )


def _review_texts_of(latest: Mapping[str, Mapping[str, Any]]) -> tuple[ThreadInfo, ...]:
    """Each reviewer's latest review when it requests changes with words (as GraphQL's read)."""
    texts = (
        review_text(
            state=r.get("state"),
            review_id=r.get("node_id"),
            author=login_of(r.get("user") or {}),
            association=r.get("author_association"),
            body=r.get("body"),
            url=r.get("html_url"),
            is_bot=(r.get("user") or {}).get("type") == "Bot",
            at=r.get("submitted_at"),
        )
        for r in latest.values()
    )
    return tuple(t for t in texts if t is not None)


def run_check(
    *, name: Any, status: Any, conclusion: Any, url: Any, run_id: Any, started_at: Any, completed_at: Any
) -> CheckInfo:
    """A check run as ao keeps it (GraphQL says IN_PROGRESS, REST in_progress; a conclusion only
    once it finished; the conclusions ao does not know as the ones they mean)."""
    state = str(status or "").lower()
    state = state if state in ("queued", "in_progress", "completed") else "queued"
    outcome = str(conclusion or "").lower()
    outcome = {"startup_failure": "failure", "stale": "skipped"}.get(outcome, outcome)
    return CheckInfo(
        name=str(name or ""),
        source="check_run",
        status=state,
        conclusion=outcome if state == "completed" else "",
        url=str(url or ""),
        external_id=str(run_id or ""),
        started_at=github_time(started_at),
        completed_at=github_time(completed_at),
    )


def _check_run(run: Mapping[str, Any]) -> CheckInfo:
    return run_check(
        name=run.get("name"),
        status=run.get("status"),
        conclusion=run.get("conclusion"),
        url=run.get("details_url"),  # GraphQL's detailsUrl: the same for either read
        run_id=run.get("id"),
        started_at=run.get("started_at"),
        completed_at=run.get("completed_at"),
    )


# a commit status's state (GraphQL's StatusContext upper-cased, REST's lower) as (status, conclusion)
STATUS_STATES = {
    "success": ("completed", "success"),
    "failure": ("completed", "failure"),
    "error": ("completed", "error"),
    "pending": ("in_progress", ""),
    "expected": ("queued", ""),
}


def status_check(*, context: Any, state: Any, url: Any, created_at: Any, description: Any = "") -> CheckInfo:
    """A commit status as a check (GraphQL's StatusContext and REST's status say the same). A failed
    one's description ("3 tests failed") is all GitHub tells of it: it is the check's excerpt."""
    status, conclusion = STATUS_STATES.get(str(state or "").lower(), ("queued", ""))
    failed = conclusion in ("failure", "error")
    return CheckInfo(
        log_excerpt=str(description or "")[:1000] if failed else "",
        name=str(context or ""),
        source="status",
        status=status,
        conclusion=conclusion,
        url=str(url or ""),
        external_id=f"status:{context or ''}",
        started_at=github_time(created_at),
    )


def _status(status: Mapping[str, Any]) -> CheckInfo:
    return status_check(
        context=status.get("context"),
        state=status.get("state"),
        url=status.get("target_url"),
        created_at=status.get("created_at"),
        description=status.get("description"),
    )
