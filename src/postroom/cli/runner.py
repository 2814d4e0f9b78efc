"""Run the roles of one Postroom process (all of them for ``postroom serve``) in one loop.

Each role (cli/roles.py) has its start function here: ``api`` (three uvicorn servers:
transactional, bulk and tracking listeners), ``smtp`` (the submission listeners and the
inbound SMTP listener for bounces and inbound inboxes), ``worker`` (the delivery worker
and the webhook dispatcher) and ``scheduler``. Whatever roles a process plays share its
event loop. Signals are handled here, once, for all of them: uvicorn's own handlers would
let only the last server installed hear SIGINT/SIGTERM.

Before anything listens, the soft open-file limit is raised to the hard one and every
listener gets its connection gate, with caps that fit under that limit
(``net/budget.py``), so that no listener can take another's file descriptors.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from postroom.api.app import create_app
from postroom.api.health import ProcessHealth, create_health_app
from postroom.api.health import install as install_health
from postroom.api.listener import HttpListener
from postroom.api.tracking import create_tracking_app
from postroom.cli.roles import ALL_ROLES, Role, label
from postroom.dashboard import install as install_dashboard
from postroom.domain.streams import Stream
from postroom.inbound import listener
from postroom.mta import listen
from postroom.net import budget
from postroom.net.acceptor import Acceptor
from postroom.net.gate import Caps, ConnectionGate
from postroom.services import Services, inbound_mail
from postroom.services.auth import Authenticator
from postroom.services.shared import Invalidations
from postroom.submission.server import start_listeners
from postroom.workers.delivery import DeliveryWorker
from postroom.workers.scheduler import Scheduler
from postroom.workers.webhooks import WebhookDispatcher

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


@dataclass
class Running:
    """What the roles of this process started: tasks to await, listeners to stop."""

    services: Services
    sockets: dict[int, socket.socket]
    gates: dict[int, ConnectionGate]
    stop: asyncio.Event
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    http: list[HttpListener] = field(default_factory=list)
    smtp: list[Acceptor] = field(default_factory=list)

    def start(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        self.tasks.append(asyncio.create_task(coro, name=name))

    def serve_http(self, server: HttpListener, sock: socket.socket) -> None:
        self.http.append(server)
        self.start(server.serve(sockets=[sock]), f"http:{server.config.port}")


def start_worker(run: Running) -> DeliveryWorker:
    """The worker role: the background tasks that drain the database.

    Every process that plays it runs them; several may share one PostgreSQL database
    (deliveries are leased with SKIP LOCKED). The webhook dispatcher drains the webhook
    outbox beside the delivery worker (its batches are leased too, services/webhooks.py).
    """
    worker = DeliveryWorker(run.services)
    run.start(worker.run(run.stop), "worker")
    run.start(WebhookDispatcher(run.services).run(run.stop), "webhooks")
    return worker


def start_scheduler(run: Running) -> Scheduler:
    """The scheduler role: periodic jobs, run by whichever scheduler leads (see
    storage/leadership.py); the others stand by and take over when it dies."""
    scheduler = Scheduler(run.services)
    run.start(scheduler.run(run.stop), "scheduler")
    return scheduler


def start_api(run: Running, auth: Authenticator, health: ProcessHealth) -> None:
    """The api role: the transactional and bulk APIs and the tracking listener (each on
    its own port when bound here); /healthz, /readyz and /metrics on the transactional."""
    services, sockets = run.services, run.sockets
    cfg = services.settings.server
    for stream, port in ((Stream.TRANSACTIONAL, cfg.port), (Stream.BULK, cfg.bulk_port)):
        if port not in sockets:
            continue
        app = create_app(services, stream, auth)
        if stream is Stream.TRANSACTIONAL:
            install_health(app, health)
            # The web dashboard answers at / on the transactional listener only.
            install_dashboard(app)
        run.serve_http(_http(services, app, port, run.gates[port]), sockets[port])
    tracking_port = services.settings.tracking.port
    if tracking_port and tracking_port in sockets:
        tracking = create_tracking_app(services)
        run.serve_http(
            _http(services, tracking, tracking_port, run.gates[tracking_port]),
            sockets[tracking_port],
        )


async def start_smtp(run: Running, auth: Authenticator) -> None:
    """The smtp role: the submission listeners and the inbound listener for bounces."""
    services, sockets = run.services, run.sockets
    run.smtp += await start_listeners(services, sockets, auth, run.gates)
    inbound_port = services.settings.bounces.inbound_port
    if services.settings.bounces.inbound_enabled and inbound_port in sockets:
        run.smtp.append(
            await listener.start(services, sockets[inbound_port], run.gates[inbound_port])
        )
        # Inbound inboxes get mail once their domain's MX points here (docs/inbound.md).
        log.info("inbound inboxes: publish %s", inbound_mail.mx_instructions(services)["text"])


# Container allocations between two young collections (the stdlib default is 700).
GC_YOUNG_THRESHOLD = 50_000


def settle_heap() -> None:
    """Tune the cyclic GC for a serving process whose start-up is done.

    Start-up leaves ~10^5 long-lived objects (modules, the apps, settings, caches) that
    every full collection would scan again: :func:`gc.freeze` moves them out of its reach
    (they are still freed by reference counting; only cycles among them would outlive
    their use). A 500-message batch then allocates ~10^5 containers that live as long as
    its request, and at the default threshold each young collection scans and promotes
    them again: ~9% of the server's CPU in bench/ingest.py --shape batch. Collecting every
    50,000 allocations instead keeps the GC under 2% of it; cyclic garbage waits a little
    longer (a few MB at most) before it is freed. The older generations keep their ratios.
    """
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def instance_name() -> str:
    """This process among all of an installation's: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


