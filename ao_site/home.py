"""The ao home directory (``AO_HOME``, default ``~/.ao``) and the private files kept in it.

ao's database (SQLite) and secret key live here. They are made readable by ao's user only (0600)
whatever the umask and whatever the mode of an ``AO_HOME`` that existed before ao; an ``AO_HOME``
ao creates is 0700, and one that others can read or enter is warned about (ao does not change the
mode of a directory it did not create).
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

log = logging.getLogger("ao")

PRIVATE_FILE_MODE = 0o600


def ao_home() -> Path:
    """Return the ao home directory, creating it (mode 0700) on first use. (Every process reads
    this, agents' `ao report` included; `ao start` and `ao doctor` say when it is open to others.)"""
    home = Path(os.environ.get("AO_HOME") or Path.home() / ".ao").expanduser()
    home.parent.mkdir(parents=True, exist_ok=True)
    home.mkdir(mode=0o700, exist_ok=True)
    return home


def open_to_others(home: Path) -> str:
    """A one-line warning when ``home`` can be read or entered by other users, else ""."""
    try:
        mode = stat.S_IMODE(home.stat().st_mode)
    except OSError:
        return ""
    if not mode & 0o077:
        return ""
    return (
        f"AO_HOME {home} is open to other users (mode {mode:03o}); ao keeps its files there readable "
        f"by you only, but consider `chmod 700 {home}`"
    )


def private_file(path: Path, *, exclusive: bool = False) -> Path:
    """Create ``path`` if it is missing and make it readable and writable by its owner only
    (0600), whatever the umask or the directory's mode. SQLite gives the database's -wal and -shm
    files the database file's mode, so this covers them too. ``exclusive``: only if it is missing
    (a file someone else just created is left alone)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else 0), PRIVATE_FILE_MODE)
    except FileExistsError:
        return path
    except OSError as exc:
        log.warning("could not create %s as a private file: %s", path, exc)
        return path
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != PRIVATE_FILE_MODE:
            os.fchmod(fd, PRIVATE_FILE_MODE)
    except OSError as exc:  # not ours: say so rather than fail
        log.warning("could not make %s private (chmod 600): %s", path, exc)
    finally:
        os.close(fd)
    return path


def read_or_create_secret(path: Path, *, nbytes: int = 50) -> str:
    """Read a secret from ``path``; on first use generate one and write it with mode 0600 (an
    existing file open to others is made 0600).

    The file is created with O_EXCL so two processes starting at once agree on one secret.
    """
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        pass
    else:
        private_file(path)
        return value
    value = secrets.token_urlsafe(nbytes)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value
