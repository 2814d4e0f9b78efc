"""Serving aiosmtpd on sockets bound beforehand: the start, stop and session rules every SMTP
listener shares.

``postroom serve`` binds each port before it starts anything (``cli/runner.py``), so a
port clash is reported first; the inbound listener (bounces and feedback reports) and
the submission listeners then serve on those sockets through :func:`start`, behind their
connection gates (``net/acceptor.py``: a connection over the caps gets ``421 4.7.0 Too
many connections`` and is closed at once). Starting several is all or nothing: when one
fails, those already serving are closed before the error goes on.

:class:`GuardedSMTP` is the session both listeners use: an idle client gets ``421`` and
is closed after ``idle_timeout`` (aiosmtpd's own timeout closes silently, and its clock
would stop during a message's data: here every chunk of data counts as activity), a
session ends after ``session_timeout`` however busy it is, junk commands (NOOP, RSET,
...) are capped per session as Postfix's ``smtpd_junk_command_limit`` does, and the
connection's gate slot is released when it ends.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import SMTP

from postroom.config import ConnectionSettings
from postroom.mta.smtpaddress import plain_address
from postroom.net.acceptor import Acceptor
from postroom.net.gate import ConnectionGate, Over, Slot

JUNK_COMMANDS = ("NOOP", "RSET", "VRFY", "EXPN", "HELP", "HELO", "EHLO")
SESSION_EXPIRED = b"421 4.4.2 Session time limit reached; closing\r\n"
TOO_MANY = {
    Over.TOTAL: b"421 4.7.0 Too many connections, try again later\r\n",
    Over.CLIENT: b"421 4.7.0 Too many connections from your address, try again later\r\n",
}


class GuardedSMTP(SMTP):
    """An aiosmtpd session with the time, command and connection limits of every listener."""

    def __init__(
        self,
        handler: Any,
        *,
        slot: Slot,
        limits: ConnectionSettings,
        idle_timeout: float,
        session_timeout: float,
        **kwargs: Any,
    ) -> None:
        self._slot = slot
        self._session_timeout = session_timeout
        self._session_timer: asyncio.TimerHandle | None = None
        self._receiving_data = False
        calls = dict.fromkeys(JUNK_COMMANDS, limits.smtp_max_junk_commands)
        super().__init__(
            handler,
            timeout=idle_timeout,
            command_call_limit={**calls, "*": limits.smtp_max_commands},
            **kwargs,
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is None:  # the TCP connection, not the STARTTLS upgrade
            self._session_timer = self.loop.call_later(
                self._session_timeout, self._end, SESSION_EXPIRED
            )
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._session_timer is not None:
            self._session_timer.cancel()
        self._slot.release()
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        if self._receiving_data:  # a message arriving is not an idle client
            self._reset_timeout()
        super().data_received(data)

    async def smtp_DATA(self, arg: str) -> None:  # noqa: N802 (aiosmtpd's names)
        self._receiving_data = True
        try:
            await super().smtp_DATA(arg)
        finally:
            self._receiving_data = False

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        # The plain <local@host> without the header parser (mta/smtpaddress.py); aiosmtpd's
        # own reading for every other form.
        plain = plain_address(arg)
        if plain is None:
            return super()._getaddr(arg)
        address, local, rest = plain
        if self.local_part_limit and len(local) > self.local_part_limit:
            return None, None
        return address, rest

    def _timeout_cb(self) -> None:
        # aiosmtpd's idle timeout closes without a word; say why, as Postfix does.
        self._end(f"421 4.4.2 {self.hostname} Error: timeout exceeded\r\n".encode())

    def _end(self, reply: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self._writer.write(reply)
            self.transport.close()


@dataclass(frozen=True, slots=True)
class Listener:
    """One listening socket, its gate, and the session made for each connection it admits.

    ``tls`` is for implicit TLS (the handshake before the banner); STARTTLS is the
    session's own business.
    """

    factory: Callable[[Slot], SMTP]
    sock: socket.socket
    gate: ConnectionGate
    tls: ssl.SSLContext | None = None
    handshake_timeout: float = 20.0


async def start(listeners: Iterable[Listener]) -> list[Acceptor]:
    """Serve every listener on the running loop; all of them, or none."""
    servers: list[Acceptor] = []
    try:
        for item in listeners:
            server = Acceptor(
                item.sock,
                item.factory,
                item.gate,
                tls=item.tls,
                handshake_timeout=item.handshake_timeout,
                # No plaintext reply before a TLS handshake: a refused client is closed.
                refusal=None if item.tls is not None else TOO_MANY.__getitem__,
            )
            servers.append(server.start())
    except BaseException:
        close(servers)
        raise
    return servers


def close(servers: Iterable[Acceptor]) -> None:
    """Stop accepting connections. Sessions already open end by their own time limits, or
    with the process: waiting for them here could hold a shutdown for minutes."""
    for server in servers:
        server.close()


async def stop(servers: Iterable[Acceptor]) -> None:
    """Stop accepting and wait until the servers are closed (tests, and embedding)."""
    servers = list(servers)
    close(servers)
    for server in servers:
        await server.wait_closed()
