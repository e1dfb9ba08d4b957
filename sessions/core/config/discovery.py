"""Finding ao's config file: ``AO_CONFIG``, else the nearest ``ao.config.yaml`` (or a reference
``agent-orchestrator.yaml``) from the current directory upwards. Reading it is ``loading``'s: a
caller that finds no file (``ao status`` run outside any project) loads neither the schema nor YAML.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from django.conf import settings

from sessions.core.config.problems import ConfigError, problem_error

CONFIG_FILENAME = "ao.config.yaml"
REFERENCE_FILENAME = "agent-orchestrator.yaml"
# Looked for in this order in each directory, from the start directory upwards.
CONFIG_FILENAMES = ("ao.config.yaml", "ao.config.yml", "agent-orchestrator.yaml", "agent-orchestrator.yml")

_discovered: ContextVar[tuple[Path | None] | None] = ContextVar("config_discovered", default=None)


@contextmanager
def discovery_pinned() -> Iterator[None]:
    """Within it, ``config_discover()`` (from the current directory) looks for the config file
    once: a sweep asked three times per session (for the top-level reactions), searching every
    directory upwards each time. The file's content is still read afresh by its callers when it
    changes (they compare its stat)."""
    try:
        found: tuple[Path | None] | None = (config_discover(),)
    except ConfigError:
        found = None  # said by each caller as before
    token = _discovered.set(found)
    try:
        yield
    finally:
        _discovered.reset(token)


def config_discover(start: Path | None = None) -> Path | None:
    """The config file to use: AO_CONFIG if set, else the nearest one from ``start`` upwards.

    ``start`` defaults to the current directory. Returns None when there is none; raises
    ConfigError when AO_CONFIG names something that does not exist.
    """
    pinned = _discovered.get() if start is None else None
    if pinned is not None:
        return pinned[0]
    named = getattr(settings, "AO_CONFIG", "") or os.environ.get("AO_CONFIG", "")
    if named:
        target = Path(os.path.expanduser(named)).absolute()
        if target.is_dir():
            found = _config_in(target)
            if found is None:
                raise problem_error(
                    target,
                    f"AO_CONFIG names this directory, which holds none of {', '.join(CONFIG_FILENAMES)}",
                )
            return found
        if not target.exists():
            raise problem_error(target, "AO_CONFIG names this file, which does not exist")
        return target
    here = Path(start if start is not None else Path.cwd()).absolute()
    for directory in (here, *here.parents):
        found = _config_in(directory)
        if found is not None:
            return found
    return None


def _config_in(directory: Path) -> Path | None:
    for name in CONFIG_FILENAMES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None
