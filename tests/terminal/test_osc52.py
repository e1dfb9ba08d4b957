"""The OSC 52 (clipboard write) filter: pure, fast."""

from __future__ import annotations

import pytest

from sessions.dashboard.terminal_filters import MouseModeFilter, Osc52Filter

CLIP = b"\x1b]52;c;ZXZpbA==\x07"


def run(chunks: list[bytes]) -> bytes:
    f = Osc52Filter()
    return b"".join(f.feed(c) for c in chunks)


def every_split(data: bytes) -> list[list[bytes]]:
    return [[data[:i], data[i:]] for i in range(len(data) + 1)]


@pytest.mark.parametrize(
    "sequence",
    [
        b"\x1b]52;c;ZXZpbA==\x07",  # BEL
        b"\x1b]52;c;ZXZpbA==\x1b\\",  # ESC backslash
        b"\x1b]052;c;ZXZpbA==\x07",  # xterm.js reads 052 as 52
        b"\x1b]52;;ZXZpbA==\x07",
        b"\xc2\x9d52;c;ZXZpbA==\xc2\x9c",  # C1 OSC and ST, UTF-8 encoded
        b"\x1b]52;c;ZXZpbA==\x18",  # CAN aborts
    ],
)
def test_clipboard_sequence_is_removed_at_every_split_point(sequence: bytes) -> None:
    data = b"before " + sequence + b" after"
    for chunks in every_split(data):
        assert run(chunks) == b"before  after", chunks


def test_split_into_single_bytes() -> None:
    data = b"a" + CLIP + b"b\x1b]52;p;eA==\x1b\\c"

    assert run([bytes([x]) for x in data]) == b"abc"


def test_other_osc_sequences_and_text_pass_unchanged_at_every_split_point() -> None:
    data = "title \x1b]0;my title\x07 link \x1b]8;;http://x\x1b\\x\x1b]8;;\x1b\\ é°\x1b[31mred\x1b[0m ┌─┐".encode()
    for chunks in every_split(data):
        assert run(chunks) == data, chunks


def test_osc_5_and_520_are_not_52() -> None:
    data = b"\x1b]5;x\x07\x1b]520;y\x07"

    assert run([data]) == data


def test_another_escape_ends_the_clipboard_sequence_and_is_kept() -> None:
    assert run([b"\x1b]52;c;abc\x1b[31mred"]) == b"\x1b[31mred"


def test_an_unterminated_clipboard_sequence_swallows_what_xterm_would_swallow() -> None:
    f = Osc52Filter()

    assert f.feed(b"x\x1b]52;c;" + b"A" * 100_000) == b"x"
    assert f.feed(b"B" * 10) == b""
    assert f.feed(b"\x07done") == b"done"
    assert f.stripped == 1


def test_chunk_ending_in_esc_is_completed_by_the_next() -> None:
    f = Osc52Filter()

    assert f.feed(b"abc\x1b") == b"abc"
    assert f.feed(b"[0m") == b"\x1b[0m"


# --- the mouse modes tmux turns on for its own client (a person's `mouse on`) ----------------------
MOUSE_ON = b"\x1b[?1006h\x1b[?1000h\x1b[?1002h"  # what tmux writes to a client with `mouse on`


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64])
def test_mouse_modes_are_taken_out_in_any_chunking_and_other_modes_kept(size: int) -> None:
    stream = (
        b"hello\x1b[?1049h" + MOUSE_ON + b"\x1b[?25h\x1b[?1000;2004;1006h\x1b[?1000l\x1b[A\x1b[?1h world\x1b"
    )
    mouse = MouseModeFilter()
    out = b"".join(mouse.feed(stream[i : i + size]) for i in range(0, len(stream), size))
    assert (
        out + mouse.feed(b"[?9h!") == b"hello\x1b[?1049h\x1b[?25h\x1b[?2004h\x1b[?1000l\x1b[A\x1b[?1h world!"
    )
