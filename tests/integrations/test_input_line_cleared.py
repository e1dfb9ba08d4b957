"""A message ao types into an agent is never glued to what a person left half-typed on its input
line: real tmux (and the process runtime's pty) running a line-editing program (GNU readline, the
emacs-style editing the agents' TUIs use), with the cursor left in the middle of the text."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from integrations.registry import agents
from tests.helpers.fixtures import wait_for

pytestmark = pytest.mark.slow

LINE_EDITOR = (
    "import readline, sys\n"
    "while True:\n"
    "    try:\n"
    "        line = input('> ')\n"
    "    except EOFError:\n"
    "        break\n"
    "    print('GOT[' + line + ']', flush=True)\n"
)


def test_tmux_clears_the_half_typed_line_before_typing(tmux_runtime, tmux_socket, tmp_path: Path) -> None:
    name = f"t-{uuid.uuid4().hex[:8]}"
    handle = tmux_runtime.start(name=name, cwd=tmp_path, command=[sys.executable, "-c", LINE_EDITOR], env={})
    try:
        assert wait_for(lambda: "> " in tmux_runtime.read_output(handle))
        # a person typed half a sentence in the terminal and moved the cursor back into it
        keys = ["send-keys", "-t", f"={name}:", "-l", "half typ"]
        subprocess.run(["tmux", "-L", tmux_socket, *keys], check=True)
        subprocess.run(
            ["tmux", "-L", tmux_socket, "send-keys", "-t", f"={name}:", "Left", "Left"], check=True
        )

        tmux_runtime.send_text(handle, "CI failed: fix it")

        assert wait_for(lambda: "GOT[" in tmux_runtime.read_output(handle))
        out = tmux_runtime.read_output(handle)
        assert "GOT[CI failed: fix it]" in out and "typ]" not in out and "GOT[half" not in out
    finally:
        tmux_runtime.kill(handle)


def test_the_process_runtime_clears_it_too(process_runtime, tmp_path: Path) -> None:
    handle = process_runtime.start(
        name="p-1", cwd=tmp_path, command=[sys.executable, "-c", LINE_EDITOR], env={}
    )
    try:
        assert wait_for(lambda: "> " in process_runtime.read_output(handle))
        live = process_runtime._live(handle)
        process_runtime._write(live, b"half typ\x1b[D\x1b[D")  # a person's keys: text, Left, Left

        process_runtime.send_text(handle, "CI failed: fix it")

        assert wait_for(lambda: "GOT[" in process_runtime.read_output(handle))
        out = process_runtime.read_output(handle)
        assert "GOT[CI failed: fix it]" in out and "typ]" not in out
    finally:
        process_runtime.kill(handle)


def test_every_agent_says_how_its_input_line_is_emptied() -> None:
    from integrations.base import CLEAR_INPUT_KEYS

    for key in agents.keys():
        keys = agents.get(key).clear_input_keys
        assert all(k in ("C-a", "C-e", "C-k", "C-u", "End", "Home") for k in keys), key
    # Claude Code's input takes Ctrl-E/Ctrl-U literally (2.1.100 sent them to the model as
    # "\x05\x15"): it gets no clearing keys, and ao types into it only at its empty prompt.
    assert agents.get("claude-code").clear_input_keys == ()
    assert CLEAR_INPUT_KEYS == ("C-e", "C-u")  # end of the line, then delete back to its start
