"""The HTTP listener: uvicorn behind Postroom's connection gate, with a header deadline.

uvicorn has neither: its ``limit_concurrency`` answers 503 only once a request has been
read (an idle connection is never counted against it), and its only timeout is the
keep-alive one *between* requests, cancelled by the first byte of the next, so a client
that connects and sends nothing, or sends its headers one byte at a time, holds its
connection for ever (uvicorn issue #157). So:

* :class:`HttpListener` serves its sockets through ``net/acceptor.py`` (the listener's
  :class:`~postroom.net.gate.ConnectionGate`: past its caps a connection is answered 503
  and closed at once, or just closed on HTTPS) instead of ``loop.create_server``;
* :class:`GuardedHttp` is uvicorn's httptools protocol with a deadline for each request's
  headers (``connections.http_header_timeout``), counted from the connection and then
  from the first byte of each next request; it releases the gate's slot when the
  connection ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator
from typing import Any, cast

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from postroom.net.acceptor import Acceptor
from postroom.net.gate import ConnectionGate, Over, Slot

_BODY = b'{"errors":"Too many connections"}'
TOO_MANY = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/json; charset=utf-8\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n"
    b"Content-Length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY
)


class GuardedHttp(HttpToolsProtocol):
    """One HTTP/1.1 connection with a deadline for its requests' headers.

    Cheap per request: a request only notes when it began; the one timer of the
    connection, when it fires, closes the connection if headers are still awaited past
    the deadline, and otherwise waits for the next request to arm it again.
    """

    def __init__(self, *args: Any, slot: Slot, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slot = slot
        self._header_timeout = header_timeout
        self._header_timer: asyncio.TimerHandle | None = None
        self._awaiting_headers = True
        self._request_began = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._request_began = self.loop.time()
        self._arm(self._header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self._slot.release()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        if not self._awaiting_headers:
            self._awaiting_headers = True
            self._request_began = self.loop.time()
            if self._header_timer is None:
                self._arm(self._header_timeout)
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        super().on_headers_complete()

    def _arm(self, delay: float) -> None:
        self._header_timer = self.loop.call_later(delay, self._check_headers)

    def _check_headers(self) -> None:
        self._header_timer = None
        if not self._awaiting_headers:
            return  # the next request arms the timer again
        left = self._request_began + self._header_timeout - self.loop.time()
        if left > 0:
            self._arm(left)
        elif not self.transport.is_closing():
            self.transport.close()


class HttpListener(uvicorn.Server):
    """A uvicorn server that accepts through a gate and leaves signals to the runner."""

    def __init__(
        self,
        config: uvicorn.Config,
        gate: ConnectionGate,
        *,
        header_timeout: float,
        handshake_timeout: float,
    ) -> None:
        super().__init__(config)
        self.gate = gate
        self._header_timeout = header_timeout
        self._handshake_timeout = handshake_timeout

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's start on given sockets, with the accept path of ``net/acceptor.py``."""
        assert sockets, "HttpListener serves sockets bound beforehand"
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            self.should_exit = True
            return
        config = self.config

        def protocol(slot: Slot) -> asyncio.BaseProtocol:
            return GuardedHttp(
                config=config,
                server_state=self.server_state,
                app_state=self.lifespan.state,
                slot=slot,
                header_timeout=self._header_timeout,
            )

        refusal = None if config.ssl else _too_many
        servers = [
            Acceptor(
                sock,
                protocol,
                self.gate,
                tls=config.ssl,
                handshake_timeout=self._handshake_timeout,
                refusal=refusal,
            ).start()
            for sock in sockets
        ]
        # uvicorn only calls close() and wait_closed() on what it keeps here.
        self.servers = cast(list[Any], servers)
        self.started = True


def _too_many(over: Over) -> bytes:
    return TOO_MANY
