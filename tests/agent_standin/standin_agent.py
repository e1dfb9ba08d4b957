"""A scripted stand-in for an agent CLI: a tiny terminal UI that behaves enough like Claude Code.

Run it in a terminal (tmux): ``python standin_agent.py [--prompt TEXT] [--transcript-dir DIR]
[--session-id ID] [--work-seconds S] [--require-trust] [-- PROMPT]``. It also accepts (and
ignores) the Claude Code flags ao passes, so a ``claude`` shim can run it.

- draws a ``> `` prompt and reads keys from the tty with canonical mode and echo off; typed text
  plus Enter, and a bracketed paste (``ESC[200~ ... ESC[201~``, possibly multi-line, followed by
  Enter) each make one message, echoed back as ``received: <text>``;
- per message writes Claude Code style JSONL to the transcript dir (default: where Claude Code
  would, ``~/.claude/projects/<encoded cwd>/<session id>.jsonl``): the user message, an
  assistant ``tool_use`` while it "works" (a spinner with "esc to interrupt"), the
  ``tool_result`` and an assistant ``end_turn`` reply with usage tokens;
- ``/ask-permission`` shows "Do you want to proceed?" with a numbered Yes/No menu and waits
  for ``1`` or ``2``; ``/commit`` commits a new file in the working directory; ``/exit`` exits;
- with ``--require-trust`` it first shows a folder-trust dialog unless ``~/.claude.json`` marks
  the working directory trusted (``projects[cwd].hasTrustDialogAccepted``);
- with ``--env-dump DIR`` it first writes its whole environment, as JSON, to
  ``DIR/<AO_SESSION>.<n>.json`` (what ao gave the agent: whose credentials, which host); with
  ``--turn-cost USD`` each reply reports that cost (``costUSD``; default 0.001);
- like the real CLIs just after a (re)start: with ``--start-seconds S`` it draws its prompt only
  after S seconds, and keys typed before then show in its input but their Enter is ignored; with
  ``--deaf-seconds D`` an Enter is ignored for D seconds after the prompt is first drawn (the text
  stays in the input; a later Enter sends it); with ``--draw-seconds S`` it neither draws nor
  reads anything for S seconds, leaving the terminal as it found it (a CLI so slow to start that
  it has not taken over its terminal: keys typed then are echoed by the terminal itself);
- like Claude Code, a paste of more than three lines shows in the input as
  ``[Pasted text #N +L lines]``.

Standard library only.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import datetime as dt
import json
import os
import re
import select
import subprocess
import sys
import time
import uuid
from pathlib import Path

PASTE_START = "\x1b[200~"
PASTE_END = "\x1b[201~"
CSI_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def claude_dir() -> Path:
    configured = os.environ.get("CLAUDE_CONFIG_DIR")
    return Path(configured) if configured else Path.home() / ".claude"


def claude_state_file() -> Path:
    configured = os.environ.get("CLAUDE_CONFIG_DIR")
    return Path(configured) / ".claude.json" if configured else Path.home() / ".claude.json"


# --- transcript ----------------------------------------------------------------------------------
class Transcript:
    def __init__(self, directory: Path, session_id: str, cwd: str, *, turn_cost: float = 0.001) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.turn_cost = turn_cost
        self.path = directory / f"{session_id}.jsonl"
        self.session_id = session_id
        self.cwd = cwd
        self.parent: str | None = None
        self.turn = 0

    def _write(self, entry: dict) -> None:
        entry_id = str(uuid.uuid4())
        base = {
            "parentUuid": self.parent,
            "isSidechain": False,
            "userType": "external",
            "cwd": self.cwd,
            "sessionId": self.session_id,
            "version": "standin",
            "uuid": entry_id,
            "timestamp": now_iso(),
        }
        self.parent = entry_id
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({**base, **entry}) + "\n")

    def user(self, text: str) -> None:
        self.turn += 1
        self._write({"type": "user", "message": {"role": "user", "content": text}})

    def user_text(self, text: str) -> None:
        self._write(
            {"type": "user", "message": {"role": "user", "content": [{"type": "text", "text": text}]}}
        )

    def tool_use(self, name: str, tool_input: dict) -> str:
        tool_id = f"toolu_standin_{uuid.uuid4().hex[:12]}"
        self._write(
            {
                "type": "assistant",
                "requestId": f"req_standin_{self.turn}a",
                "message": {
                    "id": f"msg_standin_{self.turn}a",
                    "type": "message",
                    "role": "assistant",
                    "model": "standin",
                    "content": [{"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}],
                    "stop_reason": "tool_use",
                    "usage": {
                        "input_tokens": 10,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 100,
                        "output_tokens": 5,
                    },
                },
            }
        )
        return tool_id

    def tool_result(self, tool_id: str, content: str, *, is_error: bool = False) -> None:
        self._write(
            {
                "type": "user",
                "message": {
                    "role": "user",
                    "content": [
                        {
                            "tool_use_id": tool_id,
                            "type": "tool_result",
                            "content": content,
                            "is_error": is_error,
                        }
                    ],
                },
            }
        )

    def end_turn(self, text: str) -> None:
        self._write(
            {
                "type": "assistant",
                "requestId": f"req_standin_{self.turn}b",
                "costUSD": self.turn_cost,
                "message": {
                    "id": f"msg_standin_{self.turn}b",
                    "type": "message",
                    "role": "assistant",
                    "model": "standin",
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn",
                    "usage": {
                        "input_tokens": 20,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 100,
                        "output_tokens": 7,
                    },
                },
            }
        )


# --- keyboard ------------------------------------------------------------------------------------
class Keyboard:
    """Keys from a tty (or a pipe), with bracketed pastes kept whole."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.pending = ""
        self.pastes = 0
        self.saved = None
        if os.isatty(fd):
            import termios

            self.saved = termios.tcgetattr(fd)
            attrs = termios.tcgetattr(fd)
            attrs[3] &= ~(termios.ICANON | termios.ECHO)  # lflags; keep ISIG so Ctrl-C still works
            attrs[6][termios.VMIN] = 1
            attrs[6][termios.VTIME] = 0
            termios.tcsetattr(fd, termios.TCSANOW, attrs)
            out("\x1b[?2004h")  # ask the terminal (tmux) to bracket pastes

    def restore(self) -> None:
        if self.saved is not None:
            import termios

            out("\x1b[?2004l")
            termios.tcsetattr(self.fd, termios.TCSANOW, self.saved)
            self.saved = None

    def _fill(self, timeout: float | None = None) -> bool:
        if timeout is not None and not select.select([self.fd], [], [], timeout)[0]:
            return False
        data = os.read(self.fd, 4096)
        if not data:
            raise EOFError
        self.pending += self.decoder.decode(data)
        return True

    def key(self) -> tuple[str, str]:
        """The next ("key", char), ("paste", text) or ("escape", sequence)."""
        while not self.pending:
            self._fill()
        if self.pending.startswith("\x1b"):
            while PASTE_START.startswith(self.pending) and len(self.pending) < len(PASTE_START):
                if not self._fill(timeout=0.05):
                    break
            if self.pending.startswith(PASTE_START):
                self.pending = self.pending[len(PASTE_START) :]
                while PASTE_END not in self.pending:
                    self._fill()
                text, self.pending = self.pending.split(PASTE_END, 1)
                return "paste", text.replace("\r\n", "\n").replace("\r", "\n")
            match = CSI_RE.match(self.pending)
            size = match.end() if match else min(2, len(self.pending))
            sequence, self.pending = self.pending[:size], self.pending[size:]
            return "escape", sequence
        char, self.pending = self.pending[0], self.pending[1:]
        return "key", char

    def early_text(self) -> str:
        """What was typed before the prompt was drawn, without its Enters (they are lost)."""
        while select.select([self.fd], [], [], 0)[0]:
            self._fill()
        text, self.pending = self.pending, ""
        for marker in (PASTE_START, PASTE_END, "\r", "\n"):
            text = text.replace(marker, "")
        return text

    def message(self, *, line: str = "", deaf_until: float = 0.0) -> str:
        """Read one message: typed and pasted text up to Enter (outside a paste). ``line``: text
        already in the input; an Enter before ``deaf_until`` (monotonic) is ignored."""
        while True:
            kind, value = self.key()
            if kind == "paste":
                line += value
                lines = value.count("\n")
                self.pastes += 1
                out(
                    f"[Pasted text #{self.pastes} +{lines} lines]"
                    if lines > 3
                    else value.replace("\n", "\r\n")
                )
            elif kind == "escape":
                continue
            elif value in ("\r", "\n"):
                if time.monotonic() < deaf_until:
                    continue
                out("\r\n")
                return line
            elif value in ("\x7f", "\b"):
                if line:
                    line = line[:-1]
                    out("\b \b")
            elif value == "\x15":  # Ctrl-U: clear the line
                line = ""
                out("\r\x1b[2K> ")
            elif value >= " ":
                line += value
                out(value)

    def choice(self, options: str) -> str:
        while True:
            kind, value = self.key()
            if kind == "key" and value in options:
                return value


