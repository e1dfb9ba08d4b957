from __future__ import annotations

import dataclasses
import re
import sys
import uuid
from pathlib import Path

import pytest

from integrations.base import PermanentIntegrationError, RuntimeGone
from integrations.registry import runtimes
from integrations.runtime import process as process_module
from integrations.runtime.process import ProcessRuntime, render_output
from sessions.domain.lifecycle import RuntimeState
from tests.helpers.fixtures import ECHO_PROGRAM, wait_for


def unique() -> str:
    return f"p-{uuid.uuid4().hex[:8]}"


def output_has(runtime, handle, needle: str):
    return wait_for(lambda: needle in runtime.read_output(handle, lines=500))


def test_registered() -> None:
    assert runtimes.get("process") is ProcessRuntime
    assert runtimes.create("process", {"buffer_bytes": 4096}).config.buffer_bytes == 4096


def test_render_output_strips_escapes_and_handles_carriage_returns() -> None:
    raw = b"\x1b[?2004h\x1b[31mred\x1b[0m\r\nprogress 10%\rprogress 100%\r\n\x1b]0;title\x07done\x07"
    assert render_output(raw) == "red\nprogress 100%\ndone"


@pytest.mark.slow
def test_full_lifecycle(process_runtime: ProcessRuntime, tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    name = unique()
    handle = process_runtime.start(
        name=name,
        cwd=tmp_path,
        command=[sys.executable, "-c", ECHO_PROGRAM, "a b", "c;", f"$(touch {pwned})"],
        env={"AO_TEST_VAR": "v; `touch pwned`"},
    )
    try:
        assert handle.runtime == "process" and handle.name == name and handle.data["pid"] > 0
        assert name in process_module.live_names()
        assert output_has(process_runtime, handle, "ready")
        out = process_runtime.read_output(handle)
        assert f'argv=["a b", "c;", "$(touch {pwned})"]' in out
        assert "env=v; `touch pwned`" in out and f"cwd={tmp_path}" in out
        assert process_runtime.probe(handle) == RuntimeState.ALIVE

        process_runtime.send_text(handle, f"hi; $(touch {pwned}) 'q'\x1b[31m")
        assert output_has(process_runtime, handle, f"got:hi; $(touch {pwned}) 'q'[31m")

        process_runtime.send_text(handle, "line one\nline two")
        assert output_has(process_runtime, handle, "got:line two</P>")
        assert re.findall(r"got:.*", process_runtime.read_output(handle))[-2:] == [
            "got:<P>line one",
            "got:line two</P>",
        ]
        long_text = "y" * 300
        process_runtime.send_text(handle, long_text)
        assert output_has(process_runtime, handle, f"got:<P>{long_text}</P>")
        assert not pwned.exists()

        process_runtime.send_text(handle, "quit")
        assert wait_for(lambda: process_runtime.probe(handle) == RuntimeState.EXITED)
        assert output_has(process_runtime, handle, "bye")
        with pytest.raises(RuntimeGone):
            process_runtime.send_text(handle, "hello?")
    finally:
        process_runtime.kill(handle)
    assert process_runtime.probe(handle) == RuntimeState.LOST
    assert name not in process_module.live_names()
    with pytest.raises(RuntimeGone):
        process_runtime.read_output(handle)
    process_runtime.kill(handle)  # idempotent


@pytest.mark.slow
def test_kill_stops_a_running_process_group_and_restart_means_lost(tmp_path: Path) -> None:
    runtime = ProcessRuntime(ProcessRuntime.Config(kill_timeout=0.5))
    handle = runtime.start(
        name=unique(), cwd=tmp_path, command=["sh", "-c", "trap '' TERM; sleep 30 & wait"], env={}
    )
    try:
        assert ProcessRuntime().probe(handle) == RuntimeState.ALIVE  # the table is per ao process
        from_elsewhere = dataclasses.replace(handle, data={**handle.data, "owner_pid": 1})
        assert runtime.probe(from_elsewhere) == RuntimeState.LOST
    finally:
        runtime.kill(handle)
    assert runtime.probe(handle) == RuntimeState.LOST


@pytest.mark.slow
def test_output_buffer_is_bounded_and_errors(tmp_path: Path) -> None:
    runtime = ProcessRuntime(ProcessRuntime.Config(buffer_bytes=1024))
    handle = runtime.start(
        name=unique(), cwd=tmp_path, command=[sys.executable, "-c", "print('z' * 5000); print('end')"], env={}
    )
    try:
        assert wait_for(lambda: runtime.probe(handle) == RuntimeState.EXITED)
        assert wait_for(lambda: "end" in runtime.read_output(handle))
        assert len(runtime.read_output(handle, lines=1000)) <= 1024
        with pytest.raises(PermanentIntegrationError, match="already exists"):
            runtime.start(name=handle.name, cwd=tmp_path, command=["true"], env={})
    finally:
        runtime.kill(handle)
    missing = runtime.start(name=unique(), cwd=tmp_path, command=["no-such-agent-binary"], env={})
    try:
        assert wait_for(lambda: runtime.probe(missing) == RuntimeState.EXITED)
        assert output_has(runtime, missing, "ao: cannot run 'no-such-agent-binary'")
    finally:
        runtime.kill(missing)
    with pytest.raises(PermanentIntegrationError):
        runtime.start(name="../x", cwd=tmp_path, command=["true"], env={})
