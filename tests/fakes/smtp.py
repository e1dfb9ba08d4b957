"""A small SMTP server (RFC 5321, with AUTH PLAIN and LOGIN of RFC 4954) for tests, run as its own
process: ``python -m tests.fakes.smtp --user U --password P --out mail.jsonl`` prints
``listening on PORT`` and appends each accepted message to ``--out`` as one JSON line
(``{"user", "from", "to", "data"}``). With ``--user``, MAIL is refused (530) until the client has
authenticated, and wrong credentials are answered 535, as real servers do. No TLS."""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import socketserver
import sys
import threading


class SMTPHandler(socketserver.StreamRequestHandler):
    server: SMTPServer

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def readline(self) -> str | None:
        raw = self.rfile.readline(65536)
        return None if not raw else raw.decode("utf-8", "replace").rstrip("\r\n")

    def check(self, user: str, password: str) -> bool:
        ok = (user, password) == (self.server.user, self.server.password)
        self.reply(
            "235 2.7.0 Authentication successful" if ok else "535 5.7.8 Authentication credentials invalid"
        )
        return ok

    def handle(self) -> None:
        self.reply("220 fake-smtp ESMTP ready")
        user, sender, recipients = "", "", []
        while (line := self.readline()) is not None:
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            if verb in ("EHLO", "HELO"):
                if verb == "EHLO":
                    self.reply("250-fake-smtp")
                    self.reply("250 AUTH PLAIN LOGIN")
                else:
                    self.reply("250 fake-smtp")
            elif verb == "AUTH":
                mech, _, initial = arg.partition(" ")
                try:
                    if mech.upper() == "PLAIN":
                        if not initial:
                            self.reply("334 ")
                            initial = self.readline() or ""
                        _, name, password = base64.b64decode(initial).decode().split("\0")
                    elif mech.upper() == "LOGIN":
                        if initial:
                            name = base64.b64decode(initial).decode()
                        else:
                            self.reply("334 " + base64.b64encode(b"Username:").decode())
                            name = base64.b64decode(self.readline() or "").decode()
                        self.reply("334 " + base64.b64encode(b"Password:").decode())
                        password = base64.b64decode(self.readline() or "").decode()
                    else:
                        self.reply("504 5.5.4 Unrecognized authentication type")
                        continue
                except (ValueError, binascii.Error):
                    self.reply("501 5.5.2 Cannot decode response")
                    continue
                if self.check(name, password):
                    user = name
            elif verb == "MAIL":
                if self.server.user and not user:
                    self.reply("530 5.7.0 Authentication required")
                    continue
                sender, recipients = arg.partition(":")[2].strip().strip("<>").split(">")[0], []
                self.reply("250 2.1.0 OK")
            elif verb == "RCPT":
                recipients.append(arg.partition(":")[2].strip().strip("<>"))
                self.reply("250 2.1.5 OK")
            elif verb == "DATA":
                if not recipients:
                    self.reply("503 5.5.1 RCPT first")
                    continue
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                lines = []
                while (body := self.readline()) is not None and body != ".":
                    lines.append(body[1:] if body.startswith("..") else body)
                self.server.store({"user": user, "from": sender, "to": recipients, "data": "\n".join(lines)})
                self.reply("250 2.0.0 OK: queued")
                sender, recipients = "", []
            elif verb == "RSET":
                sender, recipients = "", []
                self.reply("250 2.0.0 OK")
            elif verb == "NOOP":
                self.reply("250 2.0.0 OK")
            elif verb == "QUIT":
                self.reply("221 2.0.0 Bye")
                return
            else:
                self.reply("502 5.5.2 Command not recognized")


class SMTPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *, user: str = "", password: str = "", out: str, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), SMTPHandler)
        self.user, self.password, self.out = user, password, out
        self.lock = threading.Lock()

    def store(self, message: dict) -> None:
        with self.lock, open(self.out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(message) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--user", default="")
    parser.add_argument("--password", default="")
    parser.add_argument("--out", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = SMTPServer(user=args.user, password=args.password, out=args.out, port=args.port)
    print(f"listening on {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
