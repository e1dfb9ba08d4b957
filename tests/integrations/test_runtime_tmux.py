from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from integrations.base import PermanentIntegrationError, RuntimeGone
from integrations.records import RuntimeHandle
from integrations.registry import runtimes
from integrations.runtime.tmux import TmuxRuntime
from sessions.domain.lifecycle import RuntimeState
from tests.helpers.fixtures import ECHO_PROGRAM, kill_tmux_server, wait_for


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def output_has(runtime, handle, needle: str, lines: int = 200):
    return wait_for(lambda: needle in runtime.read_output(handle, lines=lines))


def test_registered_with_a_validated_config() -> None:
    assert runtimes.get("tmux") is TmuxRuntime
    assert runtimes.create("tmux", {"socket_name": "ao-x"}).config.socket_name == "ao-x"
    with pytest.raises(Exception, match="socket"):
        runtimes.create("tmux", {"socket_name": "a b; rm"})


@pytest.mark.slow
def test_full_lifecycle(tmux_runtime: TmuxRuntime, tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    hostile = ["a b", "c;", f"$(touch {pwned})", f"`touch {pwned}`", "-x", "tail\\;"]
    name = unique()
    handle = tmux_runtime.start(
        name=name,
        cwd=tmp_path,
        command=[sys.executable, "-c", ECHO_PROGRAM, *hostile],
        env={"AO_TEST_VAR": "value with spaces; $(touch pwned)"},
    )
    try:
        assert handle.runtime == "tmux" and handle.name == name and handle.data["pane_id"].startswith("%")
        assert output_has(tmux_runtime, handle, "ready")
        out = tmux_runtime.read_output(handle)
        assert 'argv=["a b", "c;", "$(touch ' in out and '"-x", "tail\\\\;"]' in out
        assert "env=value with spaces; $(touch pwned)" in out
        assert f"cwd={tmp_path}" in out
        assert tmux_runtime.probe(handle) == RuntimeState.ALIVE
        assert tmux_runtime.is_alive(handle)

        tmux_runtime.send_text(handle, f"hello; $(touch {pwned}) `x` 'q' \"d\"\x07\x1b[31m")
        assert output_has(tmux_runtime, handle, f"got:hello; $(touch {pwned}) `x` 'q' \"d\"[31m")
        tmux_runtime.send_text(handle, "ends with;")
        assert output_has(tmux_runtime, handle, "got:ends with;")
        tmux_runtime.send_text(handle, "-dash first")
        assert output_has(tmux_runtime, handle, "got:-dash first")

        tmux_runtime.send_text(handle, "line one\nline two\r\nline three")
        assert output_has(tmux_runtime, handle, "got:line three</P>")
        got = re.findall(r"got:.*", tmux_runtime.read_output(handle))  # echo and output share rows
        assert got[-3:] == ["got:<P>line one", "got:line two", "got:line three</P>"]

        long_text = "long " + "x" * 300
        tmux_runtime.send_text(handle, long_text)
        assert output_has(tmux_runtime, handle, f"got:<P>{long_text}</P>", lines=50)
        assert not pwned.exists()

        tail = tmux_runtime.read_output(handle, lines=3)
        assert len(tail.split("\n")) == 3

        tmux_runtime.send_text(handle, "quit")
        assert wait_for(lambda: tmux_runtime.probe(handle) == RuntimeState.EXITED)
        assert not tmux_runtime.is_alive(handle)
        assert "bye" in tmux_runtime.read_output(handle)  # the dead pane stays readable
        with pytest.raises(RuntimeGone):
            tmux_runtime.send_text(handle, "anyone there?")
    finally:
        tmux_runtime.kill(handle)
    assert tmux_runtime.probe(handle) == RuntimeState.LOST
    with pytest.raises(RuntimeGone):
        tmux_runtime.send_text(handle, "hello")
    with pytest.raises(RuntimeGone):
        tmux_runtime.read_output(handle)
    tmux_runtime.kill(handle)  # idempotent


@pytest.mark.slow
def test_missing_binary_gives_exited_with_a_message(tmux_runtime: TmuxRuntime, tmp_path: Path) -> None:
    handle = tmux_runtime.start(name=unique(), cwd=tmp_path, command=["no-such-agent-binary", "--x"], env={})
    try:
        assert wait_for(lambda: tmux_runtime.probe(handle) == RuntimeState.EXITED)
        assert "ao: cannot run 'no-such-agent-binary'" in tmux_runtime.read_output(handle)
    finally:
        tmux_runtime.kill(handle)


@pytest.mark.slow
def test_duplicate_names_and_bad_input_are_refused(tmux_runtime: TmuxRuntime, tmp_path: Path) -> None:
    name = unique()
    handle = tmux_runtime.start(name=name, cwd=tmp_path, command=["sleep", "30"], env={})
    try:
        with pytest.raises(PermanentIntegrationError, match="already exists"):
            tmux_runtime.start(name=name, cwd=tmp_path, command=["sleep", "30"], env={})
    finally:
        tmux_runtime.kill(handle)
    for bad in ("a.b", "a:b", "-x", "", "a b", "$(id)"):
        with pytest.raises(PermanentIntegrationError):
            tmux_runtime.start(name=bad, cwd=tmp_path, command=["true"], env={})
    with pytest.raises(PermanentIntegrationError, match="argv list"):
        tmux_runtime.start(name=unique(), cwd=tmp_path, command="echo hi", env={})  # type: ignore[arg-type]
    with pytest.raises(PermanentIntegrationError, match="environment"):
        tmux_runtime.start(name=unique(), cwd=tmp_path, command=["true"], env={"A=B": "x"})


@pytest.mark.slow
def test_dead_server_is_lost_not_an_exception(tmp_path: Path) -> None:
    socket_name = unique("ao-test-dead")
    runtime = TmuxRuntime(TmuxRuntime.Config(socket_name=socket_name))
    handle = runtime.start(name="ao-1", cwd=tmp_path, command=["sleep", "30"], env={})
    assert runtime.probe(handle) == RuntimeState.ALIVE
    socket_path = handle.data["socket_path"]
    assert Path(socket_path).name == socket_name and Path(socket_path).is_socket()
    assert runtime.attach_command(handle) == ["tmux", "-S", socket_path, "attach-session", "-t", "=ao-1"]
    # a person's shell whose TMUX_TMPDIR is not ao's finds the session with that command
    shell = {k: v for k, v in os.environ.items() if k not in ("TMUX_TMPDIR", "TMUX")}
    shell["TMUX_TMPDIR"] = str(tmp_path)
    found = subprocess.run(["tmux", "-S", socket_path, "has-session", "-t", "=ao-1"], env=shell, check=False)
    assert found.returncode == 0
    # one stored before ao kept the path: the socket's name, as before
    old = RuntimeHandle(runtime="tmux", name="ao-1", data={"socket_name": socket_name})
    assert runtime.attach_command(old) == ["tmux", "-L", socket_name, "attach-session", "-t", "=ao-1"]

    kill_tmux_server(socket_name)

    assert runtime.probe(handle) == RuntimeState.LOST
    assert not runtime.is_alive(handle)
    runtime.kill(handle)
    never_started = RuntimeHandle(runtime="tmux", name="ao-2", data={"socket_name": unique("ao-test-none")})
    assert runtime.probe(never_started) == RuntimeState.LOST


@pytest.mark.slow
def test_probe_failure_is_reported_not_raised(tmux_socket: str, tmp_path: Path) -> None:
    runtime = TmuxRuntime(TmuxRuntime.Config(socket_name=tmux_socket, command_timeout=1e-6))
    handle = RuntimeHandle(runtime="tmux", name="ao-1", data={"socket_name": tmux_socket})
    assert runtime.probe(handle) == RuntimeState.PROBE_FAILED