# --- behaviour -----------------------------------------------------------------------------------
class Standin:
    def __init__(self, args: argparse.Namespace, keyboard: Keyboard) -> None:
        self.args = args
        self.keyboard = keyboard
        self.cwd = os.getcwd()
        session_id = args.session_id or args.resume or str(uuid.uuid4())
        directory = (
            Path(args.transcript_dir)
            if args.transcript_dir
            else claude_dir() / "projects" / re.sub(r"[^A-Za-z0-9]", "-", self.cwd)
        )
        self.transcript = Transcript(directory, session_id, self.cwd, turn_cost=args.turn_cost)
        self.commits = 0

    def dialog(self, question: str, options: list[str]) -> str:
        lines = [question] + [("❯ " if i == 0 else "  ") + f"{i + 1}. {o}" for i, o in enumerate(options)]
        out("\r\n".join(lines) + "\r\n")
        answer = self.keyboard.choice("".join(str(i + 1) for i in range(len(options))))
        out(f"\x1b[{len(lines)}A\r\x1b[J")  # the dialog goes away once answered, as in a TUI
        return answer

    def trusted(self) -> bool:
        try:
            state = json.loads(claude_state_file().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        project = state.get("projects", {}).get(self.cwd, {}) if isinstance(state, dict) else {}
        return isinstance(project, dict) and project.get("hasTrustDialogAccepted") is True

    def work(self) -> None:
        out("✻ Working… (esc to interrupt)")
        time.sleep(self.args.work_seconds)
        out("\r\x1b[2K")

    def commit(self, text: str) -> str:
        self.commits += 1
        name = f"standin-{self.transcript.session_id[:8]}-{self.commits}.txt"
        Path(name).write_text(text + "\n", encoding="utf-8")
        for argv in (["git", "add", "--", name], ["git", "commit", "-q", "-m", f"standin: {text[:50]}"]):
            result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
            if result.returncode != 0:
                return f"commit failed: {(result.stderr or result.stdout).strip()}"
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30, check=False
        )
        return f"committed: {sha.stdout.strip()}"

    def handle(self, text: str) -> bool:
        """Act on one message; False to exit."""
        out("received: " + text.replace("\n", "\r\n") + "\r\n")
        if "/exit" in text:
            return False
        transcript = self.transcript
        transcript.user(text)
        first = text.strip().splitlines()[0] if text.strip() else ""
        if "/ask-permission" in text:
            tool_id = transcript.tool_use(
                "Bash", {"command": "rm -rf build", "description": "Clean the build"}
            )
            if self.dialog("Do you want to proceed?", ["Yes", "No"]) == "2":
                transcript.tool_result(
                    tool_id, "The user doesn't want to proceed with this tool use.", is_error=True
                )
                transcript.user_text("[Request interrupted by user for tool use]")
                out("permission: denied\r\n")
                return True
            out("permission: granted\r\n")
            self.work()
            transcript.tool_result(tool_id, "ok")
            transcript.end_turn("Cleaned the build.")
            out("● Cleaned the build.\r\n")
            return True
        if "/commit" in text:
            tool_id = transcript.tool_use("Bash", {"command": "git commit", "description": "Commit"})
            self.work()
            result = self.commit(first)
            transcript.tool_result(tool_id, result)
            transcript.end_turn(result)
            out(result + "\r\n")
            return True
        tool_id = transcript.tool_use("Edit", {"file_path": os.path.join(self.cwd, "notes.txt")})
        self.work()
        transcript.tool_result(tool_id, "ok")
        reply = f"Done: {first}"
        transcript.end_turn(reply)
        out(f"● {reply}\r\n")
        return True

    def dump_env(self, directory: str) -> None:
        """Write the environment atomically: a reader never sees half a file."""
        path = os.path.join(directory, f"{os.environ.get('AO_SESSION', 'x')}.{time.time_ns()}.json")
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(dict(os.environ), handle)
        os.replace(path + ".tmp", path)

    def run(self, prompt: str | None) -> int:
        if self.args.env_dump:
            self.dump_env(self.args.env_dump)
        out(f"standin agent, session {self.transcript.session_id}\r\n")
        if self.args.require_trust and not self.trusted():
            answer = self.dialog("Do you trust the files in this folder?", ["Yes, proceed", "No, exit"])
            if answer == "2":
                return 1
        if prompt and not self.handle(prompt):
            return 0
        time.sleep(self.args.start_seconds)
        early = self.keyboard.early_text() if self.args.start_seconds else ""
        deaf_until = time.monotonic() + self.args.deaf_seconds
        while True:
            out("> " + early)
            try:
                text = self.keyboard.message(line=early, deaf_until=deaf_until)
            except EOFError:
                return 0
            early = ""
            if not self.handle(text):
                return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="standin_agent")
    parser.add_argument("--prompt")
    parser.add_argument("--transcript-dir")
    parser.add_argument("--session-id")
    parser.add_argument(
        "--work-seconds", type=float, default=float(os.environ.get("STANDIN_WORK_SECONDS", "1.0"))
    )
    parser.add_argument("--require-trust", action="store_true")
    parser.add_argument("--start-seconds", type=float, default=0.0)
    parser.add_argument("--deaf-seconds", type=float, default=0.0)
    parser.add_argument("--env-dump", metavar="DIR")
    parser.add_argument("--turn-cost", type=float, default=0.001, metavar="USD")
    parser.add_argument("--draw-seconds", type=float, default=0.0)
    # Claude Code flags ao may pass through a `claude` shim: accepted, mostly ignored.
    parser.add_argument("-r", "--resume")
    parser.add_argument("--model")
    parser.add_argument("--permission-mode")
    parser.add_argument("--append-system-prompt")
    parser.add_argument("--dangerously-skip-permissions", action="store_true")
    parser.add_argument("words", nargs="*")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    prompt = args.prompt or (" ".join(args.words) if args.words else None)
    time.sleep(args.draw_seconds)
    keyboard = Keyboard(sys.stdin.fileno())
    try:
        return Standin(args, keyboard).run(prompt)
    except KeyboardInterrupt:
        return 130
    finally:
        with contextlib.suppress(Exception):
            keyboard.restore()


if __name__ == "__main__":
    sys.exit(main())
