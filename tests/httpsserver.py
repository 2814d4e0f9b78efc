"""A real HTTPS server on loopback for tests, with a trustme certificate.

:class:`LocalHttpsServer` serves scripted replies by path on 127.0.0.1 and a free
port, over TLS with a certificate for the names it is given, issued by a throw-away
trustme CA whose PEM file is ``ca_path``::

    with LocalHttpsServer(tmp_path, ["mta-sts.example.com"]) as server:
        server.reply("/.well-known/mta-sts.txt", body=b"version: STSv1\\n...")
        ... EgressClient(..., ca_bundle=server.ca_path) ...

It records what reached it, so tests can assert that nothing did: ``connections``
(accepted TCP connections), ``requests`` (path, Host header), ``bodies`` (of POSTs) and
``sni`` (server names clients sent). Replies: status, headers, body; ``length=False``
omits Content-Length (the body then ends when the connection closes); ``delay`` sleeps
before answering.
"""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import trustme


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "text/plain"})
    body: bytes = b""
    length: bool = True
    delay: float = 0.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, owner: LocalHttpsServer, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.owner = owner
        self.socket = context.wrap_socket(self.socket, server_side=True)

    def get_request(self) -> tuple[Any, Any]:
        self.owner.connections += 1
        return super().get_request()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up mid-reply (a refused oversized body) are expected here.
        pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        owner = self.server.owner
        owner.requests.append((self.path, self.headers.get("Host", "")))
        self._answer(owner)

    def do_POST(self) -> None:
        owner = self.server.owner
        owner.requests.append((self.path, self.headers.get("Host", "")))
        owner.bodies.append(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        self._answer(owner)

    def _answer(self, owner: LocalHttpsServer) -> None:
        reply = owner.routes.get(self.path, Reply(status=404, body=b"not found"))
        if reply.delay:
            time.sleep(reply.delay)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.length:
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class LocalHttpsServer:
    """An HTTPS server on 127.0.0.1 with a trustme certificate for ``names``."""

    def __init__(self, directory: Path, names: list[str]) -> None:
        self.ca = trustme.CA()
        self.ca_path = directory / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_path))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(*names).configure_cert(context)
        context.sni_callback = self._record_sni
        self.routes: dict[str, Reply] = {}
        self.connections = 0
        self.requests: list[tuple[str, str]] = []
        self.bodies: list[bytes] = []  # request bodies of POSTs
        self.sni: list[str | None] = []
        self._server = _Server(self, context)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def reply(self, path: str, **kwargs: Any) -> None:
        """Answer GET or POST ``path`` with a :class:`Reply` built from ``kwargs``."""
        self.routes[path] = Reply(**kwargs)

    def _record_sni(self, sock: Any, name: str | None, context: Any) -> None:
        self.sni.append(name)

    def __enter__(self) -> LocalHttpsServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
