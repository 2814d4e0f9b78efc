"""The SMTP listeners' connection caps and session limits, with real sockets.

The inbound listener (port 25 in production, open to anyone) runs in its own event loop on
a background thread, as ``postroom serve`` runs it; clients are raw sockets from
127.0.0.1 and 127.0.0.2 (two client addresses on Linux's loopback). Checked: the total
and per-client caps answer ``421 4.7.0 Too many connections`` at once and close, a slot
comes back when its connection ends, a refusal is logged once per interval, an idle
client gets ``421`` after the idle timeout, a busy one after the session limit, and a
junk-command flood is cut off. The submission listeners share the gate and the session
class; one test shows their caps (and that an implicit-TLS port closes without a word).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from smtp_submission import listeners, make_tls

from postroom.inbound import listener
from postroom.mta import listen
from postroom.services import Services

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

HOST = "127.0.0.1"


@contextmanager
def inbound(services: Services, **bounces: Any) -> Iterator[int]:
    """Run the inbound listener of ``services`` (bounces settings updated); yields its port."""
    settings = services.settings
    services.settings = settings.model_copy(
        update={"bounces": settings.bounces.model_copy(update=bounces)}
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("0.0.0.0", 0))
    sock.listen(128)
    port = int(sock.getsockname()[1])
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()

    async def main() -> None:
        server = await listener.start(services, sock)
        ready.set()
        await stop.wait()
        await listen.stop([server])

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield port
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
        sock.close()


def connect(port: int, source: str = HOST) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=10, source_address=(source, 0))
    return sock


def first_line(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0]


def closed(sock: socket.socket) -> bool:
    """Whether the server has closed ``sock`` (after whatever it sent)."""
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    return True


def test_per_client_cap_refuses_that_client_only_and_frees_its_slot_on_close(
    services: Services,
) -> None:
    services.settings.connections.inbound.max_per_client = 3
    with inbound(services) as port:
        mine = [connect(port) for _ in range(3)]
        assert all(first_line(s).startswith(b"220 ") for s in mine)
        extra = connect(port)
        assert first_line(extra) == (
            b"421 4.7.0 Too many connections from your address, try again later"
        )
        assert closed(extra)
        neighbour = connect(port, "127.0.0.2")
        assert first_line(neighbour).startswith(b"220 ")
        mine.pop().close()
        time.sleep(0.2)  # the server sees the close
        again = connect(port)
        assert first_line(again).startswith(b"220 ")
        for sock in [*mine, extra, neighbour, again]:
            sock.close()


def test_total_cap_refuses_every_client(services: Services) -> None:
    services.settings.connections.inbound.max_connections = 2
    with inbound(services) as port:
        held = [connect(port, "127.0.0.3"), connect(port, "127.0.0.4")]
        assert all(first_line(s).startswith(b"220 ") for s in held)
        refused = connect(port, "127.0.0.5")
        assert first_line(refused) == b"421 4.7.0 Too many connections, try again later"
        for sock in [*held, refused]:
            sock.close()


def test_a_refusal_is_logged_once_per_interval_with_its_setting(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    services.settings.connections.inbound.max_per_client = 1
    with caplog.at_level(logging.WARNING, logger="postroom.net"), inbound(services) as port:
        held = connect(port)
        assert first_line(held).startswith(b"220 ")
        for _ in range(20):
            refused = connect(port)
            assert first_line(refused).startswith(b"421 4.7.0")
            refused.close()
        held.close()
    warnings = [r for r in caplog.records if r.name == "postroom.net"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    message = warnings[0].getMessage()
    assert "inbound SMTP" in message and "connections.inbound.max_per_client = 1" in message


def test_an_idle_client_gets_421_and_is_closed_after_the_idle_timeout(
    services: Services,
) -> None:
    with inbound(services, inbound_idle_timeout=0.5) as port:
        sock = connect(port)
        assert first_line(sock).startswith(b"220 ")
        sock.sendall(b"EHLO client.test\r\n")
        started = time.monotonic()
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        assert b"421 4.4.2" in data and b"timeout" in data
        assert time.monotonic() - started < 8
        sock.close()


def test_a_busy_session_ends_at_the_session_limit_and_junk_commands_are_capped(
    services: Services,
) -> None:
    with inbound(services, inbound_session_timeout=0.6) as port:
        sock = connect(port)
        first_line(sock)
        sock.sendall(b"EHLO client.test\r\n")
        data = b""
        deadline = time.monotonic() + 5
        while b"421" not in data and time.monotonic() < deadline:
            sock.sendall(b"MAIL FROM:<>\r\nRSET\r\n")  # never idle
            time.sleep(0.05)
            data += sock.recv(65536)
        assert b"421 4.4.2 Session time limit" in data
        sock.close()
    services.settings.connections.smtp_max_junk_commands = 3
    with inbound(services) as port:
        sock = connect(port)
        first_line(sock)
        sock.sendall(b"NOOP\r\n" * 4)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        assert data.count(b"250 ") == 3 and b"421 4.7.0 NOOP sent too many times" in data
        sock.close()


def test_submission_listeners_have_caps_too(services: Services, tmp_path: Any) -> None:
    services.settings.connections.submission.max_per_client = 1
    tls = make_tls(tmp_path)
    with listeners(services, tls) as ports:
        held = connect(ports.starttls)
        assert first_line(held).startswith(b"220 ")
        refused = connect(ports.starttls)
        assert first_line(refused).startswith(b"421 4.7.0 Too many connections")
        # Implicit TLS: no plaintext answer before a handshake, just a close.
        tls_held = tls.client_context().wrap_socket(connect(ports.implicit), server_hostname=HOST)
        assert first_line(tls_held).startswith(b"220 ")
        bare = connect(ports.implicit)
        assert bare.recv(4096) == b""
        for sock in [held, refused, tls_held, bare]:
            sock.close()
