"""The running ao answers this machine's ``ao status``, ``ao session ls``, ``ao send`` and ``ao spawn``.

Those commands are read or said often (people, and orchestrators, which run them all the time);
setting up Django for each costs about 1 CPU-second (ten ``ao spawn`` at once: ten of them on the
machine's cores before any agent starts). While ``ao start`` or ``ao web`` serves, it keeps a door
open for the CLI of the same ``AO_HOME``:

- ``AO_HOME/cli.json`` (mode 0600): this process's pid, the address it serves, a random token
  made at start and a fingerprint of DATABASE_URL. The file is written when serving starts and
  removed when it stops. Whoever can read it can already read ao's database and secret key in
  the same directory: it opens nothing new.
- ``POST /api/v1/cli`` with ``Authorization: Bearer <that token>`` and ``{"argv": [...], "env":
  {USER, LOGNAME, AO_SESSION}, "cwd": "..."}`` runs the management command here, exactly as the
  CLI would (same code, same output, audited as the caller, its project found from the caller's
  directory, and in embedded mode the background work it queues done in the command, as the CLI
  does without a worker: ``ao spawn`` returns with the agent started and its task typed), and
  answers ``{"stdout", "stderr", "status"}``; ``{"fallback": true}`` when the arguments need the
  full command.

An agent spawned this way starts in the running ao's environment, as one spawned from the
dashboard or the API (and as every agent is when ao restores it), not in the caller's shell's.

``sessions.cli.light_commands`` is the client: without the file, with another database, or when
nothing answers, the command loads Django and runs itself as before.
"""

from __future__ import annotations

import contextlib
import hmac
import io
import json
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from sessions.cli.light_commands import CALLER_ENV, RELAY_FILE, database_id, relayable
from sessions.core import audit, jobs, selectors

_token = ""  # while this process serves: the token in AO_HOME/cli.json
# The relayed commands' own threads: an `ao spawn` holds one until its agent has taken its task
# and an `ao send` while it watches a busy agent; ten at once must neither wait for the event
# loop's small default pool nor hold up the dashboard's sync work there.
_commands = ThreadPoolExecutor(max_workers=32, thread_name_prefix="ao-cli")


def door_path() -> Path:
    return Path(settings.AO_HOME) / RELAY_FILE


def open_door(url: str) -> None:
    """This process serves ``url``: write AO_HOME/cli.json (0600) for this machine's CLI."""
    global _token
    _token = secrets.token_urlsafe(32)
    payload = {
        "pid": os.getpid(),
        "url": url,
        "token": _token,
        "database": database_id(os.environ.get("DATABASE_URL", "")),
    }
    path = door_path()
    tmp = path.with_name(f".{RELAY_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, json.dumps(payload).encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def close_door() -> None:
    """This process stops serving: remove AO_HOME/cli.json if it is still this process's."""
    global _token
    _token = ""
    path = door_path()
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        if int(json.loads(path.read_text())["pid"]) == os.getpid():
            path.unlink()


def _refused(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": "refused", "message": message}}, status=status)


@csrf_exempt
async def cli_run(request):
    """Run one relayed command (see the module's docstring). Runs in its own thread: an ``ao send``
    may watch a busy agent for a while, and must not hold up the dashboard's requests."""
    if request.method != "POST":
        return _refused(405, "POST only")
    header = request.headers.get("Authorization", "")
    supplied = header[len("Bearer ") :].strip() if header.startswith("Bearer ") else ""
    if not _token or not supplied or not hmac.compare_digest(supplied.encode(), _token.encode()):
        return _refused(403, "not this ao's CLI token")
    try:
        payload = json.loads(request.body)
        argv = [str(arg) for arg in payload["argv"]]
        env = {k: str(v) for k, v in (payload.get("env") or {}).items() if k in CALLER_ENV}
        cwd = payload.get("cwd")
        cwd = Path(cwd) if isinstance(cwd, str) and os.path.isabs(cwd) and "\0" not in cwd else None
    except (ValueError, KeyError, TypeError):
        return _refused(400, 'expected {"argv": [...], "env": {...}, "cwd": "..."}')
    if not relayable(argv):
        return _refused(400, "this command is not answered here")
    run = sync_to_async(run_command, thread_sensitive=False, executor=_commands)
    return JsonResponse(await run(argv, env, cwd))


def run_command(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> dict:
    """Run ``ao <argv>`` here as ``ao_site.cli`` would, capturing what it prints; ``cwd``: the
    caller's directory."""
    from django.core.management import load_command_class
    from django.core.management.base import CommandError
    from django.db import DatabaseError, connections

    out, err = io.StringIO(), io.StringIO()
    command = load_command_class("sessions", argv[0])
    parser = command.create_parser("ao", argv[0])
    try:
        options = vars(parser.parse_args(argv[1:]))  # raises CommandError (not called from a shell)
    except CommandError:
        return {"fallback": True}
    positional = options.pop("args", ())
    options.update(stdout=out, stderr=err, skip_checks=True)  # this server ran its checks at start
    status = 0
    try:
        # Embedded mode: the command by itself runs its tasks inline (no worker): so does it here.
        with audit.cli_caller(env), selectors.caller_directory(cwd), jobs.inline(settings.AO_EMBEDDED):
            command.execute(*positional, **options)
    except CommandError as exc:
        err.write(f"ao: {exc}\n")
        status = exc.returncode
    except DatabaseError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        err.write(f"ao: the database failed: {first}\n")
        status = 1
    finally:
        with contextlib.suppress(Exception):
            connections.close_all()  # this thread's
    return {"stdout": out.getvalue(), "stderr": err.getvalue(), "status": status}
