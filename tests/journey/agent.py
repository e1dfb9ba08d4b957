"""The journey's scripted agent: a terminal program that works like a careful coding agent.

ao runs it (project agent ``custom``, ``prompt_mode: send``) in a tmux pane with the worktree as
its cwd and AO_SESSION / AO_URL / AO_TOKEN in its environment. It reads the keyboard of a real
terminal (raw mode, bracketed paste): the worker prompt and every message ao delivers arrive as
typed or pasted text ended by Enter. Whatever else the terminal sends (escape sequences that are
not a paste) is kept in the message and shown as ``^[`` so that a person looking at the pane sees
exactly what reached the agent's input line.

What it does, from what it reads:

- the worker prompt for ``Add mul(a, b)``: writes a wrong ``mul``, commits, pushes and opens its
  PR with ``ao pr create`` (the first attempt that CI must catch);
- the worker prompt for ``Add sub(a, b)``: writes ``sub``, commits; no PR;
- a CI failure: shows the failing assertion it was given, fixes ``mul``, commits, pushes;
- review feedback: shows the reviewer's comment, adds the docstring asked for, commits, pushes;
- ``/ask``: asks a person a question (``Proceed with the refactor? (y/n)``) and waits for the answer;
- ``/exit``: ends (the agent process exits);
- anything else: acknowledges it.

In GitHub mode (``--github-api URL --github-token T --github-repo OWNER/NAME``) it opens its PR
the way ``gh pr create`` does, with ``POST /repos/{owner}/{name}/pulls`` after pushing the branch
to origin (ao's prompt says "e.g. `gh pr create --fill`" there).

"Push" follows ao's instructions as written (``git push origin HEAD``); when that fails it says
why in the pane and then pushes through ``ao pr create`` (which the prompt also names), so the
journey can go on while the step that checks the instruction fails.

Every message received is appended as JSON to ``<log-dir>/<session>.jsonl`` (raw text), every
escape sequence that reaches its input (pastes aside) to ``<log-dir>/<session>.escapes`` as soon
as it is read, and every command it runs to ``<log-dir>/<session>.log``. Standard library only.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import json
import os
import re
import select
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

PROMPT = "journey-agent> "
PASTE_START = "\x1b[200~"
PASTE_END = "\x1b[201~"
CSI_RE = re.compile(r"\x1b\[[0-9;?>=<]*[ -/]*[@-~]")
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "journey agent",
    "GIT_AUTHOR_EMAIL": "agent@journey.test",
    "GIT_COMMITTER_NAME": "journey agent",
    "GIT_COMMITTER_EMAIL": "agent@journey.test",
}

MUL_WRONG = "\n\ndef mul(a, b):\n    return a + b\n"
MUL_RIGHT = "\n\ndef mul(a, b):\n    return a * b\n"
MUL_DOCUMENTED = '\n\ndef mul(a, b):\n    """The product of a and b."""\n    return a * b\n'
SUB = "\n\ndef sub(a, b):\n    return a - b\n"


def out(text: str) -> None:
    sys.stdout.write(text.replace("\r\n", "\n").replace("\n", "\r\n"))
    sys.stdout.flush()


def visible(text: str) -> str:
    """Control characters as a terminal in cooked mode echoes them: ESC is ``^[``."""
    return "".join(f"^{chr(ord(c) + 64)}" if ord(c) < 32 and c != "\n" else c for c in text)


class Keyboard:
    """Keys from the pane's tty: raw, no echo, bracketed pastes kept whole."""

    def __init__(self, fd: int) -> None:
        import termios

        self.fd = fd
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.pending = ""
        self.escapes: list[str] = []  # every escape sequence that reached the input, pastes aside
        self.on_escape = None  # called with each one as soon as it is read
        self.saved = termios.tcgetattr(fd)
        attrs = termios.tcgetattr(fd)
        attrs[3] &= ~(termios.ICANON | termios.ECHO)
        attrs[6][termios.VMIN] = 1
        attrs[6][termios.VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        out("\x1b[?2004h")

    def restore(self) -> None:
        import termios

        out("\x1b[?2004l")
        termios.tcsetattr(self.fd, termios.TCSANOW, self.saved)

    def _fill(self, timeout: float | None = None) -> bool:
        if timeout is not None and not select.select([self.fd], [], [], timeout)[0]:
            return False
        data = os.read(self.fd, 4096)
        if not data:
            raise EOFError
        self.pending += self.decoder.decode(data)
        return True

    def message(self) -> str:
        """Typed and pasted text up to an Enter outside a paste; other escapes are kept."""
        line = ""
        while True:
            while not self.pending:
                self._fill()
            if self.pending.startswith("\x1b"):
                while len(self.pending) < len(PASTE_START) and PASTE_START.startswith(self.pending):
                    if not self._fill(timeout=0.05):
                        break
                if self.pending.startswith(PASTE_START):
                    self.pending = self.pending[len(PASTE_START) :]
                    while PASTE_END not in self.pending:
                        self._fill()
                    text, self.pending = self.pending.split(PASTE_END, 1)
                    line += text.replace("\r\n", "\n").replace("\r", "\n")
                    continue
                match = CSI_RE.match(self.pending)
                size = match.end() if match else min(2, len(self.pending))
                sequence, self.pending = self.pending[:size], self.pending[size:]
                self.escapes.append(sequence)
                if self.on_escape is not None:
                    self.on_escape(sequence)
                line += sequence
                out(visible(sequence))
                continue
            char, self.pending = self.pending[0], self.pending[1:]
            if char in ("\r", "\n"):
                out("\n")
                return line
            if char in ("\x7f", "\b"):
                line = line[:-1]
            elif char == "\x15":  # Ctrl-U clears the input line, as in any line editor
                line = ""
                out("\r\x1b[2K" + PROMPT)
            else:
                line += char
                out(visible(char))


QUESTION = "Proceed with the refactor? (y/n) "


class Agent:
    def __init__(self, log_dir: Path, github: tuple[str, str, str] | None = None) -> None:
        self.github = github  # (API base URL, token, owner/name): GitHub mode
        self.asking = False  # a question to a person is on screen: its answer is the next message
        self.exiting = False
        self.session = os.environ.get("AO_SESSION", "unknown")
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, **GIT_IDENTITY}

    # --- records -------------------------------------------------------------------------------
    def record(self, message: str, escapes: list[str]) -> None:
        """The message as read, and every escape sequence that reached the input line while it
        was typed (a Ctrl-U may have cleared some of them from the message itself)."""
        with (self.log_dir / f"{self.session}.jsonl").open("a") as fh:
            fh.write(json.dumps({"at": time.time(), "text": message, "escapes": escapes}) + "\n")

    def run(self, *argv: str) -> subprocess.CompletedProcess:
        out(f"$ {' '.join(argv)}\n")
        proc = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=60, check=False)
        text = (proc.stdout + proc.stderr).strip()
        for row in text.splitlines()[-6:]:
            out(f"  {row}\n")
        out(f"  [exit {proc.returncode}]\n")
        with (self.log_dir / f"{self.session}.log").open("a") as fh:
            fh.write(f"$ {argv}\n{text}\n[exit {proc.returncode}]\n")
        return proc

    def working(self, what: str) -> None:
        out(f"⠋ {what}… (esc to interrupt)\n")

    # --- the work ------------------------------------------------------------------------------
    def write_function(self, source: str, name: str) -> None:
        path = Path("calc/__init__.py")
        text = path.read_text()
        text = re.sub(rf"\n\ndef {name}\(.*?(?=\n\ndef |\Z)", "", text, flags=re.S)
        path.write_text(text.rstrip("\n") + "\n" + source)

    def commit(self, message: str) -> bool:
        self.run("git", "add", "-A")
        return self.run("git", "commit", "-q", "-m", message).returncode == 0

    def push(self, *, open_pr: list[str] | None = None) -> None:
        """As ao's instructions say (push to origin, open the PR with `ao pr create`); if the push
        cannot work here, say so in the pane and let `ao pr create` push the branch."""
        pushed = self.run("git", "push", "origin", "HEAD")
        if pushed.returncode == 0:
            out("push to origin: ok\n")
        else:
            why = (pushed.stderr.strip().splitlines() or ["?"])[0]
            out(f"push to origin: FAILED ({why})\n")
        if self.github is not None:
            if open_pr is not None and pushed.returncode == 0:
                self.open_github_pr(title=open_pr[open_pr.index("--title") + 1])
            return
        if open_pr is not None or pushed.returncode != 0:
            self.run("ao", "pr", "create", *(open_pr or []))

    def open_github_pr(self, *, title: str) -> None:
        """What `gh pr create --fill` does: the branch's PR against the default branch."""
        assert self.github is not None
        api, token, repo = self.github
        branch = self.run("git", "rev-parse", "--abbrev-ref", "HEAD").stdout.strip()
        body = json.dumps({"title": title, "head": branch, "base": "main", "body": "Closes the issue."})
        request = urllib.request.Request(
            f"{api}/repos/{repo}/pulls", data=body.encode(), method="POST",
            headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                opened = json.loads(response.read())
            out(f"opened PR #{opened['number']}: {opened['html_url']}\n")
        except OSError as exc:
            out(f"gh pr create: FAILED ({exc})\n")

    def already_done(self, subject: str) -> bool:
        log = self.run("git", "log", "--format=%s", "-20").stdout.splitlines()
        return subject in log

    def handle(self, message: str, escapes: list[str]) -> None:
        first = message.strip().splitlines()[0] if message.strip() else ""
        out(f"received ({len(message)} chars): {visible(first)[:150]}\n")
        if escapes:
            out(f"input had terminal escapes: {visible(''.join(escapes))}\n")
        if "Your issue:" in message and "mul(a, b)" in message:
            if self.already_done("Add mul"):
                out("resuming: mul is already committed on this branch\n")
                return
            self.working("adding mul")
            self.run("ao", "report", "working", "adding mul")
            self.write_function(MUL_WRONG, "mul")
            self.commit("Add mul")
            self.push(open_pr=["--title", "Add mul(a, b)"])
        elif "Your issue:" in message and "sub(a, b)" in message:
            has_mul = "def mul" in Path("calc/__init__.py").read_text()
            out(f"base has mul: {'yes' if has_mul else 'no'}\n")
            if self.already_done("Add sub"):
                out("resuming: sub is already committed on this branch\n")
                return
            self.working("adding sub")
            self.run("ao", "report", "working", "adding sub")
            self.write_function(SUB, "sub")
            self.commit("Add sub")
        elif message.strip() == "/ask":
            self.asking = True
        elif message.strip() == "/exit":
            out("bye\n")
            self.exiting = True
        elif self.asking_answered(message):
            out("going on as told.\n")
        elif "CI is failing" in message:
            for row in message.splitlines():
                if "Error" in row or "FAIL" in row:
                    out(f"ci says: {row.strip()}\n")
            self.working("fixing mul")
            self.write_function(MUL_RIGHT, "mul")
            self.commit("Fix mul: multiply")
            self.push()
        elif (
            "requested changes" in message or "Review feedback" in message or "(quoted, untrusted)" in message
        ):
            for row in message.splitlines():
                if "docstring" in row:
                    out(f"reviewer says: {row.strip()}\n")
            self.working("addressing the review")
            self.write_function(MUL_DOCUMENTED, "mul")
            self.commit("Document mul")
            self.push()
        else:
            out("noted.\n")

    def asking_answered(self, message: str) -> bool:
        answered, self.asking = self.asking, False
        return answered

    def escape_seen(self, sequence: str) -> None:
        """Recorded at once: a terminal reply may sit on the input line until the next Enter."""
        with (self.log_dir / f"{self.session}.escapes").open("a") as fh:
            fh.write(json.dumps(sequence) + "\n")

    def loop(self, keyboard: Keyboard) -> int:
        keyboard.on_escape = self.escape_seen
        out(f"journey agent {self.session} in {os.getcwd()}\n")
        while not self.exiting:
            out(QUESTION if self.asking else PROMPT)
            try:
                message = keyboard.message()
            except EOFError:
                return 0
            escapes, keyboard.escapes = keyboard.escapes, []
            self.record(message, escapes)
            self.handle(message, escapes)
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="journey-agent")
    parser.add_argument("--log-dir", required=True)
    parser.add_argument("--github-api", default="")
    parser.add_argument("--github-token", default="")
    parser.add_argument("--github-repo", default="")
    args, _rest = parser.parse_known_args()
    github = (args.github_api, args.github_token, args.github_repo) if args.github_api else None
    keyboard = Keyboard(sys.stdin.fileno())
    try:
        return Agent(Path(args.log_dir), github).loop(keyboard)
    except KeyboardInterrupt:
        return 130
    finally:
        with contextlib.suppress(Exception):
            keyboard.restore()


if __name__ == "__main__":
    sys.exit(main())
