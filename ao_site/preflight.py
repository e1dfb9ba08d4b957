"""The checks ao's commands make before they act (the database, Redis, the port, the migrations,
scale-out), and the warnings ``ao start`` gives. A check that fails raises ``CommandError`` with a
message of the form "<what is wrong> — <the fix>"; ``ao_site.cli`` prints it as one ``ao: ...`` line.

Apart from ``ao_site.runner`` (what starting ao needs: the configuration, the services): ``ao status``
checks the database and reads the beat's lock with these, and so loads neither.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import CommandError

from ao_site.home import open_to_others


def beat_lock_key() -> str:
    """The Redis key the running beat holds (its value: the holder, shown by `ao status`)."""
    return f"{settings.CHANNEL_LAYERS['default']['CONFIG']['prefix']}:beat-lock"


def check_port_free(host: str, port: int) -> None:
    """Fail if ``host:port`` cannot be listened on (busy, or not allowed)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # Twisted sets SO_REUSEADDR too, so a port in TIME_WAIT is not reported as busy.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CommandError(
                    f"port {port} is in use — stop the other process or run `ao start --port {port + 1}`"
                ) from None
            if exc.errno == errno.EACCES:
                raise CommandError(
                    f"not allowed to listen on port {port} — use a port above 1024, e.g. `--port 8000`"
                ) from None
            if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or isinstance(exc, socket.gaierror):
                raise CommandError(
                    f"cannot listen on {host!r}: no such local address — use `--host 127.0.0.1`"
                ) from None
            raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _database_where() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return str(db["NAME"])
    host = db.get("HOST") or "localhost"
    port = db.get("PORT") or ""
    return f"{host}:{port}" if port else host


def check_database() -> None:
    """Fail in one line when the database cannot be reached."""
    from django.db import connections

    connection = connections["default"]
    try:
        connection.ensure_connection()
    except Exception as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        if connection.vendor == "sqlite":
            raise CommandError(
                f"cannot open the database {_database_where()} ({reason}) — check that AO_HOME is writable"
            ) from None
        raise CommandError(
            f"cannot reach the database at {_database_where()} ({reason[:160]}) — start it or fix "
            "DATABASE_URL (unset it to use the built-in SQLite database)"
        ) from None


def redis_where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"


def check_redis() -> None:
    import redis

    url = settings.REDIS_URL
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        raise CommandError(
            f"cannot reach Redis at {redis_where(url)} ({exc}) — start Redis or fix REDIS_URL "
            "(unset it to run everything in one `ao start` process)"
        ) from None


def require_scale_out(command: str) -> None:
    if settings.AO_EMBEDDED:
        raise CommandError(
            f"`ao {command}` is for scale-out and needs REDIS_URL — without it, `ao start` runs the web "
            "server, worker and beat in one process"
        )


def warn_if_no_tmux(stderr) -> None:
    if shutil.which("tmux") is None:
        stderr.write(
            "ao: warning: tmux is not installed — install it (e.g. `apt install tmux`) for the tmux runtime; "
            "projects using the `process` runtime still work"
        )


def warn_if_home_open(stderr) -> None:
    if warning := open_to_others(Path(settings.AO_HOME)):
        stderr.write(f"ao: warning: {warning}")


def warn_if_host_not_allowed(host: str, stderr) -> None:
    """Requests naming a host outside ALLOWED_HOSTS get 400; say how to allow it up front. (The
    address ao listens on is accepted: ``runner.serving``.)"""
    if os.environ.get("AO_URL") or os.environ.get("AO_ALLOWED_HOSTS"):
        return
    if host in ("0.0.0.0", "::"):  # noqa: S104 - comparing, not binding
        stderr.write(
            "ao: warning: listening on every interface, but only localhost names are accepted and agents "
            "are told the loopback address — set AO_URL to the address people and agents will use, e.g. "
            "`AO_URL=http://myhost:8000`"
        )


def check_migrations_applied() -> None:
    from django.db import connections
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connections["default"])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        raise CommandError(
            f"the database has {len(plan)} unapplied migration(s) — run `ao migrate` once, then start again"
        )
