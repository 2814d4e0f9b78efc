"""Serving aiosmtpd on sockets bound beforehand: the start and stop every SMTP listener shares.

``postroom serve`` binds each port before it starts anything (``cli/runner.py``), so a
port clash is reported first; the inbound listener (bounces and feedback reports) and
the submission listeners then serve on those sockets through :func:`start`. Starting
several is all or nothing: when one fails, those already serving are closed before the
error goes on, so no socket is left accepting behind a failed start.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aiosmtpd.smtp import SMTP


@dataclass(frozen=True, slots=True)
class Listener:
    """One listening socket and the aiosmtpd session made for each connection to it.

    ``tls`` is for implicit TLS (the handshake before the banner); STARTTLS is the
    session's own business.
    """

    factory: Callable[[], SMTP]
    sock: socket.socket
    tls: ssl.SSLContext | None = None


async def start(listeners: Iterable[Listener]) -> list[asyncio.Server]:
    """Serve every listener on the running loop; all of them, or none."""
    loop = asyncio.get_running_loop()
    servers: list[asyncio.Server] = []
    try:
        for item in listeners:
            servers.append(await loop.create_server(item.factory, sock=item.sock, ssl=item.tls))
    except BaseException:
        close(servers)
        raise
    return servers


def close(servers: Iterable[asyncio.Server]) -> None:
    """Stop accepting connections. Sessions already open end by their own time limits, or
    with the process: waiting for them here could hold a shutdown for minutes."""
    for server in servers:
        server.close()


async def stop(servers: Iterable[asyncio.Server]) -> None:
    """Stop accepting and wait until the servers are closed (tests, and embedding)."""
    servers = list(servers)
    close(servers)
    for server in servers:
        await server.wait_closed()
