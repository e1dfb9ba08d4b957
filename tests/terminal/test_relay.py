"""The relay against a real tmux (isolated socket) and a real program in the pane, no mocks."""

from __future__ import annotations

import asyncio
import base64
import sys
import time
import uuid

import pytest

from integrations.records import RuntimeHandle
from sessions.dashboard import terminal, terminal_relay
from sessions.dashboard.terminal_relay import TerminalTarget
from tests.helpers.fixtures import wait_for
from tests.terminal.conftest import PROMPT, at_prompt, pane_text, start_shell, tmux

pytestmark = pytest.mark.slow


def target(socket_name: str, name: str, *, runtime: str = "tmux", data: dict | None = None) -> TerminalTarget:
    return TerminalTarget(
        session_id=name,
        project_id=1,
        handle=RuntimeHandle(runtime=runtime, name=name, data=data or {"socket_name": socket_name}),
        socket_name=socket_name if runtime == "tmux" else None,
        cols=80,
        rows=24,
        may_type=True,
    )


async def collect(sub: terminal_relay.Subscriber, until: bytes, timeout: float = 5.0) -> bytes:
    """Read a subscriber until ``until`` shows up in its data; fail after ``timeout``."""
    seen = bytearray()
    deadline = time.monotonic() + timeout
    while until not in seen:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{until!r} not received within {timeout} s; got {bytes(seen[-500:])!r}")
        try:
            kind, value = await asyncio.wait_for(sub.get(), remaining)
        except TimeoutError:
            continue
        if kind in ("data", "resync"):
            seen += value
        assert kind != "closed", value
    return bytes(seen)


async def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def test_output_arrives_and_operator_input_reaches_the_pane(tmux_socket: str, shell_session: str) -> None:
    async def scenario() -> None:
        relay, sub, _ = await terminal.relay_join(target(tmux_socket, shell_session), may_type=True)
        try:
            await collect(sub, PROMPT.encode())  # tmux draws the screen on attach
            relay.write(b"echo relay-$((40+2))\r")
            await collect(sub, b"relay-42")
        finally:
            terminal.relay_leave(relay, sub)
        assert relay.ended
        assert terminal.relays_running() == []

    asyncio.run(scenario())
    assert "relay-42" in pane_text(tmux_socket, shell_session)


def test_two_viewers_share_one_relay_and_a_late_joiner_gets_the_replay(
    tmux_socket: str, shell_session: str
) -> None:
    async def scenario() -> None:
        first_relay, first, _ = await terminal.relay_join(target(tmux_socket, shell_session), may_type=True)
        first_relay.write(b"echo early-$((1+1))\r")
        await collect(first, b"early-2")

        relay, second, replay = await terminal.relay_join(target(tmux_socket, shell_session), may_type=False)
        assert relay is first_relay and len(relay.subscribers) == 2
        assert b"early-2" in replay

        relay.write(b"echo both-$((2+2))\r")
        await collect(first, b"both-4")
        await collect(second, b"both-4")

        terminal.relay_leave(relay, first)
        assert not relay.ended  # one viewer left
        terminal.relay_leave(relay, second)
        assert relay.ended

    asyncio.run(scenario())
    assert tmux(tmux_socket, "list-clients", "-F", "#{client_tty}").strip() == "" or wait_for(
        lambda: tmux(tmux_socket, "list-clients", "-F", "#{client_tty}").strip() == "", timeout=3
    )


def test_operator_resize_changes_the_window_and_a_viewer_resize_does_not(
    tmux_socket: str, shell_session: str
) -> None:
    def size() -> str:
        return tmux(
            tmux_socket, "display", "-p", "-t", f"={shell_session}:", "#{window_width}x#{window_height}"
        )

    async def scenario() -> None:
        relay, operator, _ = await terminal.relay_join(target(tmux_socket, shell_session), may_type=True)
        _, viewer, _ = await terminal.relay_join(target(tmux_socket, shell_session), may_type=False)
        try:
            assert relay.resize(viewer, 50, 10) is False
            assert relay.resize(operator, 100, 30) is True
            assert await wait_until(lambda: size().strip() == "100x29")  # one row is tmux's status line
            assert viewer.get_nowait() == ("size", (100, 30))  # every viewer adopts the shared size
        finally:
            terminal.relay_leave(relay, operator)
            terminal.relay_leave(relay, viewer)

    asyncio.run(scenario())


