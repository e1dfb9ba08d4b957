"""A session takes over an existing PR (``ao session claim-pr``): its branch checked out in the
session's workspace, the PR recorded as the session's.
"""

from __future__ import annotations

from pathlib import Path

from django.db import transaction

from integrations import gitutil
from integrations.registry import plugin_for
from integrations.workspace import uncommitted_changes
from sessions.agents.operating import existing_workspace
from sessions.agents.spawning import SpawnRefused
from sessions.core import audit, services
from sessions.models import Actor, PullRequest, Session
from sessions.prs import prsync


class ClaimRefused(SpawnRefused):
    """The PR cannot become this session's (merged or closed, another session's, a dirty workspace)."""


class ClaimedPullRequestMissing(ClaimRefused):
    pass


class SessionHasPullRequest(ClaimRefused):
    """The session already has another PR."""


class PullRequestHeld(ClaimRefused):
    """The PR is another session's."""


def session_pr_claim(*, session: Session, number: int, by=None, actor: str = Actor.USER) -> None:
    """Make an existing open PR the session's: its branch is checked out in the session's workspace
    (the agent then works on the PR), its facts are recorded and the claim audited. Refused: a
    session that has another PR, a PR another session holds, a merged or closed PR (nothing is
    left to do on it, and the session would be finished the moment it took it), and a PR from a
    fork (the agent's pushes go to this repository's branches, never to the PR). The one claim for
    the CLI and the API."""
    project = session.project
    current = PullRequest.objects.filter(session=session).first()
    if current is not None and current.number != number:
        raise SessionHasPullRequest(f"{session.id} already has PR #{current.number}")
    holder = PullRequest.objects.filter(project=project, number=number).exclude(session=None).first()
    if holder is not None and holder.session_id != session.pk:
        raise PullRequestHeld(f"PR #{number} belongs to {holder.session_id}")
    scm = plugin_for(project, "scm")
    info = scm.fetch_pull_requests(numbers=[number], previous={}).get(number)
    if info is None:
        raise ClaimedPullRequestMissing(f"the {project.scm} SCM has no PR #{number}")
    if info.state != "open":
        raise ClaimRefused(f"PR #{number} is {info.state}: only an open PR can be claimed")
    if info.from_fork:
        # its head is a fork's branch: the workspace would check out this repository's branch of
        # that name (another commit, or none), and the agent's pushes would never reach the PR
        raise ClaimRefused(
            f"PR #{number} comes from a fork: ao's agents push to this repository's branches, so it "
            "cannot work on it (ask its author, or open a PR from a branch here)"
        )
    workspace = existing_workspace(session)
    if workspace is not None and info.branch != session.branch:
        _checkout_pr_branch(session, workspace, branch=info.branch, remote=scm.workspace_remote())
    with transaction.atomic():
        Session.objects.filter(pk=session.pk).update(branch=info.branch)
        session.branch = info.branch
        prsync.pull_request_record(project=project, session=session, info=info)
        # an operator's action: it asks the reactions about the facts it stored (after commit)
        services.session_react_after_commit(session_id=session.pk)
        services.event_record(
            project=project,
            session=session,
            kind="pr.claimed",
            summary=f"claimed PR #{number} ({info.branch})"
            + (f"; its branch is checked out in {workspace}" if workspace is not None else ""),
            actor=actor,
            actor_user=by,
            data={"number": number, "branch": info.branch},
        )
        audit.record(action="pr.claim", target=session, project=project, data={"number": number})


def _checkout_pr_branch(session: Session, workspace: Path, *, branch: str, remote: str) -> None:
    """Check the PR's ``branch``, as the remote has it, out in ``workspace``; refuses (changing
    nothing) over uncommitted changes or a local branch of that name with commits the PR lacks."""
    repo = Path(session.project.path)
    try:
        gitutil.validate_branch_name(branch)
    except gitutil.BranchNameError as exc:
        raise ClaimRefused(str(exc)) from exc
    dirty = uncommitted_changes(path=workspace, repo_path=repo)
    if dirty:
        raise ClaimRefused(
            f"{session.id}'s workspace has uncommitted changes ({', '.join(dirty[:3])}): "
            "commit or discard them before it takes another branch"
        )
    sha = gitutil.fetch_branch(workspace, remote=remote, branch=branch)
    if sha is None:
        raise ClaimRefused(f"could not fetch the PR's branch {branch!r} from the remote {remote!r}")
    if gitutil.branch_exists(workspace, branch):
        local = gitutil.resolve_commit(workspace, f"refs/heads/{branch}")
        if not gitutil.is_ancestor(workspace, local, sha):
            raise ClaimRefused(
                f"the local branch {branch!r} has commits the PR does not: push or rename it first"
            )
    gitutil.run_git(["checkout", "--quiet", "-B", branch, sha], cwd=workspace)
    gitutil.set_push_upstream(workspace, branch=branch, remote=remote)
