"""Run every role of ``postroom serve`` in one process and one event loop.

Three uvicorn servers (transactional, bulk and tracking listeners), the SMTP
submission listeners, the inbound SMTP listener for bounces, the delivery worker and the
scheduler share the loop. Signals are handled here, once, for all of them: uvicorn's
own handlers would let only the last server installed hear SIGINT/SIGTERM.

Before anything listens, the soft open-file limit is raised to the hard one and every
listener gets its connection gate, with caps that fit under that limit
(``net/budget.py``), so that no listener can take another's file descriptors.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from typing import Any

import uvicorn

from postroom.api.app import create_app
from postroom.api.listener import HttpListener
from postroom.api.tracking import create_tracking_app
from postroom.dashboard import install as install_dashboard
from postroom.domain.streams import Stream
from postroom.inbound import listener
from postroom.mta import listen
from postroom.net import budget
from postroom.net.gate import ConnectionGate
from postroom.services import Services
from postroom.services.auth import Authenticator
from postroom.submission.server import start_listeners
from postroom.workers.delivery import DeliveryWorker
from postroom.workers.scheduler import Scheduler

log = logging.getLogger("postroom.serve")

SHUTDOWN_GRACE_SECONDS = 3


class PortInUse(OSError):
    """A listener's address is taken; the message says which flag changes it."""


def bind(host: str, port: int, flag: str) -> socket.socket:
    """Bind a listening socket now, so a clash is reported before anything starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP (not 0) matters: asyncio sets TCP_NODELAY on accepted sockets only when
    # the listener says TCP, and without it every keep-alive response waits ~40 ms for
    # the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise PortInUse(
            exc.errno,
            f"cannot listen on {host}:{port} ({exc.strerror}); choose another with {flag}",
        ) from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _server(
    services: Services,
    stream: Stream,
    port: int,
    auth: Authenticator,
    worker: DeliveryWorker,
    gate: ConnectionGate,
) -> HttpListener:
    app = create_app(services, stream, auth)
    if stream is Stream.TRANSACTIONAL:
        # The web dashboard answers at / on the transactional listener only.
        install_dashboard(app)
    # /metrics (on the transactional app) reports the worker's open SMTP connections.
    app.state.smtp_connections = worker.open_connections
    return _http(services, app, port, gate)


def _http(services: Services, app: Any, port: int, gate: ConnectionGate) -> HttpListener:
    """A gated uvicorn server for ``app`` on ``port`` (HTTPS with the server's certificate)."""
    cfg = services.settings.server
    ssl: dict[str, Any] = {}
    if cfg.tls_cert and cfg.tls_key:
        ssl = {"ssl_certfile": str(cfg.tls_cert), "ssl_keyfile": str(cfg.tls_key)}
    config = uvicorn.Config(
        app,
        host=cfg.host,
        port=port,
        log_level="warning",
        access_log=False,
        server_header=False,
        # A TLS close waits up to 30 s for an idle keep-alive client; don't let a stop
        # (a container's 10 s grace) turn into a SIGKILL because of it.
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        lifespan="off",
        **ssl,
    )
    limits = services.settings.connections
    return HttpListener(
        config,
        gate,
        header_timeout=limits.http_header_timeout,
        handshake_timeout=limits.tls_handshake_timeout,
    )


async def serve(services: Services, sockets: dict[int, socket.socket]) -> None:
    """Run until SIGINT or SIGTERM, then stop every role.

    ``sockets`` maps each listener's port (HTTP and SMTP) to its already bound socket
    (see :func:`bind`).
    """
    cfg = services.settings.server
    gates = budget.gates_for(services.settings, budget.raise_open_files())
    auth = Authenticator(services)
    worker = DeliveryWorker(services)
    servers = [
        _server(services, Stream.TRANSACTIONAL, cfg.port, auth, worker, gates[cfg.port]),
        _server(services, Stream.BULK, cfg.bulk_port, auth, worker, gates[cfg.bulk_port]),
    ]
    tracking_port = services.settings.tracking.port
    if tracking_port and tracking_port in sockets:
        tracking = create_tracking_app(services)
        servers.append(_http(services, tracking, tracking_port, gates[tracking_port]))
    submission = await start_listeners(services, sockets, auth, gates)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = [
        asyncio.create_task(s.serve(sockets=[sockets[s.config.port]]), name=f"http:{s.config.port}")
        for s in servers
    ]
    tasks.append(asyncio.create_task(worker.run(stop), name="worker"))
    tasks.append(asyncio.create_task(Scheduler(services).run(stop), name="scheduler"))
    inbound_port = services.settings.bounces.inbound_port
    inbound = None
    if services.settings.bounces.inbound_enabled and inbound_port in sockets:
        inbound = await listener.start(services, sockets[inbound_port], gates[inbound_port])
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    for server in servers:
        server.should_exit = True
    # Stop accepting; open SMTP sessions end with the process.
    listen.close([*submission, *([inbound] if inbound is not None else [])])
    await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        if task is not stopper and task.exception():
            raise task.exception()  # type: ignore[misc]
