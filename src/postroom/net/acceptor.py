"""The accept path every Postroom listener shares (HTTP and SMTP): gate, then serve.

asyncio's own server (``loop.create_server``) accepts whatever the kernel hands it and
starts a TLS handshake before the protocol hears of the connection, so a flood of idle
connections on one port holds open files (and, past the process's limit, makes every
other listener's ``accept()`` fail) with nothing to count or refuse them. This module
accepts itself, on the listening socket's readiness:

* every accepted connection first asks the listener's :class:`~postroom.net.gate.ConnectionGate`
  for a slot, before any TLS handshake or protocol object exists;
* a connection over the caps is answered at once (``refusal``: SMTP's ``421 4.7.0 Too
  many connections``, HTTP's ``503``; nothing on TLS ports) and closed, so the backlog
  never fills with connections that will not be served;
* an admitted one is handed to asyncio (``loop.connect_accepted_socket``) with the
  protocol the listener makes for that slot; the protocol releases the slot when the
  connection is lost, and this module releases it if the TLS handshake fails first.

At most ``ACCEPT_BATCH`` connections are accepted per readiness event, so a flood on
one port cannot monopolise the event loop; when ``accept()`` fails for want of file
descriptors the listener pauses briefly (as asyncio does) and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl
from collections.abc import Callable

from postroom.net.clients import peer_address
from postroom.net.gate import ConnectionGate, Over, Slot

log = logging.getLogger("postroom.net")

ACCEPT_BATCH = 64
OUT_OF_FILES_PAUSE = 0.1
_OUT_OF_FILES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}

ProtocolFactory = Callable[[Slot], asyncio.BaseProtocol]


class Acceptor:
    """Serves one listening socket through its gate: ``Acceptor(...).start()`` on a running
    loop; ``close()`` stops accepting."""

    def __init__(
        self,
        sock: socket.socket,
        factory: ProtocolFactory,
        gate: ConnectionGate,
        *,
        tls: ssl.SSLContext | None = None,
        handshake_timeout: float = 20.0,
        refusal: Callable[[Over], bytes] | None = None,
    ) -> None:
        self._sock = sock
        self._factory = factory
        self.gate = gate
        self._tls = tls
        self._handshake_timeout = handshake_timeout
        self._refusal = refusal
        self._loop = asyncio.get_running_loop()
        self._pending: set[asyncio.Task[None]] = set()
        self._serving = False
        self._closed = asyncio.Event()

    def start(self) -> Acceptor:
        """Start accepting on the (bound, listening) socket; OSError if it is closed."""
        self._sock.getsockname()
        self._sock.setblocking(False)
        self._loop.add_reader(self._sock.fileno(), self._accept)
        self._serving = True
        return self

    def is_serving(self) -> bool:
        return self._serving

    def close(self) -> None:
        """Stop accepting and close the listening socket (as ``asyncio.Server.close()``
        does). Connections already served end by their own limits."""
        if self._serving:
            self._serving = False
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        for task in self._pending:
            task.cancel()
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, addr = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as error:
                if error.errno not in _OUT_OF_FILES:
                    raise
                self.gate.out_of_files(error)
                self._pause()
                return
            self._admit(conn, peer_address(addr))

    def _pause(self) -> None:
        self._loop.remove_reader(self._sock.fileno())

        def resume() -> None:
            if self._serving:  # not closed meanwhile
                self._loop.add_reader(self._sock.fileno(), self._accept)

        self._loop.call_later(OUT_OF_FILES_PAUSE, resume)

    def _admit(self, conn: socket.socket, address: str) -> None:
        slot = self.gate.admit(address)
        if isinstance(slot, Over):
            self._refuse(conn, slot)
            return
        conn.setblocking(False)
        task = self._loop.create_task(self._serve(conn, slot))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _serve(self, conn: socket.socket, slot: Slot) -> None:
        def protocol() -> asyncio.BaseProtocol:
            return self._factory(slot)

        try:
            if self._tls is None:
                await self._loop.connect_accepted_socket(protocol, conn)
            else:
                await self._loop.connect_accepted_socket(
                    protocol, conn, ssl=self._tls, ssl_handshake_timeout=self._handshake_timeout
                )
        except BaseException as error:
            # The handshake failed or timed out (or we are closing): the protocol never
            # saw the connection, so its slot is released here.
            slot.release()
            conn.close()
            if not isinstance(error, Exception):
                raise
            log.debug("%s: connection not started: %r", self.gate.name, error)

    def _refuse(self, conn: socket.socket, over: Over) -> None:
        with contextlib.suppress(OSError):
            conn.setblocking(False)
            if self._refusal is not None:
                conn.send(self._refusal(over))
                # Read what the client already sent, so that closing with unread data
                # does not turn the answer into a reset.
                conn.recv(65536)
        conn.close()
