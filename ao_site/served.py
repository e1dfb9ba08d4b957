"""The one address ao tells others to use: agents (``AO_URL`` in their environment, for
``ao report`` and ``ao pr create``), the orchestrator's prompt, links in notifications and in
API answers.

The answer, the same in every process:

1. ``AO_URL`` when the operator set it (a proxy, a host name other machines resolve);
2. else the address this process serves (``ao start`` and ``ao web`` record it when they bind);
3. else the address the running ``ao start`` of this ``AO_HOME`` serves (its pid file): a CLI
   command that starts an agent itself (``ao spawn`` in embedded mode) learns it there, and so
   do the ``ao worker`` / ``ao beat`` children of a scale-out ``ao start``;
4. else the address an ``ao web`` recorded in the shared cache (scale-out: Redis, which every
   ``ao worker`` on every host reads);
5. else ``settings.AO_URL`` (default ``http://127.0.0.1:8000``): nothing is known to serve.

Agents also get ``AO_URL_FILE``: ``AO_HOME/agent-url``, which every ``ao start`` / ``ao web`` of
this AO_HOME rewrites with that address when it binds. An agent whose ``AO_URL`` refuses the
connection (ao was restarted on another port since the agent started) tries the address there
(``sessions.cli.agent_client``). It holds only the address, nothing secret.

A wildcard bind (``--host 0.0.0.0`` or ``::``) is told as the loopback address of its family:
reachable by every agent on the machine ao runs on. Agents on other machines need ``AO_URL``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.urls import reverse

from ao_site.procs import pid_alive

log = logging.getLogger(__name__)

CACHE_KEY = "ao:served-url"
AGENT_URL_FILE_NAME = "agent-url"  # in AO_HOME: the address agents are told now (AO_URL_FILE)
PID_FILE_NAME = (
    "ao.pid"  # the running `ao start` of an AO_HOME: its pid and address (ao_site.runner writes it)
)
WILDCARDS = ("", "0.0.0.0", "::")  # noqa: S104 - names of wildcard binds, compared, never bound

_served: str = ""  # the address this process serves, once it binds


def operator_url() -> str:
    """``AO_URL`` when the operator set it, else ""."""
    return settings.AO_URL if os.environ.get("AO_URL") else ""


def this_process_url() -> str:
    """The address this process serves (once ``record`` ran), else ""."""
    return _served


def url_for(host: str, port: int) -> str:
    """The address to tell for a server bound to ``host:port`` (no trailing slash)."""
    if host in WILDCARDS:
        host = "::1" if host == "::" else "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def record(*, host: str, port: int) -> str:
    """This process now serves ``host:port``: remember it here and in the shared cache, and accept
    requests naming it (unless AO_ALLOWED_HOSTS says which hosts to accept). Returns the address."""
    global _served
    _served = url_for(host, port)
    name = urlsplit(_served).hostname or ""
    if not os.environ.get("AO_ALLOWED_HOSTS") and name not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, f"[{name}]" if ":" in name else name]
    if not settings.AO_EMBEDDED:
        try:
            from django.core.cache import cache

            cache.set(CACHE_KEY, _served, timeout=None)
        except Exception as exc:  # Redis down: the worker's own checks say so; agents get AO_URL
            log.warning("could not record the served address %s in the cache: %s", _served, exc)
    _agent_url_file_write(agent_url())
    return _served


def agent_url_file() -> Path:
    """Where agents look for ao's address when their AO_URL refuses (the module docstring)."""
    return Path(settings.AO_HOME) / AGENT_URL_FILE_NAME


def _agent_url_file_write(url: str) -> None:
    path = agent_url_file()
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        temporary.write_text(url + "\n")
        os.replace(temporary, path)
    except OSError as exc:  # agents started from now on are told the right address anyway
        log.warning("could not write %s: %s", path, exc)


def forget() -> None:
    """This process stops serving: drop its address (from the cache too, if it is still ours)."""
    global _served
    if _served and not settings.AO_EMBEDDED:
        with contextlib.suppress(Exception):
            from django.core.cache import cache

            if cache.get(CACHE_KEY) == _served:
                cache.delete(CACHE_KEY)
    _served = ""


def running_start_url() -> str:
    """The address of the running ``ao start`` of this ``AO_HOME`` (its pid file) when that is
    another process, or "" (``ao start`` itself, while it starts up, has no listener yet)."""
    with contextlib.suppress(Exception):
        if int((read_pid_file() or {}).get("pid") or 0) == os.getpid():
            return ""
    return _from_pid_file()


def _from_pid_file() -> str:
    with contextlib.suppress(Exception):
        info = read_pid_file() or {}
        if info.get("host") is not None and info.get("port"):
            return url_for(str(info["host"]), int(info["port"]))
    return ""


def url_from_cache() -> str:
    if settings.AO_EMBEDDED:
        return ""
    with contextlib.suppress(Exception):
        from django.core.cache import cache

        value = cache.get(CACHE_KEY)
        return value if isinstance(value, str) and value.startswith(("http://", "https://")) else ""
    return ""


def where() -> tuple[str, str]:
    """(the address, where it comes from: "AO_URL", "this process", "ao start", "ao web", "default")."""
    for source, found in (
        ("AO_URL", operator_url),
        ("this process", lambda: _served),
        ("ao start", _from_pid_file),
        ("ao web", url_from_cache),
    ):
        if value := found():
            return value.rstrip("/"), source
    return settings.AO_URL, "default"


def agent_url() -> str:
    """The address agents, people and links are given (see the module docstring)."""
    return where()[0]


# The dashboard's pages are named in sessions.urls, which ao_site.urls mounts at ao's root. Links
# made outside a request (a notification, the needs_you of `ao status`) reverse through that
# module alone: reversing through the root URLconf imports every URL module first (the API's DRF
# views and schema, the admin), about 0.5 CPU-s of an `ao status`.
DASHBOARD_URLCONF = "sessions.urls"


def dashboard_path(name: str, **kwargs: Any) -> str:
    """The path of the dashboard's page ``name`` (``"detail"`` for ``sessions:detail``)."""
    return reverse(name, urlconf=DASHBOARD_URLCONF, kwargs=kwargs or None)


# --- the pid file of the running `ao start` (written by ao_site.runner.pid_file_held) ------------
def pid_file() -> Path:
    return Path(settings.AO_HOME) / PID_FILE_NAME


def read_pid_file() -> dict[str, Any] | None:
    """The running ``ao start``'s pid file contents, or None (a stale file is removed)."""
    path = pid_file()
    try:
        info = json.loads(path.read_text())
        pid = int(info["pid"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        path.unlink(missing_ok=True)
        return None
    if not pid_alive(pid):
        path.unlink(missing_ok=True)
        return None
    return info