async def serve(
    services: Services,
    sockets: dict[int, socket.socket],
    roles: frozenset[Role] = ALL_ROLES,
    *,
    health_socket: socket.socket | None = None,
    stop: asyncio.Event | None = None,
    freeze: bool = False,
) -> None:
    """Play ``roles`` until SIGINT or SIGTERM (or until ``stop`` is set), then stop them.

    ``sockets`` maps each listener's port (HTTP and SMTP) to its already bound socket
    (see :func:`bind`); a role serves the listeners of its own that are there.
    ``health_socket``, when given, serves /healthz, /readyz and /metrics (api/health.py).
    A caller that passes ``stop`` owns the process's signals: none are installed.
    ``freeze`` (a process of its own: ``postroom serve`` and its children) tunes the
    cyclic GC once the roles have started (:func:`settle_heap`).
    """
    gates = budget.gates_for(services.settings, budget.raise_open_files())
    if health_socket is not None:
        # A probe or a scrape at a time, from a few addresses: a small fixed gate.
        gates[health_socket.getsockname()[1]] = ConnectionGate(
            "health", Caps(64, 16), setting="--health-port"
        )
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    run = Running(services, sockets, gates, stop)
    redis_url = services.settings.scale.redis_url
    if redis_url:
        # Caches other processes invalidate (services/shared.py).
        services.invalidations = services.invalidations or Invalidations(redis_url)
        run.start(services.invalidations.listen(services.forget_here, stop), "invalidations")
    auth = Authenticator(services)
    health = ProcessHealth(services, label(roles), instance_name())
    if Role.WORKER in roles:
        health.connections = start_worker(run).open_connections
    if Role.SCHEDULER in roles:
        scheduler = start_scheduler(run)
        health.details["scheduler"] = lambda: "leading" if scheduler.active else "standby"
    if Role.API in roles:
        start_api(run, auth, health)
    if Role.SMTP in roles:
        await start_smtp(run, auth)
    if health_socket is not None:
        port = health_socket.getsockname()[1]
        run.serve_http(_http(services, create_health_app(health), port, gates[port]), health_socket)
    if freeze:
        settle_heap()
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*run.tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    for server in run.http:
        server.should_exit = True
    # Stop accepting; open SMTP sessions end with the process (what a session's DATA
    # was acknowledged for is committed already).
    listen.close(run.smtp)
    await asyncio.gather(*run.tasks, return_exceptions=True)
    for task in done:
        if task is not stopper and task.exception():
            raise task.exception()  # type: ignore[misc]
