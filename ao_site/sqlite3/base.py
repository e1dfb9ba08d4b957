"""Django's SQLite backend, with ao's database file private (0600) from the moment it exists.

SQLite creates a missing database file with the umask (often 0644) and gives its -wal and -shm
files the database file's mode; so the file is created (or an old readable one is made private)
just before a connection opens it: not at import, so a command that fails before it touches the
database leaves no file behind. An existing file is only chmod-ed by path, never opened: closing
any descriptor of a SQLite file drops the locks this process's connections hold on it.
"""

from __future__ import annotations

from pathlib import Path

from django.db.backends.sqlite3 import base

from ao_site.home import PRIVATE_FILE_MODE, private_file


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        name = str(conn_params.get("database") or "")
        if name and name != ":memory:" and not name.startswith("file:"):
            path = Path(name)
            try:
                if path.stat().st_mode & 0o777 != PRIVATE_FILE_MODE:
                    path.chmod(PRIVATE_FILE_MODE)
            except FileNotFoundError:
                private_file(path, exclusive=True)
            except OSError:
                pass  # not ours to chmod: SQLite's own error (if any) says more
        return super().get_new_connection(conn_params)