def test_flood_keeps_memory_bounded_and_ctrl_c_stops_it_promptly(
    tmux_socket: str, shell_session: str
) -> None:
    samples: list[tuple[int, int, int]] = []

    async def scenario() -> float:
        relay, fast, _ = await terminal.relay_join(target(tmux_socket, shell_session), may_type=True)
        _, stuck, _ = await terminal.relay_join(target(tmux_socket, shell_session), may_type=False)
        received = 0

        async def read_fast() -> None:
            nonlocal received
            while True:
                kind, value = await fast.get()
                if kind in ("data", "resync"):
                    received += len(value)

        reader = asyncio.create_task(read_fast())
        try:
            relay.write(b"yes " + b"flood-" * 20 + b"\r")
            # Flood for 2 s, and (on a loaded machine) until the stuck viewer's cap has been hit.
            started = time.monotonic()
            while time.monotonic() - started < 2.0 or (
                stuck.resyncs == 0 and time.monotonic() - started < 10
            ):
                samples.append((stuck.pending, fast.pending, len(relay.replay)))
                await asyncio.sleep(0.01)
            assert relay.bytes_in > terminal_relay.VIEWER_QUEUE_BYTES  # a real flood went through
            assert stuck.resyncs >= 1  # the viewer who never reads was resynced, not queued forever

            relay.write(b"\x03")
            # Ctrl-C gets through the saturated viewers' queues: the flood stops
            stopped = await wait_until(lambda: at_prompt(tmux_socket, shell_session), 15.0)
            assert stopped, pane_text(tmux_socket, shell_session)
        finally:
            reader.cancel()
            terminal.relay_leave(relay, fast)
            terminal.relay_leave(relay, stuck)

    asyncio.run(scenario())
    assert max(s[0] for s in samples) <= terminal_relay.VIEWER_QUEUE_BYTES
    assert max(s[1] for s in samples) <= terminal_relay.VIEWER_QUEUE_BYTES
    assert max(s[2] for s in samples) <= terminal_relay.REPLAY_BYTES


def test_reader_pauses_when_every_viewer_is_saturated_and_ctrl_c_still_gets_through(
    tmux_socket: str, shell_session: str
) -> None:
    async def scenario() -> None:
        relay, stuck, _ = await terminal.relay_join(target(tmux_socket, shell_session), may_type=True)
        try:
            relay.write(b"yes\r")
            assert await wait_until(lambda: relay.paused, 3.0)
            await asyncio.sleep(0.5)
            assert relay.paused
            assert stuck.pending <= terminal_relay.VIEWER_QUEUE_BYTES
            relay.write(b"\x03")
            assert await wait_until(lambda: at_prompt(tmux_socket, shell_session), 3.0)
        finally:
            terminal.relay_leave(relay, stuck)

    asyncio.run(scenario())


# A pane that records every byte it is given (raw mode: no line discipline in the way), in hex.
BYTE_LOGGER = (
    "import os, sys, tty\n"
    "tty.setraw(0)\n"
    "with open(sys.argv[1], 'a') as log:\n"
    "    while True:\n"
    "        data = os.read(0, 4096)\n"
    "        if not data:\n"
    "            break\n"
    "        log.write(data.hex()); log.flush()\n"
)


