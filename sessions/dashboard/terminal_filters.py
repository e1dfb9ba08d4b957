"""What passes the browser terminal, both ways: output without OSC 52 (clipboard write) sequences,
including ones split across reads, so no client can be made to write the viewer's clipboard; and
input that is keys, not the terminal's own answers. Pure: bytes and text in, bytes and text out.
"""

from __future__ import annotations

import re

# --- OSC 52 ---------------------------------------------------------------------------------------
_ESC, _BEL, _CAN, _SUB = 0x1B, 0x07, 0x18, 0x1A
_C1_OSC, _C1_ST = b"\xc2\x9d", b"\xc2\x9c"  # U+009D / U+009C, UTF-8 encoded
_HOLD_LIMIT = 32  # an OSC number longer than this is not 52: stop holding and pass it on


class Osc52Filter:
    """Removes OSC 52 (clipboard) sequences from a terminal byte stream, across chunk boundaries.

    An OSC starts with ``ESC ]`` or C1 ``U+009D``; its number is read like xterm.js does (so
    ``052`` is 52 too). A clipboard sequence is dropped up to and including its terminator: BEL,
    ``ESC \\`` or C1 ST; CAN or SUB abort it; any other ESC ends it and is kept (xterm.js ends an
    OSC there too). Bytes that may begin a sequence at the end of a chunk are held back until the
    next chunk decides.
    """

    def __init__(self) -> None:
        self._held = b""
        self._stripping = False
        self.stripped = 0  # sequences removed, for tests and logs

    def feed(self, chunk: bytes) -> bytes:
        if not self._held and not self._stripping and b"\x1b]" not in chunk and b"\x9d" not in chunk:
            if chunk.endswith((b"\x1b", b"\xc2")):
                self._held = chunk[-1:]
                return chunk[:-1]
            return chunk
        data = self._held + chunk
        self._held = b""
        out = bytearray()
        i, n = 0, len(data)
        while i < n:
            if self._stripping:
                i = self._skip(data, i)
                continue
            k = _next_osc(data, i)
            if k < 0:
                if data[n - 1] in (_ESC, 0xC2):
                    out += data[i : n - 1]
                    self._held = data[n - 1 :]
                else:
                    out += data[i:]
                break
            out += data[i:k]
            j = k + 2
            m = j
            while m < n and 0x30 <= data[m] <= 0x39:
                m += 1
            if m == n:  # the number may continue in the next chunk
                if n - k > _HOLD_LIMIT:
                    out += data[k:]
                else:
                    self._held = data[k:]
                break
            if data[j:m].lstrip(b"0") == b"52":
                self._stripping = True
                self.stripped += 1
                i = m
            else:
                out += data[k:m]
                i = m
        return bytes(out)

    def _skip(self, data: bytes, i: int) -> int:
        """Inside a clipboard sequence: drop up to its end; return where normal output resumes."""
        n = len(data)
        ends = [p for p in (data.find(b"\x07", i), data.find(b"\x18", i), data.find(b"\x1a", i)) if p >= 0]
        esc = data.find(b"\x1b", i)
        st = data.find(_C1_ST, i)
        first = min([*ends, *(p for p in (esc, st) if p >= 0)], default=-1)
        if first < 0:
            if data[n - 1] == 0xC2:
                self._held = data[n - 1 :]
            return n
        if first == esc:
            if esc + 1 == n:
                self._held = data[esc:]  # ESC at the very end: is it ESC \ ?
                return n
            self._stripping = False
            return esc + 2 if data[esc + 1] == 0x5C else esc
        self._stripping = False
        return first + (2 if first == st else 1)


def _next_osc(data: bytes, start: int) -> int:
    a, b = data.find(b"\x1b]", start), data.find(_C1_OSC, start)
    if a < 0:
        return b
    return a if b < 0 else min(a, b)


# --- input: keys, not the terminal's own answers ------------------------------------------------
# A terminal emulator writes to its input stream on its own: answers to queries (tmux asks every
# client for its device attributes on attach, and each viewer's xterm.js answers the copy in the
# replay) and focus events. Those belong to the emulator, not to the person; written to the pane
# they land on the agent's input line (``^[[>0;276;0c``). The browser does not produce them
# (static/ao/terminal.js); this is the server's guard, whatever a client sends.
_CSI_PARAM = range(0x30, 0x40)
_CSI_INTERMEDIATE = range(0x20, 0x30)
_CSI_FINAL = range(0x40, 0x7F)
_STRING_INTRODUCERS = "]P_^X"  # OSC, DCS, APC, PM, SOS: no key produces a terminated one
_PASTE_START, _PASTE_END = "\x1b[200~", "\x1b[201~"


def _csi_is_reply(params: str, intermediates: str, final: str) -> bool:
    """Whether a complete CSI sequence from a terminal is an answer rather than a key.

    Keys never carry a ``?``, ``>`` or ``=`` prefix (``<`` is an SGR mouse report: kept). Without
    a prefix, replies end in ``c`` (device attributes), ``n`` (status), ``R`` (cursor position;
    ``1;<modifier>R`` is a modified F3 and kept), ``$y`` (mode report), ``t`` (window report),
    ``&w`` (locator) or are a bare ``I``/``O`` (focus in/out).
    """
    if params[:1] in ("?", ">", "="):
        return True
    if final in "cnt" or (final == "y" and intermediates == "$") or (final == "w" and intermediates == "&"):
        return True
    if final == "R":
        first, _, modifier = params.partition(";")
        return not (first == "1" and modifier.isdigit() and 2 <= int(modifier) <= 16)
    return final in "IO" and not params and not intermediates


