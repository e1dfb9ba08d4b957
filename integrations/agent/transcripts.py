"""Reading an agent's own records: JSONL transcripts read from the end, a bounded number of bytes
at a time and only again when the file changed (``tail_entries``), running totals over a growing
file (``JsonlTotals``), and the small parsers the agent plugins share (timestamps, one-line
summaries, the newest file of a directory).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

TAIL_BYTES = 64 * 1024
SUMMARY_MAX = 120


# --- small helpers -----------------------------------------------------------------------------------
def one_line(text: str, limit: int = SUMMARY_MAX) -> str:
    """The first non-empty line of ``text``, whitespace-collapsed and cut to ``limit`` characters."""
    for line in str(text).splitlines():
        line = " ".join(line.split())
        if line:
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""


def parse_timestamp(value: Any) -> datetime | None:
    """An ISO-8601 timestamp ("2025-01-01T10:00:00.123Z") as an aware datetime, else None."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def mtime_of(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
    except OSError:
        return None


def newest_file(directory: Path, pattern: str) -> Path | None:
    """The most recently modified file in ``directory`` matching ``pattern``; None if there is none."""
    best: tuple[float, Path] | None = None
    try:
        candidates = list(directory.glob(pattern))
    except OSError:
        return None
    for candidate in candidates:
        try:
            stat = candidate.stat()
        except OSError:
            continue
        if not candidate.is_file():
            continue
        if best is None or stat.st_mtime > best[0]:
            best = (stat.st_mtime, candidate)
    return best[1] if best else None


# --- JSONL transcripts ---------------------------------------------------------------------------
def read_tail_lines(path: Path, max_bytes: int = TAIL_BYTES) -> list[str]:
    """The complete lines among the last ``max_bytes`` of ``path`` (oldest first).

    A line cut by the window's start is dropped; the last line is kept even without a newline
    (a writer may be mid-line: the JSON parser then rejects it). Missing file: [].
    """
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            start = max(0, size - max_bytes)
            handle.seek(start)
            data = handle.read(size - start)
    except OSError:
        return []
    if start > 0:
        newline = data.find(b"\n")
        data = b"" if newline < 0 else data[newline + 1 :]
    return [line for line in data.decode("utf-8", errors="replace").split("\n") if line.strip()]


def parse_jsonl(lines: Iterable[str]) -> list[dict[str, Any]]:
    """JSON objects from ``lines``; lines that are not a complete JSON object are skipped."""
    entries = []
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            entries.append(value)
    return entries


_TAIL_CACHE: dict[str, tuple[tuple[int, int, int], list[dict[str, Any]]]] = {}
_TAIL_CACHE_MAX = 1024
_tail_lock = threading.Lock()


def tail_entries(path: Path) -> list[dict[str, Any]]:
    """``parse_jsonl(read_tail_lines(path))``, read again only when the file's size, modification
    time or inode changed (every sweep reads every agent's transcript; most were not written
    since). The list is shared: callers must not change it."""
    try:
        stat = path.stat()
    except OSError:
        return []
    key = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
    cached = _TAIL_CACHE.get(str(path))
    if cached is not None and cached[0] == key:
        return cached[1]
    entries = parse_jsonl(read_tail_lines(path))
    with _tail_lock:
        if len(_TAIL_CACHE) >= _TAIL_CACHE_MAX:
            _TAIL_CACHE.clear()
        _TAIL_CACHE[str(path)] = (key, entries)
    return entries


def read_head_line(path: Path, max_bytes: int = 512 * 1024) -> dict[str, Any] | None:
    """The first line of a JSONL file as an object (None when absent, unparsable or too long)."""
    try:
        with path.open("rb") as handle:
            data = handle.readline(max_bytes)
    except OSError:
        return None
    entries = parse_jsonl([data.decode("utf-8", errors="replace")])
    return entries[0] if entries else None


class JsonlTotals:
    """Running totals over a growing JSONL file, reading only what was appended since last time.

    ``fold(state, entry)`` returns the new state. A file that shrank or was replaced is read
    again from the start. One instance per kind of total; safe across threads.
    """

    def __init__(self, fold: Callable[[Any, dict[str, Any]], Any], initial: Callable[[], Any]) -> None:
        self._fold = fold
        self._initial = initial
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[int, int, Any]] = {}  # path -> (inode, offset, state)

    def read(self, path: Path, *, chunk: int = 1024 * 1024) -> Any:
        key = str(path)
        with self._lock:
            try:
                stat = path.stat()
            except OSError:
                return self._initial()
            inode, offset, state = self._seen.get(key, (stat.st_ino, 0, None))
            if state is None or inode != stat.st_ino or stat.st_size < offset:
                offset, state = 0, self._initial()
            try:
                with path.open("rb") as handle:
                    handle.seek(offset)
                    while offset < stat.st_size:
                        data = handle.read(min(chunk, stat.st_size - offset))
                        if not data:
                            break
                        end = data.rfind(b"\n")
                        if end < 0:
                            if len(data) == chunk:  # one enormous line: skip past it
                                offset += len(data)
                                continue
                            break  # a partial last line: wait for its newline
                        for entry in parse_jsonl(
                            data[: end + 1].decode("utf-8", errors="replace").split("\n")
                        ):
                            state = self._fold(state, entry)
                        offset += end + 1
                        handle.seek(offset)
            except OSError:
                pass
            self._seen[key] = (stat.st_ino, offset, state)
            return state
