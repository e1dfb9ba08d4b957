"""Database connections that go away (pg_terminate_backend, a PostgreSQL restart): said once per
outage, and the interrupted work retried on a fresh connection.

Apart from ``ao_site.celery`` (whose task signals use it) so that the code that retries a write
(``sessions.agents.messaging``, the activity watcher, the reactions) does not load Celery.
"""

from __future__ import annotations

import logging
import time

db_log = logging.getLogger("ao.database")
DB_ERRORS_RETRIED = 5  # a task interrupted by a lost connection runs again after 1, 2, 4, 8, 16 s
_db_outage: dict[str, float | None] = {"since": None, "last": None}
# An outage ends with a task that succeeds this long after the last lost connection: the other
# threads' connections from before the cut fail one after another for a moment, and each of
# those is the same outage, not a new one.
DB_QUIET_S = 2.0


def database_connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` is a database connection going away; if so, log it once per outage (the
    first of a burst; a task that succeeds DB_QUIET_S after the last loss ends the outage) and
    close this thread's broken connections so the next query opens a fresh one."""
    from django import db

    if not isinstance(exc, db.InterfaceError | db.OperationalError):
        return False
    db.close_old_connections()
    _db_outage["last"] = time.monotonic()
    if _db_outage["since"] is None:
        _db_outage["since"] = _db_outage["last"]
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        db_log.warning("database connection lost (%s); interrupted work is retried", reason)
    return True


def retrying_lost_connections(write, attempts: int = 4):
    """Run ``write`` (one statement, outside a transaction), again on a fresh connection when the
    database connection was lost, after 0.5, 1, 2 s."""
    wait = 0.5
    for attempt in range(attempts):
        try:
            return write()
        except Exception as exc:
            if attempt == attempts - 1 or not database_connection_lost(exc):
                raise
            time.sleep(wait)
            wait *= 2


def work_succeeded() -> None:
    """A task succeeded: the outage is over once DB_QUIET_S passed since the last lost connection."""
    since, last = _db_outage["since"], _db_outage["last"]
    if since is not None and (last is None or time.monotonic() - last >= DB_QUIET_S):
        _db_outage["since"] = None
        db_log.warning("database connection back after %d s", time.monotonic() - since)
