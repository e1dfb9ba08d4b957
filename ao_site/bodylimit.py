"""A request body's size limit, enforced while the body arrives.

daphne reads a whole HTTP request before the application sees it (a body over 100 KB goes to a
temporary file, then every chunk of it into the application's queue at once), so the views' own
limits (AO_API_MAX_BODY_BYTES, AO_WEBHOOK_MAX_BYTES) come after the memory is spent: one request
of a gigabyte, sent by anyone who can reach the port, without logging in, grew the process by as
much. daphne has no setting for it; this request class, which ``install`` makes daphne's, answers
413 and closes the connection as soon as the declared or received length passes the limit."""

from __future__ import annotations

from daphne import http_protocol

REFUSAL = (
    b"HTTP/1.1 413 Payload Too Large\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s"
)


class LimitedRequest(http_protocol.WebRequest):
    """daphne's request, refusing a body over ``limit`` bytes before it is read."""

    limit = 0  # bytes; 0: no limit

    def gotLength(self, length: int | None) -> None:
        self.received = 0
        self.refused = False
        super().gotLength(length)
        if self.limit and length is not None and length > self.limit:
            self._refuse()

    def handleContentChunk(self, data: bytes) -> None:
        if self.refused:
            return
        self.received += len(data)
        if self.limit and self.received > self.limit:
            self._refuse()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        # Twisted goes on parsing what it already read after the connection is told to close: a
        # refused body whose last chunk came in the same read would still complete the request
        # (cut at the limit) and reach the application
        if getattr(self, "refused", False):
            return
        super().requestReceived(command, path, version)

    def _refuse(self) -> None:
        self.refused = True
        self.requestHeaders.removeHeader(b"expect")  # no "100 Continue" after the 413
        text = f"the request body is over {self.limit:,} bytes, ao's limit (AO_MAX_REQUEST_BYTES)\n".encode()
        transport = self.channel.transport if self.channel is not None else None
        if transport is None:
            return
        transport.write(REFUSAL % (len(text), text))
        transport.loseConnection()  # the rest of the body is never read


def install(limit: int) -> None:
    """Make daphne's HTTP factory build ``LimitedRequest`` s refusing bodies over ``limit`` bytes
    (its factory names the request class at each connection)."""
    LimitedRequest.limit = limit
    http_protocol.WebRequest = LimitedRequest  # type: ignore[misc]
