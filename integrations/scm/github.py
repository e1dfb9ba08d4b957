"""The `github` SCM: pull requests, checks and review threads from GitHub (or GitHub Enterprise).

A few changed PRs ao already knows are read with REST (``github_rest.py``: conditional GETs, no
GraphQL point); the rest, first reads and the periodic complete read use GraphQL. GraphQL reads
are batched and two-phase, because GitHub charges GraphQL by connections requested, and nested
connections multiply (review threads x their first comment is most of a full read):

1. state: one query per ``batch_size`` PRs/branches (aliases per item, with ``rateLimit``) for
   the PR's fields, the head commit's check contexts and the review threads' ids, resolution and
   position, without their comments: three connections per PR, 2 points per 50 PRs.
2. thread bodies: a second batched query with the first comment of the threads ``previous``
   does not know (or all, without ``previous``), for the PRs that have some; threads are listed
   oldest first, so it asks for each PR's newest ``reviewThreads(last: k)``, as many as the new
   ones span (its cost is the threads asked for). Known threads keep their author, body and url
   from ``previous`` and take resolution and position from phase 1.

When one query of everything costs no more points than the state query (one or two PRs, e.g. a
webhook refresh), it is sent instead, which saves the second request.
Failed GitHub Actions jobs get a REST log fetch only when the check is new or changed since
``previous``; otherwise the previous excerpt is reused.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

from pydantic import Field, field_validator

from integrations.base import SCM, NotHostSetting, PermanentIntegrationError, TransientIntegrationError
from integrations.credentials import SecretName, credential, secret_name
from integrations.github import GitHubError, GitHubNotFound, GitHubPluginMixin, GitHubSettings
from integrations.records import (
    CheckInfo,
    PullRequestInfo,
    RateStatus,
    ThreadInfo,
)
from integrations.registry import scms
from integrations.scm.github_probe import GitHubChangeProbe, github_time, is_actions_job
from integrations.scm.github_rest import (
    REVIEWS,
    GitHubRestReader,
    adopt_thread_ids,
    review_decision_of,
    review_text,
    run_check,
    status_check,
    writers_opinions,
)

log = logging.getLogger(__name__)

CHECK_FIELDS = """
        __typename
        ... on CheckRun { databaseId name status conclusion detailsUrl startedAt completedAt }
        ... on StatusContext { context state targetUrl createdAt description }"""

PR_STATE = """
  number url title headRefName baseRefName state isDraft merged headRefOid
  mergeable mergeStateStatus reviewDecision createdAt updatedAt isCrossRepository
  reviewRequests(first: 1) { totalCount }
  latestOpinionatedReviews(first: %(reviews)d) { nodes {
    id state body url submittedAt authorAssociation author { login __typename } } }
  commits(last: 1) { nodes { commit { oid statusCheckRollup {
    contexts(first: %(contexts)d) { pageInfo { hasNextPage } nodes { %(checks)s } } } } } }"""
THREAD_IDS = """
  reviewThreads(first: %(threads)d) { pageInfo { hasNextPage } nodes { id isResolved path line } }"""
THREAD_BODIES = """
  reviewThreads(%(window)s) { pageInfo { hasNextPage } nodes {
    id isResolved path line
    comments(first: 1) { nodes { id path line body url createdAt authorAssociation author { login __typename } } } } }"""
# A query carries exactly one of these (GitHub rejects a document with an unused fragment).
STATE, FULL, THREADS = "state", "full", "threads"
FRAGMENTS = {
    STATE: PR_STATE + THREAD_IDS,  # phase 1: no comments, so nothing multiplies per thread
    FULL: PR_STATE + THREAD_BODIES,  # everything in one query, when that costs no more points
    THREADS: "\n  number" + THREAD_BODIES,  # phase 2: the newest threads' bodies, of the PRs that need them
}

# commits(last: 1), its check contexts, reviewRequests, latestOpinionatedReviews, reviewThreads
# (per PR, phase 1)
STATE_CONNECTIONS = 5
# PRs asked per branch when a fork's PR of the same branch name stood first (find_pull_requests)
FORK_LOOKAHEAD = 10

FAILED_CONCLUSIONS = {"failure", "timed_out"}
ERROR_MARK = "##[error]"
_TIMESTAMP = re.compile(r"^\ufeff?\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z ?")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def log_excerpt(text: str, *, max_lines: int = 60, max_bytes: int = 8000) -> str:
    """The failing step's tail: up to ``max_lines`` lines ending at the first ``##[error]`` (or the end).

    Timestamps and ANSI colours are stripped; the window starts no earlier than the failing
    step's ``##[group]Run`` line; the result is at most ``max_bytes`` UTF-8 bytes (cut at the front).
    """
    lines = [_ANSI.sub("", _TIMESTAMP.sub("", line)) for line in text.splitlines()]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        return ""
    error_at = next((i for i, line in enumerate(lines) if ERROR_MARK in line), None)
    if error_at is None:
        end = len(lines)
        start = max(0, end - max_lines)
    else:
        end = error_at + 1
        while end < len(lines) and ERROR_MARK in lines[end]:
            end += 1
        step_start = 0
        for i in range(error_at, -1, -1):
            if lines[i].startswith("##[group]Run "):
                step_start = i
                break
        start = max(step_start, end - max_lines)
    window = lines[start:end]
    out = "\n".join(window)
    while len(out.encode()) > max_bytes and len(window) > 1:
        window = window[1:]
        out = "\n".join(window)
    if len(out.encode()) > max_bytes:
        out = out.encode()[-max_bytes:].decode("utf-8", errors="ignore")
    return out


@scms.register("github")
class GitHubSCM(GitHubRestReader, GitHubChangeProbe, GitHubPluginMixin, SCM):
    class Config(GitHubSettings):
        merge_method: Literal["squash", "merge", "rebase"] = Field(
            "squash", description="how ao merges a PR (auto-merge, the dashboard, ao pr merge)"
        )
        log_excerpt_lines: int = Field(
            60, ge=1, le=2000, description="lines of a failed job's log sent to the agent"
        )
        log_excerpt_bytes: int = Field(
            8000, ge=200, le=200_000, description="bytes of a failed job's log sent to the agent, at most"
        )
        log_download_bytes: int = Field(
            1_000_000, ge=10_000, le=50_000_000, description="tail of the job log read"
        )
        batch_size: int = Field(50, ge=1, le=100, description="PRs or branches per GraphQL query")
        max_checks: int = NotHostSetting(default=100, ge=1, le=100, description="check contexts read per PR")
        max_threads: int = Field(50, ge=1, le=100, description="review threads read per PR")
        rest_reads: int = Field(
            10,
            ge=0,
            le=100,
            description="changed PRs ao knows are read with REST (five conditional requests each, no "
            "GraphQL points) when at most this many change at once and half the hourly requests are "
            "left (or more of them than of GraphQL's points); more, a PR's first read and the "
            "periodic complete read use GraphQL (0: always GraphQL)",
        )
        webhook_secret: str | None = SecretName(
            "name of the secret stored in ao that GitHub signs this project's webhooks with "
            "(default: AO_GITHUB_WEBHOOK_SECRET)"
        )

        @field_validator("webhook_secret")
        @classmethod
        def _webhook_secret_name(cls, value: str | None) -> str | None:
            return secret_name(value)

    config: Config

    def webhook_signing_secret(self) -> str | None:
        """The value of the project's own webhook secret, read now; None when it names none.

        Raises CredentialUnavailable when the named secret is missing or unreadable.
        """
        if not self.config.webhook_secret:
            return None
        return credential(
            env=None,
            secret=self.config.webhook_secret,
            what="webhook secret",
            who="github",
            hint="the Secret of the repository's webhook on GitHub",
        )

    # --- queries -------------------------------------------------------------------------------
    def _fragment(self, kind: str, window: str = "") -> str:
        body = FRAGMENTS[kind] % {
            "contexts": self.config.max_checks,
            "threads": self.config.max_threads,
            "window": window or f"first: {self.config.max_threads}",
            "reviews": REVIEWS,
            "checks": CHECK_FIELDS,
        }
        return "fragment AoPull on PullRequest {" + body + "\n}\n"

    def _run(
        self, kind: str, aliases: list[str], var_decls: list[str], variables: dict[str, Any], window: str = ""
    ) -> dict[str, Any]:
        owner, name = self.repo_full_name.split("/", 1)
        query = (
            "query AoPulls($owner: String!, $name: String!"
            + "".join(", " + d for d in var_decls)
            + ") {\n  rateLimit { cost remaining resetAt limit }\n  repository(owner: $owner, name: $name) {\n    "
            + "\n    ".join(aliases)
            + "\n  }\n}\n"
            + self._fragment(kind, window)
        )
        result = self.client().graphql(query, {"owner": owner, "name": name, **variables})
        repository = result.data.get("repository")
        if repository is None:
            raise PermanentIntegrationError(
                f"GitHub repository {self.repo_full_name} not found, or the token cannot see it"
            )
        for error in result.errors:
            if error.get("type") != "NOT_FOUND":
                log.warning(
                    "GitHub GraphQL partial error for %s: %s",
                    self.repo_full_name,
                    str(error.get("message"))[:200],
                )
        return repository

    def _first_phase(self, prs: int, outer: int = 0) -> str:
        """FULL if one query of everything costs no more points than the state query for ``prs``
        PR selections (each under ``outer`` connections of first: 1), else STATE."""
        threads = self.config.max_threads
        state = prs * (outer + STATE_CONNECTIONS)
        full = prs * (outer + STATE_CONNECTIONS + threads)
        return FULL if graphql_cost(full) <= graphql_cost(state) else STATE

    def find_pull_requests(
        self, *, branches: Sequence[str], since: Mapping[str, datetime] | None = None
    ) -> dict[str, PullRequestInfo]:
        """Per branch, the newest open PR opened at or after ``since[branch]``, else the newest PR
        so opened. Two aliases per branch (newest open, newest of any state) answer it: when the
        newest open PR is older than ``since`` no open PR is recent enough, and when the newest
        PR is older, none is. A PR from a fork whose branch has the same name is not the
        session's: where one stood first, the branch is asked again for its newest
        ``FORK_LOOKAHEAD`` PRs (anyone may open such a PR, and ao's branch names are easy to guess)."""
        since = since or {}
        wanted = list(dict.fromkeys(b for b in branches if b))
        nodes: dict[str, tuple[Mapping[str, Any], str]] = {}
        shadowed = self._find_by_branch(wanted, since, nodes, first=1)
        if shadowed:
            self._find_by_branch(shadowed, since, nodes, first=FORK_LOOKAHEAD)
        return self._complete(nodes, {})

    def _find_by_branch(
        self,
        branches: Sequence[str],
        since: Mapping[str, datetime],
        nodes: dict[str, tuple[Mapping[str, Any], str]],
        *,
        first: int,
    ) -> list[str]:
        """``find_pull_requests``'s query, asking each branch's newest ``first`` PRs; fills ``nodes``
        and returns the branches without a PR of ours where a fork's PR was listed with more PRs
        behind it."""
        shadowed = []
        for chunk in _chunks(branches, self.config.batch_size):
            kind = self._first_phase(2 * len(chunk) * first, outer=1)
            aliases, decls, variables = [], [], {}
            for i, branch in enumerate(chunk):
                decls.append(f"$b{i}: String!")
                variables[f"b{i}"] = branch
                # The open PR if any, else the most recent one: two cheap aliases per branch.
                aliases.append(
                    f"o{i}: pullRequests(headRefName: $b{i}, states: [OPEN], first: {first}, "
                    f"orderBy: {{field: CREATED_AT, direction: DESC}}) {{ totalCount nodes {{ ...AoPull }} }}"
                )
                aliases.append(
                    f"r{i}: pullRequests(headRefName: $b{i}, first: {first}, "
                    f"orderBy: {{field: CREATED_AT, direction: DESC}}) {{ totalCount nodes {{ ...AoPull }} }}"
                )
            repository = self._run(kind, aliases, decls, variables)
            for i, branch in enumerate(chunk):
                opened = repository.get(f"o{i}") or {}
                every = repository.get(f"r{i}") or {}
                candidates = [
                    node
                    for alias in (opened, every)
                    for node in alias.get("nodes") or ()
                    if node
                    and not node.get("isCrossRepository")  # a fork's branch of the same name
                    and _opened_since(node, since.get(branch))
                ]
                open_ones = [n for n in candidates if n in (opened.get("nodes") or ())]
                if candidates:
                    nodes[branch] = (candidates[0], kind)  # for now, if a fork hides an open one of ours
                if not open_ones and (_hides(opened) or (not candidates and _hides(every))):
                    shadowed.append(branch)  # a fork's PR listed, more PRs behind it
        return shadowed

    def fetch_pull_requests(
        self,
        *,
        numbers: Sequence[int],
        previous: Mapping[int, PullRequestInfo] | None = None,
        complete: bool = False,
    ) -> dict[int, PullRequestInfo]:
        """The PRs' current facts. Up to ``rest_reads`` PRs ``previous`` knows are read with REST
        (integrations/scm/github_rest.py), unless ``complete``; the rest, and those REST cannot
        tell, with GraphQL. There, review threads are read in full only for PRs with a thread
        ``previous`` does not know (or no ``previous``); the others reuse ``previous``'s threads."""
        wanted = list(dict.fromkeys(int(n) for n in numbers))
        previous = previous or {}
        known = [n for n in wanted if n in previous and previous[n].head_sha]
        out: dict[int, PullRequestInfo] = {}
        client = self.client() if known else None
        if (
            client is not None
            and not complete
            and len(known) <= self.config.rest_reads
            and _rest_has_room(client)
        ):
            # the PRs side by side, as many at once as the client sends (its max_concurrency)
            with ThreadPoolExecutor(max_workers=min(len(known), self.config.max_concurrency)) as pool:
                reads = list(pool.map(lambda n: (n, self._rest_read(client, n, previous[n])), known))
            out = {n: self._with_logs(info, previous[n]) for n, info in reads if info is not None}
        nodes: dict[int, tuple[Mapping[str, Any], str]] = {}
        for chunk in _chunks([n for n in wanted if n not in out], self.config.batch_size):
            kind = self._first_phase(len(chunk))
            aliases, decls, variables = [], [], {}
            for i, number in enumerate(chunk):
                decls.append(f"$n{i}: Int!")
                variables[f"n{i}"] = number
                aliases.append(f"pr{i}: pullRequest(number: $n{i}) {{ ...AoPull }}")
            repository = self._run(kind, aliases, decls, variables)
            for i, number in enumerate(chunk):
                node = repository.get(f"pr{i}")
                if node:
                    nodes[number] = (node, kind)
        return {**out, **self._complete(nodes, previous)}

    def _complete(
        self, nodes: Mapping[Any, tuple[Mapping[str, Any], str]], previous: Mapping[Any, PullRequestInfo]
    ) -> dict[Any, PullRequestInfo]:
        """Phase 2 (the bodies of the threads new to ``previous``: the newest of their PR's), then
        logs."""
        threads: dict[Any, tuple[ThreadInfo, ...]] = {}
        unknown: dict[int, list[Any]] = {}  # PR number -> keys whose threads need bodies
        newest: dict[int, int] = {}  # PR number -> how many of its newest threads to read
        for key, (node, kind) in nodes.items():
            if kind == FULL:
                threads[key] = _threads(node)
                continue
            threads[key], new = _merge_threads(node, previous.get(key))
            if new:
                number = int(node["number"])
                unknown.setdefault(number, []).append(key)
                more = ((node.get("reviewThreads") or {}).get("pageInfo") or {}).get("hasNextPage")
                if more or newest.get(number) == -1:
                    newest[number] = -1  # phase 1's threads are not the newest: read the same first ones
                else:
                    newest[number] = max(newest.get(number, 0), len(threads[key]) - new[0])
        if unknown:
            read = self._thread_bodies(newest)
            for number, keys in unknown.items():
                bodies = {t.external_id: t for t in read.get(number, ())}  # none: PR gone meanwhile
                for key in keys:
                    threads[key] = tuple(bodies.get(t.external_id, t) for t in threads[key])
        return {
            key: self._with_logs(
                self._pull_info(node, adopt_thread_ids(threads[key], previous.get(key))), previous.get(key)
            )
            for key, (node, _kind) in nodes.items()
        }

    def _thread_bodies(self, newest: Mapping[int, int]) -> dict[int, tuple[ThreadInfo, ...]]:
        """The newest ``newest[number]`` threads of each PR, with their first comments: threads are
        listed oldest first and new ones come last, so the query asks for no more than those (its
        cost is the threads asked for, times the PRs). -1: the first ``max_threads``, as phase 1
        read them (a PR with more threads than that)."""
        out: dict[int, tuple[ThreadInfo, ...]] = {}
        for chunk in _chunks(sorted(newest), self.config.batch_size):
            wanted = [newest[n] for n in chunk]
            window = (
                f"first: {self.config.max_threads}"
                if -1 in wanted
                else f"last: {max(1, min(self.config.max_threads, max(wanted)))}"
            )
            aliases, decls, variables = [], [], {}
            for i, number in enumerate(chunk):
                decls.append(f"$n{i}: Int!")
                variables[f"n{i}"] = number
                aliases.append(f"pr{i}: pullRequest(number: $n{i}) {{ ...AoPull }}")
            repository = self._run(THREADS, aliases, decls, variables, window)
            for i, number in enumerate(chunk):
                node = repository.get(f"pr{i}")
                if node:
                    out[number] = _threads(node)
        return out

    # --- mapping -------------------------------------------------------------------------------
    def _pull_info(
        self, node: Mapping[str, Any], threads: tuple[ThreadInfo, ...] | None = None
    ) -> PullRequestInfo:
        mergeable = node.get("mergeable")
        merge_state = node.get("mergeStateStatus") or ""
        state = {"OPEN": "open", "MERGED": "merged", "CLOSED": "closed"}.get(node.get("state") or "", "open")
        if node.get("merged"):
            state = "merged"
        commits = ((node.get("commits") or {}).get("nodes") or [None])[-1] or {}
        rollup = ((commits.get("commit") or {}).get("statusCheckRollup") or {}).get("contexts") or {}
        checks = tuple(
            c for c in (self._check(ctx) for ctx in rollup.get("nodes") or () if ctx) if c is not None
        )
        if threads is None:
            threads = _threads(node)
        threads = tuple(threads) + _review_texts(node)
        return PullRequestInfo(
            number=int(node["number"]),
            branch=node.get("headRefName") or "",
            url=node.get("url") or "",
            title=node.get("title") or "",
            base_branch=node.get("baseRefName") or "",
            state=state,
            draft=bool(node.get("isDraft")),
            head_sha=node.get("headRefOid") or "",
            mergeable={"MERGEABLE": True, "CONFLICTING": False}.get(mergeable or ""),
            conflicts=mergeable == "CONFLICTING" or merge_state == "DIRTY",
            behind=merge_state == "BEHIND",
            review_decision=_review_decision(node, state),
            checks=checks,
            threads=threads,
            updated_at=github_time(node.get("updatedAt")),
            created_at=github_time(node.get("createdAt")),
            from_fork=bool(node.get("isCrossRepository")),
        )

    @staticmethod
    def _check(ctx: Mapping[str, Any]) -> CheckInfo | None:
        if ctx.get("__typename") == "CheckRun":
            return run_check(
                name=ctx.get("name"),
                status=ctx.get("status"),
                conclusion=ctx.get("conclusion"),
                url=ctx.get("detailsUrl"),
                run_id=ctx.get("databaseId"),
                started_at=ctx.get("startedAt"),
                completed_at=ctx.get("completedAt"),
            )
        if ctx.get("__typename") == "StatusContext":
            return status_check(
                context=ctx.get("context"),
                state=ctx.get("state"),
                url=ctx.get("targetUrl"),
                created_at=ctx.get("createdAt"),
                description=ctx.get("description"),
            )
        return None

    # --- failed job logs, only on change -------------------------------------------------------
    def _with_logs(self, info: PullRequestInfo, previous: PullRequestInfo | None) -> PullRequestInfo:
        before = {c.external_id: c for c in (previous.checks if previous else ()) if c.external_id}
        changed = False
        checks = []
        for check in info.checks:
            if check.conclusion in FAILED_CONCLUSIONS and is_actions_job(check):
                old = before.get(check.external_id)
                if old is not None and old.conclusion == check.conclusion and old.log_excerpt:
                    excerpt = old.log_excerpt
                else:
                    excerpt = self._job_excerpt(check.external_id)
                if excerpt:
                    check = replace(check, log_excerpt=excerpt)
                    changed = True
            checks.append(check)
        if not changed:
            return info
        return replace(info, checks=tuple(checks))

    def _job_excerpt(self, job_id: str) -> str:
        if not job_id.isdigit():
            return ""
        try:
            text = self.client().download_log(
                f"/repos/{self.repo_full_name}/actions/jobs/{job_id}/logs",
                max_bytes=self.config.log_download_bytes,
            )
        except GitHubNotFound:
            return "(GitHub no longer has this job's log)"
        except (TransientIntegrationError, GitHubError) as exc:
            log.info("could not read GitHub Actions job %s log for %s: %s", job_id, self.repo_full_name, exc)
            return ""
        return log_excerpt(
            text, max_lines=self.config.log_excerpt_lines, max_bytes=self.config.log_excerpt_bytes
        )

    # --- writes --------------------------------------------------------------------------------
    def merge(self, *, number: int, method: str = "", expected_head_sha: str = "") -> None:
        """Merge with ``method`` (default: the configured merge_method), only if the head is still
        ``expected_head_sha`` when given. Refusals (not mergeable, head moved) are permanent."""
        method = method or self.config.merge_method
        if method not in ("squash", "merge", "rebase"):
            raise PermanentIntegrationError(f"unknown merge method {method!r}; use squash, merge or rebase")
        body: dict[str, Any] = {"merge_method": method}
        if expected_head_sha:
            body["sha"] = expected_head_sha
        try:
            self.client().request(
                "PUT",
                f"/repos/{self.repo_full_name}/pulls/{int(number)}/merge",
                json_body=body,
                essential=True,
            )
        except GitHubNotFound:
            raise PermanentIntegrationError(f"GitHub has no PR #{number} in {self.repo_full_name}") from None
        except GitHubError as exc:
            if exc.status == 409 and expected_head_sha:  # GitHub's answer when ``sha`` is not the head
                raise PermanentIntegrationError(
                    f"PR #{number}: the head moved since {expected_head_sha[:7]} was checked "
                    f"(GitHub: {exc.gh_message or exc.status})"
                ) from None
            if exc.status in (405, 409, 422):
                raise PermanentIntegrationError(
                    f"GitHub refused to merge PR #{number}: {exc.gh_message or exc.status}"
                ) from None
            raise

    def comment(self, *, number: int, body: str) -> None:
        try:
            self.client().request(
                "POST",
                f"/repos/{self.repo_full_name}/issues/{int(number)}/comments",
                json_body={"body": body},
            )
        except GitHubNotFound:
            raise PermanentIntegrationError(f"GitHub has no PR #{number} in {self.repo_full_name}") from None

    def branch_on_remote(self, branch: str) -> bool:
        """GET /repos/{repo}/git/ref/heads/{branch}: 404 means no such branch."""
        try:
            self.client().get(f"/repos/{self.repo_full_name}/git/ref/heads/{quote(branch, safe='/')}")
        except GitHubNotFound:
            return False
        return True

    def rate_status(self) -> RateStatus | None:
        """The shared client's view of the credential's budget; None when unknown or unconfigured."""
        try:
            return self.client().rate_status()
        except PermanentIntegrationError:
            return None


def _rest_has_room(client) -> bool:
    """Whether changed PRs may be read with REST (a few requests each) rather than GraphQL (a
    point): yes, unless less than half of the hourly requests are left and GraphQL's points have
    a larger share left, so a token whose requests something else spends (a tracker, log
    downloads, another tool) leans on GraphQL before either runs out."""
    core, graphql = client.rate_status("core"), client.rate_status("graphql")
    if core is None or not core.limit:
        return True
    share = core.remaining / core.limit
    if share >= 0.5:
        return True
    return graphql is not None and bool(graphql.limit) and share >= graphql.remaining / graphql.limit


def _hides(connection: Mapping[str, Any]) -> bool:
    """A connection of ``_find_by_branch`` lists a fork's PR and has more PRs than it lists."""
    listed = [n for n in connection.get("nodes") or () if n]
    return (connection.get("totalCount") or 0) > len(listed) and any(
        n.get("isCrossRepository") for n in listed
    )


def _opened_since(node: Mapping[str, Any], since: datetime | None) -> bool:
    """The PR was opened at or after ``since`` (always, without ``since``; never when GitHub's
    answer has no creation time to compare)."""
    if since is None:
        return True
    created = github_time(node.get("createdAt"))
    return created is not None and created >= since


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _thread(node: Mapping[str, Any]) -> ThreadInfo:
    first = ((node.get("comments") or {}).get("nodes") or [None])[0] or {}
    author = first.get("author") or {}
    line = node.get("line") if node.get("line") is not None else first.get("line")
    return ThreadInfo(
        external_id=node.get("id") or first.get("id") or "",
        node_id=node.get("id") or "",
        path=node.get("path") or first.get("path") or "",
        line=int(line) if isinstance(line, int) else None,
        author=author.get("login") or "",
        author_association=first.get("authorAssociation") or "",
        body=first.get("body") or "",
        url=first.get("url") or "",
        resolved=bool(node.get("isResolved")),
        is_bot=author.get("__typename") == "Bot",
        created_at=github_time(first.get("createdAt")),
    )


def _review_texts(node: Mapping[str, Any]) -> tuple[ThreadInfo, ...]:
    """The text of each reviewer's latest review when it requests changes: forwarded like a thread
    (the agent has no token to read it on GitHub). Once the reviewer approves, it is no longer
    reported, and ao counts it resolved."""
    texts = (
        review_text(
            state=r.get("state"),
            review_id=r.get("id"),
            author=(r.get("author") or {}).get("login") or "",
            association=r.get("authorAssociation"),
            body=r.get("body"),
            url=r.get("url"),
            is_bot=(r.get("author") or {}).get("__typename") == "Bot",
            at=r.get("submittedAt"),
        )
        for r in (node.get("latestOpinionatedReviews") or {}).get("nodes") or ()
        if r
    )
    return tuple(t for t in texts if t is not None)


def _thread_nodes(node: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [t for t in ((node.get("reviewThreads") or {}).get("nodes") or ()) if t]


def _threads(node: Mapping[str, Any]) -> tuple[ThreadInfo, ...]:
    """Threads from a read with their first comments (phase 2, or a full read)."""
    return tuple(_thread(t) for t in _thread_nodes(node))


def _merge_threads(
    node: Mapping[str, Any], previous: PullRequestInfo | None
) -> tuple[tuple[ThreadInfo, ...], list[int]]:
    """Threads from phase 1 (ids, resolution, position) with ``previous``'s name, author, body and
    url; and the positions of those new to ``previous`` (they have no body yet: phase 2 reads
    them). A thread ao named otherwise (first seen through REST) is found by its ``node_id``."""
    before: dict[str, ThreadInfo] = {}
    for known in previous.threads if previous is not None else ():
        before[known.external_id] = known
        if known.node_id:
            before[known.node_id] = known
    out: list[ThreadInfo] = []
    new: list[int] = []
    for node_thread in _thread_nodes(node):
        thread_id = node_thread.get("id") or ""
        old = before.get(thread_id)
        if old is None:
            new.append(len(out))
            old = ThreadInfo(external_id=thread_id, node_id=thread_id)
        line = node_thread.get("line")
        out.append(
            replace(
                old,
                path=node_thread.get("path") or old.path,
                line=line if isinstance(line, int) else None,
                resolved=bool(node_thread.get("isResolved")),
                node_id=thread_id,
            )
        )
    return tuple(out), new


def _review_decision(node: Mapping[str, Any], state: str) -> str:
    """GitHub's reviewDecision, lowercased. GitHub gives one only under branch protection that
    requires reviews; without one, the latest opinions of reviewers who can write to the
    repository decide, as REST's read does (``review_decision_of``: an open PR on which people
    were asked for a review waits for one)."""
    if node.get("reviewDecision"):
        return str(node["reviewDecision"]).lower()
    latest = [r for r in (node.get("latestOpinionatedReviews") or {}).get("nodes") or () if r]
    opinions = writers_opinions(latest, association="authorAssociation")
    requested = (node.get("reviewRequests") or {}).get("totalCount") or 0
    return review_decision_of(opinions, requested=requested, state=state)


def graphql_cost(requests: int) -> int:
    """GitHub's GraphQL rate-limit cost of a query needing ``requests`` connection requests."""
    return max(1, round(requests / 100))
