"""The `local` SCM: pull requests without a hosted service.

A "PR" is a branch pushed to a bare repository ao manages (the project's ``origin`` when that
is a local path, else ``<AO_HOME>/remotes/<project>.git``) and recorded in ao's database as a
``LocalPullRequest``. Checks are runs of the project's check command (``integrations.localci``),
reviews are ``LocalReview`` rows, and conflicts, "behind" and merges are computed with git in
the bare repository itself (``merge-tree --write-tree``, ``commit-tree``, ``update-ref`` with an
old-value guard): the project's own checkout is never touched, except that ao's remote is added
to its remotes (``workspace_remote``: as ``origin`` when it has none, else as ``ao``) so every
worktree can fetch, rebase onto and push to it as the instructions ao gives agents say. The bare
remote, pushing to it and the git reads PRs are computed with are in ``local_remote``.

Branch names are data. They reach git only as ``refs/heads/<name>`` argv elements, and ao's
PRs take only names made of letters, digits and ``. _ / + -`` (no leading ``-``).
"""

from __future__ import annotations

import logging
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Literal

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from pydantic import Field, field_validator

from integrations import localci
from integrations.base import (
    SCM,
    HostSetting,
    NotHostSetting,
    PermanentIntegrationError,
    PluginConfig,
    TransientIntegrationError,
)
from integrations.models import LocalCIRun, LocalPullRequest, LocalReview
from integrations.records import CheckInfo, PullRequestInfo, ThreadInfo
from integrations.registry import scms
from integrations.scm.local_remote import PR_BRANCH_RE, LocalRemote, validate_pr_branch

log = logging.getLogger(__name__)

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
MERGE_METHODS = ("squash", "ff", "merge")


class PullRequestNotFound(PermanentIntegrationError):
    pass


class MergeRefused(PermanentIntegrationError):
    """ao will not merge this PR now (not open, head moved, conflicts, not a fast-forward)."""


class MergeRequirementsUnmet(MergeRefused):
    """The PR is mergeable but not ready: the review or the check the project requires (``unmet``)."""

    def __init__(self, number: int, unmet: list[str]) -> None:
        self.unmet = unmet
        super().__init__(f"PR #{number} is not ready to merge: {'; '.join(unmet)}")


class ReviewRefused(PermanentIntegrationError):
    pass


class PullRequestTaken(PermanentIntegrationError):
    """The branch's open PR was opened by another session."""


def review_decision(reviews: Iterable[LocalReview], *, require_review: bool) -> str:
    """GitHub's rule: each reviewer's latest approve/request-changes counts; comments do not."""
    latest: dict[str, str] = {}
    for review in sorted(reviews, key=lambda r: (r.created_at, r.pk)):
        if review.state in (LocalReview.State.APPROVED, LocalReview.State.CHANGES_REQUESTED):
            latest[review.reviewer] = review.state
    if LocalReview.State.CHANGES_REQUESTED in latest.values():
        return "changes_requested"
    if LocalReview.State.APPROVED in latest.values():
        return "approved"
    return "review_required" if require_review else "none"