def test_the_agent_gets_exactly_the_bytes_typed_and_tmux_none_of_them(tmux_socket: str, tmp_path) -> None:
    """The browser terminal is the agent's keyboard, not tmux's: the prefix key and what follows it
    (new window: a shell as ao's user; next session: another project's agent; detach) reach the
    agent as typed, and tmux runs none of them. The same bytes with any other content: control
    characters, an arrow key, UTF-8, NUL; but not the mouse reports of tmux's client."""
    name, other = f"term-{uuid.uuid4().hex[:8]}", f"term-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "keys.hex"
    tmux(tmux_socket, "new-session", "-d", "-s", name, "--", sys.executable, "-c", BYTE_LOGGER, str(log))
    start_shell(tmux_socket, other)
    clicks = [b"\x1b[<0;10;5M", b"\x1b[<0;10;5m", b"\x1b[<64;3;3M", "\x1b[M ~\u0100".encode()]
    typed = [
        b"\x02c",
        b"\x02)",
        b"\x02s",
        b"\x02d",
        b"\x02:new-window\r",
        "h\u00e9\u2603 \x1b[A\x00\x03\x7f\r".encode(),
    ]

    async def scenario() -> str:
        assert await wait_until(log.exists, 10.0)  # the pane is in raw mode: Ctrl-C is a byte, not a signal
        relay, sub, _ = await terminal.relay_join(target(tmux_socket, name), may_type=True)
        try:
            for keys in typed:
                relay.write(keys)
                relay.write(clicks[len(keys) % len(clicks)])  # a person's `mouse on`: not the agent's
            expected = b"".join(typed).hex()
            assert await wait_until(lambda: len(log.read_text()) >= len(expected), 10.0), log.read_text()
            await asyncio.sleep(0.3)  # anything tmux would have done by now
            clients = tmux(tmux_socket, "list-clients", "-F", "#{client_session}").split()
            assert not relay.ended, relay.ended  # not detached
            return " ".join(clients)
        finally:
            terminal.relay_leave(relay, sub)

    try:
        clients = asyncio.run(scenario())
        assert log.read_text() == b"".join(typed).hex()
        assert clients == name  # the relay's client did not move to the other session
        assert len(tmux(tmux_socket, "list-windows", "-t", f"={name}").splitlines()) == 1
        assert at_prompt(tmux_socket, other)
    finally:
        tmux(tmux_socket, "kill-session", "-t", f"={name}", check=False)
        tmux(tmux_socket, "kill-session", "-t", f"={other}", check=False)


def test_a_large_paste_reaches_the_agent_whole_and_in_order(tmux_socket: str, tmp_path) -> None:
    """A paste of 40 KB (a log, a file), then a key: all of it arrives, in order (tmux refuses a
    command over 16 KB: the relay sends it in parts)."""
    name = f"term-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "keys.hex"
    tmux(tmux_socket, "new-session", "-d", "-s", name, "--", sys.executable, "-c", BYTE_LOGGER, str(log))
    paste = b"\x1b[200~" + b"".join(b"line %05d of the pasted log\r" % n for n in range(1400)) + b"\x1b[201~"
    typed = [paste, b"x"]

    async def scenario() -> None:
        assert await wait_until(log.exists, 10.0)
        relay, sub, _ = await terminal.relay_join(target(tmux_socket, name), may_type=True)
        try:
            for keys in typed:
                relay.write(keys)
            expected = len(b"".join(typed).hex())
            assert await wait_until(lambda: len(log.read_text()) >= expected, 20.0), len(log.read_text())
        finally:
            terminal.relay_leave(relay, sub)

    try:
        asyncio.run(scenario())
        assert len(paste) > 40_000
        assert log.read_text() == b"".join(typed).hex()
    finally:
        tmux(tmux_socket, "kill-session", "-t", f"={name}", check=False)


