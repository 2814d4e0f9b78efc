"""A real HTTP webhook receiver on loopback for tests.

:class:`WebhookReceiver` listens on 127.0.0.1 (or another loopback address) and a free
port, records every POST (path, headers, raw body) in ``posts`` and answers from a
script: ``fail_next(n, status)`` answers the next ``n`` POSTs with ``status``;
``answer(status, body, headers, delay)`` sets the answer after that (200 "ok" by
default). ``accepted()`` are the POSTs it answered 2xx, which is what "the receiver got"
means for exactly-once checks.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass
class Post:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class _Answer:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        answer = owner.next_answer()
        if answer.delay:
            time.sleep(answer.delay)
        headers = dict(self.headers.items())
        with owner.lock:
            owner.posts.append(Post(self.path, headers, body, answer.status))
        try:
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)
        except OSError:
            pass  # the client gave up (a timeout test)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: WebhookReceiver, host: str) -> None:
        self.owner = owner
        super().__init__((host, 0), _Handler)


class WebhookReceiver:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.posts: list[Post] = []
        self.lock = threading.Lock()
        self._failures: list[int] = []
        self._answer = _Answer()
        self._server = _Server(self, host)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"

    def fail_next(self, count: int, status: int = 503) -> None:
        with self.lock:
            self._failures += [status] * count

    def answer(
        self,
        status: int = 200,
        body: bytes = b"ok",
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        with self.lock:
            self._answer = _Answer(status, body, headers or {}, delay)

    def next_answer(self) -> _Answer:
        with self.lock:
            if self._failures:
                return _Answer(self._failures.pop(0), b"not now")
            return self._answer

    def accepted(self) -> list[Post]:
        with self.lock:
            return [p for p in self.posts if 200 <= p.status < 300]

    def __enter__(self) -> WebhookReceiver:
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
