"""`ao pr`: pull requests of the `local` SCM, from an agent's worktree or a person's shell.

``ao pr create`` is what an agent runs when its work is ready: it pushes the branch checked out
in the current directory (or ``--branch``) to the project's bare remote and records the PR.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from integrations import gitutil
from integrations.registry import plugin_for
from integrations.scm.local import LocalSCM, MergeRequirementsUnmet
from sessions.cli import agent_client, light_commands
from sessions.core import selectors
from sessions.management.commands._common import cli_audit, cli_errors, get_session
from sessions.models import Actor, Project, PullRequest, Session
from sessions.prs import reviews


class Command(BaseCommand):
    help = (
        "Local pull requests: `ao pr create`, `ao pr ls`, `ao pr show N`, "
        "`ao pr review N --approve|--request-changes|--comment`, `ao pr merge N`, `ao pr ci N`."
    )

    def add_arguments(self, parser):
        light_commands.add_pr_arguments(parser)

    def handle(self, *args, **options):
        if light_commands.pr_create_goes_over_http(options):
            # Inside an agent's session: ao (maybe on another machine) pushes and opens it.
            try:
                self.stdout.write(light_commands.pr_create_over_http(options))
            except agent_client.AgentClientError as exc:
                raise CommandError(str(exc)) from exc
            return
        with cli_errors():
            session = _session(options.get("session"))
            project = _project(options["project"], session)
            scm = plugin_for(project, "scm")
            if not isinstance(scm, LocalSCM):
                raise CommandError(
                    f"project {project.key} uses the {project.scm!r} SCM: use its own tools (e.g. gh)"
                )
            getattr(self, "_" + options["action"])(scm, session, options)

    def _create(self, scm: LocalSCM, session: Session | None, options) -> None:
        cwd = Path.cwd()
        in_git = _in_git(cwd)
        branch = (
            options["branch"]
            or (gitutil.current_branch(cwd) if in_git else None)
            or (session.branch if session else None)
        )
        if not branch:
            raise CommandError("no branch checked out here: run in your worktree or pass --branch")
        source = cwd if in_git and gitutil.branch_exists(cwd, branch) else Path(scm.project.path)
        if gitutil.branch_exists(source, branch):
            pushed = scm.push_branch(source=source, branch=branch, force=options["force"])
            if pushed:
                self.stdout.write(f"pushed {branch} to {scm.remote_path()}")
        row, created = scm.open_pull_request(
            branch=branch,
            title=options["title"],
            body=options["body"],
            base=options["base"],
            created_by=session.id if session else "",
            claimed=session is not None
            and PullRequest.objects.filter(session=session, state="open").exists(),
        )
        verb = "opened" if created else "updated"
        self.stdout.write(f"{verb} PR #{row.number}: {row.title} ({row.branch} → {row.base})")

    def _ls(self, scm: LocalSCM, session: Session | None, options) -> None:
        rows = scm._rows().order_by("number")
        if not options["all"]:
            rows = rows.filter(state="open")
        infos = scm.fetch_pull_requests(numbers=[row.number for row in rows])
        if options["json"]:
            self.stdout.write(json.dumps([_info_dict(infos[n]) for n in sorted(infos)], indent=2))
            return
        if not infos:
            self.stdout.write("no pull requests")
        for number in sorted(infos):
            info = infos[number]
            ci = ",".join(f"{c.name}:{c.conclusion or c.status}" for c in info.checks) or "-"
            flags = " conflicts" if info.conflicts else (" behind" if info.behind else "")
            self.stdout.write(
                f"#{number:<5} {info.state:<7} {info.branch:<30} ci={ci} review={info.review_decision}"
                f"{flags}  {info.title}"
            )

    def _show(self, scm: LocalSCM, session: Session | None, options) -> None:
        infos = scm.fetch_pull_requests(numbers=[options["number"]])
        if options["number"] not in infos:
            scm._get(options["number"])
        self.stdout.write(json.dumps(_info_dict(infos[options["number"]]), indent=2))

    def _review(self, scm: LocalSCM, session: Session | None, options) -> None:
        as_agent = not options["reviewer"] and bool(os.environ.get("AO_SESSION"))
        reviewer = options["reviewer"] or os.environ.get("AO_SESSION") or getpass.getuser()
        with cli_audit():
            review = reviews.pull_request_review(
                project=scm.project,
                number=options["number"],
                reviewer=reviewer,
                state=options["state"],
                body=options["body"],
                path=options["path"],
                line=options["line"],
                actor=Actor.AGENT if as_agent else Actor.USER,
                via="ao pr review",
            )
        self.stdout.write(f"PR #{options['number']}: {review.state.replace('_', ' ')} by {review.reviewer}")

    def _merge(self, scm: LocalSCM, session: Session | None, options) -> None:
        number = options["number"]
        agent = os.environ.get("AO_SESSION", "")
        if options["force"] and agent:
            # an agent (the orchestrator drives ao with this command) never overrides what the
            # project requires of a merge: that is a person's call
            raise CommandError(f"`ao pr merge --force` is for people, not for ao session {agent}")
        overridden = scm.merge_requirements_unmet(number) if options["force"] else []
        try:
            scm.merge(
                number=number,
                method=options["method"],
                expected_head_sha=options["expect_head"],
                force=options["force"],
            )
        except MergeRequirementsUnmet as exc:
            if agent:
                raise CommandError(f"{exc} — a person approves it, and its check must pass") from exc
            raise CommandError(
                f"{exc} — approve it (`ao pr review {number} --approve`) or rerun its check "
                f"(`ao pr ci {number}`), or merge anyway with `ao pr merge {number} --force`"
            ) from exc
        row = scm._get(number)
        without = f" (--force: merged although {'; '.join(overridden)})" if overridden else ""
        self.stdout.write(f"merged PR #{row.number} into {row.base} at {row.merged_sha[:12]}{without}")

    def _close(self, scm: LocalSCM, session: Session | None, options) -> None:
        scm.close_pull_request(number=options["number"])
        self.stdout.write(f"closed PR #{options['number']}")

    def _ci(self, scm: LocalSCM, session: Session | None, options) -> None:
        run = scm.run_checks(number=options["number"], force=options["force"])
        if run is None:
            raise CommandError("nothing to run: no check_command configured, or the PR is not open")
        self.stdout.write(f"{run.name} on {run.head_sha[:12]}: {run.conclusion or run.status}")
        if run.failed and run.log_excerpt:
            self.stdout.write(run.log_excerpt)


def _in_git(cwd: Path) -> bool:
    proc = gitutil.run_git(["rev-parse", "--is-inside-work-tree"], cwd=cwd, check=False, timeout=10)
    return proc.returncode == 0 and proc.stdout.strip() == "true"


def _session(explicit: str | None) -> Session | None:
    session_id = explicit or os.environ.get("AO_SESSION", "")
    return get_session(session_id) if session_id else None


def _project(key: str | None, session: Session | None) -> Project:
    if key or session is None:
        return selectors.project_resolve(key=key)  # without a key: the one holding the cwd
    return session.project


def _info_dict(info) -> dict:
    data = dataclasses.asdict(info)
    return json.loads(json.dumps(data, default=str))
