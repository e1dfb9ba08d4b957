"""What ``ao start`` / ``ao web`` / ``ao worker`` / ``ao beat`` share: the pid file ``ao stop`` reads
(written here, read by ``ao_site.served``), the host name, first-run admin and config, the child
processes. Their preflight checks are in ``ao_site.preflight``.

A refusal raises ``CommandError`` with a message of the form "<what is wrong> — <the fix>";
``ao_site.cli`` prints it as one ``ao: ...`` line.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from django.utils import timezone

from ao_site import served
from ao_site.hosts import HOST_NAME_RE
from ao_site.procs import pid_alive
from ao_site.served import pid_file, read_pid_file
from sessions.cli import cli_relay
from sessions.core import services
from sessions.core.config.discovery import config_discover
from sessions.core.config.init import config_init
from sessions.core.config.loading import config_load
from sessions.core.config.problems import ConfigError

EXIT_CONFIG = 2


def validate_host_name(name: str) -> str:
    if not HOST_NAME_RE.match(name or ""):
        raise CommandError(
            f"{name!r} is not a valid agent host name — use 1-63 letters, digits, '.', '_' or '-', "
            "e.g. `--host build-1`"
        )
    return name


def default_host_name() -> str:
    """This machine's agent host name: AO_HOST_NAME (checked) when set, else its short host name
    (``settings.AO_HOST_NAME``, the same name sessions spawned here record)."""
    if os.environ.get("AO_HOST_NAME"):
        return validate_host_name(settings.AO_HOST_NAME)
    return settings.AO_HOST_NAME


# --- URLs -----------------------------------------------------------------------------------------
def dashboard_url(host: str, port: int) -> str:
    """The URL to print: AO_URL when set explicitly, else derived from where we listen (the same
    address agents are given: ``ao_site.served``)."""
    return (served.operator_url() or served.url_for(host, port)) + "/"


@contextlib.contextmanager
def serving(host: str, port: int) -> Iterator[str]:
    """While this process serves ``host:port``, that is the address agents and links are given
    (unless AO_URL is set); see ``ao_site.served``."""
    try:
        url = served.record(host=host, port=port)
        cli_relay.open_door(url)  # this machine's `ao status`, `ao session ls`, `ao send` ask us
        yield url
    finally:
        cli_relay.close_door()
        served.forget()


# --- pid file -------------------------------------------------------------------------------------
@contextlib.contextmanager
def pid_file_held(info: dict[str, Any]) -> Iterator[Path]:
    """Write the pid file (refusing if another ``ao start`` of this AO_HOME runs); remove on exit."""
    running = read_pid_file()
    if running is not None:
        raise CommandError(
            f"ao is already running from {settings.AO_HOME} (pid {running['pid']}, {running.get('url', '')}) "
            "— run `ao stop` first"
        )
    path = pid_file()
    payload = {"pid": os.getpid(), "started_at": time.time(), **info}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload))
    tmp.replace(path)
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
            if int(json.loads(path.read_text())["pid"]) == os.getpid():
                path.unlink()


def stop_running(*, timeout: float) -> tuple[int | None, bool]:
    """SIGTERM the running ``ao start`` and wait. Returns (pid or None, stopped)."""
    info = read_pid_file()
    if info is None:
        return None, True
    pid = int(info["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return pid, True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return pid, True
        time.sleep(0.1)
    return pid, False


# --- first run: an admin account and a one-time login link ----------------------------------------
def admin_ensure() -> tuple[Any | None, bool]:
    """Create the first superuser if none exists. Returns (user needing a link or None, created).

    The account gets an unusable password; the one-time link is how its owner gets in. While no
    superuser has a usable password, each start offers a fresh link (nobody could log in otherwise).
    """
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    superusers = user_model.objects.filter(is_superuser=True, is_active=True).order_by("pk")
    if superusers.exists():
        if any(user.has_usable_password() for user in superusers):
            return None, False
        return superusers.first(), False
    validator = user_model.username_validator
    candidates = [os.environ.get("USER", ""), "admin", "ao-admin"]
    for name in candidates:
        name = name.strip()
        if not name or len(name) > 150:
            continue
        try:
            validator(name)
        except Exception:  # noqa: S112 - an invalid $USER just falls through to "admin"
            continue
        if user_model.objects.filter(username=name).exists():
            continue
        user = user_model(username=name, is_staff=True, is_superuser=True)
        user.set_unusable_password()
        user.save()
        return user, True
    raise CommandError("cannot create the first admin account — run `ao createsuperuser`")


# --- config ---------------------------------------------------------------------------------------
def git_toplevel(path: Path) -> Path | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        result = subprocess.run(
            [git, "rev-parse", "--show-toplevel"], cwd=path, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0 or not result.stdout.strip():
        return None
    return Path(result.stdout.strip())


def config_load_and_apply(stdout, stderr) -> None:
    """Find (or, in a git repo, create) the config, load it and apply it to the database if it
    changed since it was last applied (its sha256 differs from the recorded one): an unchanged
    file is only checked, so edits made in the admin survive a restart.

    A ConfigError prints each problem on its own line and exits with status 2.
    """
    path = None
    try:
        path = config_discover(None)
        if path is None:
            repo = git_toplevel(Path.cwd())
            if repo is None:
                stdout.write(
                    "No ao config found — run `ao start` inside a git repository (or set AO_CONFIG) to "
                    "create one; starting without projects."
                )
                return
            path = config_init(repo=repo)
            stdout.write(f"Created {path} for {repo}")
        loaded = config_load(path)
        applied = services.config_applied(config=loaded)
        notes = (
            [] if applied else services.config_apply(config=loaded, source=str(path), applied_by="ao start")
        )
    except ConfigError as exc:
        where = f"the config {path}" if path is not None else "the ao config"
        stderr.write(f"ao: {where} has problems — fix them and run `ao start` again:")
        for problem in exc.problems:
            stderr.write(f"  {problem}")
        raise SystemExit(EXIT_CONFIG) from None
    if applied:
        when = timezone.localtime(applied.applied_at).strftime("%Y-%m-%d %H:%M")
        stdout.write(f"Config: {path} (unchanged since {when}; edits made in the admin are kept)")
        return
    stdout.write(f"Config: {path}")
    for note in notes:
        stdout.write(f"  {note}")


# --- child processes (scale-out `ao start`) -------------------------------------------------------
def ao_child(args: list[str]) -> subprocess.Popen:
    """Start ``ao <args>`` as a child process in its own session (signals are forwarded by us)."""
    return subprocess.Popen([sys.executable, "-m", "ao_site.cli", *args], start_new_session=True)


def stop_children(children: list[subprocess.Popen], *, timeout: float = 15.0) -> None:
    for child in children:
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