def test_a_persons_tmux_mouse_on_leaves_the_browser_its_own_mouse(
    tmux_socket: str, shell_session: str
) -> None:
    """With `mouse on` tmux turns the client's mouse reporting on; the browser types past tmux, so
    its viewers never get those modes (their wheel scrolls, their drag selects) and the rest is kept."""
    tmux(tmux_socket, "set-option", "-g", "mouse", "on")

    async def scenario() -> bytes:
        relay, sub, _ = await terminal.relay_join(target(tmux_socket, shell_session), may_type=True)
        try:
            seen = await collect(sub, PROMPT.encode())
            relay.request_repaint()
            relay.write(b"echo mouse-$((2*4))\r")
            return seen + await collect(sub, b"mouse-8")
        finally:
            terminal.relay_leave(relay, sub)

    try:
        seen = asyncio.run(scenario())
    finally:
        tmux(tmux_socket, "set-option", "-g", "mouse", "off")
    assert b"\x1b[?1049h" in seen  # tmux's other modes pass
    for mode in (b"1000", b"1002", b"1006"):
        assert b"\x1b[?" + mode + b"h" not in seen


def test_osc52_from_the_pane_never_reaches_viewers(tmux_socket: str, shell_session: str) -> None:
    # With set-clipboard on, tmux forwards an application's OSC 52 to its attached clients.
    tmux(tmux_socket, "set-option", "-s", "set-clipboard", "on")
    payload = base64.b64encode(b"rm -rf ~").decode()

    # The typed command holds neither the sequence's introducer nor its payload, only the pane's output.
    command = "printf '\\033]5%s;c;%s\\a' 2 \"$(printf 'rm -rf ~' | base64)\"; echo clip-$((3*3))\r"

    async def scenario() -> tuple[bytes, int]:
        relay, sub, _ = await terminal.relay_join(target(tmux_socket, shell_session), may_type=True)
        try:
            await collect(sub, PROMPT.encode())
            relay.write(command.encode())
            return await collect(sub, b"clip-9"), relay._filter.stripped
        finally:
            terminal.relay_leave(relay, sub)

    try:
        seen, stripped = asyncio.run(scenario())
        forwarded = tmux(tmux_socket, "list-buffers", "-F", "#{buffer_sample}")
    finally:
        tmux(tmux_socket, "set-option", "-s", "set-clipboard", "external")
    assert "rm -rf ~" in forwarded  # tmux did take the clipboard write ...
    assert stripped == 1  # ... forwarded it to the relay's client, and the relay removed it:
    assert b"\x1b]52" not in seen
    assert payload.encode() not in seen


def test_process_runtime_session_streams_through_its_ring_buffer(process_runtime, tmp_path) -> None:
    program = (
        "import sys, time\n"
        "sys.stdout.write('hello-proc\\r\\n\\x1b]5'); sys.stdout.flush(); time.sleep(0.2)\n"
        "sys.stdout.write('2;c;ZXZpbA==\\x07after-clip\\r\\n'); sys.stdout.flush()\n"
        "for line in sys.stdin:\n    print('got:' + line.strip(), flush=True)\n"
    )
    handle = process_runtime.start(
        name="proc-term", cwd=tmp_path, command=[sys.executable, "-u", "-c", program], env={}
    )

    async def scenario() -> tuple[bytes, bytes]:
        relay, sub, replay = await terminal.relay_join(
            target("", "proc-term", runtime="process", data=handle.data), may_type=True
        )
        try:
            seen = await collect(sub, b"after-clip") if b"after-clip" not in replay else replay
            relay.write(b"typed\r")
            seen += await collect(sub, b"got:typed")
            return replay, seen
        finally:
            terminal.relay_leave(relay, sub)

    try:
        replay, seen = asyncio.run(scenario())
    finally:
        process_runtime.kill(handle)
    assert b"hello-proc" in replay + seen
    assert b"]52" not in replay + seen and b"ZXZpbA" not in replay + seen


def test_process_session_of_another_ao_process_is_not_attachable() -> None:
    async def scenario() -> None:
        with pytest.raises(terminal_relay.NotAttachable, match="not running in this ao process"):
            await terminal.relay_join(
                target("", "proc-elsewhere", runtime="process", data={"pid": 1, "owner_pid": 1}),
                may_type=True,
            )

    asyncio.run(scenario())
    assert terminal.relays_running() == []