def input_keys(text: str) -> str:
    """``text`` (one input event of a browser terminal) without the terminal's own answers.

    Dropped: device attributes (DA1/DA2/DA3), cursor and status reports (CPR, DECXCPR, DSR),
    mode reports (DECRPM), window reports, kitty keyboard flags, focus in/out, and every complete
    OSC/DCS/APC/PM/SOS string (colour replies, XTVERSION, DECRQSS). Kept: everything a key or the
    mouse sends (arrows, function keys, Alt+x, control characters), and a bracketed paste as is.
    An unfinished sequence at the end is kept: it is a key (Alt+[ is ``ESC [``, Alt+P ``ESC P``).
    """
    if "\x1b" not in text:
        return text
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        esc = text.find("\x1b", i)
        if esc < 0:
            out.append(text[i:])
            break
        out.append(text[i:esc])
        if text.startswith(_PASTE_START, esc):  # a paste is what the person pasted, byte for byte
            end = text.find(_PASTE_END, esc)
            stop = n if end < 0 else end + len(_PASTE_END)
            out.append(text[esc:stop])
            i = stop
            continue
        kind = text[esc + 1 : esc + 2]
        if kind == "[":
            j = esc + 2
            while j < n and ord(text[j]) in _CSI_PARAM:
                j += 1
            k = j
            while k < n and ord(text[k]) in _CSI_INTERMEDIATE:
                k += 1
            if k < n and ord(text[k]) in _CSI_FINAL:
                if not _csi_is_reply(text[esc + 2 : j], text[j:k], text[k]):
                    out.append(text[esc : k + 1])
                i = k + 1
                continue
        elif kind and kind in _STRING_INTRODUCERS:
            end = _string_end(text, esc + 2, bel=kind == "]")
            if end > 0:
                i = end
                continue
        # a key: ESC alone, Alt+<char>, SS3 (ESC O P) or an unfinished sequence
        out.append("\x1b")
        i = esc + 1
    return "".join(out)


def _string_end(text: str, start: int, *, bel: bool) -> int:
    """Where a string sequence that starts at ``start`` ends (after ST, or BEL for OSC); 0 if open."""
    st = text.find("\x1b\\", start)
    stop = st + 2 if st >= 0 else 0
    if bel:
        b = text.find("\x07", start)
        if b >= 0 and (not stop or b < st):
            stop = b + 1
    return stop


# --- mouse reporting, turned on by tmux for its own client ----------------------------------------
_MOUSE_MODES = frozenset({b"9", b"1000", b"1001", b"1002", b"1003", b"1005", b"1006", b"1015", b"1016"})
_DEC_SET = re.compile(rb"\x1b\[\?([0-9;]*)h")
_DEC_HOLD = 24  # longer than any mode list tmux writes: not held past this


class MouseModeFilter:
    """Removes the mouse-reporting modes (X10, normal, button, any-event, UTF-8, SGR, urxvt, pixel)
    from DEC private mode sets (``ESC [ ? 1000 ; 1006 h``) in a tmux client's output, across chunk
    boundaries. tmux turns them on for its own bindings (a person's ``mouse on``); the browser
    terminal types into the pane past them, so without the modes the browser keeps its own mouse:
    selecting text and scrolling its buffer with the wheel."""

    def __init__(self) -> None:
        self._held = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._held + chunk
        self._held = b""
        cut = data.rfind(b"\x1b")
        if cut >= 0 and len(data) - cut <= _DEC_HOLD and _open_dec_set(data[cut:]):
            data, self._held = data[:cut], data[cut:]
        if b"\x1b[?" not in data:
            return data
        return _DEC_SET.sub(_without_mouse_modes, data)


def _open_dec_set(tail: bytes) -> bool:
    """Whether ``tail`` (from an ESC to the chunk's end) may still become a DEC private mode set."""
    return b"\x1b[?".startswith(tail[:3]) and all(48 <= c <= 57 or c == 59 for c in tail[3:])


def _without_mouse_modes(match: re.Match) -> bytes:
    modes = [m for m in match.group(1).split(b";") if m not in _MOUSE_MODES]
    if len(modes) == len(match.group(1).split(b";")):
        return match.group(0)
    return b"\x1b[?" + b";".join(modes) + b"h" if modes else b""


# --- mouse reports, for a pane typed into past its tmux client ------------------------------------
# A browser terminal reports the mouse once tmux turned reporting on (a person's `mouse on`): SGR
# (``ESC [ < b ; x ; y M|m``) or X10 (``ESC [ M`` and three characters, UTF-8 past column 95). They
# are tmux's client's, in its coordinates (status line, other panes); typed into the pane they are
# garbage on the agent's input line.
_MOUSE_REPORT = re.compile(rb"\x1b\[<\d+;\d+;\d+[Mm]|\x1b\[M(?:[\x20-\x7f]|[\xc2-\xdf][\x80-\xbf]){3}")


def mouse_reports_removed(data: bytes) -> bytes:
    """``data`` (one input event, UTF-8) without mouse reports."""
    return _MOUSE_REPORT.sub(b"", data) if b"\x1b[" in data else data