@scms.register("local")
class LocalSCM(LocalRemote, SCM):
    class Config(PluginConfig):
        remote: str | None = HostSetting(
            default=None,
            description=(
                "bare repository agents push to (relative to the checkout); default: the checkout's "
                "origin when that is a local bare repository, else <AO_HOME>/remotes/<project>.git"
            ),
        )
        check_command: list[str] = HostSetting(
            default_factory=list,
            description=(
                "local CI: argv run on every pushed PR head in a fresh clone, e.g. [pytest, -q] (a string "
                "is split into words, never given to a shell); empty: no check runs. Its check must pass on "
                "a PR's head before the PR merges"
            ),
        )
        check_name: str = NotHostSetting(
            default="ci",
            min_length=1,
            max_length=100,
            description="name of that check (as in requiredChecks)",
        )
        check_timeout: float = NotHostSetting(
            default=900.0, gt=0, le=24 * 3600, description="seconds before the check is stopped (timed out)"
        )
        merge_method: Literal["squash", "ff", "merge"] = Field(
            default="squash", description="squash, ff (fast-forward only) or merge (a merge commit)"
        )
        log_excerpt_bytes: int = Field(
            default=8000,
            ge=256,
            le=1_000_000,
            description="tail of a failed check's output sent to the agent",
        )
        require_review: bool = Field(
            default=True,
            description=(
                "a PR needs a person's approval (and no changes requested) before it counts as approved "
                "and before it merges, as with a code host's branch protection (`ao pr merge --force` "
                "overrides)"
            ),
        )

        @field_validator("check_command", mode="before", json_schema_input_type=str | list[str])
        @classmethod
        def _split_command(cls, value):
            # A string is split like a shell would split words, but never given to a shell.
            return shlex.split(value) if isinstance(value, str) else value

    def _rows(self):
        return LocalPullRequest.objects.filter(project=self._project())

    def branch_on_remote(self, branch: str) -> bool:
        """In the bare remote now, or ever the branch of a PR (merged and deleted ones too)."""
        return self.branch_sha(branch) is not None or self._rows().filter(branch=branch).exists()

    # --- opening PRs ----------------------------------------------------------------------

    def open_pull_request(
        self,
        *,
        branch: str,
        title: str = "",
        body: str = "",
        base: str | None = None,
        created_by: str = "",
        claimed: bool = False,
    ) -> tuple[LocalPullRequest, bool]:
        """Record a PR for ``branch`` (already in the remote); (row, created). An open PR for the
        branch is returned (with a new title/body when given) instead of a second one, except that
        a session (``created_by``) never takes over an open PR another session opened: that is
        PullRequestTaken, naming that session, unless the caller holds it through claim-pr
        (``claimed``)."""
        project = self._project()
        validate_pr_branch(branch)
        base = validate_pr_branch(base or self.default_branch)
        if branch == base:
            raise PermanentIntegrationError(f"cannot open a PR from {branch!r} into itself")
        head = self.branch_sha(branch)
        if head is None:
            raise PermanentIntegrationError(
                f"branch {branch!r} is not in the remote {self.remote_path()}; push it first"
            )
        base_sha = self.branch_sha(base)
        if base_sha is None:
            raise PermanentIntegrationError(f"base branch {base!r} is not in the remote {self.remote_path()}")
        if self._count(base_sha, head) == 0:
            raise PermanentIntegrationError(f"branch {branch!r} has no commits that {base!r} does not have")
        title = _CONTROL_RE.sub(" ", title or "").strip()[:500]
        for _ in range(3):
            try:
                with transaction.atomic():
                    type(project).objects.select_for_update().filter(pk=project.pk).first()
                    row = self._rows().filter(branch=branch, state=LocalPullRequest.State.OPEN).first()
                    if row is not None:
                        if created_by and row.created_by not in ("", created_by) and not claimed:
                            raise PullRequestTaken(
                                f"PR #{row.number} for {branch!r} is already open, opened by the session "
                                f"{row.created_by}: it is not {created_by}'s PR (work on another branch, or "
                                f"POST /api/v1/sessions/{created_by}/claim-pr to take it over)"
                            )
                        row.head_sha = head
                        fields = ["head_sha", "updated_at"]
                        if title and title != row.title:
                            row.title = title
                            fields.append("title")
                        if body:
                            row.body = body
                            fields.append("body")
                        row.save(update_fields=fields)
                        return row, False
                    last = self._rows().aggregate(n=Max("number"))["n"] or 0
                    row = LocalPullRequest.objects.create(
                        project=project,
                        number=last + 1,
                        branch=branch,
                        base=base,
                        title=title or self._subject(head)[:500] or branch,
                        body=body,
                        head_sha=head,
                        created_by=created_by,
                        review_decision="review_required" if self.config.require_review else "none",
                    )
                    return row, True
            except IntegrityError:
                continue  # a concurrent open took the number or the branch: look again
        raise TransientIntegrationError(f"could not record a PR for {branch!r}: concurrent updates")

    def detect_pushed_branches(self) -> list[str]:
        """Branches in the remote with commits the default branch lacks and no PR for their head:
        no open PR, and no merged/closed one at the same sha. The sweep may open PRs for them."""
        base = self.default_branch
        out = self._git(
            [
                "for-each-ref",
                "--format=%(objectname) %(refname)",
                f"--no-merged=refs/heads/{base}",
                "refs/heads/",
            ],
            check=False,
        )
        if out.returncode != 0:
            return []  # no default branch yet
        found = []
        seen = {
            (row.branch, row.head_sha, row.state) for row in self._rows().only("branch", "head_sha", "state")
        }
        open_branches = {b for b, _, state in seen if state == LocalPullRequest.State.OPEN}
        done = {(b, sha) for b, sha, state in seen if state != LocalPullRequest.State.OPEN}
        for line in out.stdout.splitlines():
            sha, _, ref = line.partition(" ")
            branch = ref.removeprefix("refs/heads/")
            if branch == base or branch in open_branches or (branch, sha) in done:
                continue
            if not PR_BRANCH_RE.match(branch):
                log.warning("ignoring pushed branch with an unusable name: %r", branch)
                continue
            found.append(branch)
        return sorted(found)

    def close_pull_request(self, *, number: int) -> None:
        updated = (
            self._rows()
            .filter(number=number, state=LocalPullRequest.State.OPEN)
            .update(state=LocalPullRequest.State.CLOSED, updated_at=timezone.now())
        )
        if not updated:
            self._get(number)
            raise PermanentIntegrationError(f"PR #{number} is not open")

    # --- reads ----------------------------------------------------------------------------
    def _get(self, number: int) -> LocalPullRequest:
        row = self._rows().filter(number=number).first()
        if row is None:
            raise PullRequestNotFound(f"no PR #{number} in project {self._project().key}")
        return row

    def find_pull_requests(
        self, *, branches: Sequence[str], since: Mapping[str, datetime] | None = None
    ) -> dict[str, PullRequestInfo]:
        since = since or {}
        wanted = [b for b in dict.fromkeys(branches) if isinstance(b, str) and PR_BRANCH_RE.match(b)]
        chosen: dict[str, LocalPullRequest] = {}
        for row in self._rows().filter(branch__in=wanted).order_by("-number"):
            if row.branch in since and row.created_at < since[row.branch]:
                continue  # opened before the session: an earlier session's or someone else's
            current = chosen.get(row.branch)
            if current is None or (current.state != "open" and row.state == "open"):
                chosen[row.branch] = row
        infos = self._infos(list(chosen.values()))
        return {row.branch: infos[row.number] for row in chosen.values()}

    def fetch_pull_requests(
        self,
        *,
        numbers: Sequence[int],
        previous: Mapping[int, PullRequestInfo] | None = None,
        complete: bool = False,
    ) -> dict[int, PullRequestInfo]:
        return self._infos(list(self._rows().filter(number__in=list(numbers))))

    def _infos(self, rows: list[LocalPullRequest]) -> dict[int, PullRequestInfo]:
        if not rows:
            return {}
        heads = self._heads()
        self._track_heads(rows, heads)
        runs: dict[int, list[LocalCIRun]] = {}
        for run in LocalCIRun.objects.filter(pr__in=rows).order_by("name", "-pk"):
            runs.setdefault(run.pr_id, []).append(run)
        reviews: dict[int, list[LocalReview]] = {}
        for review in LocalReview.objects.filter(pr__in=rows).order_by("created_at", "pk"):
            reviews.setdefault(review.pr_id, []).append(review)
        return {
            row.number: self._info(row, heads, runs.get(row.pk, []), reviews.get(row.pk, [])) for row in rows
        }

    def _track_heads(self, rows: list[LocalPullRequest], heads: dict[str, str]) -> None:
        """Record pushes to open PRs; a PR whose branch was deleted is closed (as on GitHub)."""
        now = timezone.now()
        for row in rows:
            if row.state != LocalPullRequest.State.OPEN:
                continue
            sha = heads.get(row.branch)
            if sha is None:
                self._rows().filter(pk=row.pk, state=row.state).update(
                    state=LocalPullRequest.State.CLOSED, updated_at=now
                )
                row.state = LocalPullRequest.State.CLOSED
            elif sha != row.head_sha:
                self._rows().filter(pk=row.pk).update(head_sha=sha, updated_at=now)
                row.head_sha, row.updated_at = sha, now

    def _info(
        self,
        row: LocalPullRequest,
        heads: dict[str, str],
        runs: list[LocalCIRun],
        reviews: list[LocalReview],
    ) -> PullRequestInfo:
        conflicts = behind = False
        mergeable = None
        base_sha = heads.get(row.base)
        if row.state == LocalPullRequest.State.OPEN and base_sha and row.head_sha:
            _, conflicts = self._merge_tree(base_sha, row.head_sha)
            behind = self._count(row.head_sha, base_sha) > 0
            mergeable = not conflicts
        return PullRequestInfo(
            number=row.number,
            branch=row.branch,
            url="",
            title=row.title,
            base_branch=row.base,
            state=row.state,
            head_sha=row.head_sha,
            mergeable=mergeable,
            conflicts=conflicts,
            behind=behind,
            review_decision=review_decision(reviews, require_review=self.config.require_review),
            checks=self._checks(row, runs),
            threads=tuple(_thread(review) for review in reviews if _is_thread(review)),
            updated_at=row.updated_at,
            created_at=row.created_at,
            opened_by=row.created_by,
        )

    def _checks(self, row: LocalPullRequest, runs: list[LocalCIRun]) -> tuple[CheckInfo, ...]:
        checks: dict[str, CheckInfo] = {}
        for run in runs:
            if run.head_sha != row.head_sha or run.name in checks:
                continue
            checks[run.name] = CheckInfo(
                name=run.name,
                source="local",
                status=run.status,
                conclusion=run.conclusion,
                external_id=str(run.pk),
                log_excerpt=run.log_excerpt if run.failed else "",
                started_at=run.started_at,
                completed_at=run.completed_at,
            )
        name = self.config.check_name
        if (
            self.config.check_command
            and name not in checks
            and row.state == LocalPullRequest.State.OPEN
            and row.head_sha
        ):
            checks[name] = CheckInfo(name=name, source="local", status="queued")
        return tuple(checks[key] for key in sorted(checks))

    # --- CI -------------------------------------------------------------------------------
    def checks_due(self) -> list[int]:
        """Open PRs whose current head has no run of the check yet, or only one its worker
        abandoned (``localci.abandoned``: it crashed mid-run). The sweep enqueues these."""
        if not self.config.check_command:
            return []
        rows = list(self._rows().filter(state=LocalPullRequest.State.OPEN))
        heads = self._heads()
        self._track_heads(rows, heads)
        ran = set(
            LocalCIRun.objects.filter(pr__in=rows, name=self.config.check_name)
            .exclude(localci.abandoned(timeout=self.config.check_timeout, now=timezone.now()))
            .values_list("pr_id", "head_sha")
        )
        return sorted(
            row.number
            for row in rows
            if row.state == LocalPullRequest.State.OPEN and row.head_sha and (row.pk, row.head_sha) not in ran
        )

    def run_checks(self, *, number: int, force: bool = False) -> LocalCIRun | None:
        """Run the check command on the PR's current head (once per sha unless ``force``).
        None when no check command is configured or the PR is not open."""
        if not self.config.check_command:
            return None
        row = self._get(number)
        if row.state != LocalPullRequest.State.OPEN:
            return None
        head = self.branch_sha(row.branch)
        if head is None:
            return None
        if head != row.head_sha:
            self._rows().filter(pk=row.pk).update(head_sha=head, updated_at=timezone.now())
            row.head_sha = head
        return localci.ci_run(
            pr=row,
            head_sha=head,
            remote=self.remote_path(),
            argv=self.config.check_command,
            name=self.config.check_name,
            timeout=self.config.check_timeout,
            excerpt_bytes=self.config.log_excerpt_bytes,
            force=force,
        )

    # --- reviews and comments ---------------------------------------------------------------
    def review(
        self,
        *,
        number: int,
        reviewer: str,
        state: str,
        body: str = "",
        path: str = "",
        line: int | None = None,
        association: str = "MEMBER",
        is_bot: bool = False,
    ) -> LocalReview:
        if state not in LocalReview.State.values:
            raise ValueError(f"review state must be one of {', '.join(LocalReview.State.values)}")
        reviewer = (reviewer or "").strip()
        if not reviewer or _CONTROL_RE.search(reviewer):
            raise ReviewRefused("a review needs a reviewer name")
        path = _validate_path(path)
        if line is not None and (not path or line < 1):
            raise ValueError("--line needs --path and must be 1 or more")
        if state == LocalReview.State.COMMENTED and not body.strip():
            raise ValueError("a comment needs a body")
        with transaction.atomic():
            row = self._rows().select_for_update().filter(pk=self._get(number).pk).first()
            if row.state != LocalPullRequest.State.OPEN:
                raise ReviewRefused(f"PR #{number} is {row.state}")
            if state != LocalReview.State.COMMENTED and row.created_by and reviewer == row.created_by:
                raise ReviewRefused(f"{reviewer} opened PR #{number} and cannot review it")
            review = LocalReview.objects.create(
                pr=row,
                reviewer=reviewer[:150],
                association=association,
                is_bot=is_bot,
                state=state,
                body=body,
                path=path,
                line=line,
            )
            decision = review_decision(row.reviews.all(), require_review=self.config.require_review)
            if decision != row.review_decision:
                row.review_decision = decision
                row.save(update_fields=["review_decision", "updated_at"])
        return review

    def resolve_thread(self, *, number: int, review_id: int, resolved: bool = True) -> None:
        updated = LocalReview.objects.filter(pk=review_id, pr=self._get(number)).update(resolved=resolved)
        if not updated:
            raise PermanentIntegrationError(f"no review comment {review_id} on PR #{number}")

    def comment(self, *, number: int, body: str, author: str = "ao") -> None:
        """A comment from ao itself (marked as a bot, so it is never forwarded back to an agent)."""
        self.review(
            number=number,
            reviewer=author,
            state=LocalReview.State.COMMENTED,
            body=body,
            is_bot=author == "ao",
        )

    # --- merging ----------------------------------------------------------------------------
    def merge(
        self, *, number: int, method: str | None = None, expected_head_sha: str = "", force: bool = False
    ) -> None:
        """Merge the PR into its base inside the bare remote; MergeRefused when it must not be.

        Like a code host's branch protection, the project's requirements hold for every merge (a
        person's `ao pr merge` as for ao's): with ``require_review`` an approval and no changes
        requested, with a ``check_command`` its check passed on the head (MergeRequirementsUnmet).
        ``force`` is the host admin's "merge anyway": it skips those two, never the rest."""
        method = method or self.config.merge_method
        if method not in MERGE_METHODS:
            raise MergeRefused(
                f"merge method {method!r} is not supported; use one of {', '.join(MERGE_METHODS)}"
            )
        row = self._get(number)
        if row.state != LocalPullRequest.State.OPEN:
            raise MergeRefused(f"PR #{number} is {row.state}, not open")
        head = self.branch_sha(row.branch)
        if head is None:
            raise MergeRefused(f"PR #{number}: branch {row.branch!r} is gone from the remote")
        if expected_head_sha and head != expected_head_sha:
            raise MergeRefused(
                f"PR #{number}: the head moved to {head[:12]} (expected {expected_head_sha[:12]})"
            )
        unmet = [] if force else self._merge_requirements_unmet(row, head)
        if unmet:
            raise MergeRequirementsUnmet(number, unmet)
        base = self.branch_sha(row.base)
        if base is None:
            raise MergeRefused(f"PR #{number}: base branch {row.base!r} is not in the remote")
        if self._count(base, head) == 0:
            raise MergeRefused(f"PR #{number}: nothing to merge, {row.base} already has every commit")
        tree, conflicts = self._merge_tree(base, head)
        if conflicts:
            raise MergeRefused(f"PR #{number} has conflicts with {row.base}")
        if method == "ff":
            if self._count(head, base) > 0:
                raise MergeRefused(
                    f"PR #{number} cannot be fast-forwarded: {row.base} has moved on; rebase first"
                )
            new = head
        else:
            parents = ["-p", base] if method == "squash" else ["-p", base, "-p", head]
            if method == "squash":
                message = f"{row.title} (#{row.number})\n\n{row.body}".rstrip() + "\n"
            else:
                message = f"Merge PR #{row.number} from {row.branch}\n\n{row.title}\n"
            new = self._git(
                ["commit-tree", tree, *parents, "-F", "-"],
                input=message,
                env=self._identity(head, squash=method == "squash"),
            ).stdout.strip()
        proc = self._git(
            [
                "update-ref",
                "-m",
                f"ao: merge PR #{row.number} ({method})",
                f"refs/heads/{row.base}",
                new,
                base,
            ],
            check=False,
        )
        if proc.returncode != 0:
            raise TransientIntegrationError(
                f"PR #{number}: {row.base} moved while merging; try again ({proc.stderr.strip()})"
            )
        now = timezone.now()
        self._rows().filter(pk=row.pk, state=LocalPullRequest.State.OPEN).update(
            state=LocalPullRequest.State.MERGED, merged_sha=new, merged_at=now, head_sha=head, updated_at=now
        )
        log.info(
            "merged %s PR #%s (%s) into %s at %s", self._project().key, number, method, row.base, new[:12]
        )

    def merge_requirements_unmet(self, number: int) -> list[str]:
        """What the project requires before PR ``number`` merges that its head does not have."""
        row = self._get(number)
        head = self.branch_sha(row.branch)
        return self._merge_requirements_unmet(row, head) if head else []

    def _merge_requirements_unmet(self, row: LocalPullRequest, head: str) -> list[str]:
        unmet = []
        if self.config.require_review:
            decision = review_decision(row.reviews.all(), require_review=True)
            if decision == "changes_requested":
                unmet.append("changes were requested")
            elif decision != "approved":
                unmet.append("no one approved it (the project requires a review)")
        if self.config.check_command:
            name = self.config.check_name
            run = LocalCIRun.objects.filter(pr=row, name=name, head_sha=head).order_by("-pk").first()
            if run is None:
                unmet.append(f"its check {name!r} has not run on {head[:12]}")
            elif run.status != LocalCIRun.Status.COMPLETED:
                unmet.append(f"its check {name!r} is still running on {head[:12]}")
            elif run.conclusion != LocalCIRun.Conclusion.SUCCESS:
                unmet.append(f"its check {name!r} did not pass on {head[:12]} ({run.conclusion})")
        return unmet


def _validate_path(path: str) -> str:
    path = (path or "").strip()
    if not path:
        return ""
    parts = path.split("/")
    if path.startswith("/") or ".." in parts or _CONTROL_RE.search(path) or len(path) > 1024:
        raise ValueError(f"invalid path {path!r}: use a path relative to the repository root")
    return path


def _is_thread(review: LocalReview) -> bool:
    if review.path:
        return True
    return review.state != LocalReview.State.APPROVED and bool(review.body.strip())


def _thread(review: LocalReview) -> ThreadInfo:
    return ThreadInfo(
        external_id=f"local-review-{review.pk}",
        path=review.path,
        line=review.line,
        author=review.reviewer,
        author_association=review.association,
        body=review.body,
        resolved=review.resolved,
        is_bot=review.is_bot,
        created_at=review.created_at,
        review_state="" if review.path else str(review.state).lower(),
    )
