"""Helpers for the submission tests: real listeners on free loopback ports, real clients.

``Listeners`` starts :func:`postroom.submission.server.start_listeners` in its own event
loop on a background thread (as ``postroom serve`` runs it), so blocking clients
(smtplib, swaks, raw sockets) can talk to it from the test. ``make_tls`` (tests/tlsfiles.py)
makes a throwaway CA and server certificate.
"""

from __future__ import annotations

import asyncio
import smtplib
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from postroom.mta import listen
from postroom.services import Services
from postroom.services.auth import Authenticator
from postroom.submission.server import start_listeners
from tlsfiles import Tls, make_tls

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Ports:
    starttls: int
    bulk_starttls: int
    implicit: int
    bulk_implicit: int


@contextmanager
def listeners(services: Services, tls: Tls | None, **submission: Any) -> Iterator[Ports]:
    """Run the submission listeners of ``services`` (settings updated) until exit."""
    sockets = {}
    for _ in range(4):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind((HOST, 0))
        sock.listen(64)
        sock.setblocking(False)
        sockets[sock.getsockname()[1]] = sock
    numbers = list(sockets)
    ports = Ports(*numbers)
    settings = services.settings
    server = settings.server.model_copy(
        update={"tls_cert": tls.cert if tls else None, "tls_key": tls.key if tls else None}
    )
    sub = settings.submission.model_copy(
        update={
            "port": ports.starttls,
            "bulk_port": ports.bulk_starttls,
            "tls_port": ports.implicit,
            "bulk_tls_port": ports.bulk_implicit,
            # Failed logins wait a second before their answer; the tests of that policy
            # (test_smtp_auth_throttle.py) set it themselves.
            "auth_failure_delay": 0.0,
            **submission,
        }
    )
    services.settings = settings.model_copy(update={"server": server, "submission": sub})
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop: asyncio.Event | None = None
    failure: list[BaseException] = []

    async def main() -> None:
        nonlocal stop
        stop = asyncio.Event()
        try:
            servers = await start_listeners(services, sockets, Authenticator(services))
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            raise
        ready.set()
        await stop.wait()
        await listen.stop(servers)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    ready.wait(10)
    if failure:
        raise failure[0]
    try:
        yield ports
    finally:
        assert stop is not None
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
        for sock in sockets.values():
            sock.close()


def starttls_client(port: int, tls: Tls) -> smtplib.SMTP:
    client = smtplib.SMTP(HOST, port, timeout=10)
    client.ehlo("client.test")
    client.starttls(context=tls.client_context())
    client.ehlo("client.test")
    return client


def implicit_client(port: int, tls: Tls) -> smtplib.SMTP_SSL:
    client = smtplib.SMTP_SSL(HOST, port, timeout=10, context=tls.client_context())
    client.ehlo("client.test")
    return client


class Raw:
    """A line-level SMTP client on a plain or TLS socket, for probes smtplib won't send."""

    def __init__(self, port: int, tls: Tls | None = None, implicit: bool = False) -> None:
        self.sock: socket.socket = socket.create_connection((HOST, port), timeout=10)
        if implicit and tls is not None:
            self.sock = tls.client_context().wrap_socket(self.sock, server_hostname=HOST)
        self.buffer = b""
        self.banner = self.reply()

    def starttls(self, tls: Tls) -> None:
        self.sock = tls.client_context().wrap_socket(self.sock, server_hostname=HOST)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed; pending {self.buffer!r}")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def reply(self) -> tuple[int, str]:
        """One (possibly multi-line) reply: its code and its lines joined."""
        lines = [self.line()]
        while lines[-1][3:4] == b"-":
            lines.append(self.line())
        return int(lines[0][:3]), "\n".join(x[4:].decode("utf-8", "replace") for x in lines)

    def command(self, text: str) -> tuple[int, str]:
        self.send(text.encode("utf-8") + b"\r\n")
        return self.reply()

    def pending(self, wait: float = 0.3) -> bytes:
        """Whatever the server sends within ``wait`` seconds (nothing, if it waits for us)."""
        self.sock.settimeout(wait)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.buffer += chunk
        except (TimeoutError, ssl.SSLError, OSError):
            pass
        finally:
            self.sock.settimeout(10)
        data, self.buffer = self.buffer, b""
        return data

    def close(self) -> None:
        self.sock.close()


__all__ = ["Ports", "Raw", "Tls", "implicit_client", "listeners", "make_tls", "starttls_client"]
