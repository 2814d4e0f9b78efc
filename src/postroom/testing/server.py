"""An in-process Postroom for tests: a real HTTP listener on a free loopback port (HTTPS
with a self-signed certificate on request), SQLite in a directory of the caller's,
sandbox delivery (nothing leaves the machine).

It is ``postroom serve`` minus the SMTP, inbound and tracking listeners, run on its own
event loop in a daemon thread so that a synchronous test (Django, FastAPI's TestClient,
plain requests) can call it. :meth:`LocalPostroom.start` returns once the API answers;
:meth:`LocalPostroom.stop` stops the worker and the listeners and closes the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from postroom.cli import selfsigned
from postroom.cli.client import PostroomClient, Remote, RemoteError
from postroom.cli.runner import bind
from postroom.cli.runner import serve as run_all
from postroom.config import DeliveryMode, Settings
from postroom.services import Services
from postroom.services.accounts import bootstrap
from postroom.storage.db import Database
from postroom.storage.migrate import upgrade
from postroom.storage.secrets import load_sealer

HOST = "127.0.0.1"
START_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Started:
    """What a client needs: the API's URL, the first token, its account and inbox."""

    url: str
    token: str
    account_id: int
    inbox_id: int
    # With tls: the server's self-signed certificate, to trust (REQUESTS_CA_BUNDLE for the
    # Python SDK, NODE_EXTRA_CA_CERTS for Node, SSL_CERT_FILE for httpx and Postroom's CLI).
    ca_file: Path | None = None


class LocalPostroom:
    """One Postroom on loopback for the length of a test session (or a ``with`` block)."""

    def __init__(self, directory: Path, *, tls: bool = False) -> None:
        """``tls``: serve HTTPS with a self-signed certificate for 127.0.0.1 and localhost
        (the official SDKs speak HTTPS only)."""
        self.directory = Path(directory)
        self.tls = tls
        self._ca_file: Path | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self._services: Services | None = None
        self.started: Started | None = None

    def __enter__(self) -> Started:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _certificate(self) -> Path:
        """A self-signed certificate and its key in one PEM (0600), made once."""
        path = self.directory / "tls.pem"
        if not path.exists():
            pem = selfsigned.generate("localhost", datetime.now(UTC))
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
            # The certificate alone: what a client is told to trust.
            start = pem.index(b"-----BEGIN CERTIFICATE-----")
            (self.directory / "ca.pem").write_bytes(pem[start:])
        self._ca_file = self.directory / "ca.pem"
        return path

    def _settings(self, port: int, bulk_port: int) -> Settings:
        data_dir = self.directory / "data"
        server: dict[str, object] = {"host": HOST, "port": port, "bulk_port": bulk_port}
        if self.tls:
            pem = self._certificate()
            server.update(tls_cert=pem, tls_key=pem)
        return Settings(
            server=server,
            storage={
                "data_dir": data_dir,
                "database_url": f"sqlite:///{data_dir / 'postroom.db'}",
            },
            delivery={"mode": DeliveryMode.SANDBOX, "stream_modes": {}},
            # Only the HTTP listeners: no fixed ports that could clash with the host's.
            # (No listener, so no certificate: nothing to warn about.)
            submission={
                "port": 0,
                "bulk_port": 0,
                "tls_port": 0,
                "bulk_tls_port": 0,
                "allow_plaintext_loopback": True,
            },
            bounces={"inbound_enabled": False},
            tracking={"port": 0},
            # A test suite sends in bursts; the contract's per-minute limits would refuse it.
            ratelimits={"enabled": False},
            # A test suite's messages are not checked against public DNS blocklists.
            sandbox={"blacklist_checks": False},
        )

    def start(self) -> Started:
        """Migrate, bootstrap (account, inbox, admin token) and listen; returns when ready."""
        if self.started is not None:
            return self.started
        sockets: dict[int, socket.socket] = {}
        for _ in range(2):
            sock = bind(HOST, 0, "--port")
            sockets[sock.getsockname()[1]] = sock
        port, bulk_port = list(sockets)
        settings = self._settings(port, bulk_port)
        settings.storage.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        db = Database.from_url(settings.database_url)
        upgrade(db.engine)
        services = Services(settings=settings, db=db)
        services.sealer = load_sealer(settings, create=True)
        boot = bootstrap(services)
        if boot is None:
            db.close()
            for sock in sockets.values():
                sock.close()
            raise RuntimeError(f"{self.directory} already holds a Postroom database")
        self._services = services
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(services, sockets, ready), name="postroom", daemon=True
        )
        self._thread.start()
        ready.wait(START_TIMEOUT)
        url = f"{'https' if self.tls else 'http'}://{HOST}:{port}"
        self._wait_until_answering(Remote(url, boot.token))
        self.started = Started(url, boot.token, boot.account_id, boot.inbox_id, self._ca_file)
        return self.started

    def _run(
        self, services: Services, sockets: dict[int, socket.socket], ready: threading.Event
    ) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            ready.set()
            await run_all(services, sockets, stop=self._stop)

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by start() or stop()
            self._failure = exc
            ready.set()

    def _wait_until_answering(self, remote: Remote) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        with PostroomClient(remote, timeout=2, cafile=self._ca_file) as client:
            while True:
                if self._failure is not None:
                    raise RuntimeError(f"Postroom failed to start: {self._failure!r}")
                try:
                    client.whoami()
                    return
                except RemoteError as exc:
                    if exc.status != 0:  # it answers, with an error: report it
                        raise
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"Postroom not answering at {remote.url}") from None
                    time.sleep(0.02)

    def client(self) -> PostroomClient:
        """A client of the API with the first (admin) token."""
        if self.started is None:
            raise RuntimeError("start() first")
        return PostroomClient(
            Remote(self.started.url, self.started.token), cafile=self.started.ca_file
        )

    def stop(self) -> None:
        """Stop the listeners and the worker, and close the database."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            # RuntimeError: the loop ended on its own (a failure, reported below).
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(30)
        if self._services is not None:
            self._services.db.close()
            self._services = None
        self.started = None
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise RuntimeError(f"Postroom stopped with an error: {failure!r}") from failure
