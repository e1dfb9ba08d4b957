"""Helpers for tests that call ao's commands in-process."""

from __future__ import annotations

import io


class CtrlCAfter(io.StringIO):
    """A terminal for `ao status --watch`: between frames it runs ``between`` (the world changes);
    after ``frames`` frames the person presses Ctrl-C."""

    def __init__(self, frames: int, between) -> None:
        super().__init__()
        self.frames, self.between, self.seen = frames, between, 0

    def flush(self) -> None:
        self.seen += 1
        if self.seen >= self.frames:
            raise KeyboardInterrupt
        self.between()
