"""Real SMTP receivers for delivery tests: scripted aiosmtpd handlers on loopback.

:class:`Receiver` records what it accepts (with the connecting peer's address) and
answers as told: unknown recipients get ``550 5.1.1`` (``replies`` scripts any other RCPT
reply for an address), ``defer_data``/``always_defer``
answer ``451`` to DATA, ``delay`` holds every DATA reply (to make connections overlap),
and it counts how many sessions are open at once. :class:`Receivers` runs two of them on
127.0.0.2 and 127.0.0.3 (Linux routes all of 127/8 to loopback) on one free port.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SmtpSession


class Receiver:
    """An aiosmtpd handler that records what it accepts and answers as told."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []
        self.peers: list[str] = []  # the client address of each accepted message
        self.unknown: set[str] = set()
        self.replies: dict[str, str] = {}  # a scripted RCPT reply for an address
        self.defer_data = 0  # answer 451 to this many DATA commands
        self.always_defer = False
        self.delay = 0.0  # seconds to hold each DATA reply
        self.sessions = 0  # sessions open now
        self.most_sessions = 0  # the most open at once
        self.tls_sessions = 0  # messages received over TLS

    def connection_opened(self) -> None:
        self.sessions += 1
        self.most_sessions = max(self.most_sessions, self.sessions)

    def connection_closed(self) -> None:
        self.sessions -= 1

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self,
        server: SMTP,
        session: SmtpSession,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.replies:
            return self.replies[address]
        if address in self.unknown:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(  # noqa: N802
        self, server: SMTP, session: SmtpSession, envelope: Envelope
    ) -> str:
        if self.always_defer or self.defer_data > 0:
            self.defer_data -= 1
            return "451 4.3.0 Temporary local problem, please try again"
        if self.delay:
            await asyncio.sleep(self.delay)
        content = envelope.original_content or b""
        self.received.append((str(envelope.mail_from), list(envelope.rcpt_tos), content))
        self.peers.append(str(session.peer[0]))
        if session.ssl is not None:
            self.tls_sessions += 1
        return "250 2.0.0 Ok: queued as ABC123"


def _free_port() -> int:
    while True:
        with socket.socket() as a:
            a.bind(("127.0.0.2", 0))
            port = int(a.getsockname()[1])
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.3", port))
                except OSError:
                    continue
            return port


class _CountingSMTP(SMTP):
    """aiosmtpd's server, telling its handler when a client session starts and ends.

    A session counts from its first EHLO: the Controller's own readiness probe connects
    without one and must not count.
    """

    _greeted = False

    async def smtp_EHLO(self, hostname: str) -> None:  # noqa: N802 (aiosmtpd's name)
        if not self._greeted:
            self._greeted = True
            self.event_handler.connection_opened()
        await super().smtp_EHLO(hostname)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._greeted:
            self._greeted = False
            self.event_handler.connection_closed()


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _CountingSMTP(self.handler, **self.SMTP_kwargs)


class Receivers:
    """Two receivers on 127.0.0.2 and 127.0.0.3, one port; STARTTLS with ``tls``."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.port = _free_port()
        self.primary, self.secondary = Receiver(), Receiver()
        kwargs: dict[str, Any] = {"port": self.port}
        if tls is not None:
            kwargs.update(tls_context=tls, require_starttls=False)
        self.controllers = {
            "127.0.0.2": _Controller(self.primary, hostname="127.0.0.2", **kwargs),
            "127.0.0.3": _Controller(self.secondary, hostname="127.0.0.3", **kwargs),
        }
        self.running: set[str] = set()

    def start(self, address: str) -> None:
        self.controllers[address].start()
        self.running.add(address)

    def stop(self, address: str) -> None:
        if address in self.running:
            self.controllers[address].stop()
            self.running.discard(address)

    def close(self) -> None:
        """Stop every receiver and close the event loops of those never started."""
        for address, controller in self.controllers.items():
            if address in self.running:
                self.stop(address)
            elif not controller.loop.is_closed():
                controller.loop.close()


def postfix_tool(name: str) -> str:
    """The path of a Postfix tool; skips the test where it is missing, except in CI."""
    path = shutil.which(name) or f"/usr/sbin/{name}"
    if not os.access(path, os.X_OK):
        if os.environ.get("CI"):
            raise RuntimeError(f"{name} is missing; .ci/run installs the postfix package")
        pytest.skip(f"{name} not installed (apt-get install postfix)")
    return path


@contextlib.contextmanager
def postfix_sink(host: str) -> Iterator[tuple[int, Path]]:
    """Postfix's smtp-sink on ``host`` and a free port; yields (port, dump directory).

    smtp-sink is Postfix's test receiver (a real, independent SMTP implementation that
    offers PIPELINING, 8BITMIME and SIZE). It writes one file per message to the dump
    directory; as root it must drop to another user, which must be able to reach and
    write that directory (pytest's tmp_path is private to root), hence its own.
    """
    exe = postfix_tool("smtp-sink")
    dump_dir = Path(tempfile.mkdtemp(prefix="postroom-sink-"))
    dump_dir.chmod(0o777)
    with socket.socket() as probe:
        probe.bind((host, 0))
        port = int(probe.getsockname()[1])
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    cmd = [exe, *user, "-d", f"{dump_dir}/%H%M%S.", f"{host}:{port}", "64"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection((host, port), 0.5):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                stderr = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"smtp-sink did not start: {stderr[-500:]}")
            time.sleep(0.05)
        yield port, dump_dir
    finally:
        shutil.rmtree(dump_dir, ignore_errors=True)
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
