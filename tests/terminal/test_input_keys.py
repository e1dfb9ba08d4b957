"""The relay's input guard: what a terminal emulator answers on its own never reaches the pane."""

from __future__ import annotations

import pytest

from sessions.dashboard.terminal_filters import input_keys, mouse_reports_removed

REPLIES = {
    "DA1": "\x1b[?1;2c",
    "DA1 (VT102)": "\x1b[?6c",
    "DA2 (xterm.js)": "\x1b[>0;276;0c",
    "DA3": "\x1bP!|00000000\x1b\\",
    "CPR": "\x1b[12;40R",
    "CPR at column 17 of row 1": "\x1b[1;17R",
    "DECXCPR": "\x1b[?12;40;1R",
    "DSR ok": "\x1b[0n",
    "colour scheme report": "\x1b[?997;1n",
    "DECRPM (DEC mode)": "\x1b[?2004;2$y",
    "DECRPM (ANSI mode)": "\x1b[4;2$y",
    "OSC 11 reply (ST)": "\x1b]11;rgb:0707/0909/0d0d\x1b\\",
    "OSC 10 reply (BEL)": "\x1b]10;rgb:ffff/ffff/ffff\x07",
    "OSC 4 reply": "\x1b]4;1;rgb:cdcd/0000/0000\x1b\\",
    "XTVERSION": "\x1bP>|xterm.js(6.0.0)\x1b\\",
    "DECRQSS": "\x1bP1$r0m\x1b\\",
    "window size": "\x1b[8;24;80t",
    "kitty keyboard flags": "\x1b[?0u",
    "focus in": "\x1b[I",
    "focus out": "\x1b[O",
    "locator report": "\x1b[1;1;10;20;1&w",
}

KEYS = {
    "text": "echo hello é✓",
    "enter": "\r",
    "ctrl-c": "\x03",
    "escape": "\x1b",
    "alt-x": "\x1bx",
    "alt-[": "\x1b[",
    "alt-P": "\x1bP",
    "alt-]": "\x1b]",
    "up": "\x1b[A",
    "ctrl-left": "\x1b[1;5D",
    "app-mode up": "\x1bOA",
    "home": "\x1b[H",
    "F1": "\x1bOP",
    "ctrl-F3": "\x1b[1;5R",
    "F5": "\x1b[15~",
    "ctrl-delete": "\x1b[3;5~",
    "shift-tab": "\x1b[Z",
    "SGR mouse": "\x1b[<0;10;5M",
    "X10 mouse": "\x1b[M !!",
    "kitty key": "\x1b[97;5u",
    "bracketed paste": "\x1b[200~a pasted \x1b[>0;276;0c text\x1b[201~",
}


@pytest.mark.parametrize("reply", REPLIES.values(), ids=REPLIES.keys())
def test_a_terminal_reply_is_dropped(reply: str) -> None:
    assert input_keys(reply) == ""


@pytest.mark.parametrize("key", KEYS.values(), ids=KEYS.keys())
def test_a_key_is_kept_byte_for_byte(key: str) -> None:
    assert input_keys(key) == key


def test_replies_mixed_with_keys_leave_only_the_keys() -> None:
    mixed = "\x1b[>0;276;0ca\x1b[I\x1b[Db\x1b]11;rgb:0/0/0\x07\x1b[12;40Rc\x03"
    assert input_keys(mixed) == "a\x1b[Db" + "c\x03"


@pytest.mark.parametrize(
    "report",
    ["\x1b[<0;10;5M", "\x1b[<0;10;5m", "\x1b[<64;120;40M", "\x1b[M !!", "\x1b[M`\u00e0\u0100"],
    ids=["SGR press", "SGR release", "SGR wheel", "X10", "X10 past column 95"],
)
def test_mouse_reports_are_removed_and_keys_around_them_kept(report: str) -> None:
    typed = f"a{report}\x1b[A\x1b[1;5Mb{report}".encode()
    assert mouse_reports_removed(typed) == b"a\x1b[A\x1b[1;5Mb"
