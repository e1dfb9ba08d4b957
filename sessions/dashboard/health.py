"""Reachability of what ao depends on: database, channel layer, Celery broker.

``/healthz`` answers anyone (a load balancer has no login): a failed check's error (which names
hosts, ports, a database role) is logged, and shown to signed-in staff only (``for_caller``).
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection

from ao_site.celery import app

log = logging.getLogger(__name__)

TIMEOUT = 3.0
PUBLIC_ERROR = "unavailable (the reason is in ao's log)"


def timed_check(check) -> dict[str, Any]:
    started = time.monotonic()
    try:
        detail = check()
        result: dict[str, Any] = {"ok": True}
        if detail:
            result["detail"] = detail
    except Exception as exc:  # a health check reports every failure, whatever it is
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    result["ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return connection.vendor


def check_channel_layer() -> str:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")

    async def roundtrip() -> None:
        import asyncio

        channel = await layer.new_channel("healthz.")
        token = uuid.uuid4().hex
        await layer.send(channel, {"type": "healthz", "token": token})
        message = await asyncio.wait_for(layer.receive(channel), TIMEOUT)
        if message.get("token") != token:
            raise RuntimeError("channel layer returned a different message")

    async_to_sync(roundtrip)()
    return type(layer).__name__


def check_broker() -> str:
    if settings.AO_EMBEDDED:
        # `ao start` hands tasks to its worker threads; a process without them (a CLI command, a
        # bare `ao web`) runs each inline, inside the request or command that queued it.
        return "inline (no worker here)" if settings.CELERY_TASK_ALWAYS_EAGER else "in-process worker threads"
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=TIMEOUT)
    return conn.transport_cls if isinstance(conn.transport_cls, str) else "redis"


def check_all() -> dict[str, Any]:
    checks = {
        "database": timed_check(check_database),
        "channel_layer": timed_check(check_channel_layer),
        "broker": timed_check(check_broker),
    }
    for name, check in checks.items():
        if not check["ok"]:  # as Django logs each 503 answer: one line per failing check
            log.warning("health check %s failed: %s", name, check["error"])
    return {
        "status": "ok" if all(c["ok"] for c in checks.values()) else "error",
        "mode": "embedded" if settings.AO_EMBEDDED else "distributed",
        "checks": checks,
    }


def for_caller(report: dict[str, Any], *, staff: bool) -> dict[str, Any]:
    """``report`` as whoever asked may see it: staff get the errors, anyone else only which checks
    failed (the ``detail`` of a passing check is ao's own label, e.g. ``postgresql``)."""
    if staff:
        return report
    checks = {
        name: {**check, "error": PUBLIC_ERROR} if "error" in check else check
        for name, check in report["checks"].items()
    }
    return {**report, "checks": checks}
