"""``ao status``: projects and sessions from the database, as a table or JSON."""

from __future__ import annotations

import time
from datetime import datetime

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

import ao_site
from ao_site import preflight, served
from sessions.cli import apiclient
from sessions.cli.status_text import CLEAR, dump_json, render_table
from sessions.core import selectors
from sessions.management.commands._common import remote_client, remote_errors
from sessions.watchers import decisions

NEEDS_YOU_LIMIT = 3  # per project


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def scale_out_processes() -> dict:
    """What runs in a scale-out install, as seen through Redis: the address `ao web` recorded, the
    workers that answer a ping within a second (their host names) and the holder of the beat
    lock. ``broker`` is "" when Redis answered, else why not."""
    import redis

    found: dict = {"web": None, "workers": [], "beat": None, "broker": ""}
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3, socket_timeout=3)
        holder = client.get(preflight.beat_lock_key())
        client.close()
    except redis.RedisError as exc:
        found["broker"] = f"Redis at {preflight.redis_where(settings.REDIS_URL)} is unreachable ({exc})"
        return found
    found["beat"] = holder.decode(errors="replace") if holder else None
    found["web"] = served.url_from_cache() or None
    try:
        replies = ao_site.celery_app.control.ping(timeout=1.0)  # Celery loads here, in scale-out only
    except Exception as exc:  # the broker went away between the two looks
        found["broker"] = f"the workers could not be asked ({exc})"
        replies = []
    found["workers"] = sorted({name.rpartition("@")[2] for reply in replies for name in reply})
    return found


def status_snapshot(*, include_done: bool = True) -> dict:
    """The data ``ao status --json`` prints (keys are stable; see the command's help)."""
    now = timezone.now()
    server = served.read_pid_file()
    scale_out = None if settings.AO_EMBEDDED else scale_out_processes()
    projects = []
    counts: dict[int, list[int]] = {}
    sessions = []
    for session in selectors.sessions_for_board(include_done=include_done):
        live, total = counts.setdefault(session.project_id, [0, 0])
        counts[session.project_id] = [live + session.is_live, total + 1]
        sessions.append(
            {
                "id": session.id,
                "project": session.project.key,
                "kind": session.kind,
                "status": session.status,
                "zone": session.zone,
                "reason": session.status_reason,
                "agent": session.agent,
                "issue": session.issue_ref,
                "issue_title": session.issue_title,
                "branch": session.branch,
                "host": session.host,
                "created_at": _iso(session.created_at),
                "status_changed_at": _iso(session.status_changed_at),
                "age_seconds": round((now - session.created_at).total_seconds(), 1),
            }
        )
    for project in selectors.projects_all():
        live, total = counts.get(project.pk, [0, 0])
        # what most needs a person, ranked (sessions.watchers.decisions): the orchestrator's digest too
        ranked = decisions.project_decisions(project, limit=10_000, now=now)  # all, ranked: the first shown
        needs_you = [
            {"kind": d.kind, "label": d.label, "session": d.session.pk, "reason": d.reason, "url": d.url}
            for d in ranked[:NEEDS_YOU_LIMIT]
        ]
        projects.append(
            {
                "key": project.key,
                "name": project.name,
                "repo": project.repo,
                "path": project.path,
                "default_branch": project.default_branch,
                "session_prefix": project.session_prefix,
                "live_sessions": live,
                "sessions": total,
                "needs_you": needs_you,
                "needs_you_more": len(ranked) - len(needs_you),
            }
        )
    snapshot = {
        "generated_at": now.isoformat(),
        "mode": "embedded" if settings.AO_EMBEDDED else "scale-out",
        "server": {
            "running": server is not None,
            "pid": server["pid"] if server else None,
            "url": server.get("url") if server else None,
        },
        "projects": projects,
        "sessions": sessions,
    }
    if scale_out is not None:
        snapshot["scale_out"] = scale_out
        if server is None:  # `ao web`, not `ao start`, serves
            snapshot["server"].update(running=bool(scale_out["web"]), url=scale_out["web"])
    return snapshot


class Command(BaseCommand):
    help = (
        "Show projects and sessions (id, project, status, zone, agent, issue, age), and what needs a person."
    )
    requires_system_checks = []
    requires_migrations_checks = False

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--json",
            dest="as_json",
            action="store_true",
            help="print JSON: {generated_at, mode, server{running,pid,url}, scale_out{web,workers[],beat,broker} "
            "(scale-out only), projects[] (with needs_you[] and needs_you_more, "
            "except against a remote ao), sessions[]}",
        )
        parser.add_argument(
            "--watch",
            nargs="?",
            type=float,
            const=2.0,
            default=None,
            metavar="SECONDS",
            help="redraw every SECONDS (default 2) until Ctrl-C; with --json prints one JSON line each time",
        )
        parser.add_argument("--live", action="store_true", help="leave out finished sessions")

    def handle(self, *args, as_json: bool, watch: float | None, live: bool, **options) -> None:
        if watch is not None and watch <= 0:
            raise CommandError(f"--watch needs a positive number of seconds, not {watch}")
        client = remote_client()
        if client is not None:  # AO_URL + AO_TOKEN: a remote ao, over its API

            def snapshot_now() -> dict:
                with remote_errors():
                    return apiclient.status_snapshot(client, include_done=not live)
        else:
            preflight.check_database()
            self._check_schema()

            def snapshot_now() -> dict:
                return status_snapshot(include_done=not live)

        try:
            while True:
                snapshot = snapshot_now()
                if as_json:
                    self.stdout.write(dump_json(snapshot, compact=watch is not None))
                else:
                    self.stdout.write((CLEAR if watch is not None else "") + render_table(snapshot))
                self.stdout.flush()
                if watch is None:
                    return
                time.sleep(watch)
        except KeyboardInterrupt:
            return

    def _check_schema(self) -> None:
        from django.db import connection

        if "agent_sessions_session" not in connection.introspection.table_names():
            raise CommandError("the database has no ao tables yet — run `ao start` (or `ao migrate`) first")
