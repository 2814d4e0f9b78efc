"""mta/listen.py: SMTP listeners start all or none, and stop."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiosmtpd.smtp import SMTP

from postroom.config import ConnectionSettings
from postroom.mta import listen
from postroom.net.gate import Caps, ConnectionGate, Slot


class _Handler:
    pass


def _bound() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    return sock


def _session(slot: Slot) -> SMTP:
    return listen.GuardedSMTP(
        _Handler(), slot=slot, limits=ConnectionSettings(), idle_timeout=5, session_timeout=5
    )


def _listener(sock: socket.socket) -> listen.Listener:
    return listen.Listener(_session, sock, ConnectionGate("test", Caps(10, 10), setting="x"))


async def _banner(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()
        await writer.wait_closed()


def test_listeners_serve_then_stop() -> None:
    async def run() -> None:
        sock = _bound()
        port = sock.getsockname()[1]
        [server] = await listen.start([_listener(sock)])
        assert (await _banner(port)).startswith(b"220 ")
        await listen.stop([server])
        with pytest.raises(OSError):
            await _banner(port)

    asyncio.run(run())


def test_a_failed_start_closes_the_listeners_already_serving() -> None:
    async def run() -> None:
        good, bad = _bound(), _bound()
        port = good.getsockname()[1]
        bad.close()  # serving on a closed socket fails
        with pytest.raises(OSError):
            await listen.start([_listener(good), _listener(bad)])
        with pytest.raises(OSError):
            await _banner(port)

    asyncio.run(run())
