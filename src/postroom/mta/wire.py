"""The transaction phase of an outbound SMTP session: commands out, replies in order.

aiosmtplib opens the session (connect, EHLO, STARTTLS, AUTH); then :class:`Wire` takes
the connection over for the mail transactions. Why not aiosmtplib for those too: it sends
one command and waits for its reply before the next, so it cannot pipeline (RFC 2920),
and its protocol drops bytes that arrive while a parsed reply is still waiting to be
picked up, so replies to pipelined commands, which arrive back to back, would be lost.
A :class:`Wire` buffers everything the server sends and hands out one reply per command,
in order, however the bytes were split into packets.

Pipelining (RFC 2920 §3.1): when the server offers it, MAIL, every RCPT and DATA go out
in one write and their replies are read afterwards; the message itself is only sent
after the ``354``. Without it, each command waits for its reply.

Replies are bounded: a reply line longer than 2,048 octets or a reply of more than 100
lines is a protocol error (RFC 5321 §4.5.3.1.5 allows 512 octets per line), and so is
anything but three digits and a separator at the start of a line.
"""

from __future__ import annotations

import asyncio
from collections import deque

from aiosmtplib import SMTPResponse, SMTPServerDisconnected

MAX_REPLY_LINE = 2048
MAX_REPLY_LINES = 100


class ProtocolError(SMTPServerDisconnected):
    """The server sent something that is not an SMTP reply; the connection is dropped."""


class Wire(asyncio.Protocol):
    """Buffered, ordered SMTP replies over a transport taken over from aiosmtplib."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._lines: list[tuple[int, str]] = []  # lines of the reply being read
        self._replies: deque[SMTPResponse] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._error: Exception | None = None

    @classmethod
    def take_over(cls, transport: asyncio.Transport) -> Wire:
        """Make ``transport`` deliver its data to a new :class:`Wire` from now on."""
        wire = cls()
        wire._transport = transport
        transport.set_protocol(wire)
        return wire

    def gone(self) -> bool:
        """Whether the connection is fully closed (the transport reported its loss)."""
        return self._transport is None

    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing() and not self._error

    # --- asyncio.Protocol

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            self._parse()
        except ProtocolError as exc:
            self._fail(exc)
            if self._transport is not None:
                self._transport.abort()
        self._wake()

    def eof_received(self) -> bool:
        self._fail(SMTPServerDisconnected("the server closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(SMTPServerDisconnected(f"connection lost: {exc}" if exc else "connection lost"))
        self._transport = None

    # --- use

    def send(self, data: bytes) -> None:
        """Write ``data`` (one or more complete commands, or the message)."""
        if self._transport is None or self._transport.is_closing():
            raise SMTPServerDisconnected("connection lost")
        self._transport.write(data)

    async def reply(self, timeout: float | None) -> SMTPResponse:
        """The next reply, in the order the server sent them."""
        if not self._replies:
            # asyncio.timeout(), not wait_for(): one timer handle per wait instead of a
            # wrapper future and callbacks (wait_for was 10% of a delivery's GIL time).
            try:
                async with asyncio.timeout(timeout):
                    while not self._replies:
                        if self._error is not None:
                            raise self._error
                        self._waiter = asyncio.get_running_loop().create_future()
                        try:
                            await self._waiter
                        finally:
                            self._waiter = None
            except TimeoutError as exc:
                raise TimeoutError("timed out waiting for the server's reply") from exc
        return self._replies.popleft()

    async def command(self, line: bytes, timeout: float | None) -> SMTPResponse:
        self.send(line + b"\r\n")
        return await self.reply(timeout)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # --- parsing

    def _parse(self) -> None:
        while (end := self._buffer.find(b"\n")) != -1:
            if end > MAX_REPLY_LINE:
                raise ProtocolError(f"reply line longer than {MAX_REPLY_LINE} octets")
            line = bytes(self._buffer[: end + 1]).rstrip(b"\r\n")
            del self._buffer[: end + 1]
            code, separator = line[:3], line[3:4]
            if not code.isdigit() or separator not in (b" ", b"-", b""):
                raise ProtocolError(f"not an SMTP reply line: {line[:80]!r}")
            text = line[4:].decode("utf-8", "replace")
            self._lines.append((int(code), text))
            if len(self._lines) > MAX_REPLY_LINES:
                raise ProtocolError(f"reply of more than {MAX_REPLY_LINES} lines")
            if separator != b"-":
                lines, self._lines = self._lines, []
                self._replies.append(SMTPResponse(lines[-1][0], "\n".join(t for _, t in lines)))
        if len(self._buffer) > MAX_REPLY_LINE:
            raise ProtocolError(f"reply line longer than {MAX_REPLY_LINE} octets")

    def _fail(self, error: Exception) -> None:
        if self._error is None:
            self._error = error
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
