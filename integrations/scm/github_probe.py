"""The `github` SCM's change probe: which watched PRs changed since the last look, from
conditional REST reads (a 304 costs nothing against the rate limit), so a sweep reads with
GraphQL only what moved. ``GitHubSCM`` (integrations/scm/github.py) mixes it in; the ETags and
marks it compares with live in the ``state`` the caller keeps between looks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from integrations.github import GitHubNotFound
from integrations.records import CheckInfo, PullRequestChanges, PullRequestMark

if TYPE_CHECKING:
    from integrations.github import GitHubClient

PULLS_PAGE = 100
PULLS_MAX_PAGES = 10


class GitHubChangeProbe:
    """``SCM.pull_request_changes`` for GitHub; the plugin provides ``client()`` and
    ``repo_full_name`` (``GitHubPluginMixin``)."""

    repo_full_name: str

    if TYPE_CHECKING:

        def client(self) -> GitHubClient: ...

    def pull_request_changes(
        self,
        *,
        prs: Mapping[int, PullRequestMark],
        branches: Sequence[str],
        state: Mapping[str, Any],
        bases: bool = False,
    ) -> PullRequestChanges:
        """Which watched PRs changed, from ETag-guarded reads whose ETags ``state`` keeps:

        - the repository's PRs, most recently updated first (one page of 100, more only when
          more than a page changed since the last look): a new commit, a review, a comment, a
          label, a merge or close all move a PR's ``updated_at``; a merge moves its base branch;
        - while a watched PR has CI running (or none reported yet): the repository's Actions
          workflow runs (one page); PRs whose pending checks are not Actions jobs, or whose runs
          are not on that page, their head commit's check runs and statuses;
        - with ``bases``: each open PR's base branch (a push to it can make PRs conflict), and
          the Actions runs for PRs whose CI has finished (a person re-running a job moves
          neither the PR nor its head; it is looked for whenever the runs are read).

        A PR whose ``updated_at`` is the very second of the look is read once more at the next
        look (GitHub's times have whole seconds: a change later in that second moves nothing)."""
        client = self.client()
        old_pulls = dict(state.get("pulls") or {})
        pulls_state, changed, found, moved = self._probe_pulls(client, old_pulls, prs, set(branches))
        new_state: dict[str, Any] = {"pulls": pulls_state}
        changed |= {n for n in old_pulls.get("hot") or () if n in prs}
        checks_changed, new_state["checks"] = self._probe_checks(
            client, dict(state.get("checks") or {}), prs, settled=bases
        )
        changed |= checks_changed
        old_bases = dict(state.get("bases") or {})
        wanted = sorted({m.base_branch for m in prs.values() if m.state == "open" and m.base_branch})
        if bases or any(base not in old_bases for base in wanted):  # a new base: record it now
            new_bases: dict[str, dict[str, Any]] = {}
            for base in wanted:
                before = old_bases.get(base) or {}
                try:
                    resp = client.request(
                        "GET",
                        f"/repos/{self.repo_full_name}/git/ref/heads/{quote(base, safe='/')}",
                        etag=before.get("etag", ""),
                    )
                except GitHubNotFound:
                    new_bases[base] = {}  # no such branch (any more): looked at again when due
                    continue
                if resp.not_modified:
                    new_bases[base] = before
                    continue
                sha = ((resp.data or {}).get("object") or {}).get("sha") or ""
                new_bases[base] = {"etag": resp.headers.get("etag", ""), "sha": sha}
                if before.get("sha") and before["sha"] != sha:
                    moved.add(base)
            old_bases = new_bases
        new_state["bases"] = old_bases
        changed |= {n for n, m in prs.items() if m.state == "open" and m.base_branch in moved}
        return PullRequestChanges(
            numbers=frozenset(changed),
            branches=frozenset(found),
            everything=not old_pulls.get("looked"),
            state=new_state,
        )

    def _probe_pulls(
        self, client, old: dict[str, Any], prs: Mapping[int, PullRequestMark], branches: set[str]
    ) -> tuple[dict[str, Any], set[int], set[str], set[str]]:
        path = f"/repos/{self.repo_full_name}/pulls"
        params = {"state": "all", "sort": "updated", "direction": "desc", "per_page": PULLS_PAGE}
        resp = client.request("GET", path, params=params, etag=old.get("etag", ""))
        if resp.not_modified:
            # the list is what the last look saw: a PR ao stored otherwise (a read that came back
            # older than the list) is read again
            stale = set()
            for number, stored in prs.items():
                _updated, sha, state = (str((old.get("marks") or {}).get(str(number)) or "||")).split("|", 2)
                if sha and (sha != stored.head_sha or state != stored.state):
                    stale.add(number)
            return {**old, "hot": []}, stale, set(), set()
        watermark = old.get("watermark") or ""
        items = [i for i in resp.data or () if isinstance(i, dict)]
        page = 1
        # more than a page changed since the last look: read on to the first PR not newer than it
        while (
            watermark
            and len(items) == page * PULLS_PAGE
            and page < PULLS_MAX_PAGES
            and (items[-1].get("updated_at") or "") >= watermark
        ):
            page += 1
            more = client.request("GET", path, params={**params, "page": page}, conditional=False).data
            items.extend(i for i in more or () if isinstance(i, dict))
            if not more:
                break
        marks: dict[str, str] = dict(old.get("marks") or {})
        now = _http_date(resp.headers.get("date"))
        changed, found, moved, hot = set(), set(), set(), []
        for item in items:
            if not isinstance(item.get("number"), int):
                continue
            number = int(item["number"])
            head, base = item.get("head") or {}, item.get("base") or {}
            updated = item.get("updated_at") or ""
            state = "merged" if item.get("merged_at") else (item.get("state") or "")
            mark = f"{updated}|{head.get('sha') or ''}|{state}"
            known = prs.get(number)
            read = known is not None and (
                known.updated_at is not None
                and known.updated_at == github_time(updated)
                and (known.head_sha, known.state) == (head.get("sha"), state)
            )  # ao read this very version already (e.g. a webhook's refresh did)
            if (marks.get(str(number)) != mark and not read) or (
                known is not None and (known.head_sha != head.get("sha") or known.state != state)
            ):
                if known is not None:
                    changed.add(number)
                if head.get("ref") in branches:
                    found.add(head["ref"])
                if item.get("merged_at") and (item["merged_at"] >= watermark) and base.get("ref"):
                    moved.add(base["ref"])  # a merge moved the base: PRs on it may now conflict
            marks[str(number)] = mark
            updated_at = github_time(updated)
            if now is not None and known is not None and updated_at is not None and updated_at >= now:
                hot.append(number)
        keep = {str(n) for n in prs} | {str(i.get("number")) for i in items[:PULLS_PAGE]}
        newest = max([watermark] + [i.get("updated_at") or "" for i in items])
        return (
            {
                "looked": True,
                "etag": resp.headers.get("etag", ""),
                "watermark": newest,
                "marks": {k: v for k, v in marks.items() if k in keep},
                "hot": hot,
            },
            changed,
            found,
            moved,
        )

    def _probe_checks(
        self, client, old: dict[str, Any], prs: Mapping[int, PullRequestMark], *, settled: bool = False
    ) -> tuple[set[int], dict[str, Any]]:
        """PRs whose head's checks are not what ao stored, for open PRs with CI running or none
        reported yet; and, when the runs are read anyway or ``settled``, open PRs with CI
        finished whose Actions runs came back or have a new attempt (a re-run). What each read
        said is kept and compared with the stored checks again after a 304, so a read that came
        back older than the look is repeated."""
        watched = {
            n: m
            for n, m in prs.items()
            if m.state == "open" and m.head_sha and m.ci_state in ("pending", "none")
        }
        direct = {
            n: m
            for n, m in watched.items()
            if any(c.status != "completed" and not is_actions_job(c) for c in m.checks)
        }
        actions = {n: m for n, m in watched.items() if n not in direct}
        finished: dict[int, PullRequestMark] = {}
        if actions or settled:
            finished = {
                n: m
                for n, m in prs.items()
                if m.state == "open" and m.head_sha and m.ci_state in ("passing", "failing")
            }
        changed: set[int] = set()
        new: dict[str, Any] = {"runs": old["runs"]} if old.get("runs") else {}  # its ETag serves again later
        if not watched and not finished:
            return changed, new
        if actions or finished:
            new["runs"], changed, unlisted = self._probe_runs(
                client, old.get("runs") or {}, actions, finished
            )
            direct.update(unlisted)
        commits_changed, new["shas"] = self._probe_commits(client, old.get("shas") or {}, direct)
        return changed | commits_changed, new

    def _probe_runs(
        self,
        client,
        before: dict[str, Any],
        actions: Mapping[int, PullRequestMark],
        finished: Mapping[int, PullRequestMark],
    ) -> tuple[dict[str, Any], set[int], dict[int, PullRequestMark]]:
        """From the repository's Actions workflow runs (one page): what the read said (to keep),
        the PRs with a run ao has not seen or one that finished or restarted, and the PRs with
        running jobs whose runs are not on the page (their commit is asked instead). For
        ``finished`` PRs (CI done), a run on their head that started again or moved on while
        running since the last look, or has a new attempt (a re-run that may have finished
        already). A run that finished is not news for them: ao stored their CI as finished after
        it did. Only the page's runs are compared: a re-run of a run older than the 100 newest
        is seen at the complete read."""
        resp = client.request(
            "GET",
            f"/repos/{self.repo_full_name}/actions/runs",
            params={"per_page": 100},
            etag=before.get("etag", ""),
        )
        if resp.not_modified:
            runs = before
        else:
            listed = (resp.data or {}).get("workflow_runs") or ()
            runs = {
                "etag": resp.headers.get("etag", ""),
                "runs": [
                    [r.get("id"), r.get("head_sha") or "", r.get("status") or "", r.get("run_attempt") or 1]
                    for r in listed
                ],
            }
        by_sha: dict[str, list[tuple[int, str]]] = {}
        now: dict[int, tuple[str, int]] = {}
        for run_id, sha, status, *attempt in runs.get("runs") or ():
            by_sha.setdefault(sha, []).append((run_id, status))
            now[run_id] = (status, attempt[0] if attempt else 1)
        looked = before.get("runs") is not None
        then = {r[0]: (r[2], r[3] if len(r) > 3 else 1) for r in before.get("runs") or ()}
        changed: set[int] = set()
        unlisted: dict[int, PullRequestMark] = {}
        for number, mark in actions.items():
            known: dict[int, list[CheckInfo]] = {}
            for check in mark.checks:
                run = _run_id(check)
                if run is not None:
                    known.setdefault(run, []).append(check)
            for run_id, status in by_sha.get(mark.head_sha, ()):
                checks = known.get(run_id)
                if checks is None or (status == "completed") != all(c.status == "completed" for c in checks):
                    changed.add(number)  # a run ao has not seen, or one that finished or restarted
            seen = {run_id for run_id, _status in by_sha.get(mark.head_sha, ())}
            if any(c.status != "completed" and _run_id(c) not in seen for c in mark.checks):
                unlisted[number] = mark  # its running jobs' runs are not on the page: ask the commit
        for number, mark in finished.items():
            for run_id, status in by_sha.get(mark.head_sha, ()):
                was_status, was_attempt = then.get(run_id, ("completed" if not looked else "", 0))
                attempt = now[run_id][1]
                if (status != "completed" and was_status != status) or (
                    was_attempt and attempt != was_attempt
                ):
                    # a re-run (or a new run) started or moved on (queued, then in progress: a read
                    # made before its new jobs existed is made again), or ran since the last look
                    changed.add(number)
        return runs, changed, unlisted

    def _probe_commits(
        self, client, old_shas: dict[str, Any], direct: Mapping[int, PullRequestMark]
    ) -> tuple[set[int], dict[str, Any]]:
        """From each head commit's check runs (and statuses, where the PR has some): the PRs
        whose checks started or finished since ao read them, and what each read said (to keep)."""
        changed: set[int] = set()
        new_shas: dict[str, Any] = {}
        for number, mark in direct.items():
            before = old_shas.get(mark.head_sha) or {}
            after: dict[str, Any] = {}
            kinds = ["check-runs"] + (["status"] if any(c.source == "status" for c in mark.checks) else [])
            for kind in kinds:
                was = before.get(kind) or {}
                resp = client.request(
                    "GET",
                    f"/repos/{self.repo_full_name}/commits/{mark.head_sha}/{kind}",
                    etag=was.get("etag", ""),
                )
                if resp.not_modified:
                    after[kind] = was
                    continue
                body = resp.data or {}
                if kind == "check-runs":
                    seen = [[str(c.get("id")), c.get("status") or ""] for c in body.get("check_runs") or ()]
                else:
                    seen = [
                        ["status:" + (c.get("context") or ""), _status_of(c.get("state"))]
                        for c in body.get("statuses") or ()
                    ]
                after[kind] = {"etag": resp.headers.get("etag", ""), "seen": seen}
            stored = {c.external_id: c.status == "completed" for c in mark.checks}
            for kind in kinds:
                for external_id, status in (after.get(kind) or {}).get("seen") or ():
                    if stored.get(external_id) is None or stored[external_id] != (status == "completed"):
                        changed.add(number)
            new_shas[mark.head_sha] = after
        return changed, new_shas


def _http_date(value: str | None) -> datetime | None:
    """An HTTP Date header's time, to the second (None when missing or malformed)."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


_RUN_ID = re.compile(r"/actions/runs/(\d+)")


def _run_id(check: CheckInfo) -> int | None:
    """The Actions workflow run a check run (a job) belongs to, from its page's URL."""
    match = _RUN_ID.search(check.url) if is_actions_job(check) else None
    return int(match.group(1)) if match else None


def _status_of(state: str | None) -> str:
    """A commit status's state as a check status: pending is running, the rest are finished."""
    return "in_progress" if (state or "") == "pending" else "completed"


def is_actions_job(check: CheckInfo) -> bool:
    """A GitHub Actions job: its check run id is the job id, and its page is under /actions/runs/."""
    return check.source == "check_run" and check.external_id.isdigit() and "/actions/runs/" in check.url


def github_time(value: Any) -> datetime | None:
    """A GitHub ISO-8601 time ("2025-01-01T10:00:00Z") as an aware datetime; None when missing or malformed."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
