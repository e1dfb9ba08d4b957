"""One log line per outage of a dependency whose library logs a traceback per failed attempt.

channels_redis's pub/sub receive loop logs ``Unexpected exception in receive task`` with a full
traceback every second while Redis is unreachable. :class:`ChannelLayerOutageFilter`, attached to
its loggers, turns the first of those into one warning naming the cause and drops the rest; a
failure after a quiet spell (the loop retries every second, so quiet means it reconnected) starts
a new outage and gets its own line. Errors that are not about reaching Redis pass unchanged.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

QUIET_S = 5.0  # no failure for this long: the previous outage is over


def _connection_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (OSError, EOFError)
    # redis-py's own connection errors do not all derive from OSError; if redis is not imported
    # (a CLI command), none of its errors can occur, and this filter does not import it.
    redis_errors = sys.modules.get("redis.exceptions")
    if redis_errors is not None:
        errors += (redis_errors.ConnectionError, redis_errors.TimeoutError)
    return errors


def _connection_error(exc: BaseException | None) -> BaseException | None:
    """The connection error in ``exc``'s cause chain, if any."""
    errors = _connection_errors()
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, errors):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


class ChannelLayerOutageFilter(logging.Filter):
    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        self._lock = threading.Lock()
        self._last_failure = 0.0

    def filter(self, record: logging.LogRecord) -> bool:
        cause = _connection_error(record.exc_info[1] if record.exc_info else None)
        if cause is None:
            return True
        now = time.monotonic()
        with self._lock:
            ongoing = now - self._last_failure < QUIET_S
            self._last_failure = now
        if ongoing:
            return False
        record.msg = "the channel layer cannot reach Redis (%s); live updates pause until it is back"
        record.args = (str(cause) or type(cause).__name__,)
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True
